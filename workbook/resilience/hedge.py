"""Hedged requests: if the first try has not answered after ``delay``, send another one,
and take whichever answers first (Dean and Barroso, "The Tail at Scale").

With ``delay`` set near the p95 latency, about 5 % of requests send one extra try, and
the slowest ones (the tail) are cut to roughly ``delay`` + a normal latency. A try that
fails with a retryable error (``retry_on``, default ``is_retryable``) triggers the next
hedge at once; a definitive answer (a 404, an open breaker) does not: sending the same
request again cannot change it. The call then waits for the tries still in flight, or
raises that error if there are none. Only for idempotent operations. The losers are
cancelled. ``sent`` counts every try, so ``sent / calls`` is the load the hedging costs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from workbook.core.params import check_int, check_number
from workbook.resilience.errors import is_retryable, request_is_idempotent


class Hedge:
    def __init__(self, delay: float, max_hedges: int = 1, *,
                 retry_on: Callable[[BaseException], bool] = is_retryable):
        self.delay = check_number("hedge_delay", delay, minimum=0)
        self.max_hedges = check_int("max_hedges", max_hedges, minimum=0)
        self.retry_on = retry_on
        self.calls = 0
        self.sent = 0
        self.won_by_hedge = 0

    async def call_async(self, fn, *args, **kwargs):
        self.calls += 1
        max_hedges = self.max_hedges if request_is_idempotent() else 0
        pending: dict[asyncio.Task, int] = {}
        launched = 0

        def launch():
            nonlocal launched
            self.sent += 1
            pending[asyncio.ensure_future(fn(*args, **kwargs))] = launched
            launched += 1

        launch()
        last_error: BaseException | None = None
        definitive = False  # a non-retryable failure seen: launch nothing more
        try:
            while pending:
                can_hedge = launched <= max_hedges and not definitive
                done, _ = await asyncio.wait(list(pending), timeout=self.delay if can_hedge else None,
                                             return_when=asyncio.FIRST_COMPLETED)
                if not done:
                    launch()
                    continue
                for task in done:
                    index = pending.pop(task)
                    if task.exception() is None:
                        if index > 0:
                            self.won_by_hedge += 1
                        return task.result()
                    last_error = task.exception()
                    if not self.retry_on(last_error):
                        definitive = True
                if launched <= max_hedges and not definitive:
                    launch()
            raise last_error
        finally:
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)
