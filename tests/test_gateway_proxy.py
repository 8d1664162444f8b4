"""The live gateway on 127.0.0.1: header handling against RFC 9110 7.6.1 and RFC 7239, request
ids, problem responses for 502/504/413, authentication, scopes, limits, retries, breaker,
access log, and the JWT attack suite sent through the gateway."""

import asyncio
import json
import time

import aiohttp
import pytest
from multidict import CIMultiDict

from workbook.auth import SigningKey, forgeries
from workbook.gateway import HOP_BY_HOP, PIPELINE, add_forwarding_headers, end_to_end, request_id
from workbook.gateway.demo import DEMO_AUDIENCE, DEMO_ISSUER, DemoStack

RFC9110_HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "proxy-authenticate", "proxy-authorization",
                      "te", "trailer", "transfer-encoding", "upgrade"}


@pytest.fixture(scope="module")
def keys():
    return SigningKey.generate("RS256", "rs-demo-1"), SigningKey.generate("ES256", "es-demo-1")


def live(keys, scenario, **options):
    async def main():
        stack = await DemoStack.start(keys=keys, **options)
        try:
            async with aiohttp.ClientSession() as client:
                return await scenario(stack, client)
        finally:
            await stack.stop()
    return asyncio.run(asyncio.wait_for(main(), 60))


async def get(client, stack, path, **kw):
    async with client.request(kw.pop("method", "GET"), stack.gateway_url + path, **kw) as r:
        body = await r.read()
        return r.status, r.headers, body


def problem(status, headers, body):
    assert headers["Content-Type"].startswith("application/problem+json")
    doc = json.loads(body)
    assert doc["status"] == status and doc["type"].startswith("https://") and doc["title"] and doc["detail"]
    return doc


def test_the_hop_by_hop_list_is_rfc_9110s():
    assert HOP_BY_HOP == RFC9110_HOP_BY_HOP
    headers = CIMultiDict([("Connection", "close, X-Private"), ("Connection", "X-Other"), ("X-Private", "1"),
                           ("X-Other", "2"), ("Keep-Alive", "5"), ("TE", "trailers"), ("Trailer", "X"),
                           ("Transfer-Encoding", "chunked"), ("Upgrade", "h2c"), ("Proxy-Authorization", "x"),
                           ("Proxy-Authenticate", "x"), ("Proxy-Connection", "keep-alive"), ("Accept", "a"),
                           ("Accept", "b"), ("Cache-Control", "no-cache")])
    assert list(end_to_end(headers).items()) == [("Accept", "a"), ("Accept", "b"), ("Cache-Control", "no-cache")]


def test_end_to_end_drops_connection_listed_names_whatever_their_case_and_the_drop_list():
    # the removal set is cached per drop list; what Connection names is added per message
    headers = CIMultiDict([("connection", "x-private"), ("X-Private", "1"), ("Host", "h"), ("Expect", "100-continue"),
                           ("Accept", "a")])
    assert list(end_to_end(headers, drop=["Host", "Expect"]).items()) == [("Accept", "a")]
    assert list(end_to_end(CIMultiDict([("X-Private", "1"), ("Host", "h")]), drop=("host",)).items()) == [
        ("X-Private", "1")]


def test_forwarding_headers_are_appended_not_overwritten():
    h = CIMultiDict([("X-Forwarded-For", "203.0.113.7"), ("X-Forwarded-For", "10.0.0.2"),
                     ("Forwarded", 'for=203.0.113.7;proto=https')])
    add_forwarding_headers(h, remote="::1", proto="http", host="shop.example:8080")
    assert h.getall("X-Forwarded-For") == ["203.0.113.7, 10.0.0.2, ::1"]
    assert h["Forwarded"] == 'for=203.0.113.7;proto=https, for="[::1]";proto=http;host="shop.example:8080"'
    assert h["X-Forwarded-Proto"] == "http" and h["X-Forwarded-Host"] == "shop.example:8080"


@pytest.mark.parametrize("given,kept", [("abc-123", True), ("x" * 128, True), ("x" * 129, False), ("a b", False),
                                         ("<script>", False), ("", False)])
def test_request_ids(given, kept):
    rid, passed = request_id({"X-Request-Id": given})
    assert passed is kept and (rid == given) is kept and len(rid) <= 128


