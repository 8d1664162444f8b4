"""A circuit breaker with resilience4j's semantics, observable through listeners.

Specification: resilience4j's ``CircuitBreakerStateMachine``, ``CircuitBreakerMetrics``,
``CircuitBreaker.StateTransition`` and ``CircuitBreakerConfig``
(github.com/resilience4j/resilience4j, module ``resilience4j-circuitbreaker``), and
``IntervalFunction`` (``resilience4j-core``) for the wait in OPEN.

States and transitions:

* ``CLOSED``: every call is permitted; outcomes go into a sliding window (count- or
  time-based). Once the window holds at least ``minimum_number_of_calls`` outcomes, the
  failure rate and the slow-call rate are compared with their thresholds (``>=``) after
  every call that could have raised them; if either reaches its threshold, the breaker
  publishes ``failure_rate_exceeded`` / ``slow_call_rate_exceeded`` and goes ``OPEN``.
* ``OPEN``: every call is rejected with ``CallNotPermittedError`` until the wait in open
  state has passed: the next call *strictly after* it (``clock.instant().isAfter(...)``)
  moves the breaker to ``HALF_OPEN``, or, with ``automatic_transition_from_open_to_half_open``,
  a timer does at the end of the wait (and reading ``state`` notices it too, for clocks
  without timers). The wait is ``IntervalFunction.ofExponentialBackoff``'s: the n-th
  consecutive opening waits ``wait_duration_in_open_state * wait_interval_multiplier **
  (n - 1)``, saturated (never an overflow, however many openings) and capped by
  ``max_wait_duration_in_open_state``; the count restarts in CLOSED, DISABLED and
  METRICS_ONLY. OPEN's metrics are those of the state that opened it (the closed window,
  or the half-open trials), frozen.
* ``HALF_OPEN``: ``permitted_number_of_calls_in_half_open_state`` trial calls are let
  through; concurrent callers beyond them are rejected. The trials go into a count window
  of that size whose minimum is ``min(minimum_number_of_calls, permitted...)``
  (``CircuitBreakerMetrics.forHalfOpen``): as soon as that many trials have finished,
  their rates decide: a threshold reached -> ``OPEN`` (longer wait), else -> ``CLOSED``
  with a fresh window. No ``*_rate_exceeded`` event is published here. A trial ending with
  an ignored exception frees its slot. ``max_wait_duration_in_half_open_state`` > 0 sends
  a stuck half-open breaker back to OPEN.
* Manual states, left only by an explicit ``transition_to_*``: ``DISABLED`` (always
  permits, records nothing), ``FORCED_OPEN`` (always rejects), ``METRICS_ONLY`` (always
  permits, records, never opens; publishes each ``*_rate_exceeded`` kind once per period
  in METRICS_ONLY). DISABLED and FORCED_OPEN start fresh, empty metrics and publish no
  call events (success, error, ignored_error, not_permitted: resilience4j's
  ``State.allowPublish``); state transitions and resets are always published.

Manual transitions follow ``CircuitBreaker.StateTransition``: every pair except CLOSED ->
HALF_OPEN, METRICS_ONLY -> OPEN and METRICS_ONLY -> HALF_OPEN, which raise
``IllegalStateTransitionError``. A transition from a state to itself re-enters it (fresh
metrics, a new wait, fresh trial slots) and publishes no event
(``StateTransition.isInternalTransition``).

What counts: an exception that matches ``ignore_exceptions`` is ignored (neither success
nor failure); else one that matches ``record_exceptions`` (empty = every exception) is a
failure; an exception matching neither counts as a *success*, as in resilience4j. A
returned value is a failure when ``record_result(value)`` is true. A call is slow when it
lasted strictly longer than ``slow_call_duration_threshold``.

Deliberate differences from resilience4j (each pinned by a test):

* an outcome is recorded only by the state period that permitted the call (a call let
  through while CLOSED that ends after the breaker opened is reported to listeners but
  changes neither OPEN's metrics nor a half-open trial; resilience4j's ``OpenState``
  records it);
* ``wait_duration_in_open_state`` is a float of seconds, refused below 1 ms as
  resilience4j's builder does, but not truncated to whole milliseconds.

Invariants: in HALF_OPEN, at most ``permitted_number_of_calls_in_half_open_state`` calls
are in flight or finished per half-open period; a rejected call never reaches the callee;
every call that returns or raises ends in at most one outcome event (exactly one where the
state publishes: not in DISABLED or FORCED_OPEN; a cancelled call only frees its slot);
every change of state emits one ``state_transition`` event.
"""

