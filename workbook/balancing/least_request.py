"""Power of two choices on least requests: Envoy's default ``LEAST_REQUEST`` balancer.

Envoy's ``LeastRequestLoadBalancer::unweightedHostPick``
(``source/common/upstream/load_balancer_impl.cc``, envoyproxy/envoy at commit
18342ff1a07d) draws ``choice_count`` backends (default 2) uniformly *with replacement*
(``random() % hosts.size()``) and keeps the one with the fewest active requests; the
comparison is strict, so on a tie the first drawn stays. Two random choices instead of a
full scan: almost all of the benefit of least-loaded (Mitzenmacher 2001, "The power of two
choices in randomized load balancing") at O(1) cost, and no herd of callers all rushing
to the single least-loaded backend. ``choice_count`` = 1 is random;
``full_scan=True`` is Envoy's ``FULL_SCAN`` selection (the least of all, ties at random
among the tied would be Envoy's; here the first of the tied).
Envoy switches to a weighted EDF schedule when weights differ; this class ignores
weights other than 0 (drained).
"""

from __future__ import annotations

import random

from workbook.balancing.base import Backend, LoadBalancer
from workbook.core.params import check_int


class LeastRequest(LoadBalancer):
    """P2C on in-flight requests (Envoy ``LEAST_REQUEST``, ``choice_count`` = 2)."""

    algorithm = "least_request"

    def __init__(self, backends=(), *, choice_count: int = 2, full_scan: bool = False,
                 rng: random.Random | None = None, clock=None):
        self.choice_count = check_int("choice_count", choice_count, minimum=1)
        self.full_scan = bool(full_scan)
        self.rng = rng if rng is not None else random.Random(0)
        super().__init__(backends, clock=clock)

    def _choose(self, key) -> Backend:
        hosts, active = self._active, self._inflight
        if self.full_scan:
            return min(hosts, key=lambda b: active[b.name])
        n = len(hosts)
        candidate = None
        for _ in range(self.choice_count):
            sampled = hosts[self.rng.randrange(n)]
            if candidate is None or active[sampled.name] < active[candidate.name]:
                candidate = sampled
        return candidate
