"""Round robin, nginx's smooth weighted round robin, and uniform random.

``SmoothWeightedRoundRobin`` is nginx's ``ngx_http_upstream_get_peer`` (file
``src/http/ngx_http_upstream_round_robin.c``, nginx/nginx at commit 3f6f7824d4e2): on
every pick each pickable peer's ``current_weight`` grows by its ``effective_weight``, the
peer with the largest ``current_weight`` wins (the first one on a tie), and the winner's
``current_weight`` drops by the total of the effective weights. Weights 5, 1, 1 give
``a a b a c a a`` and repeat: the heavy peer's turns are spread out instead of sent in a
burst of five (the naive weighted round robin ``a a a a a b c`` does that).
nginx lowers ``effective_weight`` after a failure (by ``weight / max_fails``) and raises
it by one per pick back to ``weight``; passive health checking is shown with the real
nginx (``workbook.balancing.nginx``), so here ``effective_weight`` is the weight.

``NaiveWeightedRoundRobin`` is the source article's gateway version (``current_index %
total_weight`` walked through the cumulative weights): the right shares, but in bursts
(``a a a a a b c``), so the heavy backend takes five requests in a row.
"""

from __future__ import annotations

import random

from workbook.balancing.base import Backend, LoadBalancer


class RoundRobin(LoadBalancer):
    """Each pickable backend in turn, weights ignored (only weight 0 drains)."""

    algorithm = "round_robin"

    def __init__(self, backends=(), *, clock=None):
        self._next = 0
        super().__init__(backends, clock=clock)

    def _choose(self, key) -> Backend:
        backend = self._active[self._next % len(self._active)]
        self._next = (self._next + 1) % len(self._active)
        return backend


class SmoothWeightedRoundRobin(LoadBalancer):
    """nginx's smooth weighted round robin (the default of an ``upstream`` block)."""

    algorithm = "weighted_round_robin"

    def __init__(self, backends=(), *, clock=None):
        self.current_weight: dict[str, float] = {}
        super().__init__(backends, clock=clock)

    def _rebuild(self) -> None:
        # nginx keeps current_weight per peer; a new peer starts at 0
        self.current_weight = {b.name: self.current_weight.get(b.name, 0) for b in self._active}

    def _choose(self, key) -> Backend:
        best, total = None, 0
        cw = self.current_weight
        for b in self._active:
            cw[b.name] += b.weight
            total += b.weight
            if best is None or cw[b.name] > cw[best.name]:
                best = b
        cw[best.name] -= total
        return best


class RandomBalancer(LoadBalancer):
    """A uniformly random pickable backend (weights ignored), from a seeded ``rng``."""

    algorithm = "random"

    def __init__(self, backends=(), *, rng: random.Random | None = None, clock=None):
        self.rng = rng if rng is not None else random.Random(0)
        super().__init__(backends, clock=clock)

    def _choose(self, key) -> Backend:
        return self._active[self.rng.randrange(len(self._active))]


class NaiveWeightedRoundRobin(LoadBalancer):
    """The source article's weighted round robin: right shares, sent in bursts."""

    algorithm = "naive_weighted_round_robin"

    def __init__(self, backends=(), *, clock=None):
        self._index = 0
        super().__init__(backends, clock=clock)

    def _choose(self, key) -> Backend:
        total = sum(b.weight for b in self._active)
        current = self._index % total
        cumulative = 0
        for b in self._active:
            cumulative += b.weight
            if current < cumulative:
                self._index += 1
                return b
        return self._active[0]  # the article's fall-through (unreachable with weights > 0)
