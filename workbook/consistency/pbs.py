"""Probabilistically bounded staleness (Bailis et al. 2012): how likely is a read to be stale?

The WARS model of a Dynamo-style store: a write is sent to all N replicas (one-way delay
W to each), each acknowledges (delay A); the write *commits* when W acknowledgements are
back. A read starts ``t`` seconds after the commit, is sent to all N replicas (delay R)
and each answers (delay S); it uses the first R answers. The read is stale if none of
those R replicas had received the write when the read request reached it.

``stale_read_probability`` estimates that probability by Monte Carlo from seeded streams
(``workbook.core.seeds.stream``), one delay distribution for every message. With
R + W > N it is 0 for every ``t``; below, it falls with ``t`` as the write propagates.
"""

from __future__ import annotations

from typing import Any

from workbook.consistency.register import Quorum
from workbook.core.distributions import make_distribution
from workbook.core.params import check_int, check_number
from workbook.core.seeds import stream


def stale_read_probability(quorum: Quorum, t: float, *, latency: Any = 0.01, trials: int = 2000,
                           seed: int = 0) -> float:
    """The fraction of ``trials`` reads, started ``t`` s after a write committed, that miss it."""
    if not isinstance(quorum, Quorum):
        raise TypeError(f"quorum must be a Quorum(n, r, w), got {quorum!r}")
    t = check_number("t", t, minimum=0)
    trials = check_int("trials", trials, minimum=1)
    dist = make_distribution(latency, name="latency")
    rng = stream(seed, "pbs", quorum.n, quorum.r, quorum.w)
    n, stale = quorum.n, 0
    for _ in range(trials):
        arrive = [dist.sample(rng) for _ in range(n)]                  # write reaches replica i
        acks = sorted(arrive[i] + dist.sample(rng) for i in range(n))
        start = acks[quorum.w - 1] + t                                 # read begins t after commit
        reach = [start + dist.sample(rng) for _ in range(n)]           # read request reaches replica i
        answer = sorted(range(n), key=lambda i: reach[i] + dist.sample(rng))[: quorum.r]
        stale += not any(arrive[i] <= reach[i] for i in answer)
    return stale / trials
