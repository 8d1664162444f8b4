"""Behaviour of the gateway's hot-path helpers (commit 20ef225): the fused header passes
agree with the reference composition, request ids are unique (also across a fork),
verified tokens answered without an await still check time and key, the bound loop
clock, the deadline enter/exit pair, the route resolution table and the access log.
Nothing here is timed."""

import asyncio
import json
import logging
import os
import re

import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from multidict import CIMultiDict

from workbook.auth import JWKSCache, JWTVerifier, KeySet, SigningKey, TokenRejected, VerifierConfig, jwks_document
from workbook.core.clock import BoundLoopClock, ManualClock
from workbook.core.virtual_time import VirtualTimeLoop, run_virtual
from workbook.gateway import (
    HOP_BY_HOP,
    REQUEST_ID_HEADER,
    AccessLog,
    Gateway,
    PathRejected,
    add_forwarding_headers,
    client_response_headers,
    end_to_end,
    new_request_id,
    normalize_path,
    parse_config,
    upstream_request_headers,
    valid_request_id,
)
from workbook.gateway.accesslog import FIELDS
from workbook.resilience.deadline import (
    DEADLINE_HEADER,
    Deadline,
    current_deadline,
    deadline_scope,
    enter_deadline,
    exit_deadline,
)

RID = "gw-rid-0001"


# -- 1. upstream_request_headers agrees with the reference composition -------------------------------
def reference_upstream(headers, *, remote, proto, rid, extra=()):
    """What the proxy built before 20ef225: end_to_end + add_forwarding_headers + id + deadline."""
    out = end_to_end(headers, drop=("Host", "Expect", DEADLINE_HEADER, REQUEST_ID_HEADER))
    add_forwarding_headers(out, remote=remote, proto=proto, host=headers.get("Host"))
    out[REQUEST_ID_HEADER] = rid
    for name, value in extra:
        out[name] = value
    return out


def semantic(pairs) -> dict[str, str]:
    """name (lower case) -> its values comma-joined in order (RFC 9110 5.3)."""
    joined: dict[str, list[str]] = {}
    for name, value in pairs:
        joined.setdefault(name.lower(), []).append(value)
    return {name: ", ".join(values) for name, values in joined.items()}


def listed_in_connection(headers) -> set[str]:
    return {t.strip().lower() for v in headers.getall("Connection", ()) for t in v.split(",") if t.strip()}


