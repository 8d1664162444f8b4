"""Exceptions of the resilience kit, and the one rule that says what is worth retrying.

Each exception says *which* component refused or failed and why, so a notebook can print
``type(e).__name__: message`` and a learner knows where to look.

``is_retryable(exc)`` is the retry rule shared by every component:

* connection errors (refused, reset) and timeouts: retryable (the request may not have
  arrived, or the server may be briefly overloaded);
* HTTP 5xx and 429: retryable (429 and 503 may carry ``Retry-After``); likewise gRPC
  UNAVAILABLE, RESOURCE_EXHAUSTED and DEADLINE_EXCEEDED (an exception with a boolean
  ``retryable`` attribute decides for itself);
* any other 4xx: never (the request itself is wrong; sending it again cannot help);
* a non-idempotent request (POST, PATCH) only when it cannot have been processed: a
  refused connection or a 429. An error that knows its request says so itself (a
  ``retryable`` attribute: ``workbook.transport.client`` sets it); an error raised by a
  layer that does not know the request (a per-try timeout, a plain ``TimeoutError`` or
  ``ConnectionError``) is retryable only if the request in flight is idempotent, which the
  caller declares with ``request_idempotency(flag)`` (``ServiceClient.call`` does, from the
  method or its ``idempotent=`` argument; undeclared counts as idempotent);
* rejections by our own components (open breaker, full bulkhead, exhausted budget,
  expired overall deadline): never (retrying would defeat the component's purpose).
"""

from __future__ import annotations

import contextvars
import re
from contextlib import contextmanager
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any

from workbook.core.errors import ParameterError, WorkbookError

_DELAY_SECONDS = re.compile(r"\s*(\d+(?:\.\d+)?)\s*")


class ResilienceError(WorkbookError):
    """Base class of the kit's own rejections."""


class CallNotPermittedError(ResilienceError):
    """The circuit breaker is OPEN or FORCED_OPEN, or HALF_OPEN with every trial slot taken."""

    def __init__(self, breaker: str, state: str, detail: str = ""):
        self.breaker, self.state = breaker, state
        super().__init__(f"circuit breaker {breaker!r} is {state}: call not permitted" + (f" ({detail})" if detail else ""))


class IllegalStateTransitionError(ResilienceError):
    """A manual transition that resilience4j's ``CircuitBreaker.StateTransition`` table does
    not have (CLOSED -> HALF_OPEN, METRICS_ONLY -> OPEN or HALF_OPEN)."""

    def __init__(self, breaker: str, from_state: str, to_state: str):
        self.breaker, self.from_state, self.to_state = breaker, from_state, to_state
        super().__init__(f"circuit breaker {breaker!r}: no transition from {from_state} to {to_state} "
                         f"(resilience4j's StateTransition table has none)")


class BulkheadFullError(ResilienceError):
    """The bulkhead had no free slot within its ``max_wait_duration``."""

    def __init__(self, name: str, max_concurrent_calls: int, max_wait_duration: float):
        self.name = name
        super().__init__(
            f"bulkhead {name!r} is full: {max_concurrent_calls} concurrent calls, "
            f"no slot freed within {max_wait_duration:g} s"
        )


class RetryBudgetExhaustedError(ResilienceError):
    """A retry was wanted but the retry budget had no room; carries the last failure."""

    def __init__(self, last_error: BaseException, detail: str):
        self.last_error = last_error
        super().__init__(f"retry budget exhausted ({detail}); last error: {type(last_error).__name__}: {last_error}")


class DeadlineExceededError(ResilienceError, TimeoutError):
    """The overall deadline passed (a ``TimeoutError``, but never retried: no time is left)."""


class PerTryTimeoutError(WorkbookError, TimeoutError):
    """One attempt took longer than the per-try timeout: retryable for an idempotent
    request only (the attempt may have been processed, its answer merely late)."""


class HTTPStatusError(WorkbookError):
    """A downstream answered with a non-2xx status.

    ``service`` and ``operation`` say what was called, ``status`` the HTTP status,
    ``error`` / ``message`` what the downstream said (decoded from its JSON error body),
    ``retry_after`` the seconds from a ``Retry-After`` header, if any. ``idempotent``
    False (a POST, say) leaves only 429 retryable: a 5xx may come after the work was done.
    """

    def __init__(self, status: int, *, service: str = "", operation: str = "", error: str = "",
                 message: str = "", body: Any = None, retry_after: float | None = None, idempotent: bool = True):
        self.status, self.service, self.operation = status, service, operation
        self.error, self.message, self.body, self.retry_after = error, message, body, retry_after
        self.idempotent = idempotent
        where = f"{service} {operation}".strip() or "downstream"
        what = ": ".join(p for p in (error, message) if p) or "no error body"
        super().__init__(f"{where} answered HTTP {status}: {what}")

    @property
    def retryable(self) -> bool:
        return self.status == 429 or (self.status >= 500 and self.idempotent)


_idempotent: contextvars.ContextVar[bool] = contextvars.ContextVar("workbook_request_idempotent", default=True)


@contextmanager
def request_idempotency(idempotent: bool):
    """Declare whether the request sent inside the block may be sent twice (a context
    variable, like the deadline, so the retry and hedge layers see it whatever wraps them)."""
    if not isinstance(idempotent, bool):
        raise ParameterError("idempotent", idempotent, "True or False")
    token = _idempotent.set(idempotent)
    try:
        yield idempotent
    finally:
        _idempotent.reset(token)


def request_is_idempotent() -> bool:
    """Whether the current request was declared idempotent (True when undeclared)."""
    return _idempotent.get()


def is_retryable(exc: BaseException) -> bool:
    """True for connection errors, timeouts (not our overall deadline), 5xx and 429; for a
    non-idempotent request only what proves it was not processed (see the module doc)."""
    if isinstance(exc, (ResilienceError,)):
        return False
    verdict = getattr(exc, "retryable", None)  # HTTPStatusError, GrpcStatusError, client errors
    if isinstance(verdict, bool):
        return verdict
    return isinstance(exc, (ConnectionError, TimeoutError)) and _idempotent.get()


def retry_after_of(exc: BaseException) -> float | None:
    """The server's ``Retry-After`` (seconds) carried by ``exc``, if any."""
    value = getattr(exc, "retry_after", None)
    return None if value is None else max(0.0, float(value))


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header value (RFC 9110, section 10.2.3).

    Both forms: delay-seconds (``"120"``; a decimal is accepted too) and an HTTP-date
    (``"Wed, 21 Oct 2015 07:28:00 GMT"``), the latter counted from ``now`` (an aware
    datetime: the response's ``Date`` header, or the caller's wall clock), 0 if already
    past. A date without ``now`` or anything malformed (negative, ``inf``, garbage) gives
    None: no usable hint, so the caller falls back to its own backoff.
    """
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):  # a simulated header
        return float(value) if 0 <= value < float("inf") else None
    if not isinstance(value, str):
        return None
    match = _DELAY_SECONDS.fullmatch(value)
    if match:
        return float(match.group(1))
    if now is None:
        return None
    try:
        when = parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:  # an HTTP-date is always GMT
        when = when.replace(tzinfo=timezone.utc)
    if now.tzinfo is None:
        now = now.replace(tzinfo=timezone.utc)
    return max(0.0, (when - now).total_seconds())
