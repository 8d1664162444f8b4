"""The breaker exercise's checker accepts a thought-out answer and rejects every naive one."""

import pytest

from workbook.core import Verdict
from workbook.labs.ch02_sync.breaker_runs import ConsecutiveFailureConfig
from workbook.labs.ch02_sync.exercise import check_breaker_exercise
from workbook.resilience import CircuitBreakerConfig

SLOW = dict(slow_call_rate_threshold=50, slow_call_duration_threshold=1.0)
RIGHT = CircuitBreakerConfig(sliding_window_size=10, minimum_number_of_calls=10, slow_call_rate_threshold=40,
                             slow_call_duration_threshold=1.0, wait_duration_in_open_state=5,
                             permitted_number_of_calls_in_half_open_state=3, wait_interval_multiplier=2,
                             max_wait_duration_in_open_state=20)


@pytest.mark.parametrize("answer", [
    RIGHT,
    dict(sliding_window_size=10, minimum_number_of_calls=10, slow_call_rate_threshold=30,
         slow_call_duration_threshold=1.0, wait_duration_in_open_state=8, permitted_number_of_calls_in_half_open_state=3),
], ids=["window-10-growing-wait", "window-10-longer-wait"])
def test_a_right_answer_passes(answer):
    verdict = check_breaker_exercise(answer)
    assert isinstance(verdict, Verdict) and verdict, str(verdict)
    assert str(verdict).startswith("PASS")


def test_the_answer_is_judged_on_several_seeds_and_deterministically():
    a, b = check_breaker_exercise(RIGHT), check_breaker_exercise(RIGHT)
    assert a.numbers == b.numbers and len(a.numbers["reached"]) == 3


NAIVE = {
    # opens on any single failure: the healthy service's 5 % errors trip it
    "hair-trigger": (dict(sliding_window_size=1, minimum_number_of_calls=1), "stays CLOSED"),
    # never opens
    "never-opens": (dict(failure_rate_threshold=100, slow_call_rate_threshold=100), "opens within"),
    # resilience4j's defaults: a 100-call window and slow calls only over 60 s
    "library-defaults": (dict(), "opens within"),
    # opens on the healthy service's normal error rate
    "normal-error-rate": (dict(sliding_window_size=20, minimum_number_of_calls=20, failure_rate_threshold=5,
                               wait_duration_in_open_state=5), "stays CLOSED"),
    # calls the normal latency noise slow
    "normal-latency-is-slow": (dict(sliding_window_size=20, minimum_number_of_calls=20, wait_duration_in_open_state=5,
                                    slow_call_duration_threshold=0.1, slow_call_rate_threshold=30), "stays CLOSED"),
    # only consecutive failures, the article's way
    "consecutive-failures": (ConsecutiveFailureConfig(failure_threshold=5, recovery_timeout=5.0), "opens within"),
    # five failures in a window of five: consecutive failures with a window's name
    "window-of-five-all-failed": (dict(sliding_window_size=5, minimum_number_of_calls=5, failure_rate_threshold=100),
                                  "opens within"),
    # a small window reacts fast but flaps on the noise (the notebook's pre-filled answer)
    "small-window": (dict(sliding_window_size=5, minimum_number_of_calls=5, wait_duration_in_open_state=5, **SLOW),
                     "stays CLOSED"),
    # the experiment's breaker, made for a clean brownout: detects, but lets too much through
    "experiment-breaker": (dict(sliding_window_size=20, minimum_number_of_calls=10, wait_duration_in_open_state=5,
                                permitted_number_of_calls_in_half_open_state=3, **SLOW), "keeps at"),
    # a huge window detects too late and lets most of the brownout through
    "huge-window": (dict(sliding_window_size=200, minimum_number_of_calls=200, wait_duration_in_open_state=5, **SLOW),
                    "opens within"),
    # a long wait in OPEN: still rejecting long after the service recovered
    "long-wait": (dict(sliding_window_size=20, minimum_number_of_calls=20, wait_duration_in_open_state=60, **SLOW),
                  "CLOSED again"),
    # no wait and many trials: the trial calls pile onto the failing service
    "no-wait": (dict(sliding_window_size=20, minimum_number_of_calls=20, wait_duration_in_open_state=0.001,
                     permitted_number_of_calls_in_half_open_state=10, **SLOW), "keeps at"),
}


@pytest.mark.parametrize("name", list(NAIVE))
def test_every_naive_answer_fails_for_its_reason(name):
    answer, reason = NAIVE[name]
    verdict = check_breaker_exercise(answer)
    assert not verdict, f"{name} passed:\n{verdict}"
    assert any(c.name.startswith(reason) for c in verdict.failures), str(verdict)
    assert "hint:" in str(verdict)


def test_the_hair_trigger_that_the_old_checker_accepted_is_rejected():
    """The old checker passed sliding_window_size=1, minimum_number_of_calls=1 (issue 9, item 8)."""
    verdict = check_breaker_exercise(dict(sliding_window_size=1, minimum_number_of_calls=1))
    assert not verdict and verdict.numbers["false_opens"] != [0, 0, 0]


@pytest.mark.parametrize("answer,needle", [
    (dict(sliding_window_size=0), "sliding_window_size"),
    (dict(window=10), "window"),
    ("fast", "CircuitBreakerConfig"),
])
def test_an_answer_that_cannot_be_judged_is_rejected_with_the_reason(answer, needle):
    verdict = check_breaker_exercise(answer)
    assert not verdict and needle in str(verdict)
