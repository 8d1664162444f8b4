"""Retry: try again what is worth trying again, with backoff, a budget and a deadline.

One loop (``call_async``, and ``call`` for synchronous functions) around three policies:

* ``retry_on(exc)`` decides what is retryable (default ``is_retryable``: connection
  errors, timeouts, 5xx, 429; never other 4xx nor our own rejections);
* ``backoff`` gives the wait before retry n (``Backoff``: exponential, capped, jittered);
  a ``Retry-After`` sent by the server (429 / 503) replaces it, unless it exceeds
  ``max_retry_after`` (then the error is raised: waiting that long is the caller's call);
* ``budget`` (a ``RetryBudget``), if given, must grant every retry.

It never sleeps past the current overall deadline (``workbook.resilience.deadline``): if the
next wait would end after it, the last error is raised at once.

Every wait goes through ``clock.sleep``, so a test with ``ManualClock`` reads the exact
sequence of waits from ``clock.sleeps``; under ``run_virtual`` it is virtual time.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from workbook.core.clock import LoopClock
from workbook.core.errors import ParameterError
from workbook.core.params import check_int, check_number
from workbook.resilience.backoff import Backoff
from workbook.resilience.budget import RetryBudget
from workbook.resilience.deadline import current_deadline
from workbook.resilience.errors import RetryBudgetExhaustedError, is_retryable, retry_after_of


class Retry:
    """Keyword settings, each checked when built (``ParameterError`` naming it)."""

    def __init__(self, max_attempts: int = 3, backoff: Backoff | None = None, *,
                 retry_on: Callable[[BaseException], bool] = is_retryable, budget: RetryBudget | None = None,
                 max_retry_after: float | None = 60.0, clock=None, rng: random.Random | None = None,
                 listeners=()):
        self.max_attempts = check_int("max_attempts", max_attempts, minimum=1)
        self.backoff = backoff if backoff is not None else Backoff()
        if not isinstance(self.backoff, Backoff):
            raise ParameterError("backoff", backoff, "a Backoff(initial, multiplier, cap, jitter) or None")
        # checked here, not at the first retry (which may come long after, in production)
        if not callable(retry_on) or isinstance(retry_on, type):
            raise ParameterError("retry_on", retry_on, "a predicate exception -> bool, such as is_retryable")
        if budget is not None and not isinstance(budget, RetryBudget):
            raise ParameterError("budget", budget, "a RetryBudget or None")
        self.retry_on = retry_on
        self.budget = budget
        self.max_retry_after = None if max_retry_after is None else check_number(
            "max_retry_after", max_retry_after, minimum=0)
        self.clock = clock or LoopClock()
        self.rng = rng or random.Random(0)
        self.listeners = list(listeners)
        self.calls = 0
        self.retries = 0
        self.waits: list[float] = []

    def _next_wait(self, attempt: int, exc: BaseException) -> float | None:
        """The wait before the next attempt, or None to give up and raise ``exc``."""
        if attempt >= self.max_attempts or not self.retry_on(exc):
            return None
        wait = retry_after_of(exc)
        if wait is not None:
            if self.max_retry_after is not None and wait > self.max_retry_after:
                return None
        else:
            wait = self.backoff.delay(attempt, self.rng)
        deadline = current_deadline()
        if deadline is not None and wait >= deadline.remaining():
            return None
        if self.budget is not None and not self.budget.try_acquire_retry():
            raise RetryBudgetExhaustedError(exc, f"{self.budget}") from exc
        self.retries += 1
        self.waits.append(wait)
        for listener in self.listeners:
            listener(attempt, exc, wait)
        return wait

    async def call_async(self, fn, *args, **kwargs):
        """Await ``fn(*args, **kwargs)``, retrying as the policies allow."""
        self.calls += 1
        if self.budget is not None:
            self.budget.record_request()
        attempt = 1
        while True:
            try:
                return await fn(*args, **kwargs)
            except Exception as exc:
                wait = self._next_wait(attempt, exc)
                if wait is None:
                    raise
            await self.clock.sleep(wait)
            attempt += 1

    def call(self, fn, *args, **kwargs):
        """Call ``fn`` synchronously; waits go through ``clock.sleep_sync`` (a ManualClock
        records and advances; real clocks block: a synchronous caller has no other way to wait)."""
        self.calls += 1
        if self.budget is not None:
            self.budget.record_request()
        attempt = 1
        while True:
            try:
                return fn(*args, **kwargs)
            except Exception as exc:
                wait = self._next_wait(attempt, exc)
                if wait is None:
                    raise
            self.clock.sleep_sync(wait)
            attempt += 1
