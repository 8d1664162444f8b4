"""A route limited on Redis through the live gateway: exact admissions while Redis runs;
with Redis stopped, the configured fail mode answers (closed: 429, open: 200), counted
and written in the access log, never silent."""

import asyncio

import aiohttp
import pytest

from tests.fixtures import running
from workbook.core.external import INSTALL_HINTS, RedisServer
from workbook.gateway.demo import DemoStack

pytestmark = pytest.mark.redis


@pytest.fixture
def own_redis():
    server = running(RedisServer(), INSTALL_HINTS["redis-server"])
    yield server
    server.stop()


@pytest.mark.parametrize("fail_mode,expected_when_down", [("closed", 429), ("open", 200)])
def test_redis_limited_route_and_its_fail_mode(own_redis, fail_mode, expected_when_down):
    def on_redis(data):
        data["redis"] = {"url": own_redis.url}
        data["rate_limiters"]["five-per-minute"].update(backend="redis", on_backend_error=fail_mode)

    async def main():
        stack = await DemoStack.start(config_overrides=on_redis)
        try:
            async with aiohttp.ClientSession() as client:
                async def hit():
                    async with client.get(stack.gateway_url + "/api/limited/x") as r:
                        await r.read()
                        return r.status
                up = await asyncio.gather(*[hit() for _ in range(20)])
                own_redis.stop()
                down = [await hit() for _ in range(3)]
            limiter = stack.gateway.limiters["five-per-minute"].limiter
            return up, down, limiter.stats, stack.gateway.access_log.records()
        finally:
            await stack.stop()

    up, down, stats, log = asyncio.run(asyncio.wait_for(main(), 60))
    assert sorted(up) == [200] * 5 + [429] * 15          # 20 concurrent, limit 5: exactly 5 admitted
    assert down == [expected_when_down] * 3
    assert stats.backend_errors == 3 and getattr(stats, f"failed_{fail_mode}") == 3
    assert [r["limiter"] for r in log[-3:]] == [("allowed" if fail_mode == "open" else "rejected")
                                                + f"/fail_{fail_mode}"] * 3
