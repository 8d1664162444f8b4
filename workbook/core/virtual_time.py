"""Run ordinary asyncio code in virtual time.

``VirtualTimeLoop`` is a ``SelectorEventLoop`` whose ``time()`` is a number it owns.
Whenever no callback is ready, instead of blocking in ``select`` until the next timer
is due, it *jumps* its clock to that timer. Everything built on the loop's timers then
runs unchanged and instantly: ``asyncio.sleep``, ``asyncio.wait_for`` / ``asyncio.timeout``,
``loop.call_later``, tasks, queues, events, locks.

Why our own loop rather than ``looptime``: ``looptime`` is a pytest plugin that patches
a loop for a test; notebooks need a loop they can create, run to completion and
inspect, with deterministic tie-breaking. This module is ~100 lines on top of the
standard library and is subclassed, not patched.

Invariants:

* Time never moves while a callback is ready; it only jumps when the loop would block.
* Timers due at the same virtual instant run in the order they were scheduled (a
  sequence number breaks ties), so a run is a pure function of the code and its seeds.
* If nothing is ready and no timer is pending, nothing can ever happen again: the loop
  raises ``VirtualTimeDeadlock`` instead of hanging (typically a lost message awaited
  without a timeout).

Real I/O (sockets) still works on this loop, but mixing it with virtual time is
meaningless: use the real-time helpers (``workbook.core.realtime``) for that.

``run_virtual`` runs a coroutine on a fresh loop. Inside Jupyter (a loop is already
running in the kernel's thread) it runs the loop in a worker thread and waits, so a
notebook cell can call it like any function.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import selectors
import threading
from asyncio import events
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class VirtualTimeDeadlock(RuntimeError):
    """Nothing is ready and no timer is pending: the awaited result can never arrive."""


class _SeqTimerHandle(events.TimerHandle):
    """A TimerHandle ordered by (when, sequence): equal times keep insertion order."""

    __slots__ = ("_seq",)

    def __init__(self, seq, when, callback, args, loop, context=None):
        super().__init__(when, callback, args, loop, context=context)
        self._seq = seq

    def __lt__(self, other):
        if self._when == other._when:
            return self._seq < other._seq
        return self._when < other._when

    def __le__(self, other):
        return self < other or self is other


class _VirtualSelector(selectors.BaseSelector):
    """Polls real file descriptors without blocking; a would-be wait jumps the clock."""

    POLL_EVERY = 64  # poll real fds at least once per this many busy iterations

    def __init__(self):
        self._real = selectors.DefaultSelector()
        self._busy = 0
        self.loop: VirtualTimeLoop | None = None

    def register(self, fileobj, events_, data=None):
        return self._real.register(fileobj, events_, data)

    def unregister(self, fileobj):
        return self._real.unregister(fileobj)

    def modify(self, fileobj, events_, data=None):
        return self._real.modify(fileobj, events_, data)

    def get_map(self):
        return self._real.get_map()

    def close(self):
        self._real.close()

    def select(self, timeout=None):
        if timeout == 0:
            self._busy += 1
            if self._busy % self.POLL_EVERY:
                return []
            return self._real.select(0)
        ready = self._real.select(0)
        if ready:
            return ready
        self.loop._jump_to_next_timer()
        return []


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """An event loop whose clock jumps to the next timer instead of waiting for it."""

    def __init__(self, start: float = 0.0):
        self._vnow = float(start)
        self._seq = itertools.count()
        selector = _VirtualSelector()
        super().__init__(selector)
        selector.loop = self
        self._clock_resolution = 1e-9

    def time(self) -> float:
        return self._vnow

    def call_at(self, when, callback, *args, context=None):
        if when is None:
            raise TypeError("when cannot be None")
        self._check_closed()
        timer = _SeqTimerHandle(next(self._seq), when, callback, args, self, context)
        heapq.heappush(self._scheduled, timer)
        timer._scheduled = True
        return timer

    def _jump_to_next_timer(self):
        scheduled = self._scheduled
        while scheduled and scheduled[0]._cancelled:
            heapq.heappop(scheduled)
            self._timer_cancelled_count = max(0, self._timer_cancelled_count - 1)
        if not scheduled:
            raise VirtualTimeDeadlock(
                f"virtual time t={self._vnow:.6f}s: no task can proceed and no timer is pending, "
                "so the awaited result can never arrive (a lost message awaited without a timeout?)"
            )
        self._vnow = max(self._vnow, scheduled[0]._when)


def run_virtual(main: Coroutine[Any, Any, T] | Callable[[], Awaitable[T]], *, start: float = 0.0) -> T:
    """Run ``main`` (a coroutine, or a function returning one) in virtual time; return its result.

    Works in a plain script, in pytest and inside a Jupyter kernel (where it runs the
    virtual loop in a worker thread, because the kernel's own loop is already running).
    """
    if not asyncio.iscoroutine(main):
        if not callable(main):
            raise TypeError(f"run_virtual: expected a coroutine or a function returning one, got {main!r}")
        main = main()
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return _run(main, start)
    box: dict[str, Any] = {}

    def worker():
        try:
            box["result"] = _run(main, start)
        except BaseException as exc:  # re-raised in the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=worker, name="virtual-time", daemon=True)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["result"]


def _run(coro, start):
    with asyncio.Runner(loop_factory=lambda: VirtualTimeLoop(start)) as runner:
        return runner.run(coro)
