"""Sliding windows of call outcomes, as resilience4j keeps them.

* ``CountWindow(size)``: the outcomes of the last ``size`` calls (a ring buffer).
* ``TimeWindow(size)``: the outcomes of the calls of the last ``size`` seconds, kept as
  ``size`` one-second buckets (resilience4j's "partial aggregations"): a call at time t
  lands in bucket ``floor(t)``; buckets older than ``floor(now) - size + 1`` are dropped.

Both keep running totals, so recording and reading are O(1) (amortised O(1) for the time
window). Invariant: ``calls >= failed`` and ``calls >= slow``; the totals always equal the
sum over the outcomes still inside the window.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class WindowSnapshot:
    """What a window holds now. Rates are percentages, ``None`` below ``minimum_number_of_calls``."""

    calls: int
    failed: int
    slow: int
    slow_failed: int
    failure_rate: float | None
    slow_call_rate: float | None


class CountWindow:
    """The last ``size`` outcomes, one byte each: bit 0 failed, bit 1 slow."""

    __slots__ = ("size", "codes", "pos", "calls", "failed", "slow", "slow_failed")

    def __init__(self, size: int):
        self.size = size
        self.codes = bytearray(size)
        self.pos = 0
        self.calls = self.failed = self.slow = self.slow_failed = 0

    def record(self, failed: bool, slow: bool, now: float = 0.0) -> None:
        self.record_code((1 if failed else 0) | (2 if slow else 0))

    def record_code(self, code: int) -> None:
        """Record an outcome coded as ``failed | slow << 1`` (the breaker's fast path calls this inline)."""
        i = self.pos
        if self.calls < self.size:
            self.calls += 1
        old = self.codes[i]
        if old or code:
            self.apply(i, old, code)
        self.pos = i + 1 if i + 1 < self.size else 0

    def apply(self, i: int, old: int, code: int) -> None:
        """Replace the outcome in slot ``i`` (``old``, 0 if the slot was never used) by ``code``."""
        self.codes[i] = code
        self.failed += (code & 1) - (old & 1)
        self.slow += (code >> 1) - (old >> 1)
        self.slow_failed += (code == 3) - (old == 3)

    def slide(self, now: float) -> None:
        """Nothing to do: a count window does not age."""

    def reset(self) -> None:
        self.__init__(self.size)


class TimeWindow:
    """The outcomes of the last ``size`` seconds, in one-second buckets."""

    __slots__ = ("size", "_buckets", "calls", "failed", "slow", "slow_failed")

    def __init__(self, size: int):
        self.size = size
        self._buckets: dict[int, list[int]] = {}  # second -> [calls, failed, slow, slow_failed]
        self.calls = self.failed = self.slow = self.slow_failed = 0

    def slide(self, now: float) -> None:
        oldest = math.floor(now) - self.size + 1
        for second in [s for s in self._buckets if s < oldest]:
            c, f, s, sf = self._buckets.pop(second)
            self.calls -= c
            self.failed -= f
            self.slow -= s
            self.slow_failed -= sf

    def record(self, failed: bool, slow: bool, now: float = 0.0) -> None:
        self.slide(now)
        bucket = self._buckets.setdefault(math.floor(now), [0, 0, 0, 0])
        bucket[0] += 1
        bucket[1] += failed
        bucket[2] += slow
        bucket[3] += failed and slow
        self.calls += 1
        self.failed += failed
        self.slow += slow
        self.slow_failed += failed and slow

    def reset(self) -> None:
        self.__init__(self.size)


def snapshot(window, minimum_number_of_calls: int) -> WindowSnapshot:
    """Rates of ``window`` as percentages; ``None`` while fewer than ``minimum_number_of_calls``."""
    calls = window.calls
    if calls == 0 or calls < minimum_number_of_calls:
        return WindowSnapshot(calls, window.failed, window.slow, window.slow_failed, None, None)
    return WindowSnapshot(calls, window.failed, window.slow, window.slow_failed,
                    100.0 * window.failed / calls, 100.0 * window.slow / calls)
