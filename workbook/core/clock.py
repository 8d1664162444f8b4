"""Clocks that pattern code takes as a parameter, so time is swapped, never mocked.

Every pattern (breaker, retry, limiter, broker...) reads time through a ``Clock``:

* ``LoopClock`` (the default) reads the running event loop's ``time()``. Under
  ``workbook.core.virtual_time`` that loop runs in virtual time, so the same pattern
  code is simulated; under an ordinary loop it is real time.
* ``BoundLoopClock`` reads one event loop's ``time()``, the loop given once (``bind``)
  when a server starts, instead of asking asyncio which loop runs at every reading.
* ``WallClock`` is ``time.monotonic`` with real ``asyncio.sleep``.
* ``ManualClock`` is moved by hand; its ``sleep`` records the delay and advances at
  once, so a test can assert the exact sequence of waits without sleeping.
"""

from __future__ import annotations

import asyncio
import time
from asyncio import get_running_loop  # public; bound here to save a lookup per reading
from collections.abc import Callable
from typing import Protocol, runtime_checkable

from workbook.core.errors import ParameterError


@runtime_checkable
class Clock(Protocol):
    """What pattern code needs from time: a monotonic ``now`` and an awaitable ``sleep``."""

    def now(self) -> float: ...

    async def sleep(self, delay: float) -> None: ...

    def sleep_sync(self, delay: float) -> None:
        """Wait ``delay`` seconds for a synchronous caller (which has no loop to yield to)."""
        ...


class WallClock:
    """Real monotonic time. ``now`` *is* ``time.monotonic`` (a static method), so a caller
    that caches ``clock.now`` (the breaker's fast path) pays no extra call per reading."""

    now = staticmethod(time.monotonic)

    async def sleep(self, delay: float) -> None:
        await asyncio.sleep(delay)

    def sleep_sync(self, delay: float) -> None:
        time.sleep(delay)

    def __repr__(self):
        return "WallClock()"


class LoopClock:
    """The running event loop's clock (virtual under a VirtualTimeLoop).

    Outside a running loop ``now`` falls back to ``time.monotonic``, which is what
    asyncio's default loops use too. Which loop runs depends on the caller, so a caller
    that reads the clock several times in one call (the breaker: before and after)
    resolves it once with ``reader()`` instead of calling ``now`` each time.
    """

    def now(self) -> float:
        try:
            return get_running_loop().time()
        except RuntimeError:  # no running loop
            return time.monotonic()

    def reader(self) -> Callable[[], float]:
        """The function that reads this clock for the current caller: the running loop's
        ``time``, or ``time.monotonic`` outside a loop. Valid while the caller stays on
        that loop (one call; do not keep it)."""
        try:
            return get_running_loop().time
        except RuntimeError:
            return time.monotonic

    async def sleep(self, delay: float) -> None:
        await asyncio.sleep(delay)

    def sleep_sync(self, delay: float) -> None:
        """A synchronous caller cannot yield to the loop, virtual or not: this waits for real."""
        time.sleep(delay)

    def __repr__(self):
        return "LoopClock()"


class BoundLoopClock(LoopClock):
    """One event loop's clock, the loop given once: ``bind(loop)`` at a server's startup.

    ``LoopClock`` asks asyncio for the running loop at every reading, and on Python 3.11
    ``asyncio.get_running_loop`` makes a ``getpid()`` system call per call (to notice a
    fork): a gateway reads the clock about ten times per request. This reads the bound
    loop's ``time`` directly. Before ``bind`` it reads ``time.monotonic``, which is what
    asyncio's own loops read, so it is right for any ordinary loop; bind it to a
    ``VirtualTimeLoop`` to run in virtual time. It is a ``LoopClock`` (same time, same
    ``sleep``), so what schedules on the loop's timers for a loop clock (the breaker's
    automatic transitions) does so for it too.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None):
        self._time: Callable[[], float] = time.monotonic
        if loop is not None:
            self.bind(loop)

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        # an ordinary loop's time() *is* time.monotonic(): read it without the extra frame
        ordinary = getattr(type(loop), "time", None) is asyncio.BaseEventLoop.time
        self._time = time.monotonic if ordinary else loop.time

    def now(self) -> float:
        return self._time()

    def reader(self) -> Callable[[], float]:
        return self._time

    def __repr__(self):
        return "BoundLoopClock()"


class ManualClock:
    """A clock that only moves when told to; ``sleeps`` lists every delay slept."""

    def __init__(self, start: float = 0.0):
        self._now = float(start)
        self.sleeps: list[float] = []

    def now(self) -> float:
        return self._now

    def advance(self, delay: float) -> float:
        if not delay >= 0:  # NaN too
            raise ParameterError("delay", delay, "a number >= 0 (ManualClock.advance)")
        self._now += delay
        return self._now

    async def sleep(self, delay: float) -> None:
        self.sleep_sync(delay)
        await asyncio.sleep(0)

    def sleep_sync(self, delay: float) -> None:
        self.sleeps.append(delay)
        self.advance(max(0.0, delay))

    def __repr__(self):
        return f"ManualClock(now={self._now})"


DEFAULT_CLOCK = LoopClock()
