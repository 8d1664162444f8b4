"""Timeouts for many concurrent requests, checked by one periodic timer.

``asyncio.timeout`` schedules one timer per use: a ``TimerHandle`` pushed on the loop's
heap and, when the request answers in time (nearly always), cancelled and left there until
it reaches the top or the heap is rebuilt. A proxy at several thousand requests per second
with a 10 s route timeout keeps tens of thousands of cancelled timers in that heap, and
every push and pop compares them in Python (measured: 17 comparisons per request).
``CoarseTimeouts`` keeps the waiting requests in a dict instead and checks them every
``resolution`` seconds (5 ms) with one timer, running only while something waits: the
hashed-wheel idea of Netty and Kafka, at the price of firing up to ``resolution`` late.

A fired timeout cancels the waiting task; ``expired(watch)`` tells the waiter, in its
``except CancelledError``, whether the cancellation was this timeout's alone (``uncancel``
back to zero, as ``asyncio.timeout`` decides), so it raises ``TimeoutError`` instead, and a
cancellation from elsewhere (the client went away) still propagates.
"""

from __future__ import annotations

import asyncio

from workbook.core.errors import ParameterError
from workbook.core.params import check_number


class Watch:
    """One waiting task and its expiry time (loop time)."""

    __slots__ = ("task", "when", "fired")

    def __init__(self, task: asyncio.Task, when: float):
        self.task, self.when, self.fired = task, when, False


class CoarseTimeouts:
    def __init__(self, loop: asyncio.AbstractEventLoop, *, resolution: float = 0.005):
        self.loop = loop
        self.resolution = check_number("resolution", resolution, minimum=0, min_exclusive=True)
        self._waiting: dict[Watch, None] = {}
        self._handle: asyncio.TimerHandle | None = None
        self.fired = 0

    def start(self, delay: float | None) -> Watch | None:
        """Watch the current task for ``delay`` seconds (None: no limit, no watch)."""
        if delay is None:
            return None
        if not delay >= 0:  # NaN too: it would never fire
            raise ParameterError("delay", delay, "a number of seconds >= 0, or None")
        task = asyncio.current_task(self.loop)
        if task is None:
            raise ParameterError("task", None, "start() called from a task running on this loop")
        watch = Watch(task, self.loop.time() + delay)
        self._waiting[watch] = None
        if self._handle is None:
            self._handle = self.loop.call_later(self.resolution, self._sweep)
        return watch

    def finish(self, watch: Watch | None) -> None:
        """The watched wait is over (answered, failed or timed out)."""
        if watch is not None:
            self._waiting.pop(watch, None)

    @staticmethod
    def expired(watch: Watch | None) -> bool:
        """In ``except CancelledError``: True if this watch's timeout alone cancelled the task
        (then raise ``TimeoutError``), False if the cancellation came from elsewhere."""
        return watch is not None and watch.fired and watch.task.uncancel() == 0

    def _sweep(self) -> None:
        self._handle = None
        try:
            now = self.loop.time()
            due = sorted((w for w in self._waiting if w.when <= now), key=lambda w: w.when)
            for watch in due:
                del self._waiting[watch]
                watch.fired = True
                self.fired += 1
                watch.task.cancel()
        finally:  # whatever happened, the watches left keep being checked
            if self._waiting:
                self._handle = self.loop.call_later(self.resolution, self._sweep)

    def close(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def __len__(self) -> int:
        return len(self._waiting)
