"""The aiohttp service client against real demo services on 127.0.0.1 (ephemeral ports)."""

import asyncio

import aiohttp
import pytest

from workbook.core.realtime import serve
from workbook.resilience import (DEADLINE_HEADER, Backoff, CircuitBreaker, HTTPStatusError,
                           OverallTimeout, Pipeline, Retry, State, Timeout)
from workbook.transport.client import ServiceClient, ServiceConnectionError
from workbook.transport.context import RequestContext, context_scope
from workbook.transport.demo_service import make_demo_app


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 30))


async def set_faults(session, url, **faults):
    async with session.post(url + "/admin/faults", json=faults) as resp:
        return resp.status, await resp.json()


def test_headers_propagate_through_two_services_with_remaining_deadline():
    async def main():
        backend = make_demo_app("warehouse")
        async with serve(backend) as (backend_url,):
            async with serve(make_demo_app("inventory", downstream=backend_url)) as (front_url,):
                async with aiohttp.ClientSession() as session:
                    client = ServiceClient(session, {"inventory": front_url})
                    ctx = RequestContext("corr-123", user_id="u-7", tenant_id="acme")
                    with context_scope(ctx):
                        return await OverallTimeout(5.0).call_async(client.get, "inventory", "/stock/apple")

    body = run(main())
    assert body["available"] == 12 and body["correlation_id"] == "corr-123"
    down = body["downstream"]
    assert (down["service"], down["correlation_id"], down["user_id"], down["tenant_id"]) == \
        ("warehouse", "corr-123", "u-7", "acme")
    first, second = int(body["deadline_ms"]), int(down["deadline_ms"])
    assert 4000 < first <= 5000 and 0 < second <= first  # the downstream got what was left


def test_any_2xx_is_success_and_json_errors_are_decoded():
    from aiohttp import web

    async def created(request):
        return web.json_response({"id": 1}, status=201)

    async def empty(request):
        return web.Response(status=204)

    app = web.Application()
    app.add_routes([web.post("/orders", created), web.delete("/orders/1", empty)])

    async def main():
        async with serve(app, make_demo_app("inventory")) as (orders_url, inv_url):
            async with aiohttp.ClientSession() as session:
                client = ServiceClient(session, {"orders": orders_url, "inventory": inv_url})
                made = await client.request("orders", "POST", "/orders", json={"sku": "apple"})
                gone = await client.request("orders", "DELETE", "/orders/1")
                with pytest.raises(HTTPStatusError) as info:
                    await client.get("inventory", "/stock/banana")
                await set_faults(session, inv_url, error_rate=1.0, error_status=429, retry_after=1.5)
                with pytest.raises(HTTPStatusError) as info429:
                    await client.get("inventory", "/stock/apple")
                return made, gone, info.value, info429.value

    made, gone, not_found, throttled = run(main())
    assert made == {"id": 1} and gone is None
    assert not_found.status == 404 and not_found.error == "not_found" and "banana" in str(not_found)
    assert "inventory GET /stock/banana answered HTTP 404" in str(not_found) and not not_found.retryable
    assert throttled.status == 429 and throttled.retry_after == 1.5 and throttled.retryable


def test_connection_refused_names_service_and_is_retryable():
    async def main():
        async with serve(make_demo_app()) as (url,):
            pass  # stopped: its port now refuses
        async with aiohttp.ClientSession() as session:
            client = ServiceClient(session, {"inventory": url})
            with pytest.raises(ServiceConnectionError) as info:
                await client.get("inventory", "/stock/apple")
            return str(info.value)

    message = run(main())
    assert "inventory GET /stock/apple" in message and "cannot connect" in message


def test_admin_endpoint_changes_faults_while_running_and_rejects_bad_fields():
    async def main():
        async with serve(make_demo_app("inventory")) as (url,):
            async with aiohttp.ClientSession() as session:
                client = ServiceClient(session, {"inventory": url})
                ok_before = await client.get("inventory", "/stock/plum")
                bad = await set_faults(session, url, error_rate=2)
                unknown = await set_faults(session, url, explode=True)
                good = await set_faults(session, url, error_rate=1.0)
                with pytest.raises(HTTPStatusError) as info:
                    await client.get("inventory", "/stock/plum")
                await set_faults(session, url, error_rate=0.0)
                ok_after = await client.get("inventory", "/stock/plum")
                return ok_before, bad, unknown, good, info.value, ok_after

    ok_before, bad, unknown, good, err, ok_after = run(main())
    assert ok_before["available"] == 7 and ok_after["available"] == 7
    assert bad[0] == 400 and "error_rate" in bad[1]["message"] and "[0, 1]" in bad[1]["message"]
    assert unknown[0] == 400 and "explode" in unknown[1]["message"]
    assert good == (200, {"error_rate": 1.0, "latency": 0.0, "hang": False, "error_status": 503, "retry_after": None,
                          "delayed_replies": 0, "reply_delay": 1.0})
    assert err.status == 503 and err.error == "injected_fault"


