"""Run ordinary asyncio code in virtual time.

``VirtualTimeLoop`` is a ``SelectorEventLoop`` whose ``time()`` is a number it owns.
Whenever no callback is ready, instead of blocking in ``select`` until the next timer
is due, it *jumps* its clock to that timer. Everything built on the loop's timers then
runs unchanged and instantly: ``asyncio.sleep``, ``asyncio.wait_for`` / ``asyncio.timeout``,
``loop.call_later``, tasks, queues, events, locks.

Why our own loop rather than ``looptime``: ``looptime`` is a pytest plugin that patches
a loop for a test; notebooks need a loop they can create, run to completion and
inspect, with deterministic tie-breaking. The loop subclasses ``SelectorEventLoop``; the
one thing patched is ``asyncio.get_running_loop`` on Python 3.11 (see below).

Invariants:

* Time never moves while a callback is ready; it only jumps when the loop would block.
* Timers due at the same virtual instant run in the order they were scheduled (a
  sequence number breaks ties), so a run is a pure function of the code and its seeds.
* If nothing is ready and no timer is pending, nothing can ever happen again: the loop
  raises ``VirtualTimeDeadlock`` instead of hanging (typically a lost message awaited
  without a timeout). Unless something outside the loop can still hand it work: a job
  in an executor (``asyncio.to_thread``, ``run_in_executor``, the DNS lookup of a real
  connection) or a registered real socket; then it waits for that, for real, with the
  virtual clock standing still (work in threads takes no virtual time).

Real I/O (sockets) still works on this loop, but mixing it with virtual time is
meaningless: use the real-time helpers (``workbook.core.realtime``) for that.

Speed (a simulation spends its time in the loop): handles are built without
``__init__``; a timer alone at its instant runs as soon as the clock jumps to it, and
``asyncio.sleep``'s timer sets its future's result without a Python frame or a context
copy; ``create_future`` and ``get_debug`` (called for every future) are C callables. On
Python 3.11, CPython's ``get_running_loop`` makes a ``getpid()`` system call per call
(``asyncio.sleep``, ``create_task``, locks and queues call it); while a VirtualTimeLoop
runs, ``asyncio.get_running_loop`` / ``_get_running_loop`` answer from a thread-local
instead and otherwise call the originals (``_install_running_loop_shortcut``). Python
3.12 dropped that system call, and there nothing is patched. None of this changes the
order in which callbacks run. ``benchmarks/bench_virtual_time.py`` measures it against SimPy.

``run_virtual`` runs a coroutine on a fresh loop. Inside Jupyter (a loop is already
running in the kernel's thread) it runs the loop in a worker thread and waits, so a
notebook cell can call it like any function.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import heapq
import itertools
import os
import selectors
import sys
import threading
from asyncio import events, futures
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from workbook.core.errors import WorkbookError

T = TypeVar("T")


class VirtualTimeDeadlock(WorkbookError, RuntimeError):
    """Nothing is ready and no timer is pending: the awaited result can never arrive."""


# asyncio.sleep's timer callback (every Python from 3.11 to 3.13 schedules this function);
# the run loop sets such a timer's result itself, without a Python frame or a context.
_SET_RESULT = getattr(futures, "_set_result_unless_cancelled", object())  # a sentinel if it is gone
_new = object.__new__
_copy_context = contextvars.copy_context


class _VirtualThread(threading.local):
    loop = None  # the VirtualTimeLoop running in this thread, if any


_virtual_thread = _VirtualThread()
_install_lock = threading.Lock()


def _install_running_loop_shortcut() -> bool:
    """On Python 3.11, answer ``get_running_loop()`` from a thread-local in virtual-time threads.

    CPython 3.11's ``get_running_loop`` (C) calls ``getpid()`` on every call to notice a
    fork; ``asyncio.sleep``, ``create_task``, locks and queues call it, and a system call
    costs far more than the rest of a sleep on a virtual machine. 3.12 removed that check
    (gh-100363) and keeps the loop in the thread state, so there this does nothing.

    The replacements return the VirtualTimeLoop that runs in the calling thread (set by
    its ``_run_once``, forgotten by its ``run_forever``: only while asyncio itself reports
    it as running) and otherwise delegate to the functions they replace: every other
    thread and every other loop sees no difference. A forked child forgets the loop, as
    CPython's does. Returns whether it installed them now.
    """
    with _install_lock:
        if sys.version_info >= (3, 12) or getattr(events.get_running_loop, "_virtual_time_shortcut", False):
            return False
        _wrap_running_loop_getters()
        return True


def _wrap_running_loop_getters():
    c_get, c_get_or_none = events.get_running_loop, events._get_running_loop
    local = _virtual_thread

    def get_running_loop():
        loop = local.loop
        return loop if loop is not None else c_get()

    def _get_running_loop():
        loop = local.loop
        return loop if loop is not None else c_get_or_none()

    for fn, original in ((get_running_loop, c_get), (_get_running_loop, c_get_or_none)):
        fn.__doc__, fn.__wrapped__, fn._virtual_time_shortcut = original.__doc__, original, True
        for module in (events, asyncio):
            if getattr(module, original.__name__, None) is original:
                setattr(module, original.__name__, fn)
    os.register_at_fork(after_in_child=lambda: setattr(local, "loop", None))


class _Soon(events.Handle):
    """A Handle for ``call_soon``, built in ``call_soon`` itself (same protocol and fields).

    ``_repr`` and ``_source_traceback`` are class attributes (always None: asyncio only
    fills them in debug mode, in code these handles bypass), two stores fewer per handle.
    """

    __slots__ = ()
    _repr = _source_traceback = None

    def cancel(self):
        if not self._cancelled:
            self._cancelled = True
            self._callback = self._args = None


class _Timer(events.TimerHandle):
    """A TimerHandle built in ``call_at`` and cancelled with less overhead (same protocol and fields)."""

    __slots__ = ()
    _repr = _source_traceback = None

    def cancel(self):
        if not self._cancelled:
            self._cancelled = True
            if self._scheduled:
                self._loop._timer_cancelled_count += 1
            self._callback = self._args = None


class _VirtualSelector(selectors.BaseSelector):
    """A real selector that the loop only ever polls without blocking.

    ``extra_fds`` counts registered file objects besides the loop's own self-pipe: with
    none, there is nothing real to poll and the loop skips the system call.
    """

    def __init__(self):
        self._real = selectors.DefaultSelector()
        self.extra_fds = -1  # the self-pipe is registered first and does not count

    def register(self, fileobj, events_, data=None):
        key = self._real.register(fileobj, events_, data)
        self.extra_fds += 1
        return key

    def unregister(self, fileobj):
        key = self._real.unregister(fileobj)
        self.extra_fds -= 1
        return key

    def modify(self, fileobj, events_, data=None):
        return self._real.modify(fileobj, events_, data)

    def get_map(self):
        return self._real.get_map()

    def close(self):
        self._real.close()

    def select(self, timeout=None):
        return self._real.select(0)

    def wait(self):
        """Block until a real file descriptor (the self-pipe included) is ready."""
        return self._real.select(None)


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """An event loop whose clock jumps to the next timer instead of waiting for it."""

    def __init__(self, start: float = 0.0):
        self._vnow = float(start)
        self._seq = itertools.count()
        self._executor_jobs = 0  # run_in_executor futures not yet done
        selector = _VirtualSelector()
        super().__init__(selector)
        selector.loop = self
        self._clock_resolution = 1e-9
        self._sleep_context = contextvars.Context()  # the context of asyncio.sleep's timers
        # Called for every future (C futures call loop.get_debug() when created): bound C
        # callables instead of Python methods, unless a subclass overrides them.
        _install_running_loop_shortcut()
        cls = type(self)
        if cls.create_future is VirtualTimeLoop.create_future:
            self.create_future = functools.partial(futures.Future, loop=self)

    STEPS = 256  # time steps per _run_once call
    STEP_CALLBACKS = 10_000  # callbacks per step at most, so stop() and real I/O are seen

    def time(self) -> float:
        return self._vnow

    def create_future(self):
        return futures.Future(loop=self)

    def set_debug(self, enabled):
        super().set_debug(enabled)
        if type(self).get_debug is VirtualTimeLoop.get_debug:
            self.get_debug = bool(enabled).__bool__  # a C callable returning the flag

    def get_debug(self):
        return self._debug

    def call_at(self, when, callback, *args, context=None):
        if when is None:
            raise TypeError("when cannot be None")
        if self._closed:
            raise RuntimeError("Event loop is closed")
        timer = _new(_Timer)  # TimerHandle.__init__, inlined
        timer._callback = callback
        timer._args = args
        timer._cancelled = False
        timer._loop = self
        if context is None:
            # asyncio.sleep's callback only sets a result: no need for a copy of the context
            context = self._sleep_context if callback is _SET_RESULT else _copy_context()
        timer._context = context
        timer._when = when
        timer._scheduled = True
        # The heap holds (when, sequence, handle): equal times keep insertion order, and
        # tuples compare in C, faster than TimerHandle.__lt__.
        heapq.heappush(self._scheduled, (when, next(self._seq), timer))
        return timer

    def call_later(self, delay, callback, *args, context=None):
        if delay is None:
            raise TypeError("delay must not be None")
        if self._closed:
            raise RuntimeError("Event loop is closed")
        timer = _new(_Timer)  # call_at, inlined
        timer._callback = callback
        timer._args = args
        timer._cancelled = False
        timer._loop = self
        if context is None:
            # asyncio.sleep's callback only sets a result: no need for a copy of the context
            context = self._sleep_context if callback is _SET_RESULT else _copy_context()
        timer._context = context
        timer._when = when = self._vnow + delay
        timer._scheduled = True
        heapq.heappush(self._scheduled, (when, next(self._seq), timer))
        return timer

    def call_soon(self, callback, *args, context=None):
        if self._closed:
            raise RuntimeError("Event loop is closed")
        handle = _new(_Soon)  # Handle.__init__, inlined
        handle._callback = callback
        handle._args = args
        handle._cancelled = False
        handle._loop = self
        handle._context = _copy_context() if context is None else context
        self._ready.append(handle)
        return handle

    def run_forever(self):
        # _run_once tells get_running_loop that this loop runs in this thread (see
        # _install_running_loop_shortcut); it forgets it when asyncio does, here
        previous = _virtual_thread.loop
        try:
            super().run_forever()
        finally:
            _virtual_thread.loop = previous

    def run_in_executor(self, executor, func, *args):
        future = super().run_in_executor(executor, func, *args)
        self._executor_jobs += 1
        future.add_done_callback(self._executor_job_done)
        return future

    def _executor_job_done(self, _future):
        self._executor_jobs -= 1

    async def shutdown_default_executor(self, timeout=None):
        # asyncio.Runner.close() joins the default executor in a helper thread and awaits
        # a future that thread resolves: outside work, like a job. From Python 3.12 it
        # passes a timeout of 300 s, which here would be virtual seconds: the clock would
        # jump to it at once and abandon the threads with a warning. Threads take no
        # virtual time, so the join is awaited without a timeout (as 3.11 does).
        self._executor_jobs += 1
        try:
            await super().shutdown_default_executor()
        finally:
            self._executor_jobs -= 1

    def _run_once(self):
        """Run what is ready; when nothing is, jump the clock to the next timer; repeat.

        Replaces ``BaseEventLoop._run_once`` (same handle protocol). One call makes up
        to ``STEPS`` time steps, stopping early when ``stop()`` is requested. Real file
        descriptors are polled without blocking, and only when some are registered
        besides the self-pipe (``call_soon_threadsafe`` appends to ``_ready`` itself).
        Callbacks made ready while running are run in the same pass, FIFO.

        Fast path: when the clock jumps to a timer that is alone at its instant, the timer
        runs at once instead of going through the (empty) ready queue: the order of every
        callback is the same. For ``asyncio.sleep``'s timer it sets the future's result
        itself, without a Python frame or a context.
        """
        _virtual_thread.loop = self  # asyncio has set this loop running in this thread
        scheduled, ready = self._scheduled, self._ready
        if self._timer_cancelled_count > 100 and self._timer_cancelled_count * 2 > len(scheduled):
            self._scheduled = scheduled = [entry for entry in scheduled if not entry[2]._cancelled]
            heapq.heapify(scheduled)
            self._timer_cancelled_count = 0
        selector, popleft, append, heappop = self._selector, ready.popleft, ready.append, heapq.heappop
        resolution, set_result_callback = self._clock_resolution, _SET_RESULT
        for _ in range(self.STEPS):
            if selector.extra_fds > 0:
                events_ = selector.select(0)
                if events_:
                    self._process_events(events_)
            if ready:  # timers due now go after what is already ready
                if scheduled and scheduled[0][0] < self._vnow + resolution:
                    end_time = self._vnow + resolution
                    while scheduled and scheduled[0][0] < end_time:
                        handle = heappop(scheduled)[2]
                        handle._scheduled = False
                        append(handle)
            else:
                if self._stopping:
                    return
                if not scheduled:
                    if not (self._executor_jobs or selector.extra_fds > 0):
                        raise VirtualTimeDeadlock(
                            f"virtual time t={self._vnow:.6f}s: no task can proceed and no timer is pending, "
                            "so the awaited result can never arrive (a lost message awaited without a timeout?)"
                        )
                    # A thread or a socket may still wake us. What they made ready runs before
                    # the next poll, which would otherwise report the same readiness again.
                    events_ = selector.wait()
                    if events_:
                        self._process_events(events_)
                else:
                    when, _, handle = heappop(scheduled)
                    handle._scheduled = False
                    if handle._cancelled:
                        self._timer_cancelled_count -= 1
                        continue
                    if when > self._vnow:
                        self._vnow = when
                    end_time = self._vnow + resolution
                    if scheduled and scheduled[0][0] < end_time:  # a tie: all go through the queue, in order
                        append(handle)
                        while scheduled and scheduled[0][0] < end_time:
                            handle = heappop(scheduled)[2]
                            handle._scheduled = False
                            append(handle)
                    else:  # alone at its instant: run it now
                        try:
                            if handle._callback is set_result_callback:
                                future, result = handle._args
                                if not future.cancelled():
                                    future.set_result(result)
                            else:
                                handle._context.run(handle._callback, *handle._args)
                        except (SystemExit, KeyboardInterrupt):
                            raise
                        except BaseException as exc:
                            self._callback_failed(handle, exc)
            budget = self.STEP_CALLBACKS
            while ready and budget:
                budget -= 1
                handle = popleft()
                if handle._cancelled:
                    continue
                try:  # Handle._run, inlined
                    handle._context.run(handle._callback, *handle._args)
                except (SystemExit, KeyboardInterrupt):
                    raise
                except BaseException as exc:
                    self._callback_failed(handle, exc)
            if self._stopping:
                return

    def _callback_failed(self, handle, exc):
        self.call_exception_handler(
            {"message": f"Exception in callback {handle._callback!r}", "exception": exc, "handle": handle}
        )


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
