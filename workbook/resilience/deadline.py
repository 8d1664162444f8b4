"""Timeouts per try and overall, and the remaining deadline passed downstream.

An overall timeout becomes a ``Deadline`` (an absolute clock time) stored in a context
variable for the duration of the call, so every layer below sees it: the retry loop does
not sleep past it, each try's timeout is ``min(per_try, remaining)`` and becomes the
deadline inside that try, and the service client puts the remaining milliseconds into the
``DEADLINE_HEADER`` of each downstream request (Envoy's name for it:
``x-envoy-expected-rq-timeout-ms``, which Envoy also sets to the per-try timeout when
there is one; gRPC's equivalent is ``grpc-timeout``). A server reads it back with ``deadline_from_headers`` and gives its
own downstream calls only what is left: work the caller has already given up on is not
done.

Nested scopes keep the *earlier* deadline: an inner overall timeout cannot extend the
caller's.

Timeouts fire on the event loop's timers (``asyncio.timeout``), so the deadline's
``clock`` must be the loop's (the default ``LoopClock``; virtual under ``run_virtual``).
Only a timeout that *this* layer fired is translated (``PerTryTimeoutError`` /
``DeadlineExceededError``); a ``TimeoutError`` raised by the callee itself (a socket
timeout, an inner layer's limit) passes through unchanged, so its retryability is kept.
"""

from __future__ import annotations

import asyncio
import contextvars
import math
from contextlib import contextmanager
from dataclasses import dataclass

from workbook.core.clock import LoopClock
from workbook.core.params import check_number
from workbook.resilience.errors import DeadlineExceededError, PerTryTimeoutError

DEADLINE_HEADER = "x-envoy-expected-rq-timeout-ms"

_current: contextvars.ContextVar["Deadline | None"] = contextvars.ContextVar("workbook_deadline", default=None)


@dataclass(frozen=True, slots=True)
class Deadline:
    expires_at: float
    clock: object

    @classmethod
    def after(cls, seconds: float, clock=None) -> "Deadline":
        clock = clock or LoopClock()
        return cls(clock.now() + check_number("timeout", seconds, minimum=0), clock)

    def remaining(self) -> float:
        return max(0.0, self.expires_at - self.clock.now())

    @property
    def expired(self) -> bool:
        return self.clock.now() >= self.expires_at


def current_deadline() -> Deadline | None:
    return _current.get()


def enter_deadline(deadline: Deadline | None) -> contextvars.Token:
    """``deadline_scope`` without a ``with`` block, for a hot path: make ``deadline`` (or
    the caller's, if earlier) current; give the returned token to ``exit_deadline``."""
    outer = _current.get()
    if deadline is None or (outer is not None and outer.expires_at <= deadline.expires_at):
        deadline = outer
    return _current.set(deadline)


def exit_deadline(token: contextvars.Token) -> None:
    """Restore the deadline current before ``enter_deadline`` returned ``token``."""
    _current.reset(token)


@contextmanager
def deadline_scope(deadline: Deadline | None):
    """Make ``deadline`` (or the caller's, if earlier) current inside the block."""
    token = enter_deadline(deadline)
    try:
        yield _current.get()
    finally:
        _current.reset(token)


def deadline_headers(deadline: Deadline | None = None) -> dict[str, str]:
    """``{DEADLINE_HEADER: remaining ms}`` for the current (or given) deadline, or ``{}``."""
    deadline = deadline or _current.get()
    if deadline is None:
        return {}
    # whole milliseconds, rounded down (never promise time that is not there), but after
    # clearing float noise: 1.9 - 0.9 is 0.9999999999999999 s, which is 1000 ms, not 999
    return {DEADLINE_HEADER: str(math.floor(round(deadline.remaining() * 1000, 6)))}


def deadline_from_headers(headers, clock=None) -> Deadline | None:
    """The deadline a caller sent, or None if absent or malformed (then no deadline applies)."""
    value = headers.get(DEADLINE_HEADER)
    if value is None:
        return None
    try:
        ms = float(value)
    except (TypeError, ValueError):
        return None
    if ms < 0 or not math.isfinite(ms):  # "inf" would later fail to re-encode downstream
        return None
    return Deadline.after(ms / 1000.0, clock)


class Timeout:
    """Per-try timeout: each attempt gets ``min(seconds, remaining overall deadline)``,
    and that is the deadline current inside the try (so ``DEADLINE_HEADER`` and gRPC's
    deadline carry the per-try limit: a downstream stops when this try is abandoned).

    Raises ``PerTryTimeoutError`` (retryable) when its own limit fires and
    ``DeadlineExceededError`` (not retryable) when the overall deadline was the limit.
    """

    def __init__(self, seconds: float, *, clock=None):
        self.seconds = check_number("per_try_timeout", seconds, minimum=0, min_exclusive=True)
        self.clock = clock or LoopClock()
        self.fired = 0

    async def call_async(self, fn, *args, **kwargs):
        deadline = _current.get()
        limit, by_deadline = self.seconds, False
        if deadline is not None and deadline.remaining() < limit:
            limit, by_deadline = deadline.remaining(), True
        if limit <= 0:
            raise DeadlineExceededError("overall deadline already passed before the try started")
        scope = asyncio.timeout(limit)
        try:
            # the try's own limit is the deadline below it: the callee (and the header it
            # sends on) sees this try's time, not the whole call's, as Envoy's router does
            with deadline_scope(Deadline.after(limit, self.clock)):
                async with scope:
                    return await fn(*args, **kwargs)
        except TimeoutError:
            if not scope.expired():
                raise  # the callee's own timeout (a socket timeout, an inner limit): not ours
            self.fired += 1
            if by_deadline:
                raise DeadlineExceededError(f"overall deadline reached during a try (after {limit:g} s)") from None
            raise PerTryTimeoutError(f"try timed out after {limit:g} s (per-try timeout)") from None


class OverallTimeout:
    """Overall timeout: sets the deadline every inner layer sees; raises ``DeadlineExceededError``."""

    def __init__(self, seconds: float, *, clock=None):
        self.seconds = check_number("overall_timeout", seconds, minimum=0, min_exclusive=True)
        self.clock = clock or LoopClock()

    async def call_async(self, fn, *args, **kwargs):
        with deadline_scope(Deadline.after(self.seconds, self.clock)) as deadline:
            scope = asyncio.timeout(deadline.remaining())
            try:
                async with scope:
                    return await fn(*args, **kwargs)
            except TimeoutError:
                if not scope.expired():
                    raise  # raised inside (a per-try timeout, a socket timeout): keep its type
                raise DeadlineExceededError(f"overall timeout of {self.seconds:g} s exceeded") from None