def check_upstream(headers, *, remote, proto, extra):
    fused = upstream_request_headers(headers, remote=remote, proto=proto, rid=RID, extra=extra)
    assert isinstance(fused, list) and all(isinstance(p, tuple) and len(p) == 2 for p in fused)
    got = semantic(fused)
    want = semantic(reference_upstream(headers, remote=remote, proto=proto, rid=RID, extra=extra).items())
    assert set(got) == set(want)
    assert got == want
    # the properties on their own, whatever the reference says
    extra_names = {n.lower() for n, _ in extra}
    ours = {"x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "forwarded", REQUEST_ID_HEADER.lower()}
    forbidden = (set(HOP_BY_HOP) | listed_in_connection(headers) | {"host", "expect"}) - ours - extra_names
    assert not forbidden & set(got), fused
    assert [v for n, v in fused if n.lower() == REQUEST_ID_HEADER.lower()] == [RID]
    for name in extra_names:
        assert [(n.lower(), v) for n, v in fused if n.lower() == name] == [(n.lower(), v) for n, v in extra
                                                                             if n.lower() == name]
    if DEADLINE_HEADER.lower() in extra_names:
        assert got[DEADLINE_HEADER] == {n.lower(): v for n, v in extra}[DEADLINE_HEADER]
    return fused


def H(*pairs):
    return CIMultiDict(pairs)


DEADLINE = ((DEADLINE_HEADER, "250"),)

UPSTREAM_TABLE = [
    pytest.param(H(("Host", "shop.example"), ("Accept", "*/*")), "10.0.0.7", "http", DEADLINE, id="plain"),
    pytest.param(H(("Host", "shop.example"), ("Connection", "keep-alive, X-Secret"), ("Keep-Alive", "timeout=5"),
                   ("X-Secret", "s"), ("TE", "trailers"), ("Transfer-Encoding", "chunked"), ("Upgrade", "h2c"),
                   ("Proxy-Authorization", "Basic x"), ("Proxy-Connection", "close"), ("Trailer", "X"),
                   ("Proxy-Authenticate", "x"), ("Accept", "a")), "10.0.0.7", "http", DEADLINE,
                 id="every-hop-by-hop-and-listed"),
    pytest.param(H(("host", "a.example"), ("CONNECTION", "x-one"), ("connection", "X-Two ,, x-three"),
                   ("X-ONE", "1"), ("x-two", "2"), ("X-Three", "3"), ("X-Four", "4")), "10.0.0.7", "https", DEADLINE,
                 id="two-connection-headers-mixed-case"),
    pytest.param(H(("Host", "a.example"), ("X-Forwarded-For", "1.1.1.1"), ("X-Forwarded-For", "2.2.2.2, 3.3.3.3"),
                   ("Forwarded", "for=1.1.1.1"), ("X-Forwarded-Proto", "https"), ("X-Forwarded-Host", "edge"),
                   ("forwarded", "for=2.2.2.2;proto=https")), "192.0.2.1", "http", DEADLINE, id="repeated-forwarding"),
    pytest.param(H(("Accept", "a"), ("X-Forwarded-Host", "edge-1"), ("X-Forwarded-Host", "edge-2")), "192.0.2.1",
                 "http", DEADLINE, id="no-host-client-xfh-kept"),
    pytest.param(H(("Host", "[::1]:8080"), ("Accept", "a")), "2001:db8::1", "http", DEADLINE, id="ipv6"),
    pytest.param(H(("Host", "shop.example"),), None, "http", DEADLINE, id="no-remote"),
    pytest.param(H(("Host", 'we"ird host'),), "not-an-ip", "http", DEADLINE, id="quoted-host-and-node"),
    pytest.param(H(("Host", "a"), ("X-Request-Id", "client-id"), ("x-request-id", "second"),
                   (DEADLINE_HEADER, "999999"), ("Expect", "100-continue"), ("Authorization", "Bearer t")),
                 "10.0.0.7", "http", DEADLINE, id="client-id-deadline-expect-replaced"),
    pytest.param(H(("Host", "a"), ("Host", "b")), "10.0.0.7", "http", DEADLINE, id="two-hosts-first-wins"),
    pytest.param(H(("Host", "a"), ("Connection", "X-Forwarded-For, Forwarded, host"),
                   ("X-Forwarded-For", "6.6.6.6"), ("Forwarded", "for=6.6.6.6")), "10.0.0.7", "http", DEADLINE,
                 id="connection-lists-forwarding"),
    pytest.param(H(("Set-Cookie", "a=1"), ("Set-Cookie", "b=2"), ("Host", "a")), "10.0.0.7", "http", (),
                 id="no-deadline"),
    pytest.param(H(), None, "http", (), id="empty"),
    # three defects this table found in the first fused version (each failed before its fix)
    pytest.param(H(("Host", "a"), (DEADLINE_HEADER, "999999")), "10.0.0.7", "http", (),
                 id="client-deadline-without-ours"),
    pytest.param(H(("Host", ""), ("X-Forwarded-Host", "edge")), "10.0.0.7", "http", DEADLINE, id="empty-host"),
    pytest.param(H(("Host", "a"), ("X-Forwarded-For", "")), "10.0.0.7", "http", DEADLINE, id="empty-client-xff"),
]


@pytest.mark.parametrize("headers,remote,proto,extra", UPSTREAM_TABLE)
def test_upstream_headers_agree_with_the_reference_on_crafted_sets(headers, remote, proto, extra):
    check_upstream(headers, remote=remote, proto=proto, extra=extra)


def test_upstream_headers_spot_checks():
    headers = H(("Host", "shop.example"), ("X-Forwarded-For", "1.1.1.1"), ("Connection", "X-Secret"),
                ("X-Secret", "s"), ("X-Request-Id", "client"), (DEADLINE_HEADER, "99999"), ("Accept", "a"))
    fused = upstream_request_headers(headers, remote="2001:db8::1", proto="https", rid=RID, extra=DEADLINE)
    got = semantic(fused)
    assert got["x-forwarded-for"] == "1.1.1.1, 2001:db8::1"
    assert got["x-forwarded-host"] == "shop.example" and got["x-forwarded-proto"] == "https"
    assert got["forwarded"] == 'for="[2001:db8::1]";proto=https;host=shop.example'
    assert got[REQUEST_ID_HEADER.lower()] == RID and got[DEADLINE_HEADER] == "250"
    assert "host" not in got and "x-secret" not in got and "connection" not in got
    assert fused[0] == ("Accept", "a")  # the client's end-to-end headers first, in order


HOP_NAMES = sorted(HOP_BY_HOP)
POOL = ["Accept", "Authorization", "Cookie", "X-Custom", "X-Other", "Expect", REQUEST_ID_HEADER, DEADLINE_HEADER,
        "X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host", "Forwarded", "Host", *HOP_NAMES]


@st.composite
def mixed_case(draw, name):
    flips = draw(st.lists(st.booleans(), min_size=len(name), max_size=len(name)))
    return "".join(c.upper() if f else c.lower() for c, f in zip(name, flips))


VALUE = st.text(alphabet="abcxyz0123456789.:=;/ ", min_size=1, max_size=12).map(str.strip).filter(bool)


@st.composite
def request_headers(draw):
    pairs = []
    for _ in range(draw(st.integers(0, 14))):
        name = draw(st.sampled_from(POOL).flatmap(mixed_case))
        if name.lower() == "connection":
            listed = draw(st.lists(st.sampled_from(POOL).flatmap(mixed_case), max_size=4))
            value = ", ".join(listed) or "close"
        elif name.lower() == "x-forwarded-for":
            value = draw(st.sampled_from(["1.1.1.1", "2.2.2.2, 3.3.3.3", "2001:db8::5", "unknown"]))
        else:
            value = draw(VALUE)
        pairs.append((name, value))
    if draw(st.booleans()):  # Host: sometimes repeated / in odd positions already; sometimes added
        pairs.insert(draw(st.integers(0, len(pairs))), (draw(mixed_case("Host")),
                                                        draw(st.sampled_from(["shop.example", "a:8080", "[::1]"]))))
    return CIMultiDict(pairs)


@seed(20261127)
@settings(max_examples=400, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(headers=request_headers(),
       remote=st.sampled_from(["10.1.2.3", "192.0.2.44", "::1", "2001:db8::7", None]),
       proto=st.sampled_from(["http", "https"]),
       extra=st.sampled_from([DEADLINE, ((DEADLINE_HEADER.upper(), "7"),)]))
def test_upstream_headers_agree_with_the_reference_property(headers, remote, proto, extra):
    check_upstream(headers, remote=remote, proto=proto, extra=extra)


# -- 2. client_response_headers ----------------------------------------------------------------------
def test_response_headers_drop_hop_by_hop_listed_and_length_and_replace_the_id():
    upstream = H(("Content-Type", "application/json"), ("Content-Length", "12"), ("Connection", "X-Internal, close"),
                 ("X-Internal", "secret"), ("Keep-Alive", "timeout=5"), ("Transfer-Encoding", "chunked"),
                 ("Set-Cookie", "a=1"), ("X-Request-Id", "upstream-made-this"), ("set-cookie", "b=2"),
                 ("Proxy-Authenticate", "Basic"), ("Trailer", "X"), ("Upgrade", "h2c"), ("ETag", '"v1"'))
    out = client_response_headers(upstream, rid=RID)
    names = [n.lower() for n, _ in out]
    assert not (set(HOP_BY_HOP) | {"x-internal", "content-length"}) & set(names)
    assert [v for n, v in out if n.lower() == "x-request-id"] == [RID]
    assert [v for n, v in out if n.lower() == "set-cookie"] == ["a=1", "b=2"]   # two fields, in order
    assert [n for n in names if n != "x-request-id"] == ["content-type", "set-cookie", "set-cookie", "etag"]


def test_response_extra_pairs_replace_upstream_headers_of_the_same_name_case_insensitively():
    upstream = H(("ratelimit-limit", "1"), ("RateLimit-Remaining", "0"), ("RATELIMIT-REMAINING", "5"),
                 ("Cache-Control", "no-store"))
    extra = (("RateLimit-Limit", "100"), ("RateLimit-Remaining", "99"))
    out = client_response_headers(upstream, rid=RID, extra=extra)
    got = semantic(out)
    assert got["ratelimit-limit"] == "100" and got["ratelimit-remaining"] == "99"
    assert got["cache-control"] == "no-store" and got["x-request-id"] == RID
    assert [p for p in out if p[0].lower().startswith("ratelimit")] == list(extra)


def test_response_headers_agree_with_the_pre_20ef225_composition():
    upstream = H(("Connection", "x-a"), ("X-A", "1"), ("Vary", "Accept"), ("vary", "Origin"),
                 ("Content-Length", "3"), ("X-Request-Id", "u"), ("Retry-After", "1"))
    extra = (("retry-after", "9"),)
    old = end_to_end(upstream)
    old.popall("Content-Length", None)
    old[REQUEST_ID_HEADER] = RID
    old.update(dict(extra))
    assert semantic(client_response_headers(upstream, rid=RID, extra=extra)) == semantic(old.items())


# -- 3. request ids ----------------------------------------------------------------------------------
def test_new_request_ids_are_32_lowercase_hex_and_distinct():
    ids = [new_request_id() for _ in range(10_000)]
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)
    assert len(set(ids)) == len(ids)
    assert all(valid_request_id(i) for i in ids[:10])


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_never_hands_out_the_parents_next_ids():
    new_request_id()  # the parent's buffer holds unread ids now
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next ids, then out without running any test machinery
        try:
            os.close(read_end)
            os.write(write_end, ",".join(new_request_id() for _ in range(3)).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    chunks = []
    while chunk := os.read(read_end, 4096):
        chunks.append(chunk)
    os.close(read_end)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    child = b"".join(chunks).decode().split(",")
    parent = {new_request_id() for _ in range(600)}  # more than one buffer of the parent's future ids
    assert len(child) == 3 and all(re.fullmatch(r"[0-9a-f]{32}", i) for i in child)
    assert not parent & set(child)


@pytest.mark.parametrize("value,ok", [
    ("a", True), ("A-b_c.d:e", True), ("x" * 128, True), ("0" * 32, True),
    ("", False), ("x" * 129, False), ("a b", False), ("a/b", False), ("é", False), ("a\n", False),
    ("a,b", False), ("a;b", False), ("a\x00", False),
])
def test_valid_request_id_table(value, ok):
    assert valid_request_id(value) is ok


# -- 4. JWTVerifier.cached and key_nowait ------------------------------------------------------------
NOW = 1_800_000_000
ISS, AUD = "https://id.shop.test", "shop-api"


@pytest.fixture(scope="module")
def rsa_key():
    return SigningKey.generate("RS256", "rs-1")


def claims(**over):
    return {"iss": ISS, "aud": AUD, "sub": "alice", "iat": NOW, "exp": NOW + 100, **over}


class Provider:
    def __init__(self, *published):
        self.published, self.calls = list(published), 0

    async def __call__(self, url):
        self.calls += 1
        return jwks_document(*self.published)


def test_cached_answers_only_a_verified_token_and_still_checks_time(rsa_key):
    clock = {"now": NOW}
    v = JWTVerifier(VerifierConfig(issuer=ISS, audience=AUD), KeySet([rsa_key]), now=lambda: clock["now"],
                    cache_size=8)
    token = rsa_key.sign(claims())
    assert v.cached(token) is None and v.accepted == 0 and v.cache_hits == 0
    first = asyncio.run(v.verify(token))
    assert v.cached(token) == first and first["sub"] == "alice"
    assert v.cache_hits == 1 and v.accepted == 2
    assert v.cached(rsa_key.sign(claims(sub="bob"))) is None      # another token string: not cached
    clock["now"] = NOW + 100 + 30 - 0.5                              # just inside exp + leeway: still valid
    assert v.cached(token) == first
    clock["now"] = NOW + 100 + 30                                    # exp + leeway: expired
    assert v.cached(token) is None and v.rejections == {}            # defers: verify decides and counts
    with pytest.raises(TokenRejected) as info:
        asyncio.run(v.verify(token))
    assert info.value.reason == "expired" and v.rejections == {"expired": 1}
    assert v.accepted == 3


@pytest.mark.parametrize("claim,value,now_offset,valid", [
    ("nbf", NOW + 50, 50 - 30 - 0.5, False),   # before nbf - leeway: not yet valid
    ("nbf", NOW + 50, 50 - 30 + 0.5, True),
    ("iat", NOW + 50, 50 - 30 - 0.5, False),   # issued in the future beyond the leeway
    ("iat", NOW + 50, 50 - 30 + 0.5, True),
])
def test_cached_answers_only_inside_the_window_the_full_check_accepts(rsa_key, claim, value, now_offset, valid):
    clock = {"now": NOW + 60}
    v = JWTVerifier(VerifierConfig(issuer=ISS, audience=AUD), KeySet([rsa_key]), now=lambda: clock["now"],
                    cache_size=8)
    token = rsa_key.sign(claims(**{claim: value}, exp=NOW + 1000))
    asyncio.run(v.verify(token))
    clock["now"] = NOW + now_offset
    assert (v.cached(token) is not None) is valid
    if not valid:  # the full check refuses it too
        with pytest.raises(TokenRejected):
            asyncio.run(v.verify(token))


def test_cached_is_none_without_a_cache(rsa_key):
    v = JWTVerifier(VerifierConfig(issuer=ISS, audience=AUD), KeySet([rsa_key]), now=lambda: NOW)
    token = rsa_key.sign(claims())
    asyncio.run(v.verify(token))
    assert v.cached(token) is None


def test_a_withdrawn_key_makes_cached_defer_to_verify_which_refuses(rsa_key):
    keys = KeySet([rsa_key])
    v = JWTVerifier(VerifierConfig(issuer=ISS, audience=AUD), keys, now=lambda: NOW, cache_size=8)
    token = rsa_key.sign(claims())
    asyncio.run(v.verify(token))
    assert keys.key_nowait(rsa_key.kid) is not None and keys.key_nowait("nope") is None
    keys._keys.pop(rsa_key.kid)
    assert keys.key_nowait(rsa_key.kid) is None
    assert v.cached(token) is None
    with pytest.raises(TokenRejected) as info:
        asyncio.run(v.verify(token))
    assert info.value.reason == "unknown_kid"


def test_a_stale_jwks_makes_key_nowait_and_cached_answer_none_until_verify_refetches(rsa_key):
    provider, clock = Provider(rsa_key), ManualClock()
    cache = JWKSCache("http://idp/jwks", fetch=provider, clock=clock, ttl=300)
    v = JWTVerifier(VerifierConfig(issuer=ISS, audience=AUD, algorithms=("RS256",)), cache, now=lambda: NOW,
                    cache_size=8)
    token = rsa_key.sign(claims())
    assert cache.key_nowait(rsa_key.kid) is None                     # never fetched
    asyncio.run(v.verify(token))
    assert provider.calls == 1
    assert cache.key_nowait(rsa_key.kid) is not None and cache.key_nowait("other") is None
    assert v.cached(token)["sub"] == "alice"
    clock.advance(299)
    assert v.cached(token) is not None
    clock.advance(1)                                                 # ttl reached: key() would fetch
    assert cache.key_nowait(rsa_key.kid) is None
    assert v.cached(token) is None and provider.calls == 1           # no fetch from the non-awaiting path
    assert asyncio.run(v.verify(token))["sub"] == "alice" and provider.calls == 2
    assert v.cached(token) is not None


def test_a_key_rotated_out_of_the_jwks_makes_cached_none(rsa_key):
    other = SigningKey.generate("RS256", "rs-2")
    provider, clock = Provider(rsa_key), ManualClock()
    cache = JWKSCache("http://idp/jwks", fetch=provider, clock=clock, ttl=300)
    v = JWTVerifier(VerifierConfig(issuer=ISS, audience=AUD, algorithms=("RS256",)), cache, now=lambda: NOW,
                    cache_size=8)
    token = rsa_key.sign(claims())
    asyncio.run(v.verify(token))
    provider.published = [other]
    asyncio.run(cache.refresh())
    assert v.cached(token) is None


# -- 5. BoundLoopClock -------------------------------------------------------------------------------
def test_bound_loop_clock_reads_monotonic_before_bind(monkeypatch):
    import workbook.core.clock as clock_module

    monkeypatch.setattr(clock_module.time, "monotonic", lambda: 4242.5)
    clock = BoundLoopClock()
    assert clock.now() == 4242.5 and clock.reader()() == 4242.5


def test_bound_loop_clock_follows_a_virtual_loop_after_bind():
    clock = BoundLoopClock()

    async def main():
        loop = asyncio.get_running_loop()
        assert isinstance(loop, VirtualTimeLoop)
        clock.bind(loop)
        assert clock.reader() == loop.time
        seen = [clock.now()]
        await asyncio.sleep(1000)
        seen.append(clock.now())
        await asyncio.sleep(0.25)
        seen.append(clock.reader()())
        return seen

    assert run_virtual(main, start=50.0) == [50.0, 1050.0, 1050.25]


def test_bound_loop_clock_on_an_ordinary_loop_reads_that_loops_time():
    clock = BoundLoopClock()

    async def main():
        loop = asyncio.get_running_loop()
        clock.bind(loop)
        before = loop.time()
        now, read = clock.now(), clock.reader()()
        after = loop.time()
        return before <= now <= read <= after

    assert asyncio.run(main())


def test_bound_loop_clock_given_its_loop_at_construction():
    loop = VirtualTimeLoop(start=7.0)
    try:
        clock = BoundLoopClock(loop)
        assert clock.now() == 7.0 and clock.reader() == loop.time
    finally:
        loop.close()


def test_a_breaker_on_a_bound_loop_clock_still_moves_to_half_open_by_itself():
    # the gateway's breakers take its BoundLoopClock: the breaker schedules its automatic
    # OPEN -> HALF_OPEN transition on the loop's timers only for a loop clock
    from workbook.resilience import CircuitBreaker, CircuitBreakerConfig, State

    async def main():
        clock = BoundLoopClock(asyncio.get_running_loop())
        breaker = CircuitBreaker("b", CircuitBreakerConfig(
            sliding_window_size=2, minimum_number_of_calls=2, wait_duration_in_open_state=5.0,
            automatic_transition_from_open_to_half_open=True), clock=clock)
        for _ in range(2):
            breaker.on_error(breaker.acquire_permission(), 0.01, RuntimeError("down"))
        opened = breaker.state
        await asyncio.sleep(5.5)  # no call at all in between
        return opened, breaker.state

    assert run_virtual(main) == (State.OPEN, State.HALF_OPEN)


# -- 6. enter_deadline / exit_deadline ---------------------------------------------------------------
def test_enter_deadline_keeps_the_earlier_one_and_exit_restores():
    clock = ManualClock(100.0)
    outer, later, earlier = Deadline(110.0, clock), Deadline(200.0, clock), Deadline(105.0, clock)
    assert current_deadline() is None
    t1 = enter_deadline(outer)
    assert current_deadline() is outer
    t2 = enter_deadline(later)
    assert current_deadline() is outer                     # an inner later deadline does not extend
    t3 = enter_deadline(earlier)
    assert current_deadline() is earlier
    t4 = enter_deadline(None)
    assert current_deadline() is earlier                   # None: the caller's stays
    exit_deadline(t4)
    assert current_deadline() is earlier
    exit_deadline(t3)
    assert current_deadline() is outer
    exit_deadline(t2)
    assert current_deadline() is outer
    exit_deadline(t1)
    assert current_deadline() is None


def test_deadline_scope_yields_the_effective_deadline():
    clock = ManualClock(0.0)
    outer, later, earlier = Deadline(10.0, clock), Deadline(20.0, clock), Deadline(5.0, clock)
    with deadline_scope(outer) as a:
        assert a is outer
        with deadline_scope(later) as b:
            assert b is outer and current_deadline() is outer
        with deadline_scope(earlier) as c:
            assert c is earlier
        with deadline_scope(None) as d:
            assert d is outer
        assert current_deadline() is outer
    assert current_deadline() is None
    with deadline_scope(None) as e:
        assert e is None


# -- 7. Gateway.resolve ------------------------------------------------------------------------------
def make_gateway():
    settings = parse_config({  # the JWKS is only fetched by application(): resolve needs no network
        "jwt": {"issuer": ISS, "audience": AUD, "algorithms": ["RS256"], "jwks_url": "http://127.0.0.1:9/j"},
        "services": {"inventory": {"instances": [{"id": "inventory-1", "url": "http://127.0.0.1:1"}]},
                     "admin": {"instances": [{"id": "admin-1", "url": "http://127.0.0.1:2"}]}},
        "routes": [
            {"name": "public", "path": "/api/public", "methods": ["GET"], "upstream": "inventory"},
            {"name": "admin", "path": "/api/admin", "methods": ["GET", "DELETE"], "upstream": "admin"},
            {"name": "exact", "path": "/api/exact", "match": "exact", "methods": ["GET"], "upstream": "inventory"},
            {"name": "shop", "path": "/api/shop", "methods": ["GET"], "upstream": "inventory",
             "host": "shop.example"},
        ],
    }, "hot-path")
    return Gateway(settings, source="hot-path")


RESOLVE_TABLE = [
    ("GET", "/api/public/x", None), ("GET", "/api/public/../admin", None), ("GET", "/api/public/%2e%2e/admin", None),
    ("GET", "/api/public/%2E%2E/admin/users", None), ("GET", "//api//admin//x", None), ("GET", "/api/./exact", None),
    ("GET", "/api/exact/", None), ("POST", "/api/admin", None), ("PUT", "/api/public", None), ("GET", "/nowhere", None),
    ("GET", "/api/shop/1", "shop.example"), ("GET", "/api/shop/1", "other.example"), ("GET", "/api/%70ublic", None),
    ("DELETE", "/api/admin/../admin/7", None), ("GET", "/../../api/admin", None),
]


@pytest.mark.parametrize("method,raw,host", RESOLVE_TABLE)
def test_resolve_answers_as_normalize_then_match(method, raw, host):
    gateway = make_gateway()
    path = normalize_path(raw, encoded_slash=gateway.settings.encoded_slash)
    want = (path, gateway.router.match(method, path, host))
    assert gateway.resolve(method, raw, host) == want
    assert gateway.resolve(method, raw, host) == want     # the stored answer is the same


def test_resolve_traversal_meets_the_admin_route():
    gateway = make_gateway()
    for raw in ("/api/public/../admin", "/api/public/%2e%2e/admin"):
        path, found = gateway.resolve("GET", raw, None)
        assert path == "/api/admin" and found.rule.name == "admin"


@pytest.mark.parametrize("raw", ["/a%2Fb", "/a b", "relative", "/%zz", "/a%00", "/a%5Cb", "/é"])
def test_a_rejected_path_raises_every_time_and_is_not_stored(raw):
    gateway = make_gateway()
    for _ in range(3):
        with pytest.raises(PathRejected):
            gateway.resolve("GET", raw, None)
    assert gateway._resolved == {}


def test_the_resolution_table_is_bounded(monkeypatch):
    import workbook.gateway.app as app_module

    monkeypatch.setattr(app_module, "RESOLVE_CACHE", 16)
    gateway = make_gateway()
    high = 0
    for i in range(16 * 2 + 5):
        path, found = gateway.resolve("GET", f"/api/public/{i}", None)
        assert path == f"/api/public/{i}" and found.rule.name == "public"
        high = max(high, len(gateway._resolved))
        assert len(gateway._resolved) <= 16
    assert high == 16
    assert gateway.resolve("GET", "/api/public/0", None)[0] == "/api/public/0"   # evicted: recomputed right


# -- 8. AccessLog ------------------------------------------------------------------------------------
def test_access_log_lines_have_fields_in_order_and_records_match():
    log = AccessLog(logger=logging.getLogger("test.hot_path.silent"))
    log.logger.setLevel(logging.WARNING)
    log.write({"status": 200, "request_id": "r1", "extra": "ignored"})
    log.write({name: i for i, name in enumerate(FIELDS)})
    lines = log.lines()
    assert len(lines) == 2
    first = json.loads(lines[0])
    assert list(first) == list(FIELDS)
    assert first["request_id"] == "r1" and first["status"] == 200
    assert all(first[name] is None for name in FIELDS if name not in ("request_id", "status"))
    assert "extra" not in first
    assert lines[1] == json.dumps({name: i for i, name in enumerate(FIELDS)}, separators=(",", ":"))
    assert log.records() == [json.loads(line) for line in lines]
    assert all(list(r) == list(FIELDS) for r in log.records())


def test_access_log_maxlen_keeps_the_most_recent():
    log = AccessLog(maxlen=3, logger=logging.getLogger("test.hot_path.silent"))
    for i in range(10):
        log.write({"request_id": f"r{i}"})
    assert [r["request_id"] for r in log.records()] == ["r7", "r8", "r9"]
    assert len(log.lines()) == 3


def test_access_log_emits_the_same_line_when_info_is_enabled(caplog):
    log = AccessLog()
    assert log.logger.name == "workbook.gateway.access"
    with caplog.at_level(logging.INFO, logger="workbook.gateway.access"):
        for i in range(3):
            log.write({"request_id": f"r{i}", "method": "GET", "status": 200 + i, "latency_ms": 1.5})
    emitted = [r.getMessage() for r in caplog.records if r.name == "workbook.gateway.access"]
    assert emitted == log.lines()
    assert all(r.levelno == logging.INFO for r in caplog.records if r.name == "workbook.gateway.access")


def test_access_log_is_silent_when_info_is_off(caplog):
    log = AccessLog()
    with caplog.at_level(logging.WARNING, logger="workbook.gateway.access"):
        log.write({"request_id": "quiet"})
    assert [r for r in caplog.records if r.name == "workbook.gateway.access"] == []
    assert log.records()[0]["request_id"] == "quiet"
