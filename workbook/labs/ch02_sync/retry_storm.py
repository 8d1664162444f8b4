"""Experiment (b): a retry storm across three hops, in virtual time.

``client -> frontend -> middle -> backend``; the backend fails every call during an
outage. With naive retries at every hop (3 attempts, fixed wait: the source article's
way) each client request can become 3 x 3 x 3 = 27 backend requests, exactly when the
backend is least able to take them; with full-jitter backoff and a retry budget at every
hop the extra load stays bounded.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass

from workbook.core.load import open_loop
from workbook.core.params import check_choice, check_int, check_number
from workbook.core.seeds import derive_seed, stream
from workbook.core.simnet import Response, SimNetwork
from workbook.core.verdict import Verdict
from workbook.core.virtual_time import run_virtual
from workbook.resilience import Backoff, Retry, RetryBudget
from workbook.transport.simcall import sim_call

HOPS = ("frontend", "middle", "backend")


@dataclass
class StormRun:
    label: str
    client_requests: int
    arrivals: dict[str, int]
    arrivals_in_outage: dict[str, int]
    client_requests_in_outage: int
    backend_per_second: list[int]
    succeeded: int

    @property
    def amplification(self) -> float:
        """Backend requests per client request during the outage."""
        return self.arrivals_in_outage["backend"] / max(1, self.client_requests_in_outage)


def retry_storm(mode: str = "naive", *, seed: int = 0, rate: float = 20.0, duration: float = 30.0,
                outage: tuple[float, float] = (10.0, 20.0), attempts: int = 3,
                budget_percent: float = 20.0) -> StormRun:
    """``mode="naive"``: every hop retries up to ``attempts`` times with a fixed 50 ms wait;
    ``mode="budget"``: full-jitter exponential backoff and a ``RetryBudget`` of
    ``budget_percent`` (min 3 retries per 10 s) at every hop."""
    check_choice("mode", mode, ("naive", "budget"))
    attempts = check_int("attempts", attempts, minimum=1)
    budget_percent = check_number("budget_percent", budget_percent, minimum=0, maximum=100)

    async def main():
        net = SimNetwork(derive_seed(seed, "storm", "network"), latency=0.002, keep_log=False)
        loop = asyncio.get_running_loop()
        arrivals = {h: [] for h in HOPS}
        client_times = []

        def make_retry(caller):
            if mode == "naive":
                return Retry(attempts, Backoff(0.05, 1.0, 0.05, "none"))
            return Retry(attempts, Backoff(0.05, 2.0, 1.0, "full"), rng=stream(seed, "storm", "jitter", caller),
                         budget=RetryBudget(budget_percent, min_retries=3, window=10.0))

        retries = {h: make_retry(h) for h in ("client",) + HOPS[:-1]}

        def forwarder(me, nxt):
            async def handler(request):
                arrivals[me].append(loop.time())
                try:
                    await retries[me].call_async(sim_call, net, me, nxt, "/work", timeout=2.0)
                except Exception as exc:
                    return Response(503, {"error": "upstream_failed", "message": f"{nxt}: {type(exc).__name__}"})
                return {"ok": True}
            return handler

        async def backend(request):
            t = loop.time()
            arrivals["backend"].append(t)
            await asyncio.sleep(0.01)
            if outage[0] <= t < outage[1]:
                return Response(503, {"error": "unavailable", "message": "backend outage"})
            return {"ok": True}

        net.add_service("frontend", forwarder("frontend", "middle"))
        net.add_service("middle", forwarder("middle", "backend"))
        net.add_service("backend", backend)

        async def client_call(i):
            client_times.append(i / rate)
            await retries["client"].call_async(sim_call, net, "client", "frontend", "/work", timeout=5.0)

        results = await open_loop(client_call, rate=rate, duration=duration)
        ok = sum(1 for r in results if not isinstance(r, BaseException))
        in_outage = {h: sum(1 for t in ts if outage[0] <= t < outage[1]) for h, ts in arrivals.items()}
        per_second = [0] * int(math.ceil(duration + 2))
        for t in arrivals["backend"]:
            per_second[min(len(per_second) - 1, int(t))] += 1
        label = (f"naive retries ({attempts} per hop, no jitter, no budget)" if mode == "naive"
                 else f"jittered retries with a {budget_percent:g} % budget")
        return StormRun(label, len(results), {h: len(v) for h, v in arrivals.items()}, in_outage,
                        sum(1 for t in client_times if outage[0] <= t < outage[1]), per_second, ok)

    return run_virtual(main())


def storm_verdict(naive: StormRun, budget: StormRun) -> Verdict:
    return Verdict.of("a retry budget bounds the load a failing backend receives", [
        ("the budget cuts the amplification at least 5-fold", budget.amplification < naive.amplification / 5,
         f"{naive.amplification:.1f} -> {budget.amplification:.2f} backend requests per client request in the outage "
         f"(3 hops x 3 attempts: up to 27)"),
        ("with a budget, at most 2 backend requests per client request", budget.amplification <= 2.0,
         f"{budget.amplification:.2f}"),
    ], numbers={"naive": naive.amplification, "budget": budget.amplification,
                "succeeded": (naive.succeeded, budget.succeeded), "requests": naive.client_requests})
