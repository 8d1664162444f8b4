"""A circuit breaker with resilience4j's semantics, observable through listeners.

States and transitions (resilience4j's ``CircuitBreakerStateMachine``):

* ``CLOSED``: every call is permitted; outcomes go into a sliding window (count- or
  time-based). Once the window holds at least ``minimum_number_of_calls`` outcomes, the
  failure rate and the slow-call rate are computed after every call; if either reaches its
  threshold (``>=``), the breaker goes ``OPEN``.
* ``OPEN``: every call is rejected with ``CallNotPermittedError`` until the wait in open
  state has passed (``wait_duration_in_open_state``, multiplied by
  ``wait_interval_multiplier`` for each consecutive opening, capped by
  ``max_wait_duration_in_open_state``; the count restarts on ``CLOSED``). Then the next
  call moves it to ``HALF_OPEN``, or, with ``automatic_transition_from_open_to_half_open``,
  a timer does (and reading ``state`` notices it too, for clocks without timers).
* ``HALF_OPEN``: exactly ``permitted_number_of_calls_in_half_open_state`` trial calls are
  let through; concurrent callers beyond them are rejected. When all trials have
  finished, their rates decide: a threshold reached -> ``OPEN`` (longer wait), else ->
  ``CLOSED`` with a fresh window. A trial ending with an ignored exception frees its slot.
  ``max_wait_duration_in_half_open_state`` > 0 sends a stuck half-open breaker back to OPEN.
* Manual states, left only by an explicit ``transition_to_*``: ``DISABLED`` (always
  permits, records nothing), ``FORCED_OPEN`` (always rejects), ``METRICS_ONLY`` (always
  permits, records and reports threshold crossings, never opens).

What counts: an exception that matches ``ignore_exceptions`` is ignored (neither success
nor failure); else one that matches ``record_exceptions`` (empty = every exception) is a
failure; an exception matching neither counts as a *success*, as in resilience4j. A
returned value is a failure when ``record_result(value)`` is true. A call is slow when it
lasted strictly longer than ``slow_call_duration_threshold``.

Deliberate difference from resilience4j: an outcome is recorded only by the state that
permitted the call (a call let through while CLOSED that ends after the breaker opened is
reported to listeners but cannot count as a half-open trial).

Invariants: in HALF_OPEN, at most ``permitted_number_of_calls_in_half_open_state`` calls
are in flight or finished per half-open period; a rejected call never reaches the callee;
every call that returns or raises ends in exactly one outcome event (success, error,
ignored_error or not_permitted; a cancelled call only frees its slot); every state change
emits one ``state_transition`` event.
"""

from __future__ import annotations

import asyncio
import enum
import functools
import inspect
import logging
import threading
import time
from asyncio import _get_running_loop  # returns None outside a loop (no exception)
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from workbook.core.clock import LoopClock, WallClock
from workbook.core.params import check_choice, check_int, check_number
from workbook.resilience.errors import CallNotPermittedError
from workbook.resilience.windows import CountWindow, WindowSnapshot, TimeWindow, snapshot

_log = logging.getLogger(__name__)


class State(str, enum.Enum):
    CLOSED = "CLOSED"
    OPEN = "OPEN"
    HALF_OPEN = "HALF_OPEN"
    DISABLED = "DISABLED"
    FORCED_OPEN = "FORCED_OPEN"
    METRICS_ONLY = "METRICS_ONLY"

    def __str__(self):
        return self.value


COUNT_BASED, TIME_BASED = "COUNT_BASED", "TIME_BASED"
_CLOSED = State.CLOSED