from __future__ import annotations

import asyncio
import enum
import functools
import inspect
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from workbook.core.clock import LoopClock
from workbook.core.params import check_choice, check_int, check_number
from workbook.resilience.errors import CallNotPermittedError, IllegalStateTransitionError
from workbook.resilience.windows import EMPTY, CountWindow, TimeWindow, WindowSnapshot, outcome_code

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
_CLOSED, _OPEN, _HALF_OPEN = State.CLOSED, State.OPEN, State.HALF_OPEN
_DISABLED, _FORCED_OPEN, _METRICS_ONLY = State.DISABLED, State.FORCED_OPEN, State.METRICS_ONLY
_SILENT = frozenset({State.DISABLED, State.FORCED_OPEN})
"""States that publish no call events (resilience4j's ``State.allowPublish`` false)."""
_ILLEGAL = frozenset({(_CLOSED, _HALF_OPEN), (_METRICS_ONLY, _OPEN), (_METRICS_ONLY, _HALF_OPEN)})
"""The pairs missing from resilience4j's ``CircuitBreaker.StateTransition``."""

SATURATED_WAIT = (2 ** 63 - 1) / 1000.0
"""The longest wait in OPEN, in seconds: ``Long.MAX_VALUE`` milliseconds, where
resilience4j's ``IntervalFunction`` (``long`` arithmetic) saturates."""