def test_live_header_handling_both_directions(keys):
    async def scenario(stack, client):
        status, headers, body = await get(client, stack, "/echo/x", headers={
            "Connection": "X-Private, keep-alive", "X-Private": "leak", "TE": "trailers", "Keep-Alive": "timeout=9",
            "Proxy-Authorization": "Basic Zm9v", "Upgrade": "websocket", "X-Forwarded-For": "203.0.113.7",
            "X-Forwarded-Proto": "https", "Forwarded": "for=203.0.113.7", "X-Request-Id": "trace-42",
            "X-Keep": "yes", "x-envoy-expected-rq-timeout-ms": "999999999"})
        return status, headers, json.loads(body)

    status, headers, echoed = live(keys, scenario)
    assert status == 200
    sent = CIMultiDict(echoed["headers"])
    for name in ("X-Private", "TE", "Keep-Alive", "Proxy-Authorization", "Upgrade"):
        assert name not in sent, name
    assert sent.get("Connection", "keep-alive").lower() in ("keep-alive", "close")   # the gateway's own hop
    assert sent["X-Keep"] == "yes"
    assert sent["X-Forwarded-For"] == "203.0.113.7, 127.0.0.1"
    assert sent["X-Forwarded-Proto"] == "https, http"
    assert sent["Forwarded"].startswith("for=203.0.113.7, for=127.0.0.1;proto=http;host=")
    assert sent["X-Request-Id"] == "trace-42" and headers["X-Request-Id"] == "trace-42"
    assert 0 < int(sent["x-envoy-expected-rq-timeout-ms"]) <= 30_000      # the route's, not the client's
    # response: the upstream's hop-by-hop headers (and what its Connection named) are gone
    for name in ("X-Upstream-Hop", "Keep-Alive", "Proxy-Authenticate", "Trailer", "Upgrade"):
        assert name not in headers, name
    assert headers["X-End-To-End"] == "kept"


def test_upstream_failures_are_problem_responses(keys):
    async def scenario(stack, client):
        out = {}
        out["refused"] = await get(client, stack, "/api/dead/x")
        out["reset"] = await get(client, stack, "/echo/reset")
        out["timeout"] = await get(client, stack, "/slow/sleep?seconds=3")
        out["too_large_cl"] = await get(client, stack, "/small", method="POST", data=b"x" * 5000)

        async def chunks():
            for _ in range(10):
                yield b"y" * 1000
        out["too_large_chunked"] = await get(client, stack, "/small", method="POST", data=chunks())
        out["not_found"] = await get(client, stack, "/nowhere")
        out["bad_path"] = await get(client, stack, "/echo/a%2Fb")
        out["method"] = await get(client, stack, "/api/stock/apple", method="DELETE")
        out["log"] = stack.gateway.access_log.records()
        return out

    out = live(keys, scenario)
    assert problem(502, *out["refused"][1:])["detail"].find("refused") > 0
    assert problem(502, *out["reset"][1:])
    assert out["refused"][0] == out["reset"][0] == 502
    assert out["timeout"][0] == 504 and problem(504, *out["timeout"][1:])
    assert out["too_large_cl"][0] == 413 and problem(413, *out["too_large_cl"][1:])
    assert out["too_large_chunked"][0] == 413 and problem(413, *out["too_large_chunked"][1:])
    assert out["not_found"][0] == 404 and problem(404, *out["not_found"][1:])
    assert out["bad_path"][0] == 400 and "encoded slash" in problem(400, *out["bad_path"][1:])["detail"]
    assert out["method"][0] == 405 and out["method"][1]["Allow"] == "GET"
    dead = [r for r in out["log"] if r["route"] == "dead"][0]
    assert dead["attempts"] == 2 and dead["status"] == 502          # a refused connection is retried
    assert all(r["status"] != 500 for r in out["log"])


