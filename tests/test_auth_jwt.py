"""JWT verification: every forgery refused for its own reason, time claims with the stated
leeway, scopes, key pinning, weak secrets, and the article's default secret forged."""

import asyncio

import jwt
import pytest

from workbook.auth import (DEFAULT_LEEWAY, InsufficientScope, JWTVerifier, KeySet, SigningKey, TokenRejected,
                           VerifierConfig, WeakSecret, check_hmac_secret, forge_with_default_secret, forgeries,
                           naive_verify, require_scopes, run_attacks, scopes_of)
from workbook.core.errors import ParameterError, WorkbookError

NOW = 1_800_000_000
ISS, AUD = "https://id.shop.test", "shop-api"


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 30))


@pytest.fixture(scope="module")
def rsa_key():
    return SigningKey.generate("RS256", "rs-1")


@pytest.fixture(scope="module")
def ec_key():
    return SigningKey.generate("ES256", "ec-1")


def verifier(*keys, now=NOW, **settings):
    settings.setdefault("algorithms", ("RS256", "ES256"))
    return JWTVerifier(VerifierConfig(issuer=ISS, audience=AUD, **settings), KeySet(keys), now=lambda: now)


def claims(**over):
    base = {"iss": ISS, "aud": AUD, "sub": "alice", "iat": NOW, "exp": NOW + 600, "scope": "orders:read"}
    base.update(over)
    return {k: v for k, v in base.items() if v is not None}


def reason(v, token):
    with pytest.raises(TokenRejected) as info:
        run(v.verify(token))
    return info.value.reason


def test_the_attack_suite_accepts_only_the_genuine_token(rsa_key):
    results = run(run_attacks(verifier(rsa_key), forgeries(rsa_key, issuer=ISS, audience=AUD, now=NOW)))
    names = {r.name for r in results}
    assert {"alg_none", "key_confusion", "expired", "not_yet_valid", "wrong_audience", "wrong_issuer",
            "tampered_payload", "unknown_kid", "kid_path_traversal", "missing_claims", "megabyte_token"} <= names
    assert [r.name for r in results if r.accepted] == ["genuine"]
    assert [(r.name, r.reason) for r in results if not r.as_expected] == []


def test_key_confusion_is_refused_even_when_hs256_is_allowed(rsa_key):
    # a verifier that also accepts HS256 (for another key) must still not HMAC-check with the RSA public key
    hmac_key = SigningKey.hmac("k" * 40, "hs-1")
    v = verifier(rsa_key, hmac_key, algorithms=("HS256", "RS256"))
    suite = {f.name: f for f in forgeries(rsa_key, issuer=ISS, audience=AUD, now=NOW)}
    assert reason(v, suite["key_confusion"].token) == "alg_key_mismatch"
    assert reason(v, suite["kid_path_traversal"].token) == "malformed_kid"
    assert run(v.verify(hmac_key.sign(claims())))["sub"] == "alice"


def test_rs256_and_es256_both_verify(rsa_key, ec_key):
    v = verifier(rsa_key, ec_key)
    assert run(v.verify(rsa_key.sign(claims())))["sub"] == "alice"
    assert run(v.verify(ec_key.sign(claims(sub="bob"))))["sub"] == "bob"
    assert v.accepted == 2


def test_a_token_signed_by_one_key_and_labelled_with_another_kid_is_refused(rsa_key, ec_key):
    other = SigningKey.generate("RS256", "rs-2")
    mislabelled = jwt.encode(claims(), other.private, algorithm="RS256", headers={"kid": rsa_key.kid})
    assert reason(verifier(rsa_key, other), mislabelled) == "bad_signature"
    es_labelled_rs = jwt.encode(claims(), ec_key.private, algorithm="ES256", headers={"kid": rsa_key.kid})
    assert reason(verifier(rsa_key, ec_key), es_labelled_rs) == "alg_key_mismatch"


@pytest.mark.parametrize("field,offset,expected", [
    ("exp", -DEFAULT_LEEWAY - 1, "expired"),     # past the leeway
    ("exp", -DEFAULT_LEEWAY, "expired"),         # exactly at the edge: exp <= now - leeway
    ("exp", -DEFAULT_LEEWAY + 1, None),          # inside the leeway: accepted
    ("nbf", DEFAULT_LEEWAY + 1, "not_yet_valid"),
    ("nbf", DEFAULT_LEEWAY, None),
    ("iat", DEFAULT_LEEWAY + 1, "issued_in_future"),
    ("iat", DEFAULT_LEEWAY, None),
])
def test_time_claims_use_the_stated_leeway(rsa_key, field, offset, expected):
    token = rsa_key.sign(claims(**{field: NOW + offset}))
    v = verifier(rsa_key)
    if expected is None:
        assert run(v.verify(token))["sub"] == "alice"
    else:
        assert reason(v, token) == expected


