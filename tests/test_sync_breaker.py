"""Behaviour of the resilience4j-style circuit breaker and of the seed's breaker."""

import asyncio
import threading

import pytest

from workbook.core.clock import ManualClock
from workbook.core.virtual_time import run_virtual
from workbook.resilience import (CallNotPermittedError, CircuitBreaker, CircuitBreakerConfig, ConsecutiveFailureBreaker,
                           EventRecorder, State)


class Boom(Exception):
    pass


def fail():
    raise Boom("down")


def ok():
    return "ok"


def make(clock=None, **kw):
    settings = dict(sliding_window_size=4, minimum_number_of_calls=4, wait_duration_in_open_state=10,
                    permitted_number_of_calls_in_half_open_state=2)
    settings.update(kw)
    breaker = CircuitBreaker("b", clock=clock or ManualClock(), **settings)
    recorder = EventRecorder()
    breaker.subscribe(recorder)
    return breaker, recorder


def outcome(breaker, fn):
    try:
        breaker.call(fn)
        return "ok"
    except CallNotPermittedError:
        return "rejected"
    except Exception:
        return "failed"


def test_defaults_follow_resilience4j():
    c = CircuitBreakerConfig()
    assert (c.failure_rate_threshold, c.slow_call_rate_threshold, c.slow_call_duration_threshold) == (50, 100, 60)
    assert (c.sliding_window_type, c.sliding_window_size, c.minimum_number_of_calls) == ("COUNT_BASED", 100, 100)
    assert (c.permitted_number_of_calls_in_half_open_state, c.wait_duration_in_open_state) == (10, 60)
    assert c.automatic_transition_from_open_to_half_open is False
    assert c.max_wait_duration_in_half_open_state == 0


@pytest.mark.parametrize("setting, value, expected", [
    ("failure_rate_threshold", 0, "(0, 100]"),
    ("failure_rate_threshold", 101, "(0, 100]"),
    ("slow_call_rate_threshold", -5, "(0, 100]"),
    ("sliding_window_size", 0, ">= 1"),
    ("minimum_number_of_calls", 0, ">= 1"),
    ("wait_duration_in_open_state", -1, ">= 0.001"),
    ("wait_duration_in_open_state", 0, ">= 0.001"),  # resilience4j: "must be at least 1[ms]"
    ("wait_duration_in_open_state", 0.0009, ">= 0.001"),
    ("permitted_number_of_calls_in_half_open_state", 0, ">= 1"),
    ("slow_call_duration_threshold", 0, "> 0"),
    ("sliding_window_type", "SESSION", "COUNT_BASED"),
    ("wait_interval_multiplier", 0.5, ">= 1"),
])
def test_bad_settings_fail_at_construction_naming_the_setting(setting, value, expected):
    with pytest.raises(ValueError) as info:
        CircuitBreaker(**{setting: value})
    assert setting in str(info.value) and expected in str(info.value)


def test_minimum_calls_capped_by_count_window_as_resilience4j():
    assert CircuitBreakerConfig(sliding_window_size=5, minimum_number_of_calls=50).minimum_number_of_calls == 5
    assert CircuitBreakerConfig(sliding_window_type="TIME_BASED", sliding_window_size=5,
                                minimum_number_of_calls=50).minimum_number_of_calls == 50


def test_no_rate_below_minimum_number_of_calls():
    breaker, _ = make(sliding_window_size=10, minimum_number_of_calls=5)
    for _ in range(4):
        outcome(breaker, fail)
    assert breaker.state is State.CLOSED and breaker.metrics().failure_rate is None
    outcome(breaker, fail)
    assert breaker.state is State.OPEN


def test_failure_rate_threshold_is_inclusive_and_opens():
    breaker, rec = make(failure_rate_threshold=50)
    for fn in (ok, fail, ok):
        outcome(breaker, fn)
    assert breaker.state is State.CLOSED
    outcome(breaker, fail)  # 2 of 4 = 50 % >= 50 %
    assert breaker.state is State.OPEN
    assert "failure_rate_exceeded" in rec.kinds()
    assert outcome(breaker, ok) == "rejected"


