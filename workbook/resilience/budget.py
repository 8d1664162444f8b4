"""A retry budget: retries may be at most a fraction of recent requests.

Envoy's ``retry_budget`` (``budget_percent``, default 20 %, and ``min_retry_concurrency``,
default 3) caps retries as a share of the requests in flight; Finagle's ``RetryBudget``
does it over a sliding time window. This one counts over a window of ``window`` seconds
(default 10 s): a retry is allowed while

    retries_in_window < max(min_retries, budget_percent / 100 * requests_in_window)

Without a budget, when a downstream fails every request, each layer multiplies the load
by its attempt count (3 hops x 3 attempts = 27x at the bottom); with one, the extra load
stays near ``budget_percent`` whatever happens.

Invariant: over any window, allowed retries <= max(min_retries, ratio * first attempts)
counted at the moment each retry was granted.
"""

from __future__ import annotations

from collections import deque

from workbook.core.clock import LoopClock
from workbook.core.params import check_int, check_number


class RetryBudget:
    def __init__(self, budget_percent: float = 20.0, min_retries: int = 3, window: float = 10.0, *, clock=None):
        self.budget_percent = check_number("budget_percent", budget_percent, minimum=0, maximum=100)
        self.min_retries = check_int("min_retries", min_retries, minimum=0)
        self.window = check_number("window", window, minimum=0, min_exclusive=True)
        self.clock = clock or LoopClock()
        self._requests: deque[float] = deque()
        self._retries: deque[float] = deque()
        self.denied = 0

    def _slide(self, now: float) -> None:
        horizon = now - self.window
        for q in (self._requests, self._retries):
            while q and q[0] <= horizon:
                q.popleft()

    def record_request(self) -> None:
        """Count one first attempt (every call through a retrying client)."""
        now = self.clock.now()
        self._requests.append(now)
        if len(self._requests) > 4096:
            self._slide(now)

    def try_acquire_retry(self) -> bool:
        """Take one retry from the budget if there is room; count it."""
        now = self.clock.now()
        self._slide(now)
        allowed = max(self.min_retries, self.budget_percent / 100.0 * len(self._requests))
        if len(self._retries) < allowed:
            self._retries.append(now)
            return True
        self.denied += 1
        return False

    def state(self) -> tuple[int, int]:
        """(requests, retries) in the current window."""
        self._slide(self.clock.now())
        return len(self._requests), len(self._retries)

    def __repr__(self):
        return f"RetryBudget({self.budget_percent:g}%, min_retries={self.min_retries}, window={self.window:g}s)"