def test_max_age_and_non_numeric_times(rsa_key):
    assert reason(verifier(rsa_key, max_age=60), rsa_key.sign(claims(iat=NOW - 200))) == "too_old"
    assert reason(verifier(rsa_key), rsa_key.sign(claims(exp="tomorrow"))) == "malformed"


@pytest.mark.parametrize("missing", ["exp", "iat", "iss", "aud", "sub"])
def test_each_required_claim_is_required(rsa_key, missing):
    assert reason(verifier(rsa_key), rsa_key.sign(claims(**{missing: None}))) == "missing_claim"


def test_header_checks(rsa_key):
    v = verifier(rsa_key)
    no_kid = jwt.encode(claims(), rsa_key.private, algorithm="RS256")
    assert reason(v, no_kid) == "missing_kid"
    assert reason(v, rsa_key.sign(claims(), headers={"crit": ["exp"]})) == "unsupported_crit"
    assert reason(v, "a.b") == "malformed"
    assert reason(v, "!!!.???.***") == "malformed"


def test_a_megabyte_token_is_refused_before_parsing(rsa_key, monkeypatch):
    import workbook.auth.verifier as module
    parsed = []
    monkeypatch.setattr(module, "_read_header", lambda t: parsed.append(t))
    assert reason(verifier(rsa_key), "x.y." + "z" * 1_000_000) == "too_large"
    assert parsed == []


def test_scopes():
    assert scopes_of({"scope": "a b"}) == ["a", "b"] and scopes_of({"scp": ["a", 3]}) == ["a"]
    assert scopes_of({"scope": 7}) == []
    assert require_scopes({"scope": "orders:read orders:write"}, ["orders:write"]) == ["orders:read", "orders:write"]
    with pytest.raises(InsufficientScope) as info:
        require_scopes({"scope": "orders:read"}, ["orders:write", "admin"])
    assert info.value.status == 403 and info.value.missing == ["orders:write", "admin"]


@pytest.mark.parametrize("secret", ["secret", "your-secret-key", "Secret ", "short-but-not-default"])
def test_weak_hmac_secrets_are_refused(secret):
    with pytest.raises(WeakSecret) as info:
        check_hmac_secret(secret)
    assert isinstance(info.value, WorkbookError)


def test_the_article_default_secret_is_forgeable_in_one_line():
    token = forge_with_default_secret({"sub": "admin", "role": "admin"})
    assert naive_verify(token) == {"sub": "admin", "role": "admin"}   # the article's gateway accepts it
    # and ours does not even consider HS256 with that secret
    with pytest.raises(WeakSecret):
        SigningKey.hmac("secret", "k")


def test_bad_settings_name_the_setting():
    with pytest.raises(ParameterError, match="algorithms"):
        VerifierConfig(issuer=ISS, audience=AUD, algorithms=("none",))
    with pytest.raises(ParameterError, match="audience"):
        VerifierConfig(issuer=ISS, audience="")
    with pytest.raises(ParameterError, match="leeway"):
        VerifierConfig(issuer=ISS, audience=AUD, leeway=3600)


def test_the_verified_token_cache_skips_the_signature_but_never_the_clock_or_the_key(rsa_key, monkeypatch):
    clock = {"now": NOW}
    keys = KeySet([rsa_key])
    v = JWTVerifier(VerifierConfig(issuer=ISS, audience=AUD), keys, now=lambda: clock["now"], cache_size=2)
    token = rsa_key.sign(claims(exp=NOW + 100))
    decodes = []
    real = jwt.decode
    monkeypatch.setattr(jwt, "decode", lambda *a, **k: decodes.append(1) or real(*a, **k))
    for _ in range(5):
        assert run(v.verify(token))["sub"] == "alice"
    assert len(decodes) == 1 and v.cache_hits == 4
    # a tampered copy is another string: verified, and refused
    h, p, s = token.split(".")
    i = len(s) // 2  # a character in the middle always carries 6 signature bits ("AA" at the end
    #                  left the decoded bytes unchanged whenever they already were zero: 1 run in 256)
    assert reason(v, f"{h}.{p}.{s[:i]}{'B' if s[i] == 'A' else 'A'}{s[i + 1:]}") == "bad_signature"
    # time still checked on a hit
    clock["now"] = NOW + 100 + DEFAULT_LEEWAY
    assert reason(v, token) == "expired"
    # a withdrawn key: the cached token is verified again, and refused
    clock["now"] = NOW
    keys._keys.clear()
    assert reason(v, token) == "unknown_kid"
    # bounded: least recently used out
    keys._keys[rsa_key.kid] = rsa_key.verification_key()
    for sub in ("a", "b", "c"):
        run(v.verify(rsa_key.sign(claims(sub=sub))))
    assert len(v._cache) == 2
