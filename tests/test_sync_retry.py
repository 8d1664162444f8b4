"""Retry: the exact sequence of waits through an injected clock, and what is retried."""

import random

import pytest

from workbook.core.clock import ManualClock
from workbook.core.virtual_time import run_virtual
from workbook.resilience import (Backoff, HTTPStatusError, OverallTimeout, Retry, RetryBudget, RetryBudgetExhaustedError,
                           is_retryable)


class Flaky:
    """Fails with each of ``errors`` in turn, then returns 'done'."""

    def __init__(self, *errors):
        self.errors = list(errors)
        self.calls = 0

    async def __call__(self):
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "done"

    def sync(self):
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "done"


def run(coro):
    return run_virtual(coro)


def test_exponential_waits_without_jitter_are_exact_and_capped():
    clock = ManualClock()
    retry = Retry(6, Backoff(initial=0.1, multiplier=2, cap=1.0, jitter="none"), clock=clock)
    flaky = Flaky(*[ConnectionError("refused")] * 5)
    assert run(retry.call_async(flaky)) == "done"
    assert clock.sleeps == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0])
    assert flaky.calls == 6


def test_full_jitter_draws_uniform_zero_to_base():
    clock = ManualClock()
    retry = Retry(4, Backoff(0.5, 3, 4.0, jitter="full"), clock=clock, rng=random.Random(42))
    run(retry.call_async(Flaky(*[TimeoutError()] * 3)))
    ref = random.Random(42)
    assert clock.sleeps == [ref.uniform(0, 0.5), ref.uniform(0, 1.5), ref.uniform(0, 4.0)]


def test_equal_jitter_keeps_at_least_half():
    clock = ManualClock()
    retry = Retry(4, Backoff(1.0, 2, 10, jitter="equal"), clock=clock, rng=random.Random(7))
    run(retry.call_async(Flaky(*[HTTPStatusError(503)] * 3)))
    ref = random.Random(7)
    assert clock.sleeps == [0.5 + ref.uniform(0, 0.5), 1 + ref.uniform(0, 1), 2 + ref.uniform(0, 2)]
    assert all(w >= b / 2 for w, b in zip(clock.sleeps, [1, 2, 4]))


def test_gives_up_after_max_attempts_with_last_error():
    clock = ManualClock()
    retry = Retry(3, Backoff(0.1, 2, 10, "none"), clock=clock)
    flaky = Flaky(ConnectionError("a"), ConnectionError("b"), ConnectionError("c"), ConnectionError("d"))
    with pytest.raises(ConnectionError, match="c"):
        run(retry.call_async(flaky))
    assert flaky.calls == 3 and clock.sleeps == pytest.approx([0.1, 0.2])


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 422])
def test_other_4xx_are_never_retried(status):
    clock = ManualClock()
    flaky = Flaky(HTTPStatusError(status, error="bad_request"))
    with pytest.raises(HTTPStatusError):
        run(Retry(5, clock=clock).call_async(flaky))
    assert flaky.calls == 1 and clock.sleeps == []


@pytest.mark.parametrize("exc, expected", [
    (ConnectionRefusedError(), True), (ConnectionResetError(), True), (TimeoutError(), True),
    (HTTPStatusError(500), True), (HTTPStatusError(503), True), (HTTPStatusError(429), True),
    (HTTPStatusError(404), False), (ValueError(), False), (KeyError(), False),
])
def test_retryable_classification(exc, expected):
    assert is_retryable(exc) is expected


def test_429_honours_retry_after_instead_of_backoff():
    clock = ManualClock()
    retry = Retry(3, Backoff(0.1, 2, 10, "none"), clock=clock)
    flaky = Flaky(HTTPStatusError(429, retry_after=2.5), HTTPStatusError(503))
    assert run(retry.call_async(flaky)) == "done"
    assert clock.sleeps == pytest.approx([2.5, 0.2])


def test_retry_after_beyond_limit_gives_up():
    clock = ManualClock()
    retry = Retry(3, clock=clock, max_retry_after=5)
    with pytest.raises(HTTPStatusError):
        run(retry.call_async(Flaky(HTTPStatusError(429, retry_after=30))))
    assert clock.sleeps == []


def test_sync_retry_uses_manual_clock():
    clock = ManualClock()
    retry = Retry(3, Backoff(0.25, 2, 10, "none"), clock=clock)
    assert retry.call(Flaky(TimeoutError(), TimeoutError()).sync) == "done"
    assert clock.sleeps == [0.25, 0.5] and clock.now() == 0.75


def test_budget_limits_retries_to_a_fraction_of_requests():
    clock = ManualClock()
    budget = RetryBudget(budget_percent=20, min_retries=0, window=10, clock=clock)
    retry = Retry(2, Backoff(0.01, 1, 1, "none"), budget=budget, clock=clock)
    exhausted = 0
    for _ in range(50):
        try:
            run(retry.call_async(Flaky(ConnectionError(), ConnectionError())))
        except RetryBudgetExhaustedError:
            exhausted += 1
        except ConnectionError:
            pass
    assert retry.retries == 10  # 20 % of 50 requests (all within the 10 s window)
    assert exhausted == 40 and budget.denied == 40


def test_budget_min_retries_allows_a_few_at_low_traffic():
    clock = ManualClock()
    budget = RetryBudget(20, min_retries=3, window=10, clock=clock)
    granted = []
    for _ in range(5):
        budget.record_request()
        granted.append(budget.try_acquire_retry())
    assert granted == [True, True, True, False, False]
    clock.advance(10)
    budget.record_request()
    assert budget.try_acquire_retry()  # the old ones left the window


def test_retry_never_sleeps_past_overall_deadline():
    async def main():
        retry = Retry(10, Backoff(1.0, 2, 100, "none"))
        flaky = Flaky(*[ConnectionError()] * 9)
        try:
            await OverallTimeout(5.0).call_async(retry.call_async, flaky)
        except ConnectionError:
            pass
        return flaky.calls, retry.waits

    calls, waits = run(main())
    assert waits == [1.0, 2.0] and calls == 3  # next wait (4 s) would end after t=5


def test_bad_backoff_settings_name_the_field():
    with pytest.raises(ValueError, match="jitter"):
        Backoff(jitter="decorrelated-ish")
    with pytest.raises(ValueError, match="max_attempts"):
        Retry(0)


@pytest.mark.parametrize("value, expected", [
    ("120", 120.0), (" 1.5 ", 1.5), ("0", 0.0),
    ("Wed, 21 Oct 2015 07:28:30 GMT", 30.0),  # an HTTP-date, 30 s after "now"
    ("Wed, 21 Oct 2015 07:27:00 GMT", 0.0),  # already past: retry at once
    ("-5", None), ("inf", None), ("nan", None), ("soon", None), ("", None), (None, None),
])
def test_retry_after_parses_seconds_and_http_dates(value, expected):
    from datetime import datetime, timezone

    from workbook.resilience.errors import parse_retry_after
    now = datetime(2015, 10, 21, 7, 28, 0, tzinfo=timezone.utc)
    assert parse_retry_after(value, now=now) == expected


def test_client_counts_an_http_date_from_the_response_date_header():
    from multidict import CIMultiDict

    from workbook.transport.client import _retry_after
    headers = CIMultiDict({"Date": "Wed, 21 Oct 2015 07:28:00 GMT", "Retry-After": "Wed, 21 Oct 2015 07:28:45 GMT"})
    assert _retry_after(headers) == 45.0
    assert _retry_after(CIMultiDict({"Retry-After": "7"})) == 7.0
    assert _retry_after(CIMultiDict()) is None

