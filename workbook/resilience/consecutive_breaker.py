"""``ConsecutiveFailureBreaker``: the source article's naive circuit breaker (the "seed"),
rebuilt for comparison with ``CircuitBreaker``. Not a resilience4j breaker and not meant
for use: it counts *consecutive* failures only, and its defects are what chapter 2 shows.

Behaviour (what the seed's listing does, reimplemented here so its defects can be shown):

* CLOSED: a failure increments ``failure_count``; a success resets it to 0. When
  ``failure_count`` reaches ``failure_threshold`` the breaker opens. So an intermittent
  fault (say every other call fails) never opens it, however high the failure rate.
* OPEN: after ``recovery_timeout`` seconds since the last failure, the next call moves it
  to HALF_OPEN.
* HALF_OPEN: admits *every* caller (no trial limit): a recovering service gets the full
  load at once. ``success_threshold`` successes close it; a failure reopens it at once
  (the failure count was never reset).

Unlike the seed, the clock is injected (the seed read ``time.time()``), so the same
experiment can run both breakers in virtual time. It emits the same ``BreakerEvent``
kinds as ``CircuitBreaker`` so the same plots work.
"""

from __future__ import annotations

from workbook.core.clock import LoopClock
from workbook.core.params import check_int, check_number
from workbook.resilience.breaker import BreakerEvent, State
from workbook.resilience.errors import CallNotPermittedError


class ConsecutiveFailureBreaker:
    """The source article's naive breaker (see the module doc); keyword settings, checked when built."""

    def __init__(self, name: str = "seed-breaker", *, failure_threshold: int = 5, recovery_timeout: float = 60.0,
                 success_threshold: int = 3, clock=None):
        self.name = name
        self.failure_threshold = check_int("failure_threshold", failure_threshold, minimum=1)
        self.recovery_timeout = check_number("recovery_timeout", recovery_timeout, minimum=0)
        self.success_threshold = check_int("success_threshold", success_threshold, minimum=1)
        self.clock = clock or LoopClock()
        self._state = State.CLOSED
        self.failure_count = 0
        self.success_count = 0
        self.last_failure_time = 0.0
        self._listeners = []
        self.not_permitted = 0

    @property
    def state(self) -> State:
        return self._state

    def subscribe(self, listener):
        self._listeners.append(listener)
        return listener

    def _emit(self, kind, **kw):
        if self._listeners:
            event = BreakerEvent(kind, self.clock.now(), self.name, self._state, **kw)
            for listener in list(self._listeners):
                listener(event)

    def _go(self, to: State):
        frm, self._state = self._state, to
        self._emit("state_transition", from_state=frm, to_state=to)

    def acquire_permission(self) -> int:
        if self._state is State.OPEN:
            if self.clock.now() - self.last_failure_time > self.recovery_timeout:
                self.success_count = 0
                self._go(State.HALF_OPEN)
            else:
                self.not_permitted += 1
                self._emit("not_permitted")
                raise CallNotPermittedError(self.name, "OPEN", "consecutive-failure breaker")
        return 0  # CLOSED and HALF_OPEN admit everyone

    def on_success(self, token, duration, result=None):
        self._emit("success", duration=duration)
        if self._state is State.HALF_OPEN:
            self.success_count += 1
            if self.success_count >= self.success_threshold:
                self.failure_count = 0
                self._go(State.CLOSED)
        elif self._state is State.CLOSED:
            self.failure_count = 0

    def on_error(self, token, duration, error):
        self._emit("error", duration=duration, error=error)
        self.failure_count += 1
        self.last_failure_time = self.clock.now()
        if self.failure_count >= self.failure_threshold and self._state is not State.OPEN:
            self._go(State.OPEN)

    def release_permission(self, token):
        pass

    async def call_async(self, fn, *args, **kwargs):
        token = self.acquire_permission()
        start = self.clock.now()
        try:
            result = await fn(*args, **kwargs)
        except Exception as exc:
            self.on_error(token, self.clock.now() - start, exc)
            raise
        self.on_success(token, self.clock.now() - start, result)
        return result

    def call(self, fn, *args, **kwargs):
        token = self.acquire_permission()
        start = self.clock.now()
        try:
            result = fn(*args, **kwargs)
        except Exception as exc:
            self.on_error(token, self.clock.now() - start, exc)
            raise
        self.on_success(token, self.clock.now() - start, result)
        return result

    def __repr__(self):
        return f"ConsecutiveFailureBreaker({self.name!r}, state={self._state.value}, failures={self.failure_count})"
