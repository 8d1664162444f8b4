"""Experiment (c): availability and p99 latency as the per-try timeout varies, in virtual time.

A service answering in ~lognormal(30 ms), with 4 % of calls stalling 2-5 s and 1 %
hanging for 60 s; the client makes up to ``attempts`` tries (per-try timeout, no backoff)
within an overall limit. Too short a timeout cuts healthy calls; too long a timeout waits
out every stall.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass

from workbook.core.load import open_loop
from workbook.core.params import check_int, check_number
from workbook.core.seeds import derive_seed, stream
from workbook.core.simnet import SimNetwork
from workbook.core.stats import quantile
from workbook.core.verdict import Verdict
from workbook.core.virtual_time import run_virtual
from workbook.resilience import Backoff, Retry, Timeout
from workbook.transport.simcall import sim_call

ARRIVAL_RATE = 100.0
"""Requests per second in the sweep (evenly spaced)."""


@dataclass
class TimeoutPoint:
    timeout: float
    availability: float
    p50: float
    p99: float
    load: float  # tries per request


def timeout_sweep(timeouts=(0.02, 0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 3.2), *, seed: int = 0, requests: int = 2000,
                  attempts: int = 2, overall: float = 4.0) -> list[TimeoutPoint]:
    """One ``TimeoutPoint`` per per-try timeout. Availability = share answered within
    ``overall`` s; a request that was not is counted as an infinite latency."""
    requests = check_int("requests", requests, minimum=1)
    points = []
    for timeout in timeouts:
        check_number("timeout", timeout, minimum=0, min_exclusive=True)

        async def main(timeout=timeout):
            rng = stream(seed, "timeouts", "service")
            net = SimNetwork(derive_seed(seed, "timeouts", "network"), latency=0.001, keep_log=False)
            loop = asyncio.get_running_loop()

            async def handler(request):
                u = rng.random()
                if u < 0.01:
                    await asyncio.sleep(60)
                elif u < 0.05:
                    await asyncio.sleep(rng.uniform(2, 5))
                else:
                    await asyncio.sleep(rng.lognormvariate(math.log(0.03), 0.5))
                return {"ok": True}

            net.add_service("svc", handler)
            per_try = Timeout(timeout)
            retry = Retry(attempts, Backoff(0.0, 1, 0, "none"))
            tries = [0]

            async def attempt():
                tries[0] += 1
                return await per_try.call_async(sim_call, net, "client", "svc", "/")

            async def one(i):
                start = loop.time()
                try:
                    async with asyncio.timeout(overall):
                        await retry.call_async(attempt)
                except Exception:
                    return math.inf
                return loop.time() - start

            latencies = await open_loop(one, rate=ARRIVAL_RATE, duration=requests / ARRIVAL_RATE)
            done = [x for x in latencies if x != math.inf]
            return TimeoutPoint(timeout, len(done) / len(latencies), quantile(latencies, 0.5),
                                quantile(latencies, 0.99), tries[0] / len(latencies))

        points.append(run_virtual(main()))
    return points


def best_timeout(points: list[TimeoutPoint], tolerance: float = 0.005) -> TimeoutPoint:
    """The point with the lowest p99 among those within ``tolerance`` of the best availability."""
    top = max(p.availability for p in points)
    return min((p for p in points if p.availability >= top - tolerance), key=lambda p: (p.p99, p.timeout))


def timeout_verdict(points: list[TimeoutPoint]) -> Verdict:
    best = best_timeout(points)
    shortest, longest = points[0], points[-1]
    return Verdict.of("the best per-try timeout lies between the extremes", [
        ("the shortest timeout is not the best", best is not shortest,
         f"{shortest.timeout * 1000:g} ms cuts healthy calls: availability {shortest.availability:.1%}, "
         f"{shortest.load:.2f} tries per request"),
        ("the longest timeout is not the best", best is not longest and best.p99 < longest.p99,
         f"{longest.timeout:g} s waits out stalls: p99 {longest.p99:.2f} s"),
        ("a middle timeout keeps at least 99 % availability", best.availability >= 0.99,
         f"{best.timeout * 1000:g} ms: availability {best.availability:.1%}, p99 {best.p99 * 1000:.0f} ms"),
    ], numbers={"best_timeout": best.timeout, "best_availability": best.availability, "best_p99": best.p99})