@dataclass(frozen=True)
class CircuitBreakerConfig:
    """Settings, with resilience4j's names (snake_case) and defaults. Durations in seconds.

    Checked when built: a bad value raises ``ParameterError`` (a ``ValueError``) naming the
    setting and the allowed range. As in resilience4j, a count-based window caps
    ``minimum_number_of_calls`` at ``sliding_window_size``.
    """

    failure_rate_threshold: float = 50.0
    slow_call_rate_threshold: float = 100.0
    slow_call_duration_threshold: float = 60.0
    permitted_number_of_calls_in_half_open_state: int = 10
    max_wait_duration_in_half_open_state: float = 0.0
    sliding_window_type: str = COUNT_BASED
    sliding_window_size: int = 100
    minimum_number_of_calls: int = 100
    wait_duration_in_open_state: float = 60.0
    wait_interval_multiplier: float = 1.0
    max_wait_duration_in_open_state: float | None = None
    automatic_transition_from_open_to_half_open: bool = False
    record_exceptions: tuple[type[BaseException], ...] | Callable[[BaseException], bool] = ()
    ignore_exceptions: tuple[type[BaseException], ...] | Callable[[BaseException], bool] = ()
    record_result: Callable[[Any], bool] | None = None

    def __post_init__(self):
        s = object.__setattr__
        s(self, "failure_rate_threshold", check_number(
            "failure_rate_threshold", self.failure_rate_threshold, minimum=0, maximum=100, min_exclusive=True))
        s(self, "slow_call_rate_threshold", check_number(
            "slow_call_rate_threshold", self.slow_call_rate_threshold, minimum=0, maximum=100, min_exclusive=True))
        s(self, "slow_call_duration_threshold", check_number(
            "slow_call_duration_threshold", self.slow_call_duration_threshold, minimum=0, min_exclusive=True))
        s(self, "permitted_number_of_calls_in_half_open_state", check_int(
            "permitted_number_of_calls_in_half_open_state", self.permitted_number_of_calls_in_half_open_state, minimum=1))
        s(self, "max_wait_duration_in_half_open_state", check_number(
            "max_wait_duration_in_half_open_state", self.max_wait_duration_in_half_open_state, minimum=0))
        check_choice("sliding_window_type", self.sliding_window_type, (COUNT_BASED, TIME_BASED))
        check_int("sliding_window_size", self.sliding_window_size, minimum=1)
        check_int("minimum_number_of_calls", self.minimum_number_of_calls, minimum=1)
        if self.sliding_window_type == COUNT_BASED and self.minimum_number_of_calls > self.sliding_window_size:
            s(self, "minimum_number_of_calls", self.sliding_window_size)
        s(self, "wait_duration_in_open_state", check_number(
            "wait_duration_in_open_state", self.wait_duration_in_open_state, minimum=0))
        s(self, "wait_interval_multiplier", check_number(
            "wait_interval_multiplier", self.wait_interval_multiplier, minimum=1))
        if self.max_wait_duration_in_open_state is not None:
            check_number("max_wait_duration_in_open_state", self.max_wait_duration_in_open_state,
                         minimum=self.wait_duration_in_open_state)
        if not isinstance(self.automatic_transition_from_open_to_half_open, bool):
            check_choice("automatic_transition_from_open_to_half_open",
                         self.automatic_transition_from_open_to_half_open, (True, False))
        for name in ("record_exceptions", "ignore_exceptions"):
            s(self, name, _exception_matcher(name, getattr(self, name)))
        if self.record_result is not None and not callable(self.record_result):
            check_choice("record_result", self.record_result, ("None", "a callable result -> bool"))

    def open_wait(self, openings: int) -> float:
        """The wait in OPEN after ``openings`` earlier consecutive openings (0 for the first)."""
        wait = self.wait_duration_in_open_state * self.wait_interval_multiplier ** openings
        if self.max_wait_duration_in_open_state is not None:
            wait = min(wait, self.max_wait_duration_in_open_state)
        return wait


def _exception_matcher(name, value):
    if callable(value) and not isinstance(value, type):
        return value
    if isinstance(value, type):
        value = (value,)
    if not isinstance(value, (tuple, list)) or not all(isinstance(t, type) and issubclass(t, BaseException) for t in value):
        check_choice(name, value, ("a tuple of exception classes", "a predicate exception -> bool"))
    return tuple(value)


def _matches(matcher, exc) -> bool:
    if isinstance(matcher, tuple):
        return isinstance(exc, matcher)
    return bool(matcher(exc))