def test_intermittent_failures_open_window_breaker_but_not_seed_breaker():
    clock = ManualClock()
    window, _ = make(clock, sliding_window_size=10, minimum_number_of_calls=10)
    seed = ConsecutiveFailureBreaker(failure_threshold=5, recovery_timeout=10, clock=clock)
    for i in range(40):
        fn = fail if i % 2 else ok
        outcome(window, fn)
        outcome(seed, fn)
    assert window.state is State.OPEN
    assert seed.state is State.CLOSED  # 50 % failing, yet never 5 in a row


def test_count_window_forgets_old_outcomes():
    breaker, _ = make(sliding_window_size=4, minimum_number_of_calls=4, failure_rate_threshold=75)
    for fn in (fail, fail, ok, ok, ok, ok):
        outcome(breaker, fn)
    m = breaker.metrics()
    assert (m.calls, m.failed) == (4, 0)


def test_time_window_drops_buckets_older_than_its_size():
    clock = ManualClock()
    breaker, _ = make(clock, sliding_window_type="TIME_BASED", sliding_window_size=5, minimum_number_of_calls=3)
    outcome(breaker, fail)
    outcome(breaker, fail)
    clock.advance(5.0)  # those two are now 5 s old: outside a 5 s window
    outcome(breaker, ok)
    outcome(breaker, ok)
    m = breaker.metrics()
    assert (m.calls, m.failed) == (2, 0)
    outcome(breaker, fail)
    assert breaker.state is State.CLOSED  # 1 of 3 failed
    clock.advance(1.0)
    outcome(breaker, fail)
    assert breaker.state is State.OPEN  # 2 of 4


def test_slow_calls_open_the_breaker():
    clock = ManualClock()
    breaker, rec = make(clock, slow_call_duration_threshold=1.0, slow_call_rate_threshold=50)

    def slow():
        clock.advance(1.5)
        return "late"

    def just_at_threshold():
        clock.advance(1.0)  # not strictly longer than the threshold: not slow
        return "ok"

    for fn in (slow, just_at_threshold, just_at_threshold):
        outcome(breaker, fn)
    assert breaker.state is State.CLOSED and breaker.metrics().slow == 1
    outcome(breaker, slow)
    assert breaker.state is State.OPEN and "slow_call_rate_exceeded" in rec.kinds()
    assert "failure_rate_exceeded" not in rec.kinds()


def test_open_waits_then_half_open_limits_trials_then_closes():
    clock = ManualClock()
    breaker, rec = make(clock)
    for _ in range(4):
        outcome(breaker, fail)
    clock.advance(10)
    assert outcome(breaker, ok) == "rejected"  # OPEN permits only strictly after the wait
    clock.advance(0.001)
    t1 = breaker.acquire_permission()
    assert breaker.state is State.HALF_OPEN
    t2 = breaker.acquire_permission()
    with pytest.raises(CallNotPermittedError, match="trial calls are taken"):
        breaker.acquire_permission()
    breaker.on_success(t1, 0.01)
    assert breaker.state is State.HALF_OPEN
    breaker.on_success(t2, 0.01)
    assert breaker.state is State.CLOSED
    assert [t[1:] for t in rec.transitions()] == [("CLOSED", "OPEN"), ("OPEN", "HALF_OPEN"), ("HALF_OPEN", "CLOSED")]
    assert breaker.metrics().calls == 0  # a fresh window after closing


def test_failed_trials_reopen_with_exponential_wait_capped():
    clock = ManualClock()
    breaker, rec = make(clock, wait_interval_multiplier=2, max_wait_duration_in_open_state=25,
                        permitted_number_of_calls_in_half_open_state=1)
    for _ in range(4):
        outcome(breaker, fail)
    waits = []
    for _ in range(4):
        opened_at = clock.now()
        waits.append(breaker.retry_at - opened_at)
        clock.advance(breaker.retry_at - opened_at + 0.001)
        assert outcome(breaker, fail) == "failed"
        assert breaker.state is State.OPEN
    assert waits == [10, 20, 25, 25]
    clock.advance(25.001)
    outcome(breaker, ok)
    assert breaker.state is State.CLOSED
    for _ in range(4):
        outcome(breaker, fail)
    assert breaker.retry_at - clock.now() == 10  # closing restarted the count


