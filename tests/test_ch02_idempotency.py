"""A retried POST duplicates an order; an Idempotency-Key makes the retry safe (real HTTP on 127.0.0.1)."""

import asyncio

import aiohttp
import pytest

from workbook.core.realtime import AppServers
from workbook.labs.ch02_sync.idempotency import place_order_with_retries
from workbook.transport.demo_service import ORDERS, OrderStore, make_demo_app


async def _run(mode, **kw):
    app = make_demo_app("orders")
    servers = await AppServers.start(app)
    try:
        async with aiohttp.ClientSession() as session:
            return await place_order_with_retries(session, servers.urls[0], mode, per_try_timeout=0.3,
                                                  reply_delay=0.8, **kw), app[ORDERS].orders()
    finally:
        await servers.stop()


def test_naive_retry_of_a_timed_out_post_duplicates_the_order():
    result, orders = asyncio.run(asyncio.wait_for(_run("naive"), 20))
    assert result.attempts == 2 and result.orders_placed == 2 and len(orders) == 2
    assert result.outcome.startswith("HTTP 201")


def test_safe_rule_does_not_retry_a_post_but_leaves_the_caller_unsure():
    result, orders = asyncio.run(asyncio.wait_for(_run("safe"), 20))
    assert result.attempts == 1 and result.orders_placed == 1
    assert result.outcome.startswith("ServiceTimeoutError")


def test_keyed_retry_replays_the_stored_response():
    result, orders = asyncio.run(asyncio.wait_for(_run("keyed", key="order-42"), 20))
    assert result.attempts == 2 and result.orders_placed == 1 and result.replayed
    assert result.outcome == f"HTTP 201, order {orders[0]['order_id']}"


def test_store_keeps_key_and_order_in_one_transaction():
    store = OrderStore()
    assert store.place("k", {"sku": "apple", "quantity": 1}) == (201, {"order_id": 1, "sku": "apple", "quantity": 1},
                                                                 False)
    assert store.place("k", {"sku": "apple", "quantity": 1})[2] is True
    assert store.place("k", {"sku": "fig", "quantity": 1})[0] == 422  # same key, other request
    with pytest.raises(KeyError):  # a failure inside the transaction leaves neither order nor key
        store.place("broken", {"sku": "apple"})
    assert [o["order_id"] for o in store.orders()] == [1]
    assert store.place("broken", {"sku": "apple", "quantity": 2})[2] is False


def test_bad_order_and_bad_fault_are_400s_naming_the_field():
    async def main():
        servers = await AppServers.start(make_demo_app("orders"))
        try:
            async with aiohttp.ClientSession() as s:
                base = servers.urls[0]
                async with s.post(base + "/orders", json={"sku": "banana"}) as r:
                    assert r.status == 400 and "sku" in (await r.json())["message"]
                async with s.post(base + "/admin/faults", json={"delayed_replies": -1}) as r:
                    assert r.status == 400 and "delayed_replies" in (await r.json())["message"]
        finally:
            await servers.stop()

    asyncio.run(asyncio.wait_for(main(), 20))