@dataclass(frozen=True)
class CircuitBreakerConfig:
    """Settings, with resilience4j's names (snake_case) and defaults. Durations in seconds.

    Checked when built: a bad value raises ``ParameterError`` (a ``ValueError``) naming the
    setting and the allowed range. As in resilience4j, a count-based window caps
    ``minimum_number_of_calls`` at ``sliding_window_size``, and
    ``wait_duration_in_open_state`` must be at least 1 ms.
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
        # CircuitBreakerConfig.Builder.waitDurationInOpenState: "must be at least 1[ms]"
        s(self, "wait_duration_in_open_state", check_number(
            "wait_duration_in_open_state", self.wait_duration_in_open_state, minimum=0.001))
        s(self, "wait_interval_multiplier", check_number(
            "wait_interval_multiplier", self.wait_interval_multiplier, minimum=1))
        if self.max_wait_duration_in_open_state is not None:
            s(self, "max_wait_duration_in_open_state", check_number(
                "max_wait_duration_in_open_state", self.max_wait_duration_in_open_state,
                minimum=self.wait_duration_in_open_state))
        if not isinstance(self.automatic_transition_from_open_to_half_open, bool):
            check_choice("automatic_transition_from_open_to_half_open",
                         self.automatic_transition_from_open_to_half_open, (True, False))
        for name in ("record_exceptions", "ignore_exceptions"):
            s(self, name, _exception_matcher(name, getattr(self, name)))
        if self.record_result is not None and not callable(self.record_result):
            check_choice("record_result", self.record_result, ("None", "a callable result -> bool"))

    def open_wait(self, openings: int) -> float:
        """The wait in OPEN after ``openings`` earlier consecutive openings (0 for the first).

        ``IntervalFunction.ofExponentialBackoff(initial, multiplier, max)``: the growth
        saturates (at ``SATURATED_WAIT``, resilience4j's ``long`` milliseconds) instead of
        overflowing, then the cap applies. A float power overflows at ``2.0 ** 1024``: the
        1,024th re-opening used to raise ``OverflowError`` out of ``call()``.
        """
        wait = self.wait_duration_in_open_state
        if openings > 0 and self.wait_interval_multiplier > 1:
            try:
                wait = min(SATURATED_WAIT, wait * self.wait_interval_multiplier ** openings)
            except OverflowError:
                wait = SATURATED_WAIT
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

    Time is read through the clock's public interface only: the breaker caches the
    clock's bound ``now`` (for ``WallClock`` that *is* ``time.monotonic``), and a clock
    whose reading depends on the caller (``LoopClock``: which loop is running) offers
    ``reader()``, resolved once per call.
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
        self._listeners: list[Listener] = list(listeners)
        self._fast_path = self._fast and not self._listeners
        self._fast_closed = self._fast_path
        self._lock = threading.Lock()
        self._state = State.CLOSED
        self._generation = 0
        self._window = self._closed_window()
        self._open_metrics = EMPTY.snapshot()
        self._exceeded_published: set[str] = set()
        self._permits_left = 0
        self._attempts = 0  # resilience4j's ``attempts()``: consecutive openings
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
        self._now = clock.now
        self._reader = getattr(clock, "reader", None)

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
        """The metrics of the current state, as resilience4j's ``getMetrics()``: the sliding
        window in CLOSED and METRICS_ONLY, the trials in HALF_OPEN, in OPEN those of the
        state that opened it (frozen), empty in DISABLED and FORCED_OPEN.

        Taken under the breaker's lock: a time window slides (drops buckets) here, and a
        thread recording a call at the same moment must not see it half-slid.
        """
        with self._lock:
            return self._metrics(self.clock.now())

    def _metrics(self, now: float) -> WindowSnapshot:
        if self._state is State.OPEN:
            return self._open_metrics
        window = self._window
        window.slide(now)
        return window.snapshot()

    @property
    def retry_at(self) -> float | None:
        """When an OPEN breaker will let a trial through (strictly after this clock time), else None."""
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
            # OpenState.tryAcquirePermission: clock.instant().isAfter(retryAfterWaitDuration)
            if state is State.OPEN and now > self._open_until:
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
                if self._listeners and state not in _SILENT:
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
            state = self._state
            if self._listeners and state not in _SILENT:
                self._emit_all([BreakerEvent("ignored_error", self.clock.now(), self.name, state,
                                             duration=duration, error=error)])
            return
        record = self.config.record_exceptions
        failed = _matches(record, error) if record != () else True
        self._record(token, duration, failed, error)

    def _record(self, token, duration, failed, error):
        slow = duration > self._slow_threshold
        events: list = []
        with self._lock:
            state = self._state
            now = self.clock.now()
            if self._listeners and state not in _SILENT:
                events.append(BreakerEvent("error" if failed else "success", now, self.name, state,
                                           duration=duration, slow=slow, error=error))
            if token == self._generation and (state is State.CLOSED or state is State.METRICS_ONLY
                                              or state is State.HALF_OPEN):
                if self._window.record(outcome_code(failed, slow), now):
                    self._check(state, now, events)
        if events:
            self._emit_all(events)

    def _check(self, state, now, events) -> None:
        """The window may have reached a threshold: act as resilience4j's state does
        (``checkIfThresholdsExceeded`` of ClosedState, HalfOpenState, MetricsOnlyState)."""
        snap = self._window.snapshot()
        if snap.failure_rate is None:
            return  # BELOW_MINIMUM_CALLS_THRESHOLD
        cfg = self.config
        over_fail = snap.failure_rate >= cfg.failure_rate_threshold
        over_slow = snap.slow_call_rate >= cfg.slow_call_rate_threshold
        if state is State.HALF_OPEN:  # decides, publishes no *_rate_exceeded
            self._transition(State.OPEN if over_fail or over_slow else State.CLOSED, now, events)
            return
        if not (over_fail or over_slow):
            return
        if self._listeners:
            for over, kind in ((over_fail, "failure_rate_exceeded"), (over_slow, "slow_call_rate_exceeded")):
                if over and (state is State.CLOSED or kind not in self._exceeded_published):
                    self._exceeded_published.add(kind)  # METRICS_ONLY: once per period
                    events.append(BreakerEvent(kind, now, self.name, state, failure_rate=snap.failure_rate,
                                               slow_call_rate=snap.slow_call_rate))
        if state is State.CLOSED:
            self._transition(State.OPEN, now, events)

    # -- transitions -----------------------------------------------------------------
    def _transition(self, to: State, now: float, events: list) -> None:
        """Enter ``to`` (re-enter it if already there), under the lock. Everything that can
        fail (the wait) is computed before the state changes."""
        frm = self._state
        if to is State.OPEN:
            wait = self.config.open_wait(self._attempts)
            self._open_metrics = self._metrics(now)  # OpenState(attempts + 1, currentState.getMetrics())
        self._state = to
        self._fast_closed = self._fast_path and to is State.CLOSED
        self._generation += 1
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if to is State.CLOSED or to is State.METRICS_ONLY:
            self._window = self._closed_window()
            self._exceeded_published = set()
            self._attempts = 0
        elif to is State.DISABLED:
            self._window = EMPTY
            self._attempts = 0
        elif to is State.FORCED_OPEN:
            self._window = EMPTY
            self._attempts += 1  # ForcedOpenState(currentState.attempts() + 1)
        elif to is State.OPEN:
            self._window = EMPTY
            self._attempts += 1
            self._open_until = now + wait
            if self.config.automatic_transition_from_open_to_half_open:
                self._schedule(wait, self._auto_half_open)
        elif to is State.HALF_OPEN:
            permitted = self.config.permitted_number_of_calls_in_half_open_state
            # CircuitBreakerMetrics.forHalfOpen: a count window of the permitted calls, whose
            # minimum is min(minimum_number_of_calls, permitted)
            self._window = CountWindow(permitted, self.config.minimum_number_of_calls)
            self._permits_left = permitted
            self._half_open_since = now
            if self.config.max_wait_duration_in_half_open_state:
                self._schedule(self.config.max_wait_duration_in_half_open_state, self._half_open_expired)
        if self._listeners and frm is not to:  # StateTransition.isInternalTransition: not published
            events.append(BreakerEvent("state_transition", now, self.name, to, from_state=frm, to_state=to))

    def _schedule(self, wait: float, callback) -> None:
        """Run ``callback(generation)`` after ``wait`` on the loop's timers, if there are any."""
        if not isinstance(self.clock, LoopClock):
            return  # a ManualClock test: ``state`` and the next call notice it
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop: likewise
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
            if (self._state, to) in _ILLEGAL:
                raise IllegalStateTransitionError(self.name, self._state.value, to.value)
            self._transition(to, self.clock.now(), events)
        self._emit_all(events)

    def transition_to_closed(self) -> None:
        self._manual(State.CLOSED)

    def transition_to_open(self) -> None:
        self._manual(State.OPEN)

    def transition_to_half_open(self) -> None:
        """From OPEN, FORCED_OPEN, DISABLED or HALF_OPEN (not CLOSED nor METRICS_ONLY)."""
        self._manual(State.HALF_OPEN)

    def transition_to_disabled(self) -> None:
        self._manual(State.DISABLED)

    def transition_to_forced_open(self) -> None:
        self._manual(State.FORCED_OPEN)

    def transition_to_metrics_only(self) -> None:
        self._manual(State.METRICS_ONLY)

    def reset(self) -> None:
        """Back to a fresh CLOSED breaker (window and opening count cleared); emits ``reset``
        (and a ``state_transition`` if it was not CLOSED), as resilience4j's ``reset()``."""
        events: list = []
        with self._lock:
            now = self.clock.now()
            self._transition(State.CLOSED, now, events)
            if self._listeners:
                events.append(BreakerEvent("reset", now, self.name, self._state))
        self._emit_all(events)

    # -- calling -------------------------------------------------------------------
    def call(self, fn: Callable, *args, **kwargs):
        """Call ``fn(*args, **kwargs)`` through the breaker (synchronous).

        The common case (CLOSED, count window, no listeners, no result predicate) skips
        the permission protocol, which is a no-op there, and records into the window it
        started with: ``CountWindow.record`` says whether a threshold may have been
        reached, and only then is the breaker's lock taken (and the window checked, if it
        is still the current one). Same semantics as the general path: a call that ends
        after a transition records into a window no state uses any more.
        """
        if self._fast_closed:
            window = self._window
            generation = self._generation
            now = self._now if self._reader is None else self._reader()
            start = now()
            try:
                result = fn(*args, **kwargs)
            except Exception as exc:
                self.on_error(generation, now() - start, exc)
                raise
            if window.record(2 if now() - start > self._slow_threshold else 0):
                self._check_closed(window)
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

    def _check_closed(self, window) -> None:
        """The fast path's window may have reached a threshold: check it if it is current."""
        events: list = []
        with self._lock:
            if self._window is window and self._state is State.CLOSED:
                self._check(State.CLOSED, self.clock.now(), events)
        if events:
            self._emit_all(events)

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
    def _closed_window(self):
        """CircuitBreakerMetrics.forClosed: the configured window and minimum."""
        cfg = self.config
        cls = CountWindow if cfg.sliding_window_type == COUNT_BASED else TimeWindow
        return cls(cfg.sliding_window_size, cfg.minimum_number_of_calls)

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
