"""Hypothesis stateful test: the breaker against a small reference model of its states.

The model is written from resilience4j's documentation, as plainly as possible (a list of
outcomes sliced to the last N calls, or filtered to the last N whole seconds for the
time-based window; no ring buffer, no buckets, no generations); resilience4j's rules it
encodes: OPEN lets a trial through only strictly after the wait; HALF_OPEN decides after
``min(minimum_number_of_calls, permitted_number_of_calls_in_half_open_state)`` trials
(``CircuitBreakerMetrics.forHalfOpen``); OPEN's metrics are those that opened it. Hypothesis drives
both with the same random calls, completions (held calls may finish out of order and
late) and clock jumps, and checks they agree on every permission and every state.
"""

import math

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from workbook.core.clock import ManualClock
from workbook.resilience import CallNotPermittedError, CircuitBreaker

WINDOW, MINIMUM, PERMITTED, WAIT, MULT, CAP = 5, 2, 3, 10.0, 2.0, 35.0
DECIDING_TRIALS = min(MINIMUM, PERMITTED)
FAIL_T, SLOW_T, SLOW_DURATION = 60.0, 80.0, 1.0


class Model:
    def __init__(self, time_based=False):
        self.time_based = time_based
        self.state = "CLOSED"
        self.outcomes = []  # (failed, slow) of calls permitted in the current CLOSED period
        self.trials = []
        self.free_trials = 0
        self.open_until = 0.0
        self.openings = 0
        self.period = 0  # which state period permitted a call
        self.open_metrics = (0, 0, 0)  # (calls, failed, slow) of what opened the breaker

    def _exceeded(self, outcomes):
        n = len(outcomes)
        fail_rate = 100.0 * sum(f for f, _ in outcomes) / n
        slow_rate = 100.0 * sum(s for _, s in outcomes) / n
        return fail_rate >= FAIL_T or slow_rate >= SLOW_T

    def _go(self, state, now):
        if state == "OPEN":
            self.open_metrics = (self.window_counts(now) if self.state == "CLOSED" else
                                 (len(self.trials), sum(f for f, _ in self.trials), sum(s for _, s in self.trials)))
        self.state = state
        self.period += 1
        if state == "OPEN":
            self.open_until = now + min(CAP, WAIT * MULT ** self.openings)
            self.openings += 1
        elif state == "HALF_OPEN":
            self.trials, self.free_trials = [], PERMITTED
        elif state == "CLOSED":
            self.outcomes, self.openings = [], 0

    def acquire(self, now):
        if self.state == "OPEN" and now > self.open_until:
            self._go("HALF_OPEN", now)
        if self.state == "CLOSED":
            return self.period
        if self.state == "HALF_OPEN" and self.free_trials > 0:
            self.free_trials -= 1
            return self.period
        return None

    def window_counts(self, now):
        """(calls, failed, slow) in the CLOSED window as seen at ``now``."""
        if self.time_based:
            window = [(f, s) for t, f, s in self.outcomes if t > math.floor(now) - WINDOW]
        else:
            window = self.outcomes
        return len(window), sum(f for f, _ in window), sum(s for _, s in window)

    def finish(self, period, failed, slow, now):
        if period != self.period:
            return
        if self.state == "CLOSED":
            if self.time_based:  # the calls of the last WINDOW whole seconds
                self.outcomes = [o for o in self.outcomes + [(math.floor(now), failed, slow)]
                                 if o[0] > math.floor(now) - WINDOW]
                window = [(f, s) for _, f, s in self.outcomes]
            else:  # the last WINDOW calls
                self.outcomes = (self.outcomes + [(failed, slow)])[-WINDOW:]
                window = self.outcomes
            if len(window) >= MINIMUM and self._exceeded(window):
                self._go("OPEN", now)
        elif self.state == "HALF_OPEN":
            self.trials.append((failed, slow))
            if len(self.trials) == DECIDING_TRIALS:
                self._go("OPEN" if self._exceeded(self.trials) else "CLOSED", now)


class BreakerVsModel(RuleBasedStateMachine):
    TIME_BASED = False

    def __init__(self):
        super().__init__()
        self.clock = ManualClock()
        self.breaker = CircuitBreaker(
            "under-test", clock=self.clock, sliding_window_size=WINDOW,
            sliding_window_type="TIME_BASED" if self.TIME_BASED else "COUNT_BASED", minimum_number_of_calls=MINIMUM,
            permitted_number_of_calls_in_half_open_state=PERMITTED, wait_duration_in_open_state=WAIT,
            wait_interval_multiplier=MULT, max_wait_duration_in_open_state=CAP, failure_rate_threshold=FAIL_T,
            slow_call_rate_threshold=SLOW_T, slow_call_duration_threshold=SLOW_DURATION)
        self.model = Model(self.TIME_BASED)
        self.held = []  # (breaker token, model period)

    @rule()
    def start_call(self):
        expected = self.model.acquire(self.clock.now())
        try:
            token = self.breaker.acquire_permission()
        except CallNotPermittedError:
            token = None
        assert (token is None) == (expected is None), (self.breaker.state, self.model.state)
        if token is not None:
            self.held.append((token, expected))

    @precondition(lambda self: self.held)
    @rule(index=st.integers(min_value=0, max_value=50), failed=st.booleans(), slow=st.booleans())
    def finish_call(self, index, failed, slow):
        token, period = self.held.pop(index % len(self.held))
        duration = SLOW_DURATION + 0.5 if slow else SLOW_DURATION / 2
        if failed:
            self.breaker.on_error(token, duration, ConnectionError("boom"))
        else:
            self.breaker.on_success(token, duration, "ok")
        self.model.finish(period, failed, slow, self.clock.now())

    @rule(dt=st.sampled_from([0.3, 0.5, 1.0, 3.0, 10.0, 20.0, 40.0]))
    def advance(self, dt):
        self.clock.advance(dt)

    @invariant()
    def same_state(self):
        assert self.breaker.state.value == self.model.state

    @invariant()
    def same_window_while_closed(self):
        if self.model.state == "CLOSED":
            m = self.breaker.metrics()
            assert (m.calls, m.failed, m.slow) == self.model.window_counts(self.clock.now())

    @invariant()
    def open_metrics_are_what_opened_it(self):
        if self.model.state == "OPEN":
            m = self.breaker.metrics()
            assert (m.calls, m.failed, m.slow) == self.model.open_metrics

    @invariant()
    def trials_never_exceed_the_limit(self):
        if self.model.state == "HALF_OPEN":
            in_flight = sum(1 for _, p in self.held if p == self.model.period)
            assert in_flight + len(self.model.trials) <= PERMITTED


class TimeBreakerVsModel(BreakerVsModel):
    TIME_BASED = True


for machine in (BreakerVsModel, TimeBreakerVsModel):
    machine.TestCase.settings = settings(max_examples=150, stateful_step_count=60, deadline=None)
TestBreakerVsModel = BreakerVsModel.TestCase
TestTimeBreakerVsModel = TimeBreakerVsModel.TestCase
