"""The resilience pipeline: every component around one call, in one documented order.

From the outside in (``Pipeline.ORDER``):

1. ``fallback``: outermost, so it also answers when the breaker is open, the bulkhead
   is full, the budget is spent or the overall deadline has passed.
2. ``overall_timeout``: bounds the whole call *including* retries and their waits, and
   publishes the deadline (the retry loop will not sleep past it; every try's timeout is
   cut to what remains; the service client sends the remainder downstream).
3. ``retry`` (with its ``budget``): each attempt goes through everything below, so every
   attempt asks the breaker; ``CallNotPermittedError`` is not retryable (fail fast).
4. ``hedge``: a hedged try is one attempt for the retry; each hedge asks the bulkhead
   and the breaker on its own.
5. ``bulkhead``: outside the breaker, so a full bulkhead (a local condition) is never
   recorded as a downstream failure, and a breaker rejection frees the slot at once.
6. ``breaker``: outside the per-try timeout, so a timed-out try is recorded as a
   failure (and a slow call).
7. ``per_try_timeout``: innermost, around the call itself.

This is resilience4j's order (Retry > CircuitBreaker > TimeLimiter > Bulkhead) except
that the bulkhead sits outside the breaker for the reason in 5, with Envoy's per-try
timeout and retry budget, and a fallback and an overall deadline outermost.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Pipeline:
    fallback: object | None = None
    overall_timeout: object | None = None
    retry: object | None = None
    hedge: object | None = None
    bulkhead: object | None = None
    breaker: object | None = None
    per_try_timeout: object | None = None

    ORDER = ("fallback", "overall_timeout", "retry", "hedge", "bulkhead", "breaker", "per_try_timeout")

    def layers(self) -> list[str]:
        """The components present, outermost first."""
        return [name for name in self.ORDER if getattr(self, name) is not None]

    async def call_async(self, fn, *args, **kwargs):
        """Await ``fn(*args, **kwargs)`` through every configured component."""
        call = lambda: fn(*args, **kwargs)  # noqa: E731
        for name in reversed(self.ORDER):
            component = getattr(self, name)
            if component is not None:
                call = _wrap(component, call)
        return await call()


def _wrap(component, inner):
    async def layer():
        return await component.call_async(inner)
    return layer
