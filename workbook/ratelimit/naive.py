"""The source article's Redis rate limiter, rebuilt so that its defects can be run and seen.

Kept for comparison with ``RedisRateLimiter``; do not use it. It is the article's logic
on ``redis.asyncio`` (the article awaited a synchronous client, which does not run), with
the time read through an injectable ``clock`` (the article called ``time.time()``) so that
a window edge can be placed exactly. Its defects, each shown by a test and by chapter 6:

* **fixed window, GET then INCR**: two round trips with no atomicity between them, so
  concurrent requests all read a count below the limit and all increment: over-admission.
* **fixed window edges**: a window is ``int(now) // window``, so ``limit`` requests just
  before an edge and ``limit`` just after are all admitted: 2x the limit within a span
  far shorter than one window.
* **sliding window with the time as the set member**: ``ZADD key {str(now): now}``; two
  requests at the same instant are one member, so the second is admitted but not counted.
  It also runs ZREMRANGEBYSCORE, ZCARD, ZADD as separate commands (over-admission again).
* **token bucket read-modify-write**: HMGET, compute, HSET: concurrent requests spend the
  same token.
* **silent fail-open**: every error (Redis down included) admits the request, with no
  log and no counter. ``silent_failures`` exists here only so a test can show how many
  went unnoticed; the article kept none.
"""

from __future__ import annotations

import time

from workbook.core.params import check_choice

STRATEGIES = ("fixed_window", "sliding_window", "token_bucket")


class _TimeTime:
    now = staticmethod(time.time)


class ArticleRateLimiter:
    """``await is_allowed(key, limit, window, strategy)`` -> bool, as in the article."""

    def __init__(self, client, clock=None):
        self.redis = client
        self.clock = clock or _TimeTime()
        self.silent_failures = 0  # not in the article: it admitted on every error without a trace

    async def is_allowed(self, key: str, limit: int, window: int, strategy: str = "fixed_window") -> bool:
        check_choice("strategy", strategy, STRATEGIES)
        if strategy == "fixed_window":
            return await self._fixed_window(key, limit, window)
        if strategy == "sliding_window":
            return await self._sliding_window(key, limit, window)
        return await self._token_bucket(key, limit, window)

    async def _fixed_window(self, key, limit, window):
        current_window = int(self.clock.now()) // window
        window_key = f"{key}:{current_window}"
        try:
            current = await self.redis.get(window_key)  # round trip 1: read
            current = int(current) if current else 0
            if current >= limit:
                return False
            pipe = self.redis.pipeline()  # round trip 2: write, whatever happened in between
            pipe.incr(window_key)
            pipe.expire(window_key, window)
            await pipe.execute()
            return True
        except Exception:
            self.silent_failures += 1
            return True

    async def _sliding_window(self, key, limit, window):
        now = self.clock.now()
        try:
            await self.redis.zremrangebyscore(key, 0, now - window)
            if await self.redis.zcard(key) >= limit:
                return False
            await self.redis.zadd(key, {str(now): now})  # same instant -> same member
            await self.redis.expire(key, window)
            return True
        except Exception:
            self.silent_failures += 1
            return True

    async def _token_bucket(self, key, capacity, refill_rate):
        now = self.clock.now()
        try:
            tokens, last = await self.redis.hmget(key, "tokens", "last_refill")
            tokens = float(tokens) if tokens else capacity
            last = float(last) if last else now
            tokens = min(capacity, tokens + (now - last) * refill_rate)
            if tokens < 1:
                return False
            await self.redis.hset(key, mapping={"tokens": tokens - 1, "last_refill": now})
            await self.redis.expire(key, 3600)
            return True
        except Exception:
            self.silent_failures += 1
            return True
