"""Peak EWMA: pick by expected latency times load (Finagle's ``PeakEwma``, Linkerd's balancer).

Per backend, after Finagle (``finagle-core/.../loadbalancer/PeakEwma.scala``, twitter/finagle):

* ``cost`` is a *peak*-sensitive moving average of round-trip times: a sample above the
  average replaces it at once (``if rtt > cost: cost = rtt``), a sample below is blended in
  with weight ``1 - exp(-dt / decay_time)`` where ``dt`` is the time since the last
  observation (the series is unevenly spaced, so the weight depends on elapsed time);
  reading the cost first decays it towards 0 (``observe(0)``), so a backend that was slow
  once is tried again later.
* the load is ``cost * (pending + 1)``: the latency the next request can expect behind
  the ``pending`` ones in flight;
* a backend with no latency history but requests in flight costs
  ``PENALTY + pending`` (Finagle's ``Long.MaxValue >> 16``): unknown is assumed slow
  until a response arrives, so a new or stuck backend is not flooded.

The pick is Finagle's power of two choices over *distinct* backends: draw ``a``, then ``b``
among the others; ``b`` wins only if strictly cheaper. Linkerd's proxy does the same with
a configurable default RTT in place of the penalty. ``decay_time`` defaults to Finagle's
10 s; times are in the clock's seconds.
"""

from __future__ import annotations

import math
import random

from workbook.balancing.base import Backend, LoadBalancer
from workbook.core.params import check_number

#: Finagle's penalty for a backend with requests in flight and no latency known yet
PENALTY = float((2**63 - 1) >> 16)


class PeakEwma(LoadBalancer):
    """Power of two choices on ``peak_ewma_latency * (in_flight + 1)``."""

    algorithm = "peak_ewma"

    def __init__(self, backends=(), *, decay_time: float = 10.0, rng: random.Random | None = None, clock=None):
        self.decay_time = check_number("decay_time", decay_time, minimum=0, min_exclusive=True)
        self.rng = rng if rng is not None else random.Random(0)
        self._cost: dict[str, float] = {}
        self._stamp: dict[str, float] = {}
        super().__init__(backends, clock=clock)

    def _rebuild(self) -> None:
        # no stamp until the first observation: while the cost is 0 its age does not matter;
        # a backend that left is forgotten once its last request finished
        keep = {b.name for b in self.backends} | {n for n, c in self._inflight.items() if c > 0}
        self._cost = {n: c for n, c in self._cost.items() if n in keep}
        self._stamp = {n: t for n, t in self._stamp.items() if n in keep}
        for b in self.backends:
            self._cost.setdefault(b.name, 0.0)

    def _update(self, name: str, rtt: float) -> None:
        now = self.clock.now()
        dt = max(now - self._stamp.get(name, now), 0.0)
        cost = self._cost.get(name, 0.0)
        if rtt > cost:
            cost = rtt
        else:
            w = math.exp(-dt / self.decay_time)
            cost = cost * w + rtt * (1.0 - w)
        self._cost[name] = cost
        self._stamp[name] = now

    def load(self, backend: Backend | str) -> float:
        """The cost the next pick compares (decays the estimate to now first, as Finagle does)."""
        name = self._name(backend)
        self._update(name, 0.0)
        pending = self._inflight.get(name, 0)
        cost = self._cost[name]
        if cost == 0.0 and pending != 0:
            return PENALTY + pending
        return cost * (pending + 1)

    def ewma(self, backend: Backend | str) -> float:
        """The current latency estimate (seconds), without decaying it."""
        return self._cost.get(self._name(backend), 0.0)

    def _observe(self, name: str, latency: float | None, failed: bool) -> None:
        if latency is not None and name in self._cost:
            self._update(name, latency)

    def _choose(self, key) -> Backend:
        hosts = self._active
        n = len(hosts)
        if n == 1:
            return hosts[0]
        a = self.rng.randrange(n)
        b = self.rng.randrange(n - 1)
        if b >= a:
            b += 1
        node_a, node_b = hosts[a], hosts[b]
        return node_b if self.load(node_b) < self.load(node_a) else node_a
