"""Sliding windows of call outcomes, as resilience4j keeps them.

* ``CountWindow(size)``: the outcomes of the last ``size`` calls (a ring buffer;
  resilience4j's ``FixedSizeSlidingWindowMetrics``).
* ``TimeWindow(size)``: the outcomes of the calls of the last ``size`` seconds, kept as
  ``size`` one-second buckets (resilience4j's ``SlidingTimeWindowMetrics``, "partial
  aggregations"): a call at time t lands in bucket ``floor(t)``; buckets older than
  ``floor(now) - size + 1`` are dropped.

An outcome is a code: ``FAILED`` (1) and/or ``SLOW`` (2), 0 for a fast success.
``record(code, now)`` stores one and answers the only question the breaker asks after a
call: *could the rates have reached a threshold just now?* (True once the window holds
``minimum`` calls and the outcome was failed or slow, or the window has just reached
``minimum`` calls; a time window says True whenever it holds ``minimum`` calls, since
buckets sliding out can raise a rate too.) When it says False, the rates cannot have risen
and the breaker has nothing to check.

Both windows are thread-safe by themselves and keep running totals, so recording and
reading are O(1) (amortised O(1) for the time window). Invariant: ``calls >= failed`` and
``calls >= slow``; the totals always equal the sum over the outcomes still inside the
window.

The count window's common case takes no lock: once it is full, a fast success that
replaces a fast success changes nothing but the position, and the position is handed out
atomically (``next`` on an ``itertools.cycle`` is one C call, atomic under the GIL), so
every call gets its own slot. Every other outcome is written under the window's lock.
(With more than ``size`` calls overlapping, a slow writer may store its outcome after a
later call reused the slot: the window then holds that older outcome instead; the totals
stay exactly the sum of the slots.)
"""

from __future__ import annotations

import itertools
import math
import threading
from dataclasses import dataclass

FAILED, SLOW = 1, 2


def outcome_code(failed: bool, slow: bool) -> int:
    """The code of an outcome: ``FAILED | SLOW`` bits."""
    return (FAILED if failed else 0) | (SLOW if slow else 0)


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
    """The last ``size`` outcomes, one byte each (``FAILED | SLOW``). ``minimum``: the number
    of calls below which no rate exists (resilience4j caps it at ``size``)."""

    __slots__ = ("size", "minimum", "codes", "calls", "failed", "slow", "slow_failed", "full", "_slots", "_lock")

    def __init__(self, size: int, minimum: int | None = None):
        self.size = size
        self.minimum = size if minimum is None else min(minimum, size)
        self.codes = bytearray(size)
        self.calls = self.failed = self.slow = self.slow_failed = 0
        self.full = False
        self._slots = itertools.cycle(range(size))
        self._lock = threading.Lock()

    def record(self, code: int, now: float = 0.0) -> bool:
        """Store outcome ``code``; True if a rate may have reached a threshold (see module doc)."""
        slot = next(self._slots)
        if self.full and not code and not self.codes[slot]:
            return False  # a fast success replacing one: nothing changes
        lock = self._lock
        lock.acquire()
        try:
            codes = self.codes
            old = codes[slot]
            if old or code:
                codes[slot] = code
                self.failed += (code & 1) - (old & 1)
                self.slow += (code >> 1) - (old >> 1)
                self.slow_failed += (code == 3) - (old == 3)
            calls = self.calls
            if calls < self.size:
                self.calls = calls = calls + 1
                self.full = calls == self.size
                if calls == self.minimum:
                    return True  # just enough calls for a rate: check it once
            return code != 0 and calls >= self.minimum
        finally:
            lock.release()

    def slide(self, now: float) -> None:
        """Nothing to do: a count window does not age."""

    def snapshot(self) -> WindowSnapshot:
        with self._lock:
            return _snapshot(self.calls, self.failed, self.slow, self.slow_failed, self.minimum)


class TimeWindow:
    """The outcomes of the last ``size`` seconds, in one-second buckets."""

    __slots__ = ("size", "minimum", "_buckets", "calls", "failed", "slow", "slow_failed", "_lock")

    def __init__(self, size: int, minimum: int = 1):
        self.size = size
        self.minimum = minimum
        self._buckets: dict[int, list[int]] = {}  # second -> [calls, failed, slow, slow_failed]
        self.calls = self.failed = self.slow = self.slow_failed = 0
        self._lock = threading.Lock()

    def slide(self, now: float) -> None:
        """Drop the buckets that have left the window at ``now``."""
        with self._lock:
            self._slide(now)

    def _slide(self, now: float) -> None:
        oldest = math.floor(now) - self.size + 1
        for second in [s for s in self._buckets if s < oldest]:
            c, f, s, sf = self._buckets.pop(second)
            self.calls -= c
            self.failed -= f
            self.slow -= s
            self.slow_failed -= sf

    def record(self, code: int, now: float = 0.0) -> bool:
        """Store outcome ``code`` at time ``now``; True once the window holds ``minimum`` calls."""
        failed, slow = code & 1, code >> 1
        with self._lock:
            self._slide(now)
            bucket = self._buckets.setdefault(math.floor(now), [0, 0, 0, 0])
            bucket[0] += 1
            bucket[1] += failed
            bucket[2] += slow
            bucket[3] += failed & slow
            self.calls += 1
            self.failed += failed
            self.slow += slow
            self.slow_failed += failed & slow
            return self.calls >= self.minimum

    def snapshot(self) -> WindowSnapshot:
        """The totals as they stand (call ``slide(now)`` first to age them)."""
        with self._lock:
            return _snapshot(self.calls, self.failed, self.slow, self.slow_failed, self.minimum)


def _snapshot(calls, failed, slow, slow_failed, minimum) -> WindowSnapshot:
    if calls == 0 or calls < minimum:
        return WindowSnapshot(calls, failed, slow, slow_failed, None, None)
    return WindowSnapshot(calls, failed, slow, slow_failed, 100.0 * failed / calls, 100.0 * slow / calls)


EMPTY = CountWindow(0)
"""The metrics of DISABLED and FORCED_OPEN (resilience4j's ``forDisabled`` / ``forForcedOpen``:
a window of size 0): nothing is ever recorded in it."""