def test_pipeline_over_real_service_opens_breaker_and_times_out_hangs():
    async def main():
        async with serve(make_demo_app("inventory")) as (url,):
            async with aiohttp.ClientSession() as session:
                breaker = CircuitBreaker("inventory", sliding_window_size=4, minimum_number_of_calls=4,
                                         wait_duration_in_open_state=60)
                pipeline = Pipeline(retry=Retry(2, Backoff(0.001, 1, 0.001, "none")), breaker=breaker,
                                    per_try_timeout=Timeout(0.05))
                client = ServiceClient(session, {"inventory": url}, pipelines={"inventory": pipeline})
                await set_faults(session, url, hang=True)
                outcomes = []
                for _ in range(4):
                    try:
                        await client.call("inventory", "GET", "/stock/apple")
                    except Exception as exc:
                        outcomes.append(type(exc).__name__)
                return outcomes, breaker.state, client.sent

    outcomes, state, sent = run(main())
    # 2 calls x 2 timed-out tries = 4 recorded failures -> OPEN; later calls are rejected without sending
    assert outcomes == ["PerTryTimeoutError", "PerTryTimeoutError", "CallNotPermittedError", "CallNotPermittedError"]
    assert state is State.OPEN and sent == 4


def test_health_all_is_concurrent_and_reports_each_service():
    async def main():
        async with serve(make_demo_app("a"), make_demo_app("b")) as (a, b):
            async with serve(make_demo_app("gone")) as (gone,):
                pass
            async with aiohttp.ClientSession() as session:
                client = ServiceClient(session, {"a": a, "b": b, "gone": gone})
                results = await client.health_all()
                single = await client.health("a")
                return results, single

    results, single = run(main())
    assert single.healthy and single.status == 200
    assert {n: r.healthy for n, r in results.items()} == {"a": True, "b": True, "gone": False}
    assert results["gone"].status is None and "cannot connect" in results["gone"].detail


def test_deadline_header_absent_without_deadline():
    async def main():
        async with serve(make_demo_app()) as (url,):
            async with aiohttp.ClientSession() as session:
                return await ServiceClient(session, {"inv": url}).get("inv", "/stock/fig")

    body = run(main())
    assert body["deadline_ms"] is None and len(body["correlation_id"]) == 36
    assert DEADLINE_HEADER.startswith("x-")


def test_live_driver_changes_faults_and_follows_the_breaker():
    from workbook.core.clock import ManualClock
    from workbook.labs.ch02_sync.live import DEMO_PLAN, drive

    async def main():
        async with serve(make_demo_app("inventory")) as (url,):
            async with aiohttp.ClientSession() as session:
                client = ServiceClient(session, {"inventory": url})
                clock = ManualClock()  # the pause before the last step advances it past the wait in OPEN
                breaker = CircuitBreaker("live", clock=clock, sliding_window_size=10, minimum_number_of_calls=10,
                                         wait_duration_in_open_state=2.0, permitted_number_of_calls_in_half_open_state=3)
                seen = []
                run_ = await drive(client, breaker, DEMO_PLAN, on_call=lambda *a: seen.append(a))
                return run_, seen, clock.sleeps

    live, seen, sleeps = run(main())
    by_step = {}
    for step, outcome, _ in live.calls:
        by_step.setdefault(step, []).append(outcome)
    assert by_step["healthy"] == ["ok"] * 10
    assert by_step["failing"] == ["failed"] * 5 + ["rejected"] * 15  # 5 of 10 = 50 % -> OPEN
    assert by_step["recovered, before the wait in OPEN ends"] == ["rejected"] * 5
    assert by_step["recovered, after the wait"] == ["ok"] * 10
    assert live.transitions == [("CLOSED", "OPEN"), ("OPEN", "HALF_OPEN"), ("HALF_OPEN", "CLOSED")]
    assert seen == live.calls and sleeps == [2.2]


