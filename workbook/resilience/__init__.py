"""Chapter 2: synchronous communication and resilience.

Pattern modules (no plotting imports): ``breaker`` (resilience4j-style circuit breaker),
``naive_breaker`` (the seed's consecutive-failure breaker, for comparison), ``windows``
(count- and time-based sliding windows), ``backoff``, ``retry``, ``budget``, ``deadline``
(per-try and overall timeouts, deadline propagation), ``bulkhead``, ``fallback``,
``hedge``, ``pipeline`` (their composition, in a documented order), ``errors`` (what is
retryable). Around them: ``context`` (correlation id, user, tenant), ``client`` and
``demo_service`` (aiohttp), ``live`` (drives the demo service through a breaker),
``grpc_demo`` + ``inventory.proto`` (the same operation over gRPC), ``protocols`` (REST
against gRPC, measured), ``simcall`` and ``experiments`` (virtual-time experiments with
verdicts). Only the pattern modules are imported here; the aiohttp and gRPC ones are
imported on use.
"""

from workbook.sync.backoff import Backoff
from workbook.sync.breaker import BreakerEvent, CircuitBreaker, CircuitBreakerConfig, EventRecorder, State
from workbook.sync.budget import RetryBudget
from workbook.sync.bulkhead import Bulkhead
from workbook.sync.deadline import DEADLINE_HEADER, Deadline, OverallTimeout, Timeout, current_deadline
from workbook.sync.errors import (BulkheadFullError, CallNotPermittedError, DeadlineExceededError, HTTPStatusError,
                                  PerTryTimeoutError, RetryBudgetExhaustedError, is_retryable)
from workbook.sync.fallback import Fallback
from workbook.sync.hedge import Hedge
from workbook.sync.naive_breaker import ConsecutiveFailureBreaker
from workbook.sync.pipeline import Pipeline
from workbook.sync.retry import Retry

__all__ = [
    "Backoff", "BreakerEvent", "Bulkhead", "BulkheadFullError", "CallNotPermittedError", "CircuitBreaker",
    "CircuitBreakerConfig", "ConsecutiveFailureBreaker", "DEADLINE_HEADER", "Deadline", "DeadlineExceededError",
    "EventRecorder", "Fallback", "HTTPStatusError", "Hedge", "OverallTimeout", "PerTryTimeoutError", "Pipeline",
    "Retry", "RetryBudget", "RetryBudgetExhaustedError", "State", "Timeout", "current_deadline", "is_retryable",
]