def test_authentication_scopes_and_normalised_paths(keys):
    async def scenario(stack, client):
        out = {}
        out["ok"] = await get(client, stack, "/api/stock/apple", headers=stack.bearer())
        out["es256"] = await get(client, stack, "/api/stock/apple", headers=stack.bearer(key=1))
        out["none"] = await get(client, stack, "/api/stock/apple")
        out["scope"] = await get(client, stack, "/api/stock/apple", headers=stack.bearer(["orders:write"]))
        for i, p in enumerate(["/api/public/../admin/x", "/api/public/%2e%2e/admin/x", "/api/public/%2E./admin/x",
                               "/api//public/..//admin/x"]):
            out[f"bypass{i}"] = await get(client, stack, p, headers=stack.bearer(["stock:read"]))
        out["admin"] = await get(client, stack, "/api/public/../admin/x", headers=stack.bearer(["admin"]))
        out["public"] = await get(client, stack, "/api/public/x")
        out["order"] = await get(client, stack, "/api/orders", method="POST", json={"sku": "apple", "quantity": 1},
                                 headers=stack.bearer(["orders:write"]))
        return out

    out = live(keys, scenario)
    assert out["ok"][0] == 200 and json.loads(out["ok"][2])["sku"] == "apple"
    assert out["es256"][0] == 200
    assert out["none"][0] == 401 and out["none"][1]["WWW-Authenticate"].startswith("Bearer")
    assert out["scope"][0] == 403 and "insufficient_scope" in out["scope"][1]["WWW-Authenticate"]
    for i in range(4):
        assert out[f"bypass{i}"][0] == 403, i              # the admin route's rule applied, not public's
    assert out["admin"][0] == 200 and json.loads(out["admin"][2])["path"] == "/api/admin/x"   # forwarded normalised
    assert out["public"][0] == 200
    assert out["order"][0] == 201


def test_every_forgery_is_refused_by_the_live_gateway(keys):
    async def scenario(stack, client):
        import time
        suite = forgeries(stack.keys[0], issuer=DEMO_ISSUER, audience=DEMO_AUDIENCE, now=time.time(),
                          scope="stock:read")
        results = {}
        for f in suite:
            status, headers, body = await get(client, stack, "/api/stock/apple",
                                              headers={"Authorization": f"Bearer {f.token}"})
            results[f.name] = (status, json.loads(body).get("reason") if status == 401 else None)
        return results

    results = live(keys, scenario)
    assert results.pop("genuine")[0] == 200
    assert len(results) >= 20
    # the megabyte token never reaches the verifier: the server refuses the header line (400)
    assert results.pop("megabyte_token")[0] == 400
    assert {name: r for name, r in results.items() if r[0] != 401} == {}
    assert results["key_confusion"][1] == "alg_not_allowed" and results["alg_none"][1] == "alg_not_allowed"


def test_rate_limit_429_with_headers_and_the_access_log(keys):
    async def scenario(stack, client):
        statuses = []
        for _ in range(7):
            status, headers, body = await get(client, stack, "/api/limited/x")
            statuses.append(status)
        return statuses, headers, body, stack.gateway.access_log.records()

    statuses, headers, body, log = live(keys, scenario)
    assert statuses == [200] * 5 + [429] * 2
    problem(429, headers, body)
    assert int(headers["Retry-After"]) >= 1
    assert headers["RateLimit-Policy"] == '"five-per-minute";q=5;w=60'
    assert headers["RateLimit"].startswith('"five-per-minute";r=0;t=')
    limited = [r for r in log if r["route"] == "limited"]
    assert [r["limiter"] for r in limited] == ["allowed"] * 5 + ["rejected"] * 2
    entry = limited[0]
    assert set(entry) >= {"route", "upstream", "status", "latency_ms", "request_id", "limiter"}
    assert entry["upstream"] == "echo" and entry["instance"] == "echo-1" and entry["latency_ms"] >= 0


def test_retries_within_budget_only_for_replayable_requests(keys):
    async def scenario(stack, client):
        get_status = await get(client, stack, "/echo/status/503")
        post_status = await get(client, stack, "/echo/status/503", method="POST", data=b"{}")
        hits = stack.echo_hits
        return get_status[0], post_status[0], dict(hits), stack.gateway.access_log.records()

    get_status, post_status, hits, log = live(keys, scenario)
    assert get_status == 503 and post_status == 503
    # GET: 3 attempts (the route's retries.attempts); POST with a body: once
    assert hits["/echo/status/503"] == 3 + 1
    assert [r["attempts"] for r in log if r["route"] == "echo"] == [3, 1]


