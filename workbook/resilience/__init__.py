"""Resilience for calls between services: circuit breaker, retries, budgets, timeouts, bulkheads.

One concept per module, no plotting imports, time read through an injected ``Clock``:
``breaker`` (resilience4j-style circuit breaker), ``consecutive_breaker`` (the source
article's consecutive-failure breaker, kept for comparison), ``windows`` (count- and
time-based sliding windows), ``backoff``, ``retry``, ``budget`` (retry budget),
``deadline`` (per-try and overall timeouts, deadline propagation), ``bulkhead``,
``fallback``, ``hedge``, ``pipeline`` (their composition, in a documented order) and
``errors`` (what is retryable). Chapter 2 introduces them; the gateway, the mesh and the
capstone reuse them from here.
"""

from workbook.resilience.backoff import Backoff
from workbook.resilience.breaker import BreakerEvent, CircuitBreaker, CircuitBreakerConfig, EventRecorder, State
from workbook.resilience.budget import RetryBudget
from workbook.resilience.bulkhead import Bulkhead
from workbook.resilience.deadline import DEADLINE_HEADER, Deadline, OverallTimeout, Timeout, current_deadline
from workbook.resilience.errors import (BulkheadFullError, CallNotPermittedError, DeadlineExceededError, HTTPStatusError,
                                        IllegalStateTransitionError, PerTryTimeoutError, RetryBudgetExhaustedError,
                                        is_retryable, request_idempotency, request_is_idempotent)
from workbook.resilience.fallback import Fallback
from workbook.resilience.hedge import Hedge
from workbook.resilience.consecutive_breaker import ConsecutiveFailureBreaker
from workbook.resilience.pipeline import Pipeline
from workbook.resilience.retry import Retry

__all__ = [
    "Backoff", "BreakerEvent", "Bulkhead", "BulkheadFullError", "CallNotPermittedError", "CircuitBreaker",
    "CircuitBreakerConfig", "ConsecutiveFailureBreaker", "DEADLINE_HEADER", "Deadline", "DeadlineExceededError",
    "EventRecorder", "Fallback", "HTTPStatusError", "Hedge", "IllegalStateTransitionError", "OverallTimeout", "PerTryTimeoutError", "Pipeline",
    "Retry", "RetryBudget", "RetryBudgetExhaustedError", "State", "Timeout", "current_deadline", "is_retryable",
    "request_idempotency", "request_is_idempotent",
]