def test_ignored_exception_frees_half_open_slot_and_is_not_counted():
    clock = ManualClock()
    breaker, rec = make(clock, ignore_exceptions=(KeyError,), permitted_number_of_calls_in_half_open_state=1)
    for _ in range(4):
        outcome(breaker, fail)
    clock.advance(10.001)

    def ignored():
        raise KeyError("not the downstream's fault")

    assert outcome(breaker, ignored) == "failed"
    assert "ignored_error" in rec.kinds() and breaker.state is State.HALF_OPEN
    assert outcome(breaker, ok) == "ok"  # the slot was given back
    assert breaker.state is State.CLOSED


def test_exception_neither_recorded_nor_ignored_counts_as_success():
    breaker, _ = make(record_exceptions=(ConnectionError,))
    for _ in range(4):
        outcome(breaker, fail)  # Boom is not recorded: a success for the breaker
    assert breaker.state is State.CLOSED and breaker.metrics().failed == 0
    for _ in range(4):
        outcome(breaker, lambda: (_ for _ in ()).throw(ConnectionRefusedError("x")))
    assert breaker.state is State.OPEN


def test_result_predicate_counts_results_as_failures():
    breaker, _ = make(record_result=lambda r: r == "degraded")
    for _ in range(4):
        assert breaker.call(lambda: "degraded") == "degraded"
    assert breaker.state is State.OPEN


def test_manual_states():
    breaker, rec = make()
    breaker.transition_to_disabled()
    for _ in range(10):
        outcome(breaker, fail)
    assert breaker.state is State.DISABLED and breaker.metrics().calls == 0
    breaker.transition_to_metrics_only()
    for _ in range(8):
        outcome(breaker, fail)
    assert breaker.state is State.METRICS_ONLY and breaker.metrics().failure_rate == 100
    assert "failure_rate_exceeded" in rec.kinds()
    breaker.transition_to_forced_open()
    ManualClock.advance(breaker.clock, 1e6)
    assert outcome(breaker, ok) == "rejected" and breaker.state is State.FORCED_OPEN
    breaker.transition_to_closed()
    assert outcome(breaker, ok) == "ok"
    assert [t[2] for t in rec.transitions()] == ["DISABLED", "METRICS_ONLY", "FORCED_OPEN", "CLOSED"]


def test_every_call_has_exactly_one_outcome_event():
    clock = ManualClock()
    breaker, rec = make(clock)
    results = [outcome(breaker, fn) for fn in (ok, fail, fail, fail, ok, ok)]
    kinds = [k for k in rec.kinds() if k in ("success", "error", "ignored_error", "not_permitted")]
    mapping = {"ok": "success", "failed": "error", "rejected": "not_permitted"}
    assert kinds == [mapping[r] for r in results]


def test_late_outcome_from_closed_does_not_count_as_trial():
    clock = ManualClock()
    breaker, _ = make(clock, permitted_number_of_calls_in_half_open_state=1)
    late = breaker.acquire_permission()
    for _ in range(4):
        outcome(breaker, fail)
    clock.advance(10.001)
    trial = breaker.acquire_permission()
    breaker.on_success(late, 0.1)
    assert breaker.state is State.HALF_OPEN
    breaker.on_error(trial, 0.1, Boom())
    assert breaker.state is State.OPEN


def test_max_wait_in_half_open_sends_back_to_open():
    clock = ManualClock()
    breaker, _ = make(clock, permitted_number_of_calls_in_half_open_state=1, max_wait_duration_in_half_open_state=3)
    for _ in range(4):
        outcome(breaker, fail)
    clock.advance(10.001)
    breaker.acquire_permission()  # a trial that never returns
    clock.advance(3)
    with pytest.raises(CallNotPermittedError):
        breaker.acquire_permission()
    assert breaker.state is State.OPEN


