"""Rate limiting: six algorithms, in memory and on Redis, with the HTTP fields a gateway sends.

``policy`` (``RateLimitPolicy``: algorithm, ``limit`` per ``period``, ``burst``;
``limit_key`` per client, per route or both; ``Decision``; ``LimiterStats``),
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
from workbook.ratelimit.policy import (ALGORITHMS, BUCKET_ALGORITHMS, FAIL_MODES, KEY_SCOPES, WINDOW_ALGORITHMS,
                                       Decision, LimiterStats, RateLimitPolicy, limit_key)
from workbook.ratelimit.redis_backend import BACKEND_DOWN, RedisRateLimiter

__all__ = [
    "ALGORITHMS", "ArticleRateLimiter", "BACKEND_DOWN", "BUCKET_ALGORITHMS", "Decision", "FAIL_MODES",
    "FixedWindowLimiter", "GCRALimiter", "KEY_SCOPES", "LeakyBucketLimiter", "LimiterStats", "MemoryRateLimiter",
    "RateLimitPolicy", "RedisRateLimiter", "SlidingLogLimiter", "SlidingWindowLimiter", "TokenBucketLimiter",
    "WINDOW_ALGORITHMS", "limit_key", "ratelimit_header", "ratelimit_headers", "ratelimit_policy_header",
]