def test_non_idempotent_requests_are_retried_only_when_they_cannot_have_been_processed():
    """A POST answered 500 may have created the order: retrying it would create two.
    GET, a POST marked idempotent (an idempotency key) and a 429 are retried."""
    from aiohttp import web

    arrivals = {"POST": 0, "GET": 0}
    answers = {"status": 500}

    async def orders(request):
        arrivals[request.method] += 1
        return web.json_response({"error": "boom", "message": "failed after the insert"}, status=answers["status"])

    app = web.Application()
    app.add_routes([web.post("/orders", orders), web.get("/orders", orders)])

    async def attempts(client, method, **kw):
        before = sum(arrivals.values())
        try:
            await client.call("orders", method, "/orders", **kw)
        except HTTPStatusError as exc:
            return sum(arrivals.values()) - before, exc.status
        return sum(arrivals.values()) - before, 200

    async def main():
        async with serve(app) as (url,):
            async with aiohttp.ClientSession() as session:
                retry = Retry(3, Backoff(0.001, 1, 0.001, "none"))
                client = ServiceClient(session, {"orders": url}, pipelines={"orders": Pipeline(retry=retry)})
                out = [await attempts(client, "POST"), await attempts(client, "GET"),
                       await attempts(client, "POST", idempotent=True)]
                answers["status"] = 429
                out.append(await attempts(client, "POST"))
        async with aiohttp.ClientSession() as session:  # the server is gone: refused, never sent
            client = ServiceClient(session, {"orders": url})
            with pytest.raises(ServiceConnectionError) as info:
                await client.request("orders", "POST", "/orders")
            out.append(info.value.retryable)
        return out

    assert run(main()) == [(1, 500), (3, 500), (3, 500), (3, 429), True]


def test_problem_json_error_bodies_are_decoded():
    """RFC 9457's application/problem+json is the standard error body: title and detail
    say what failed."""
    import json

    from aiohttp import web

    async def reserve(request):
        problem = {"type": "https://example.com/out-of-stock", "title": "out_of_stock",
                   "detail": "pear: 0 available, 2 requested", "status": 409}
        return web.Response(status=409, text=json.dumps(problem), content_type="application/problem+json")

    app = web.Application()
    app.add_routes([web.post("/reservations", reserve)])

    async def main():
        async with serve(app) as (url,):
            async with aiohttp.ClientSession() as session:
                client = ServiceClient(session, {"inventory": url})
                with pytest.raises(HTTPStatusError) as info:
                    await client.request("inventory", "POST", "/reservations", json={"sku": "pear", "n": 2})
                return info.value

    exc = run(main())
    assert exc.status == 409 and exc.error == "out_of_stock" and exc.message == "pear: 0 available, 2 requested"
    assert isinstance(exc.body, dict) and exc.body["status"] == 409 and not exc.retryable


def test_an_answer_broken_off_mid_body_is_a_named_retryable_connection_error():
    """A server that dies in the middle of the body: aiohttp's ClientPayloadError named
    neither service nor URL and was not retryable, though a GET can simply be sent again."""
    async def main():
        async def truncating(reader, writer):
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"sku\"")
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(truncating, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            async with aiohttp.ClientSession() as session:
                client = ServiceClient(session, {"inventory": f"http://127.0.0.1:{port}"})
                errors = []
                for method in ("GET", "POST"):
                    with pytest.raises(ServiceConnectionError) as info:
                        await client.request("inventory", method, "/stock/apple")
                    errors.append(info.value)
                return errors
        finally:
            server.close()
            await server.wait_closed()

    get, post = run(main())
    assert "inventory GET /stock/apple" in str(get) and "broken off" in str(get)
    assert get.retryable and not post.retryable  # the POST may have been done


def test_demo_service_does_no_work_for_a_caller_that_gave_up():
    """With 200 ms of latency and a 50 ms deadline, the front service answers 504 and its
    downstream never sees the request (before, it did all the work for nobody)."""
    from workbook.transport.demo_service import COUNTS

    async def main():
        backend = make_demo_app("warehouse")
        async with serve(backend) as (backend_url,):
            front = make_demo_app("inventory", downstream=backend_url)
            async with serve(front) as (front_url,):
                async with aiohttp.ClientSession() as session:
                    await set_faults(session, front_url, latency=0.2)
                    async with session.get(front_url + "/stock/apple", headers={DEADLINE_HEADER: "50"}) as resp:
                        status, body = resp.status, await resp.json()
                    async with session.get(front_url + "/stock/apple", headers={DEADLINE_HEADER: "5000"}) as resp:
                        ok_status = resp.status
        return status, body, ok_status, front[COUNTS]["expired"], backend[COUNTS]["stock"]

    status, body, ok_status, expired, backend_calls = run(main())
    assert (status, body["error"]) == (504, "deadline_exceeded") and expired == 1
    assert ok_status == 200 and backend_calls == 1  # only the request with time left went down
