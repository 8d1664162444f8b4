"""The tail at scale: a request that fans out to k backends is as slow as the slowest.

If each backend is slow with probability p, a request touching k of them meets at least
one slow backend with probability ``1 - (1 - p) ** k``: 1 % per backend becomes 63 % of
requests at k = 100 (Dean and Barroso, "The Tail at Scale", CACM 2013). The experiment
runs it on the simulated network in virtual time: a frontend calls k backends
concurrently and waits for all of them.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from workbook.core.distributions import Bimodal, Constant, Distribution, Exponential, LogNormal
from workbook.core.errors import ParameterError
from workbook.core.params import check_choice, check_int, check_number
from workbook.core.seeds import derive_seed
from workbook.core.simnet import SimNetwork
from workbook.core.stats import quantiles
from workbook.core.virtual_time import run_virtual

DISTRIBUTIONS = ("bimodal", "lognormal", "exponential")


def tail_distribution(distribution: str, median_ms: float, p_slow: float = 0.01, slow_ms: float = 1000.0) -> Distribution:
    """A backend's service time: ``bimodal`` (lognormal around the median, with
    probability ``p_slow`` a stall of ``slow_ms``), plain ``lognormal`` or ``exponential``.
    """
    check_choice("distribution", distribution, DISTRIBUTIONS)
    median = check_number("median_ms", median_ms, minimum=0, min_exclusive=True) / 1000
    if distribution == "exponential":
        return Exponential(median / math.log(2))  # same median
    body = LogNormal(median, 0.25)
    if distribution == "lognormal":
        return LogNormal(median, 0.6)
    p = check_number("p_slow", p_slow, minimum=0, maximum=1)
    slow = check_number("slow_ms", slow_ms, minimum=0, min_exclusive=True) / 1000
    return Bimodal(body, Constant(slow), p)


def slow_share_theory(k: int, p_slow: float) -> float:
    """Probability that a request fanning out to k backends meets at least one slow one."""
    return 1 - (1 - p_slow) ** k


def fanout_where_quantile_stalls(q: float, p_slow: float) -> int:
    """The smallest k at which the q-quantile of a k-way fan-out is a stall.

    The q-quantile is a stall once more than a share 1 - q of requests meet one:
    1 - (1 - p)^k > 1 - q, i.e. k > ln(q) / ln(1 - p).
    """
    q = check_number("q", q, minimum=0, maximum=1, min_exclusive=True, max_exclusive=True)
    p_slow = check_number("p_slow", p_slow, minimum=0, maximum=1, min_exclusive=True, max_exclusive=True)
    k = max(1, math.floor(math.log(q) / math.log(1 - p_slow)))
    while k > 1 and slow_share_theory(k - 1, p_slow) > 1 - q:
        k -= 1
    while slow_share_theory(k, p_slow) <= 1 - q:
        k += 1
    return k


@dataclass(frozen=True)
class FanoutResult:
    k: int
    requests: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    slow_share: float  # measured share of requests slower than the threshold

    def as_dict(self):
        return asdict(self)


def check_k_values(k_values) -> list[int]:
    """``k_values`` must be a non-empty list of distinct integers >= 1 (fan-outs)."""
    if isinstance(k_values, (str, bytes)) or not isinstance(k_values, Sequence) or not k_values:
        raise ParameterError("k_values", k_values, "a non-empty list of integers >= 1")
    ks = [check_int(f"k_values[{i}]", k, minimum=1) for i, k in enumerate(k_values)]
    if len(set(ks)) != len(ks):
        raise ParameterError("k_values", k_values, "distinct fan-outs (a value is repeated)")
    return ks


def fanout_experiment(
    k_values: Sequence[int],
    *,
    requests: int,
    service_time: Distribution,
    seed: int,
    network_ms: float = 0.5,
    slow_threshold_ms: float = 500.0,
) -> list[FanoutResult]:
    """For each k, send ``requests`` requests one after another, each fanning out to k backends.

    Requests go one at a time so nothing queues: the growth of the tail is the fan-out
    alone. Latencies are measured end to end at the frontend in virtual time.
    """
    ks = check_k_values(k_values)
    requests = check_int("requests", requests, minimum=1)
    seed = check_int("seed", seed, minimum=0)

    async def run_one_k(k: int) -> FanoutResult:
        net = SimNetwork(derive_seed(seed, "fanout", k), latency=network_ms / 1000, keep_log=False)
        net.add_service("frontend")
        backends = [f"backend-{i}" for i in range(k)]
        for name in backends:
            net.add_service(name, service_time=service_time)
        loop = asyncio.get_running_loop()
        latencies = []
        for _ in range(requests):
            start = loop.time()
            await asyncio.gather(*(net.call("frontend", b) for b in backends))
            latencies.append((loop.time() - start) * 1000)
        slow = sum(1 for v in latencies if v > slow_threshold_ms) / requests
        p50, p90, p99 = (round(v, 3) for v in quantiles(latencies, (0.50, 0.90, 0.99)))
        return FanoutResult(k, requests, p50, p90, p99, slow)

    async def main():
        return [await run_one_k(k) for k in ks]

    return run_virtual(main)