def test_automatic_transition_fires_in_virtual_time():
    async def main():
        breaker = CircuitBreaker("auto", sliding_window_size=2, minimum_number_of_calls=2,
                                 wait_duration_in_open_state=7, automatic_transition_from_open_to_half_open=True)
        rec = EventRecorder()
        breaker.subscribe(rec)

        async def afail():
            raise Boom()

        for _ in range(2):
            with pytest.raises(Boom):
                await breaker.call_async(afail)
        await asyncio.sleep(100)  # no call is made; the timer does the transition
        return rec.transitions()

    assert run_virtual(main()) == [(0.0, "CLOSED", "OPEN"), (7.0, "OPEN", "HALF_OPEN")]


def test_automatic_transition_seen_by_state_with_manual_clock():
    clock = ManualClock()
    breaker, rec = make(clock, automatic_transition_from_open_to_half_open=True)
    for _ in range(4):
        outcome(breaker, fail)
    clock.advance(10.001)
    assert breaker.state is State.HALF_OPEN


def test_half_open_limit_with_concurrent_async_callers():
    async def main():
        breaker = CircuitBreaker("c", sliding_window_size=2, minimum_number_of_calls=2, wait_duration_in_open_state=1,
                                 permitted_number_of_calls_in_half_open_state=3)
        breaker.transition_to_open()
        await asyncio.sleep(1.001)
        running = 0
        peak = 0

        async def slow_ok():
            nonlocal running, peak
            running += 1
            peak = max(peak, running)
            await asyncio.sleep(0.5)
            running -= 1
            return 1

        async def one():
            try:
                return await breaker.call_async(slow_ok)
            except CallNotPermittedError:
                return "rejected"

        results = await asyncio.gather(*(one() for _ in range(20)))
        return results, peak, breaker.state

    results, peak, state = run_virtual(main())
    assert results.count(1) == 3 and results.count("rejected") == 17 and peak == 3
    assert state is State.CLOSED


def test_half_open_limit_with_threads():
    clock = ManualClock()
    breaker, _ = make(clock, permitted_number_of_calls_in_half_open_state=5)
    breaker.transition_to_open()
    clock.advance(10.001)
    barrier = threading.Barrier(16)
    granted = []

    def worker():
        barrier.wait()
        try:
            granted.append(breaker.acquire_permission())
        except CallNotPermittedError:
            pass

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(granted) == 5 and breaker.not_permitted == 11


def test_decorator_works_for_sync_and_async():
    breaker, rec = make()

    @breaker
    def f(x):
        return x * 2

    @breaker
    async def g(x):
        return x + 1

    assert f(3) == 6
    assert run_virtual(g(3)) == 4
    assert rec.kinds().count("success") == 2


def test_cancelled_trial_frees_its_slot():
    async def main():
        breaker = CircuitBreaker("x", permitted_number_of_calls_in_half_open_state=1, wait_duration_in_open_state=0.001)
        breaker.transition_to_open()
        task = asyncio.ensure_future(breaker.call_async(asyncio.sleep, 10))
        await asyncio.sleep(0.1)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await breaker.call_async(asyncio.sleep, 0.1)
        return breaker.state

    assert run_virtual(main()) is State.CLOSED


def test_seed_breaker_half_open_admits_everyone():
    clock = ManualClock()
    seed = ConsecutiveFailureBreaker(failure_threshold=2, recovery_timeout=5, success_threshold=3, clock=clock)
    outcome(seed, fail)
    outcome(seed, fail)
    assert seed.state is State.OPEN
    clock.advance(5.001)
    tokens = [seed.acquire_permission() for _ in range(50)]  # no limit: 50 trial calls at once
    assert len(tokens) == 50 and seed.state is State.HALF_OPEN


from hypothesis import given, settings
from hypothesis import strategies as st


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.booleans(), st.sampled_from([0.0, 0.5, 3.0])), max_size=120),
       st.integers(min_value=1, max_value=8), st.integers(min_value=1, max_value=8))
