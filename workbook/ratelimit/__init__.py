"""Rate limiting: six algorithms, in memory and on Redis, with the HTTP fields a gateway sends.

``policy`` (``RateLimitPolicy``: algorithm, ``limit`` per ``period``, ``burst``;
``limit_key`` per client, per route or both; ``RateLimitDecision``; ``LimiterStats``),
``memory`` (``MemoryRateLimiter``: the six algorithms on an injectable ``Clock``, exact in
virtual time), ``redis_backend`` (``RedisRateLimiter``: each decision one atomic Lua
script in one round trip on Redis's own clock; fail open or closed, counted and logged),
``headers`` (``429``'s ``Retry-After`` and the IETF ``RateLimit-Policy``/``RateLimit``
fields) and ``naive`` (the source article's limiter, kept to show its defects). Chapter 6's
gateway calls them; its lab runs them on crafted timelines.
"""

from workbook.ratelimit.headers import ratelimit_header, ratelimit_headers, ratelimit_policy_header
from workbook.ratelimit.memory import (FixedWindowLimiter, GCRALimiter, LeakyBucketLimiter, MemoryRateLimiter,
                                       SlidingLogLimiter, SlidingWindowLimiter, TokenBucketLimiter)
from workbook.ratelimit.naive import ArticleRateLimiter
from workbook.ratelimit.policy import (BUCKET_ALGORITHMS, LIMIT_KEY_SCOPES, LIMITER_FAIL_MODES, RATE_LIMIT_ALGORITHMS,
                                       WINDOW_ALGORITHMS, LimiterStats, RateLimitDecision, RateLimitPolicy, limit_key)
from workbook.ratelimit.redis_backend import BACKEND_DOWN, RedisRateLimiter

__all__ = [
    "ArticleRateLimiter", "BACKEND_DOWN", "BUCKET_ALGORITHMS", "FixedWindowLimiter", "GCRALimiter",
    "LeakyBucketLimiter", "limit_key", "LIMIT_KEY_SCOPES", "LIMITER_FAIL_MODES", "LimiterStats", "MemoryRateLimiter",
    "RATE_LIMIT_ALGORITHMS", "ratelimit_header", "ratelimit_headers", "ratelimit_policy_header", "RateLimitDecision",
    "RateLimitPolicy", "RedisRateLimiter", "SlidingLogLimiter", "SlidingWindowLimiter", "TokenBucketLimiter",
    "WINDOW_ALGORITHMS",
]