def test_the_breaker_opens_and_fails_fast(keys):
    def tighten(data):
        data["routes"][5]["breaker"] = {"minimum_number_of_calls": 4, "sliding_window_size": 4,
                                        "wait_duration_in_open_state": 60}
        data["routes"][5]["retries"] = {"attempts": 1}

    async def scenario(stack, client):
        statuses = [(await get(client, stack, "/echo/status/502"))[0] for _ in range(6)]
        last = await get(client, stack, "/echo/status/502")
        hits = stack.echo_hits
        return statuses, last, hits["/echo/status/502"]

    statuses, last, hits = live(keys, scenario, config_overrides=tighten)
    assert statuses[:4] == [502] * 4 and statuses[4:] == [503, 503]
    assert problem(503, *last[1:])["type"].endswith("circuit-open") and int(last[1]["Retry-After"]) == 60
    assert hits == 4                                           # the open breaker sent nothing more


def test_the_pipeline_order_is_documented():
    assert PIPELINE.index("authenticate") < PIPELINE.index("rate_limit") < PIPELINE.index("retry") \
        < PIPELINE.index("breaker") < PIPELINE.index("pick_instance") < PIPELINE.index("forward")


def test_a_client_breaking_its_own_body_does_not_open_the_breaker(keys):
    def tighten(data):
        data["routes"][5]["breaker"] = {"minimum_number_of_calls": 4, "sliding_window_size": 4,
                                        "wait_duration_in_open_state": 60}

    async def scenario(stack, client):
        host, port = stack.gateway_url.removeprefix("http://").split(":")
        for _ in range(6):
            reader, writer = await asyncio.open_connection(host, int(port))
            writer.write(b"POST /echo/x HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n" + b"a" * 1000)
            await writer.drain()
            writer.write_eof()          # the body ends 99,000 bytes early
            await reader.read()
            writer.close()
        await asyncio.sleep(0.2)
        after = await get(client, stack, "/echo/x")
        return after[0], stack.gateway.access_log.records()

    status, log = live(keys, scenario, config_overrides=tighten)
    assert status == 200                                          # not 503: the breaker stayed closed
    broken = [r for r in log if r["route"] == "echo" and r["method"] == "POST"]
    assert len(broken) == 6 and {r["error"] for r in broken} == {"IncompleteBody"}


def test_every_answer_carries_the_request_id(keys):
    async def scenario(stack, client):
        out = []
        for path, headers in [("/api/stock/apple", {"X-Request-Id": "given-1"}), ("/api/stock/apple", {}),
                              ("/api/stock/apple", {"X-Request-Id": "bad id!"}), ("/nowhere", {"X-Request-Id": "n-2"}),
                              ("/echo/x", {"X-Request-Id": "e-3"})]:
            status, h, body = await get(client, stack, path, headers=headers)
            out.append((status, h["X-Request-Id"], json.loads(body).get("request_id")))
        return out, [r["request_id"] for r in stack.gateway.access_log.records()]

    out, logged = live(keys, scenario)
    assert out[0][:2] == (401, "given-1") and out[0][2] == "given-1"
    assert len(out[1][1]) == 32 and out[1][1] == out[1][2]            # generated
    assert out[2][1] != "bad id!" and len(out[2][1]) == 32            # replaced
    assert out[3][1] == "n-2" and out[4][1] == "e-3"
    assert logged == [o[1] for o in out]


def test_key_rotation_through_the_live_gateway(keys):
    def quick_refresh(data):
        data["jwt"]["jwks_min_refresh_seconds"] = 0

    async def scenario(stack, client):
        old = stack.keys[0]
        new = SigningKey.generate("RS256", "rs-demo-2")
        before = (await get(client, stack, "/api/stock/apple", headers={
            "Authorization": "Bearer " + new.sign({"iss": DEMO_ISSUER, "aud": DEMO_AUDIENCE, "sub": "a",
                                                   "iat": int(time.time()), "exp": 2_000_000_000,
                                                   "scope": "stock:read"})}))[0]
        stack.keys = (old, new, stack.keys[1])            # the provider publishes the new key beside the old
        statuses = []
        for key_index in (1, 0, 1):                        # new, old, new: no downtime for either
            statuses.append((await get(client, stack, "/api/stock/apple", headers=stack.bearer(key=key_index)))[0])
        return before, statuses

    before, statuses = live(keys, scenario, config_overrides=quick_refresh)
    assert before == 401 and statuses == [200, 200, 200]
