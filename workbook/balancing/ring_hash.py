"""Consistent hashing on a ring: Envoy's ``RING_HASH`` (ketama-style) balancer.

As Envoy's ``RingHashLoadBalancer`` builds it (``source/common/upstream/ring_hash_lb.cc``,
envoyproxy/envoy): weights are normalized to sum 1; the scale is
``min(ceil(min_weight * min_ring_size) / min_weight, max_ring_size)`` so the lightest
backend gets a whole number of points; walking the backends in order with running sums
``target += scale * weight``, each backend adds points ``hash("<name>_<i>")`` until
``current >= target``; the points are sorted. A key goes to the first point at or after
``hash(key)``, wrapping to the first point of the ring.

When a backend leaves only the keys on its points move (to the next point's owner): the
share of keys remapped is the leaving backend's share, about 1/N. More points
(``min_ring_size``) spread the shares more evenly at a cost in memory and build time.
Defaults are Envoy's: ``min_ring_size`` 1024, ``max_ring_size`` 8M.

Envoy's sizing has a cost it does not advertise: with equal weights each backend gets
``ceil(min_ring_size / N)`` points, so when one of N leaves every other backend gains
points (103 -> 114 for N = 10 -> 9) and those new points take keys from their
neighbours too: measured, 17.6 % of keys move instead of the leaving backend's ~10 %.
``hashes_per_backend`` fixes the points of the lightest backend instead (classic
ketama: 160 per server), so only the leaving backend's keys move.
"""

from __future__ import annotations

import bisect
import math

from workbook.balancing.base import Backend, LoadBalancer
from workbook.balancing.hashing import hash64
from workbook.core.params import check_int


class RingHash(LoadBalancer):
    """Ketama-style consistent hashing; ``pick(key)`` needs a key."""

    algorithm = "ring_hash"

    def __init__(self, backends=(), *, min_ring_size: int = 1024, max_ring_size: int = 8 * 1024 * 1024,
                 hashes_per_backend: int | None = None, clock=None):
        self.min_ring_size = check_int("min_ring_size", min_ring_size, minimum=1)
        self.max_ring_size = check_int("max_ring_size", max_ring_size, minimum=self.min_ring_size)
        self.hashes_per_backend = (None if hashes_per_backend is None
                                   else check_int("hashes_per_backend", hashes_per_backend, minimum=1))
        self._hashes: list[int] = []
        self._owners: list[Backend] = []
        super().__init__(backends, clock=clock)

    def _rebuild(self) -> None:
        active = self._active
        if not active:
            self._hashes, self._owners = [], []
            return
        total = sum(b.weight for b in active)
        normalized = [(b, b.weight / total) for b in active]
        min_w = min(w for _, w in normalized)
        if self.hashes_per_backend is None:  # Envoy: the ring holds at least min_ring_size points
            scale = min(math.ceil(min_w * self.min_ring_size) / min_w, float(self.max_ring_size))
        else:  # ketama: the lightest backend has hashes_per_backend points, whatever N is
            scale = min(self.hashes_per_backend / min_w, float(self.max_ring_size))
        ring = []
        current = target = 0.0
        for b, w in normalized:
            target += scale * w
            i = 0
            while current < target:
                ring.append((hash64(f"{b.name}_{i}"), len(ring), b))
                i += 1
                current += 1
        ring.sort(key=lambda e: (e[0], e[1]))
        self._hashes = [h for h, _, _ in ring]
        self._owners = [b for _, _, b in ring]

    @property
    def ring_size(self) -> int:
        return len(self._hashes)

    def _choose(self, key) -> Backend:
        i = bisect.bisect_left(self._hashes, hash64(key))
        return self._owners[i if i < len(self._owners) else 0]
