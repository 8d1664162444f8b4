"""Maglev consistent hashing: a lookup table filled by per-backend permutations.

Eisenbud et al., "Maglev: A Fast and Reliable Software Network Load Balancer", NSDI 2016,
section 3.4, as Envoy's ``MaglevTable`` builds it (``source/common/upstream/maglev_lb.cc``,
envoyproxy/envoy): the table has ``table_size`` M entries, M prime (Envoy's default
65537); each backend has ``offset = h0(name) mod M`` and ``skip = h1(name) mod (M - 1) + 1``
(M prime makes every skip coprime with M, so ``(offset + j * skip) mod M`` for j = 0..M-1
visits every entry once: a permutation). Backends take turns claiming their next
preferred free entry until the table is full; with weights, a backend takes a turn only
every ``max_weight / weight`` rounds (Envoy's ``target_weight``). A key goes to
``table[hash(key) mod M]``: O(1), and each backend owns almost exactly its share of the
entries. When a backend leaves, a little more than its 1/N of the keys move (the paper
trades that small extra disruption for the even spread and the fast lookup).
"""

from __future__ import annotations

from workbook.balancing.base import Backend, LoadBalancer
from workbook.balancing.hashing import hash64
from workbook.core.errors import ParameterError
from workbook.core.params import check_int


def _is_prime(n: int) -> bool:
    if n < 2:
        return False
    f = 2
    while f * f <= n:
        if n % f == 0:
            return False
        f += 1
    return True


class Maglev(LoadBalancer):
    """Maglev table lookup; ``pick(key)`` needs a key."""

    algorithm = "maglev"

    def __init__(self, backends=(), *, table_size: int = 65537, clock=None):
        table_size = check_int("table_size", table_size, minimum=2)
        if not _is_prime(table_size):
            raise ParameterError("table_size", table_size, "a prime number (e.g. 65537, 251, 5)")
        self.table_size = table_size
        self.table: list[Backend] = []
        super().__init__(backends, clock=clock)

    def _rebuild(self) -> None:
        m = self.table_size
        active = self._active
        if not active:
            self.table = []
            return
        if len(active) > m:
            raise ParameterError("table_size", m, f"a prime larger than the number of backends ({len(active)})")
        total = sum(b.weight for b in active)
        entries = []
        for b in active:
            entries.append({"backend": b, "offset": hash64(b.name, 0) % m, "skip": hash64(b.name, 1) % (m - 1) + 1,
                            "weight": b.weight / total, "target": b.weight / total, "next": 0})
        max_w = max(e["weight"] for e in entries)
        table: list[Backend | None] = [None] * m
        filled, iteration = 0, 1
        while filled < m:
            for e in entries:
                if filled >= m:
                    break
                if iteration * e["weight"] < e["target"]:
                    continue
                e["target"] += max_w
                offset, skip, nxt = e["offset"], e["skip"], e["next"]
                c = (offset + skip * nxt) % m
                while table[c] is not None:
                    nxt += 1
                    c = (offset + skip * nxt) % m
                table[c] = e["backend"]
                e["next"] = nxt + 1
                filled += 1
            iteration += 1
        self.table = table

    def _choose(self, key) -> Backend:
        return self.table[hash64(key) % self.table_size]
