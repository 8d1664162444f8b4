"""Fallback: when the protected call fails with one of ``on``, answer with ``handler(exc)``.

The handler may be a function or a coroutine function. It runs outermost in a pipeline,
so it also covers an open breaker, a full bulkhead and an expired deadline: the caller
gets a degraded answer (cached, default, empty) instead of an error.
"""

from __future__ import annotations

import inspect


class Fallback:
    def __init__(self, handler, *, on: tuple[type[BaseException], ...] = (Exception,)):
        if not callable(handler):
            raise ValueError(f"parameter 'handler' = {handler!r} is not allowed: expected a callable exc -> value")
        self.handler = handler
        self.on = on
        self.used = 0

    async def call_async(self, fn, *args, **kwargs):
        try:
            return await fn(*args, **kwargs)
        except self.on as exc:
            self.used += 1
            value = self.handler(exc)
            if inspect.isawaitable(value):
                value = await value
            return value
