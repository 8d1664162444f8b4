"""A non-idempotent request is never re-sent after an error that may come after it was
processed: here a per-try timeout, end to end through ``ServiceClient`` against a real
aiohttp server on 127.0.0.1 that counts what it received. ``PerTryTimeoutError`` used to
be retryable for every method: a slow POST was sent three times (three orders)."""

import asyncio

import aiohttp
import pytest
from aiohttp import web

from workbook.core.errors import ParameterError
from workbook.core.realtime import serve
from workbook.resilience import (Backoff, Hedge, PerTryTimeoutError, Pipeline, Retry, Timeout, is_retryable,
                                 request_idempotency)
from workbook.transport.client import ServiceClient


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 30))


def slow_orders_app(arrivals, delay=0.4):
    async def orders(request):
        arrivals[request.method] = arrivals.get(request.method, 0) + 1
        await asyncio.sleep(delay)  # processed, but the answer comes after the per-try timeout
        return web.json_response({"id": 1}, status=201)

    app = web.Application()
    app.add_routes([web.post("/orders", orders), web.get("/orders", orders)])
    return app


async def attempt(client, method, **kw):
    try:
        await client.call("orders", method, "/orders", **kw)
        return "ok"
    except PerTryTimeoutError:
        return "per-try timeout"


def test_slow_post_is_sent_once_despite_per_try_timeouts_and_a_get_is_retried():
    arrivals = {}

    async def main():
        async with serve(slow_orders_app(arrivals)) as (url,):
            async with aiohttp.ClientSession() as session:
                pipeline = Pipeline(retry=Retry(3, Backoff(0.001, 1, 0.001, "none")), per_try_timeout=Timeout(0.05))
                client = ServiceClient(session, {"orders": url}, pipelines={"orders": pipeline})
                post = await attempt(client, "POST")
                await asyncio.sleep(0.1)  # a retry would have arrived by now
                posts = arrivals.get("POST", 0)
                get = await attempt(client, "GET")
                keyed = await attempt(client, "POST", idempotent=True)  # an idempotency key: may be re-sent
                await asyncio.sleep(0.1)
                return post, posts, get, arrivals.get("GET", 0), keyed, arrivals.get("POST", 0) - posts

    assert run(main()) == ("per-try timeout", 1, "per-try timeout", 3, "per-try timeout", 3)


def test_slow_post_is_not_hedged():
    arrivals = {}

    async def main():
        async with serve(slow_orders_app(arrivals, delay=0.2)) as (url,):
            async with aiohttp.ClientSession() as session:
                client = ServiceClient(session, {"orders": url},
                                       pipelines={"orders": Pipeline(hedge=Hedge(0.02, max_hedges=2))})
                await client.call("orders", "POST", "/orders")
                posts = arrivals.get("POST", 0)
                await client.call("orders", "GET", "/orders")
                return posts, arrivals.get("GET", 0)

    assert run(main()) == (1, 3)


def test_the_retry_rule_reads_the_declared_idempotency():
    timeout = PerTryTimeoutError("try timed out")
    assert is_retryable(timeout) and is_retryable(ConnectionResetError())  # undeclared: idempotent
    with request_idempotency(False):
        assert not is_retryable(timeout) and not is_retryable(TimeoutError()) and not is_retryable(ConnectionError())
        with request_idempotency(True):
            assert is_retryable(timeout)
    assert is_retryable(timeout)
    with pytest.raises(ParameterError, match="idempotent"):
        with request_idempotency("no"):
            pass


@pytest.mark.parametrize("setting, value", [("retry_on", (ConnectionError,)), ("retry_on", ConnectionError),
                                            ("retry_on", "is_retryable"), ("budget", 0.2), ("budget", {"percent": 20}),
                                            ("backoff", 0.1)])
def test_retry_settings_are_type_checked_when_built(setting, value):
    """They used to fail only at the first retry (a TypeError deep in the loop)."""
    with pytest.raises(ParameterError, match=setting):
        Retry(3, **{setting: value})