@dataclass(frozen=True, slots=True)
class BreakerEvent:
    """One thing that happened. ``kind`` is one of:

    ``success``, ``error``, ``ignored_error``, ``not_permitted`` (call outcomes);
    ``state_transition`` (with ``from_state``/``to_state``); ``failure_rate_exceeded``,
    ``slow_call_rate_exceeded`` (with the rates); ``reset``.
    """

    kind: str
    time: float
    breaker: str
    state: State
    duration: float | None = None
    slow: bool = False
    from_state: State | None = None
    to_state: State | None = None
    error: BaseException | None = None
    failure_rate: float | None = None
    slow_call_rate: float | None = None


Listener = Callable[[BreakerEvent], None]


class CircuitBreaker:
    """A resilience4j-style breaker. ``call`` / ``call_async`` / decorator, or the
    low-level ``acquire_permission`` + ``on_success`` / ``on_error`` / ``release_permission``.

    ``CircuitBreaker("inventory", failure_rate_threshold=30, sliding_window_size=20)``
    takes keyword settings or ``config=CircuitBreakerConfig(...)``; ``clock`` defaults to
    the event loop's clock (virtual under ``run_virtual``).
    """

    def __init__(self, name: str = "breaker", config: CircuitBreakerConfig | None = None, *, clock=None,
                 listeners: list[Listener] | tuple = (), **settings):
        if config is None:
            config = CircuitBreakerConfig(**settings)
        elif settings:
            config = replace(config, **settings)
        self.name = name
        self.config = config
        self.clock = clock or LoopClock()
        self._fast = config.sliding_window_type == COUNT_BASED and config.record_result is None
        self._slow_threshold = config.slow_call_duration_threshold
        self._minimum = config.minimum_number_of_calls
        self._listeners: list[Listener] = list(listeners)
        self._fast_path = self._fast and not self._listeners
        self._fast_closed = self._fast_path
        self._lock = threading.Lock()
        self._state = State.CLOSED
        self._generation = 0
        self._window = self._new_window()
        self._half = CountWindow(config.permitted_number_of_calls_in_half_open_state)
        self._permits_left = 0
        self._openings = 0
        self._open_until = 0.0
        self._half_open_since = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self.not_permitted = 0
        self.listener_errors = 0

    @property
    def clock(self):
        return self._clock

    @clock.setter
    def clock(self, clock) -> None:
        self._clock = clock
        # WallClock.now is time.monotonic: binding it directly saves a call on the fast path
        self._loop_clock = type(clock) is LoopClock
        if type(clock) is WallClock:
            self._now = time.monotonic
        else:
            self._now = clock.now

    # -- observation ------------------------------------------------------------------
    def subscribe(self, listener: Listener) -> Listener:
        """Call ``listener(event)`` for every event from now on; returns it (usable as decorator)."""
        self._listeners.append(listener)
        self._fast_path = self._fast_closed = False
        return listener

    def unsubscribe(self, listener: Listener) -> None:
        self._listeners.remove(listener)
        self._fast_path = self._fast and not self._listeners
        self._fast_closed = self._fast_path and self._state is State.CLOSED

    @property
    def state(self) -> State:
        """The current state (a due automatic OPEN -> HALF_OPEN, or a due HALF_OPEN -> OPEN
        after ``max_wait_duration_in_half_open_state``, happens here for clocks without timers)."""
        if (self._state is State.OPEN and self.config.automatic_transition_from_open_to_half_open
                and self.clock.now() >= self._open_until):
            self._auto_half_open(self._generation)
        elif self._state is State.HALF_OPEN:
            limit = self.config.max_wait_duration_in_half_open_state
            if limit and self.clock.now() >= self._half_open_since + limit:
                self._half_open_expired(self._generation)
        return self._state

    def metrics(self) -> WindowSnapshot:
        """The window of the current state (the trials' window in HALF_OPEN).

        Taken under the breaker's lock: a time window slides (drops buckets) here, and a
        thread recording a call at the same moment must not see it half-slid.
        """
        with self._lock:
            if self._state is State.HALF_OPEN:
                return snapshot(self._half, self.config.permitted_number_of_calls_in_half_open_state)
            self._window.slide(self.clock.now())
            return snapshot(self._window, self.config.minimum_number_of_calls)

    @property
    def retry_at(self) -> float | None:
        """When an OPEN breaker will let a trial through (clock time), else None."""
        return self._open_until if self._state is State.OPEN else None

    # -- the call protocol ----------------------------------------------------------
    def acquire_permission(self) -> int:
        """Return a permission token, or raise ``CallNotPermittedError`` (and emit ``not_permitted``)."""
        state = self._state
        if state is State.CLOSED or state is State.DISABLED or state is State.METRICS_ONLY:
            return self._generation  # fast path: no lock needed to read one attribute
        events: list = []
        token = None
        with self._lock:
            state = self._state
            now = self.clock.now()
            if state is State.OPEN and now >= self._open_until:
                self._transition(State.HALF_OPEN, now, events)
                state = State.HALF_OPEN
            if state is State.CLOSED or state is State.DISABLED or state is State.METRICS_ONLY:
                token = self._generation
            elif state is State.HALF_OPEN:
                limit = self.config.max_wait_duration_in_half_open_state
                if limit and now >= self._half_open_since + limit:
                    self._transition(State.OPEN, now, events)
                elif self._permits_left > 0:
                    self._permits_left -= 1
                    token = self._generation
            if token is None:
                self.not_permitted += 1
                state = self._state
                if state is State.HALF_OPEN:
                    detail = f"all {self.config.permitted_number_of_calls_in_half_open_state} trial calls are taken"
                elif state is State.OPEN:
                    detail = f"retry after t={self._open_until:g}"
                else:
                    detail = "forced open"
                if self._listeners:
                    events.append(BreakerEvent("not_permitted", now, self.name, state))
        if events:
            self._emit_all(events)
        if token is None:
            raise CallNotPermittedError(self.name, state.value, detail)
        return token

    def release_permission(self, token: int) -> None:
        """Give back a half-open trial slot without recording an outcome (e.g. cancelled)."""
        with self._lock:
            if token == self._generation and self._state is State.HALF_OPEN:
                self._permits_left += 1

    def on_success(self, token: int, duration: float, result: Any = None) -> None:
        """Record a call that returned ``result`` after ``duration`` seconds."""
        predicate = self.config.record_result
        failed = bool(predicate(result)) if predicate is not None else False
        self._record(token, duration, failed, None)

    def on_error(self, token: int, duration: float, error: BaseException) -> None:
        """Record a call that raised ``error`` after ``duration`` seconds."""
        if _matches(self.config.ignore_exceptions, error):
            self.release_permission(token)
            if self._listeners:
                self._emit_all([BreakerEvent("ignored_error", self.clock.now(), self.name, self._state,
                                             duration=duration, error=error)])
            return
        record = self.config.record_exceptions
        failed = _matches(record, error) if record != () else True
        self._record(token, duration, failed, error)

    def _record(self, token, duration, failed, error):
        slow = duration > self.config.slow_call_duration_threshold
        events: list = []
        with self._lock:
            state = self._state
            listeners = self._listeners
            if listeners:
                now = self.clock.now()
                events.append(BreakerEvent("error" if failed else "success", now, self.name, state,
                                           duration=duration, slow=slow, error=error))
            if token == self._generation:
                if state is State.CLOSED or state is State.METRICS_ONLY:
                    window = self._window
                    if window.__class__ is TimeWindow:
                        window.record(failed, slow, self.clock.now())
                    else:
                        window.record(failed, slow)
                    if window.calls >= self.config.minimum_number_of_calls:
                        self._check(window, self.config.minimum_number_of_calls, state, events)
                elif state is State.HALF_OPEN:
                    self._half.record(failed, slow)
                    if self._half.calls >= self.config.permitted_number_of_calls_in_half_open_state:
                        if not self._check(self._half, self._half.size, state, events):
                            self._transition(State.CLOSED, self.clock.now(), events)
        if events:
            self._emit_all(events)

    def _check(self, window, minimum, state, events) -> bool:
        """Compare the window's rates with the thresholds; open if exceeded. True if exceeded."""
        snap = snapshot(window, minimum)
        cfg = self.config
        over_fail = snap.failure_rate is not None and snap.failure_rate >= cfg.failure_rate_threshold
        over_slow = snap.slow_call_rate is not None and snap.slow_call_rate >= cfg.slow_call_rate_threshold
        if not (over_fail or over_slow):
            return False
        now = self.clock.now()
        if self._listeners:
            if over_fail:
                events.append(BreakerEvent("failure_rate_exceeded", now, self.name, state,
                                           failure_rate=snap.failure_rate, slow_call_rate=snap.slow_call_rate))
            if over_slow:
                events.append(BreakerEvent("slow_call_rate_exceeded", now, self.name, state,
                                           failure_rate=snap.failure_rate, slow_call_rate=snap.slow_call_rate))
        if state is not State.METRICS_ONLY:
            self._transition(State.OPEN, now, events)
        return True

    # -- transitions -----------------------------------------------------------------
    def _transition(self, to: State, now: float, events: list) -> None:
        frm = self._state
        self._state = to
        self._fast_closed = self._fast_path and to is State.CLOSED
        self._generation += 1
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if to is State.CLOSED or to is State.METRICS_ONLY:
            self._window = self._new_window()
            if to is State.CLOSED:
                self._openings = 0
        elif to is State.OPEN:
            wait = self.config.open_wait(self._openings)
            self._openings += 1
            self._open_until = now + wait
            if self.config.automatic_transition_from_open_to_half_open:
                self._schedule_half_open(wait)
        elif to is State.HALF_OPEN:
            self._half = CountWindow(self.config.permitted_number_of_calls_in_half_open_state)
            self._permits_left = self.config.permitted_number_of_calls_in_half_open_state
            self._half_open_since = now
            if self.config.max_wait_duration_in_half_open_state:
                self._schedule(self.config.max_wait_duration_in_half_open_state, self._half_open_expired)
        if self._listeners:
            events.append(BreakerEvent("state_transition", now, self.name, to, from_state=frm, to_state=to))

    def _schedule_half_open(self, wait: float) -> None:
        self._schedule(wait, self._auto_half_open)

    def _schedule(self, wait: float, callback) -> None:
        """Run ``callback(generation)`` after ``wait`` on the loop's timers, if there are any."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop (a ManualClock test): ``state`` and the next call notice it
        if isinstance(self.clock, LoopClock):
            self._timer = loop.call_later(wait, callback, self._generation)

    def _half_open_expired(self, generation: int) -> None:
        """``max_wait_duration_in_half_open_state`` passed with trials unfinished: back to OPEN."""
        events: list = []
        with self._lock:
            limit = self.config.max_wait_duration_in_half_open_state
            if self._state is State.HALF_OPEN and self._generation == generation:
                self._timer = None
                self._transition(State.OPEN, max(self.clock.now(), self._half_open_since + limit), events)
        self._emit_all(events)

    def _auto_half_open(self, generation: int) -> None:
        events: list = []
        with self._lock:
            if self._state is State.OPEN and self._generation == generation:
                self._timer = None
                self._transition(State.HALF_OPEN, max(self.clock.now(), self._open_until), events)
        self._emit_all(events)

    def _manual(self, to: State) -> None:
        events: list = []
        with self._lock:
            if self._state is not to or to is State.CLOSED:
                self._transition(to, self.clock.now(), events)
        self._emit_all(events)

    def transition_to_closed(self) -> None:
        self._manual(State.CLOSED)

    def transition_to_open(self) -> None:
        self._manual(State.OPEN)

    def transition_to_half_open(self) -> None:
        self._manual(State.HALF_OPEN)

    def transition_to_disabled(self) -> None:
        self._manual(State.DISABLED)

    def transition_to_forced_open(self) -> None:
        self._manual(State.FORCED_OPEN)

    def transition_to_metrics_only(self) -> None:
        self._manual(State.METRICS_ONLY)

    def reset(self) -> None:
        """Back to a fresh CLOSED breaker (window and opening count cleared); emits ``reset``."""
        events: list = []
        with self._lock:
            if self._state is not State.CLOSED:
                self._transition(State.CLOSED, self.clock.now(), events)
            self._window = self._new_window()
            self._openings = 0
            self._generation += 1
            if self._listeners:
                events.append(BreakerEvent("reset", self.clock.now(), self.name, self._state))
        self._emit_all(events)

    # -- calling -------------------------------------------------------------------
    def call(self, fn: Callable, *args, **kwargs):
        """Call ``fn(*args, **kwargs)`` through the breaker (synchronous).

        The common case (CLOSED, count window, no listeners, no result predicate) is
        inlined here, with the same semantics as the general path: the outcome is recorded
        only if no transition happened meanwhile, and the thresholds are checked whenever
        they could have been crossed (a failed or slow outcome, or the window just reaching
        ``minimum_number_of_calls``; otherwise the rates cannot have risen).
        """
        if self._fast_closed:
            generation = self._generation
            if self._loop_clock:  # LoopClock.now, resolved once for both readings
                loop = _get_running_loop()
                now = time.monotonic if loop is None else loop.time
            else:
                now = self._now
            start = now()
            try:
                result = fn(*args, **kwargs)
            except Exception as exc:
                self.on_error(generation, now() - start, exc)
                raise
            code = 2 if now() - start > self._slow_threshold else 0
            with self._lock:
                if self._generation == generation:
                    w = self._window
                    i = w.pos
                    old = w.codes[i]
                    if old or code:
                        w.apply(i, old, code)
                    w.pos = i + 1 if i + 1 < w.size else 0
                    if w.calls < w.size:
                        w.calls += 1
                        if w.calls == self._minimum:
                            code = 1  # the window just got enough calls: check it once
                    if code and w.calls >= self._minimum:
                        self._check(w, self._minimum, _CLOSED, [])
            return result
        token = self.acquire_permission()
        clock = self.clock
        start = clock.now()
        try:
            result = fn(*args, **kwargs)
        except Exception as exc:
            self.on_error(token, clock.now() - start, exc)
            raise
        except BaseException:
            self.release_permission(token)
            raise
        self.on_success(token, clock.now() - start, result)
        return result

    async def call_async(self, fn: Callable, *args, **kwargs):
        """Await ``fn(*args, **kwargs)`` through the breaker. Cancellation frees the slot, records nothing."""
        token = self.acquire_permission()
        clock = self.clock
        start = clock.now()
        try:
            result = await fn(*args, **kwargs)
        except Exception as exc:
            self.on_error(token, clock.now() - start, exc)
            raise
        except BaseException:
            self.release_permission(token)
            raise
        self.on_success(token, clock.now() - start, result)
        return result

    def __call__(self, fn: Callable) -> Callable:
        """Decorate a function or a coroutine function."""
        if inspect.iscoroutinefunction(fn):
            @functools.wraps(fn)
            async def async_wrapper(*args, **kwargs):
                return await self.call_async(fn, *args, **kwargs)
            return async_wrapper

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            return self.call(fn, *args, **kwargs)
        return wrapper

    # -- helpers ---------------------------------------------------------------------
    def _new_window(self):
        cfg = self.config
        cls = CountWindow if cfg.sliding_window_type == COUNT_BASED else TimeWindow
        return cls(cfg.sliding_window_size)

    def _emit_all(self, events) -> None:
        """Deliver ``events`` to every listener. A listener that raises is logged and counted
        (``listener_errors``), never propagated, as resilience4j does: events are emitted
        after the state changed, so an exception here would escape a call that succeeded,
        or lose a half-open permission that was just granted (the breaker stuck HALF_OPEN)."""
        for event in events:
            for listener in list(self._listeners):
                try:
                    listener(event)
                except Exception:
                    self.listener_errors += 1
                    _log.warning("breaker %r: listener %r failed on %s event", self.name, listener, event.kind,
                                 exc_info=True)

    def __repr__(self):
        return f"CircuitBreaker({self.name!r}, state={self._state.value})"


@dataclass
class EventRecorder:
    """A listener that keeps every event (what the plots and tests subscribe)."""

    events: list[BreakerEvent] = field(default_factory=list)

    def __call__(self, event: BreakerEvent) -> None:
        self.events.append(event)

    def kinds(self) -> list[str]:
        return [e.kind for e in self.events]

    def transitions(self) -> list[tuple[float, str, str]]:
        return [(e.time, e.from_state.value, e.to_state.value) for e in self.events if e.kind == "state_transition"]

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for e in self.events:
            out[e.kind] = out.get(e.kind, 0) + 1
        return out
