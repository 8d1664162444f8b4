"""JWKS: parsed safely, cached, refreshed on an unknown kid (rate limited), rotated without
downtime, stale keys served (counted) while the URL is down, a dead URL named in the error."""

import asyncio

import pytest
from aiohttp import web

from workbook.auth import (JWKSCache, JWKSUnavailable, JWTVerifier, SigningKey, TokenRejected, VerifierConfig,
                           jwks_document, parse_jwks)
from workbook.core.clock import ManualClock
from workbook.core.external import free_port
from workbook.core.realtime import serve

NOW = 1_800_000_000
ISS, AUD = "https://id.shop.test", "shop-api"
CLAIMS = {"iss": ISS, "aud": AUD, "sub": "alice", "iat": NOW, "exp": NOW + 600}


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 30))


@pytest.fixture(scope="module")
def keys():
    return SigningKey.generate("RS256", "2026-01"), SigningKey.generate("ES256", "2026-02")


class Provider:
    """An identity provider's JWKS endpoint, in memory: the document can change and fail."""

    def __init__(self, *published):
        self.published = list(published)
        self.down = False
        self.calls = 0

    async def __call__(self, url):
        self.calls += 1
        if self.down:
            raise ConnectionRefusedError("connection refused")
        return jwks_document(*self.published)


def test_parse_skips_symmetric_unidentified_and_encryption_keys(keys):
    rs, es = keys
    doc = jwks_document(rs, es)
    doc["keys"] += [{"kty": "oct", "kid": "hs", "k": "c2VjcmV0"}, {"kty": "RSA", "n": "x", "e": "AQAB"},
                    {**rs.public_jwk(), "kid": "enc", "use": "enc"}]
    parsed = parse_jwks(doc)
    assert sorted(parsed) == ["2026-01", "2026-02"]
    assert parsed["2026-01"].alg == "RS256" and parsed["2026-02"].alg == "ES256"
    with pytest.raises(JWKSUnavailable, match="not a JWKS"):
        parse_jwks({"keys": "nope"}, "http://idp/jwks")


def test_cached_for_ttl_then_refetched(keys):
    provider, clock = Provider(keys[0]), ManualClock()
    cache = JWKSCache("http://idp/jwks", fetch=provider, clock=clock, ttl=300)

    async def main():
        for _ in range(5):
            assert (await cache.key("2026-01")).alg == "RS256"
        clock.advance(299)
        await cache.key("2026-01")
        assert provider.calls == 1
        clock.advance(1)
        await cache.key("2026-01")
        assert provider.calls == 2
    run(main())


def test_rotation_without_downtime(keys):
    old, new = keys
    provider, clock = Provider(old), ManualClock()
    cache = JWKSCache("http://idp/jwks", fetch=provider, clock=clock, min_refresh_interval=30)
    v = JWTVerifier(VerifierConfig(issuer=ISS, audience=AUD), cache, now=lambda: NOW)

    async def main():
        assert (await v.verify(old.sign(CLAIMS)))["sub"] == "alice"
        # step 1: the provider publishes the new key next to the old one, then signs with it
        provider.published = [old, new]
        clock.advance(31)
        assert (await v.verify(new.sign(CLAIMS)))["sub"] == "alice"   # unknown kid -> one refetch
        assert (await v.verify(old.sign(CLAIMS)))["sub"] == "alice"   # old tokens still good
        # step 2: old tokens have expired; the old key is withdrawn
        provider.published = [new]
        clock.advance(301)
        with pytest.raises(TokenRejected) as info:
            await v.verify(old.sign(CLAIMS))
        assert info.value.reason == "unknown_kid"
        assert (await v.verify(new.sign(CLAIMS)))["sub"] == "alice"
    run(main())
    assert v.rejections == {"unknown_kid": 1}


def test_unknown_kids_do_not_hammer_the_provider(keys):
    provider, clock = Provider(keys[0]), ManualClock()
    cache = JWKSCache("http://idp/jwks", fetch=provider, clock=clock, min_refresh_interval=30)

    async def main():
        for i in range(100):
            assert await cache.key(f"random-{i}") is None
    run(main())
    assert provider.calls == 1 and cache.refused_refreshes == 100


def test_stale_keys_served_while_the_provider_is_down_then_refused(keys):
    provider, clock = Provider(keys[0]), ManualClock()
    cache = JWKSCache("http://idp/jwks", fetch=provider, clock=clock, ttl=300, max_stale=600)

    async def main():
        await cache.key("2026-01")
        provider.down = True
        clock.advance(400)
        assert (await cache.key("2026-01")).kid == "2026-01"
        assert cache.stale_served == 1 and cache.failures == 1
        clock.advance(600)
        with pytest.raises(JWKSUnavailable, match="http://idp/jwks"):
            await cache.key("2026-01")
    run(main())


def test_a_jwks_url_that_does_not_answer_is_a_clear_error():
    url = f"http://127.0.0.1:{free_port()}/jwks.json"
    with pytest.raises(JWKSUnavailable) as info:
        run(JWKSCache(url).refresh())
    assert url in str(info.value) and "Connect" in str(info.value)


def test_fetched_over_http_from_a_live_provider(keys):
    async def jwks(request):
        return web.json_response(jwks_document(*keys))

    async def broken(request):
        return web.Response(text="<html>oops</html>")

    app = web.Application()
    app.router.add_get("/jwks.json", jwks)
    app.router.add_get("/broken", broken)

    async def main():
        async with serve(app) as (url,):
            cache = JWKSCache(f"{url}/jwks.json")
            assert sorted(await cache.refresh()) == ["2026-01", "2026-02"]
            with pytest.raises(JWKSUnavailable, match="not JSON"):
                await JWKSCache(f"{url}/broken").refresh()
            with pytest.raises(JWKSUnavailable, match="HTTP 404"):
                await JWKSCache(f"{url}/missing").refresh()
    run(main())
