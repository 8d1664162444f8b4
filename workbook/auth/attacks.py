"""The JWT attack suite: forged tokens, each run against a verifier, each with its verdict.

``forgeries(...)`` builds the tokens an attacker would try against a gateway that trusts
``issuer_key`` (RS256); ``run_attacks(verifier, forgeries)`` returns one ``AttackResult``
per token (accepted or not, and the verifier's reason). The first row, ``genuine``, is a
valid token: it must be accepted, which shows the others fail for their own reason and not
because the verifier refuses everything.

The source article's gateway decodes with ``config.get('jwt_secret', 'secret')`` and
``algorithms=['HS256']``: ``forge_with_default_secret(claims)`` is the one line that mints a
token it accepts (``naive_verify`` reproduces its check).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import warnings
from dataclasses import dataclass

import jwt

from workbook.auth.errors import TokenRejected
from workbook.auth.keys import SigningKey

ARTICLE_DEFAULT_SECRET = "secret"


def forge_with_default_secret(claims: dict) -> str:
    """The whole attack on the article's gateway when ``jwt_secret`` is not configured."""
    with warnings.catch_warnings():  # PyJWT warns that the key is short: that is the point
        warnings.simplefilter("ignore")
        return jwt.encode(claims, ARTICLE_DEFAULT_SECRET, algorithm="HS256")


def naive_verify(token: str, config: dict | None = None) -> dict:
    """The article's check, as written: HS256 with the configured secret or ``"secret"``;
    no audience, issuer or required claims (only ``exp`` when present)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return jwt.decode(token, (config or {}).get("jwt_secret", ARTICLE_DEFAULT_SECRET), algorithms=["HS256"])


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _segment(obj: dict) -> str:
    return _b64(json.dumps(obj, separators=(",", ":")).encode())


def _hs256_by_hand(header: dict, claims: dict, secret: bytes) -> str:
    """HS256 computed directly (PyJWT refuses to use a PEM public key as an HMAC secret
    when *signing*; an attacker is not so polite)."""
    signing_input = f"{_segment(header)}.{_segment(claims)}"
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"


@dataclass(frozen=True)
class Forgery:
    name: str
    description: str
    token: str
    expected: str
    """The reason the verifier should give (``accepted`` for the genuine control token)."""


@dataclass(frozen=True)
class AttackResult:
    name: str
    description: str
    accepted: bool
    reason: str
    expected: str
    token_bytes: int

    @property
    def as_expected(self) -> bool:
        return self.reason == self.expected


def forgeries(issuer_key: SigningKey, *, issuer: str, audience: str, now: float,
              attacker_key: SigningKey | None = None, scope: str = "orders:read") -> list[Forgery]:
    """The suite against a verifier trusting ``issuer_key`` (RS256) for ``issuer``/``audience``."""
    if issuer_key.alg != "RS256":
        raise TokenRejected("alg_not_allowed", "the suite's key confusion needs an RS256 issuer key")
    attacker = attacker_key or SigningKey.generate("RS256", "attacker-key")
    good = {"iss": issuer, "aud": audience, "sub": "alice", "iat": int(now), "exp": int(now) + 600, "scope": scope}
    kid = issuer_key.kid
    genuine = issuer_key.sign(good)
    h, p, s = genuine.split(".")
    admin = {**good, "sub": "admin", "scope": "orders:read orders:write admin"}
    rows = [
        ("genuine", "a valid token from the real issuer (control: must be accepted)", genuine, "accepted"),
        ("alg_none", 'header alg "none", empty signature', f"{_segment({'alg': 'none', 'typ': 'JWT', 'kid': kid})}"
         f".{_segment(admin)}.", "alg_not_allowed"),
        ("alg_none_case", 'header alg "nOnE" (case games against a lowercase-only blocklist)',
         f"{_segment({'alg': 'nOnE', 'kid': kid})}.{_segment(admin)}.", "alg_not_allowed"),
        ("key_confusion", "HS256 signed with the issuer's RS256 public key (PEM) as the HMAC secret",
         _hs256_by_hand({"alg": "HS256", "typ": "JWT", "kid": kid}, admin, issuer_key.public_pem()),
         "alg_not_allowed"),
        ("expired", "exp one hour ago", issuer_key.sign({**good, "iat": int(now) - 7200, "exp": int(now) - 3600}),
         "expired"),
        ("not_yet_valid", "nbf one hour from now", issuer_key.sign({**good, "nbf": int(now) + 3600}), "not_yet_valid"),
        ("issued_in_future", "iat one hour from now", issuer_key.sign({**good, "iat": int(now) + 3600}),
         "issued_in_future"),
        ("wrong_audience", "aud of another API", issuer_key.sign({**good, "aud": "billing-api"}), "wrong_audience"),
        ("wrong_issuer", "iss of another identity provider", issuer_key.sign({**good, "iss": "https://evil.example"}),
         "wrong_issuer"),
        ("tampered_payload", "a genuine token whose payload was swapped for sub admin, scope admin",
         f"{h}.{_segment(admin)}.{s}", "bad_signature"),
        ("stripped_signature", "a genuine header and payload with the signature removed", f"{h}.{p}.",
         "bad_signature"),
        ("unknown_kid", "signed by the attacker's own RSA key, kid 'attacker-key'", attacker.sign(admin),
         "unknown_kid"),
        ("jku_injection", "attacker key, header jku pointing at the attacker's JWKS",
         attacker.sign(admin, headers={"jku": "http://127.0.0.1:9/jwks.json"}), "unknown_kid"),
        ("embedded_jwk", "attacker key with its own public JWK embedded in the header (CVE-2018-0114)",
         attacker.sign(admin, headers={"jwk": attacker.public_jwk()}), "unknown_kid"),
        ("kid_path_traversal", "kid '../../dev/null' and HS256 with an empty secret (the file's content)",
         _hs256_by_hand({"alg": "HS256", "kid": "../../dev/null"}, admin, b""), "alg_not_allowed"),
        ("kid_path_traversal_rs256", "kid '../../dev/null' with alg RS256",
         _hs256_by_hand({"alg": "RS256", "kid": "../../dev/null"}, admin, b""), "malformed_kid"),
        ("kid_sql_injection", "kid \"x' UNION SELECT 'k\"",
         _hs256_by_hand({"alg": "RS256", "kid": "x' UNION SELECT 'k"}, admin, b"k"), "malformed_kid"),
        ("missing_claims", "validly signed but without exp and sub",
         issuer_key.sign({k: v for k, v in good.items() if k not in ("exp", "sub")}), "missing_claim"),
        ("article_default_secret", 'HS256 with the article\'s default secret "secret"',
         _hs256_by_hand({"alg": "HS256", "typ": "JWT", "kid": kid}, admin, ARTICLE_DEFAULT_SECRET.encode()),
         "alg_not_allowed"),
        ("megabyte_token", "a validly signed token padded to about 1 MB",
         issuer_key.sign({**good, "pad": "x" * 1_000_000}), "too_large"),
        ("not_a_jwt", "three random words", "not.a.jwt", "malformed"),
    ]
    return [Forgery(*row) for row in rows]


async def run_attacks(verifier, suite: list[Forgery]) -> list[AttackResult]:
    """Each forgery through ``verifier.verify``: accepted, or the reason it was refused."""
    results = []
    for f in suite:
        try:
            await verifier.verify(f.token)
            accepted, reason = True, "accepted"
        except TokenRejected as exc:
            accepted, reason = False, exc.reason
        results.append(AttackResult(f.name, f.description, accepted, reason, f.expected, len(f.token)))
    return results
