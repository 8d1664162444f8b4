"""Experiment (d): hedged requests against a long tail, in virtual time.

Latency is lognormal(20 ms) with probability ``1 - p_slow``, else 0.3-1.0 s (a GC pause, a
cold cache): a fast mode and a slow mode. A hedge sends a second copy after ``delay`` s
and takes whichever answers first. Where to put ``delay`` is read from the quantiles of
the unhedged run: ``share_above(plain, delay)`` is how many requests a delay will hedge.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass

from workbook.core.load import open_loop
from workbook.core.params import check_int, check_number
from workbook.core.seeds import derive_seed, stream
from workbook.core.simnet import SimNetwork
from workbook.core.stats import quantile, quantiles
from workbook.core.verdict import Verdict
from workbook.core.virtual_time import run_virtual
from workbook.resilience import Hedge
from workbook.transport.simcall import sim_call

ARRIVAL_RATE = 200.0
"""Requests per second (evenly spaced)."""

QUANTILES = (0.5, 0.75, 0.9, 0.93, 0.95, 0.99, 0.999)


@dataclass
class HedgeRun:
    label: str
    delay: float | None
    latencies: list[float]
    sent: int
    requests: int

    @property
    def load(self) -> float:
        return self.sent / self.requests

    def q(self, p: float) -> float:
        return quantile(self.latencies, p)

    def quantile_table(self, qs=QUANTILES) -> dict[str, float]:
        """{"p50": ms, ...}, rounded to 0.1 ms."""
        return {f"p{q * 100:g}": round(v * 1000, 1) for q, v in zip(qs, quantiles(self.latencies, qs))}


def share_above(run: HedgeRun, delay: float) -> float:
    """The share of ``run``'s requests slower than ``delay``: those a hedge after ``delay`` would duplicate."""
    return sum(1 for x in run.latencies if x > delay) / len(run.latencies)


def hedging(delay: float | None = None, *, seed: int = 0, requests: int = 4000, p_slow: float = 0.05) -> HedgeRun:
    """``delay=None``: no hedging; else one hedge after ``delay`` seconds."""
    requests = check_int("requests", requests, minimum=1)
    p_slow = check_number("p_slow", p_slow, minimum=0, maximum=1)
    if delay is not None:
        delay = check_number("delay", delay, minimum=0)

    async def main():
        rng = stream(seed, "hedging", "service")
        net = SimNetwork(derive_seed(seed, "hedging", "network"), latency=0.0005, keep_log=False)
        loop = asyncio.get_running_loop()

        async def handler(request):
            if rng.random() < p_slow:
                await asyncio.sleep(rng.uniform(0.3, 1.0))
            else:
                await asyncio.sleep(rng.lognormvariate(math.log(0.02), 0.4))
            return {"ok": True}

        net.add_service("svc", handler)
        hedge = Hedge(delay if delay is not None else 0.0, max_hedges=1 if delay is not None else 0)

        async def one(i):
            start = loop.time()
            await hedge.call_async(sim_call, net, "client", "svc", "/")
            return loop.time() - start

        latencies = await open_loop(one, rate=ARRIVAL_RATE, duration=requests / ARRIVAL_RATE)
        label = "no hedging" if delay is None else f"hedge after {delay * 1000:.0f} ms"
        return HedgeRun(label, delay, latencies, hedge.sent, len(latencies))

    return run_virtual(main())


def hedging_verdict(plain: HedgeRun, hedged: HedgeRun) -> Verdict:
    return Verdict.of(f"{hedged.label} against {plain.label}", [
        ("p99 at least 3 times lower", hedged.q(0.99) < plain.q(0.99) / 3,
         f"{plain.q(0.99) * 1000:.0f} ms -> {hedged.q(0.99) * 1000:.0f} ms "
         f"(p50 {plain.q(0.5) * 1000:.1f} -> {hedged.q(0.5) * 1000:.1f} ms)"),
        ("less than 15 % extra requests", hedged.load < 1.15, f"{100 * (hedged.load - 1):.1f} % extra"),
    ], numbers={"p99": (plain.q(0.99), hedged.q(0.99)), "load": hedged.load})
