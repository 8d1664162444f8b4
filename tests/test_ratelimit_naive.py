"""The source article's Redis limiter over-admits; each test shows one defect next to the
workbook's limiter passing the same test."""

from __future__ import annotations

import asyncio
import logging

import pytest
import redis.asyncio as aioredis

from workbook.core.clock import ManualClock
from workbook.core.errors import ParameterError
from workbook.core.external import RedisServer, ServiceUnavailable
from workbook.ratelimit import ArticleRateLimiter, RateLimitPolicy, RedisRateLimiter

pytestmark = pytest.mark.redis


def pooled(url, connections=50):
    return aioredis.Redis(connection_pool=aioredis.BlockingConnectionPool.from_url(url, max_connections=connections))


def concurrent_admissions(url, strategy, n=1000, limit=100, connections=50):
    async def main():
        client = pooled(url, connections)
        try:
            article = ArticleRateLimiter(client, clock=ManualClock(5.0))
            # the article's token bucket takes (capacity, refill per second): 100, 0 refill
            window = 0 if strategy == "token_bucket" else 60
            got = await asyncio.gather(*(article.is_allowed("k", limit, window, strategy) for _ in range(n)))
            return sum(got), article.silent_failures
        finally:
            await client.aclose()

    return asyncio.run(main())


@pytest.mark.parametrize("strategy", ["fixed_window", "sliding_window", "token_bucket"])
def test_article_limiter_over_admits_1000_concurrent_requests(redis_url, strategy):
    admitted, failures = concurrent_admissions(redis_url, strategy, connections=200)
    assert failures == 0  # no error hid anything: the over-admission is the race itself
    assert admitted > 100, f"{strategy}: expected more than the limit of 100, got {admitted}"


def test_article_fixed_window_admits_twice_the_limit_across_a_window_edge(redis_url):
    async def main():
        client = aioredis.Redis.from_url(redis_url)
        try:
            clock = ManualClock(59.9)  # windows of 60 s: an edge at 60.0
            article = ArticleRateLimiter(client, clock=clock)
            ours = RedisRateLimiter(client, RateLimitPolicy("sliding_log", 10, 60.0), clock=clock)
            article_n = ours_n = 0
            for _ in range(2):
                for _ in range(10):
                    article_n += await article.is_allowed("k", 10, 60)
                    ours_n += (await ours.decide("k")).allowed
                clock.advance(0.2)  # 60.1: the article's next window
            return article_n, ours_n
        finally:
            await client.aclose()

    article_n, ours_n = asyncio.run(main())
    assert (article_n, ours_n) == (20, 10)  # 20 within 0.2 s for a limit of 10 per minute


def test_article_sliding_window_loses_requests_that_share_a_timestamp(redis_url):
    async def main():
        client = aioredis.Redis.from_url(redis_url)
        try:
            article = ArticleRateLimiter(client, clock=ManualClock(100.0))
            admitted = [await article.is_allowed("k", 3, 60, "sliding_window") for _ in range(5)]
            return admitted, await client.zcard("k")
        finally:
            await client.aclose()

    admitted, members = asyncio.run(main())
    assert admitted == [True] * 5 and members == 1  # sequential, no race: five admitted, one counted


def test_article_limiter_fails_open_silently(caplog):
    try:
        server = RedisServer().start()
    except ServiceUnavailable as exc:
        from tests.fixtures import missing_service
        missing_service(str(exc))

    async def main():
        client = aioredis.Redis.from_url(server.url, retry=None, socket_connect_timeout=0.25)
        try:
            article = ArticleRateLimiter(client, clock=ManualClock(0.0))
            server.stop()
            return [await article.is_allowed("k", 1, 60) for _ in range(5)], article.silent_failures
        finally:
            await client.aclose()

    try:
        with caplog.at_level(logging.DEBUG):
            admitted, failures = asyncio.run(main())
    finally:
        server.stop()
    assert admitted == [True] * 5 and failures == 5  # five admitted against a limit of 1
    assert not [r for r in caplog.records if r.name.startswith("workbook")]  # and nothing said


def test_article_limiter_strategy_is_checked():
    article = ArticleRateLimiter(client=None)
    with pytest.raises(ParameterError, match="'strategy'"):
        asyncio.run(article.is_allowed("k", 1, 1, "leaky_bucket"))