def test_fast_path_agrees_with_general_path(steps, window, minimum):
    """The inlined CLOSED path (no listeners) and the general path (a listener) behave the same."""
    breakers = []
    for with_listener in (False, True):
        clock = ManualClock()
        b = CircuitBreaker("p", clock=clock, sliding_window_size=window, minimum_number_of_calls=minimum,
                           slow_call_duration_threshold=1.0, slow_call_rate_threshold=60,
                           wait_duration_in_open_state=2.0, permitted_number_of_calls_in_half_open_state=2)
        if with_listener:
            b.subscribe(lambda e: None)
        breakers.append((b, clock))
    assert breakers[0][0]._fast_path and not breakers[1][0]._fast_path
    for failed, slow, gap in steps:
        seen = []
        for b, clock in breakers:
            clock.advance(gap)

            def fn():
                clock.advance(1.5 if slow else 0.1)
                if failed:
                    raise Boom()
                return 1

            seen.append((outcome(b, fn), b.state, b.metrics()))
        assert seen[0] == seen[1]


def test_a_failing_listener_neither_fails_the_call_nor_leaks_a_half_open_slot(caplog):
    """resilience4j logs a consumer's exception and goes on; raising it here escaped from
    ``acquire_permission`` after the trial slot was taken, so the breaker stayed HALF_OPEN
    rejecting everyone, for ever."""
    clock = ManualClock()
    breaker, recorder = make(clock, permitted_number_of_calls_in_half_open_state=1)

    def broken_plot(event):
        if event.kind in ("state_transition", "success"):
            raise RuntimeError("plot failed")

    breaker.subscribe(broken_plot)
    assert [outcome(breaker, fail) for _ in range(4)] == ["failed"] * 4
    assert breaker.state is State.OPEN
    clock.advance(10.001)
    assert [outcome(breaker, ok) for _ in range(3)] == ["ok"] * 3
    assert breaker.state is State.CLOSED
    assert breaker.listener_errors == 3 + 3  # 3 transitions (OPEN, HALF_OPEN, CLOSED), 3 successes
    assert recorder.kinds().count("success") == 3  # the other listeners still got every event
    assert "listener" in caplog.text and "plot failed" in caplog.text


def test_stuck_half_open_goes_back_to_open_on_time_without_a_new_call():
    """resilience4j moves a HALF_OPEN breaker whose trials have not finished within
    max_wait_duration_in_half_open_state back to OPEN by itself; it used to wait for the
    next caller, so a panel (or a timeline) showed HALF_OPEN for as long as nobody called."""
    clock = ManualClock()
    breaker, rec = make(clock, permitted_number_of_calls_in_half_open_state=1, max_wait_duration_in_half_open_state=3)
    for _ in range(4):
        outcome(breaker, fail)
    clock.advance(10.001)
    breaker.acquire_permission()  # a trial that never returns
    clock.advance(3)
    assert breaker.state is State.OPEN  # read, not called
    assert [t[1:] for t in rec.transitions()][-1] == ("HALF_OPEN", "OPEN")

    async def main():
        breaker = CircuitBreaker("v", sliding_window_size=2, minimum_number_of_calls=2, wait_duration_in_open_state=5,
                                 automatic_transition_from_open_to_half_open=True,
                                 permitted_number_of_calls_in_half_open_state=1,
                                 max_wait_duration_in_half_open_state=2)
        recorder = EventRecorder()
        breaker.subscribe(recorder)
        for _ in range(2):
            try:
                breaker.call(fail)
            except Boom:
                pass
        await asyncio.sleep(5.5)
        breaker.acquire_permission()  # the trial hangs
        await asyncio.sleep(10)
        return recorder.transitions()

    assert run_virtual(main()) == [(0.0, "CLOSED", "OPEN"), (5.0, "OPEN", "HALF_OPEN"), (7.0, "HALF_OPEN", "OPEN"),
                                   (12.0, "OPEN", "HALF_OPEN"), (14.0, "HALF_OPEN", "OPEN")]
