"""Keys that sign and verify JWTs: HMAC secrets, RSA and EC key pairs, and JWKS documents.

* ``SigningKey`` is the issuer's side: ``SigningKey.generate("RS256", "k1")`` (or
  ``"ES256"``, or ``SigningKey.hmac(secret, kid)``) signs claims with a ``kid`` header and
  publishes its public half as a JWK (``public_jwk()``); HMAC keys are never published.
* ``VerificationKey`` is the gateway's side: one key, pinned to ONE algorithm. The
  verifier refuses a token whose header ``alg`` differs from its key's algorithm, which is
  what defeats key confusion (an HS256 token "signed" with the RS256 public key).
* ``KeySet`` is a fixed set of verification keys by ``kid``; ``JWKSCache`` fetches them
  from a JWKS URL (RFC 7517), caches them for ``ttl`` seconds, refetches at most once per
  ``min_refresh_interval`` when a token names an unknown ``kid``, and keeps serving the
  cached keys for up to ``max_stale`` seconds when the URL stops answering (counted).

Rotation without downtime: the issuer publishes the new key in the JWKS *before* it signs
with it; the first token carrying the new ``kid`` triggers one refetch, and tokens signed
with the old key keep verifying for as long as the document lists it. A ``kid`` is only
ever a dictionary key here, never a file name, URL or query (the ``kid`` path tricks).
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass, field

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from workbook.auth.errors import JWKSUnavailable, WeakSecret
from workbook.core.clock import LoopClock
from workbook.core.errors import ParameterError
from workbook.core.params import check_number

_log = logging.getLogger(__name__)

ASYMMETRIC = ("RS256", "ES256")
SUPPORTED_ALGORITHMS = ("HS256", "RS256", "ES256")
KNOWN_DEFAULT_SECRETS = frozenset({"secret", "your-secret-key", "changeme", "change-me", "jwt-secret", "password",
                                   "secret-key", "mysecret", "default"})
"""Secrets found as defaults in tutorials (the source article's code falls back to ``"secret"``,
its sample configuration says ``"your-secret-key"``): refused whatever their length."""
MIN_HMAC_BYTES = 32


def check_hmac_secret(secret: str | bytes) -> bytes:
    """Return the secret as bytes, or raise ``WeakSecret`` naming what is wrong with it."""
    raw = secret.encode() if isinstance(secret, str) else secret
    if not isinstance(raw, bytes):
        raise WeakSecret(f"expected a str or bytes secret, got {type(secret).__name__}")
    text = raw.decode("utf-8", "replace").strip().lower()
    if text in KNOWN_DEFAULT_SECRETS:
        raise WeakSecret(f"{text!r} is a well-known default: anyone can forge tokens with it")
    if len(raw) < MIN_HMAC_BYTES:
        raise WeakSecret(f"{len(raw)} bytes; HS256 needs at least {MIN_HMAC_BYTES} random bytes (RFC 7518 3.2)")
    return raw


@dataclass(frozen=True)
class VerificationKey:
    """A key the gateway verifies with: ``kid``, the ONE algorithm it is for, the key object."""

    kid: str
    alg: str
    key: object = field(repr=False)


@dataclass(frozen=True)
class SigningKey:
    """An issuer's key: signs claims with ``kid`` and ``alg`` in the header."""

    kid: str
    alg: str
    private: object = field(repr=False)
    public: object = field(repr=False)

    @classmethod
    def generate(cls, alg: str, kid: str) -> "SigningKey":
        if alg == "RS256":
            private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        elif alg == "ES256":
            private = ec.generate_private_key(ec.SECP256R1())
        else:
            raise ParameterError("alg", alg, f"one of {ASYMMETRIC} (HMAC keys: SigningKey.hmac)")
        return cls(kid, alg, private, private.public_key())

    @classmethod
    def hmac(cls, secret: str | bytes, kid: str) -> "SigningKey":
        raw = check_hmac_secret(secret)
        return cls(kid, "HS256", raw, raw)

    def sign(self, claims: dict, *, headers: dict | None = None) -> str:
        return jwt.encode(claims, self.private, algorithm=self.alg, headers={"kid": self.kid, **(headers or {})})

    def verification_key(self) -> VerificationKey:
        return VerificationKey(self.kid, self.alg, self.public)

    def public_pem(self) -> bytes:
        """The public key as PEM (what the key-confusion attack uses as an HMAC secret)."""
        if self.alg == "HS256":
            raise ParameterError("alg", self.alg, "an asymmetric key (an HMAC key has no public half)")
        return self.public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)

    def public_jwk(self) -> dict:
        """The public half as a JWK with ``kid``, ``alg`` and ``use``; HMAC keys are never published."""
        if self.alg == "RS256":
            jwk = RSAAlgorithm.to_jwk(self.public, as_dict=True)
        elif self.alg == "ES256":
            jwk = ECAlgorithm.to_jwk(self.public, as_dict=True)
        else:
            raise ParameterError("alg", self.alg, "an asymmetric key: an HMAC secret is never published in a JWKS")
        return {**jwk, "kid": self.kid, "alg": self.alg, "use": "sig"}


def jwks_document(*keys: SigningKey) -> dict:
    """``{"keys": [...]}`` with the public JWK of each key."""
    return {"keys": [k.public_jwk() for k in keys]}


def parse_jwks(document, source: str = "JWKS") -> dict[str, VerificationKey]:
    """The verification keys of a JWKS document by ``kid``.

    Keys without a ``kid``, symmetric (``oct``) keys, keys for encryption (``use: enc``) and
    keys of unsupported algorithms are skipped (and logged): a JWKS fetched over the network
    must never make a symmetric secret out of public material.
    """
    if isinstance(document, (bytes, str)):
        try:
            document = json.loads(document)
        except ValueError as exc:
            raise JWKSUnavailable(source, f"not JSON ({exc})") from None
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise JWKSUnavailable(source, 'not a JWKS document (expected {"keys": [...]})')
    keys = {}
    for i, jwk in enumerate(document["keys"]):
        if not isinstance(jwk, dict) or not isinstance(jwk.get("kid"), str):
            _log.warning("%s: keys[%d] has no kid: skipped", source, i)
            continue
        if jwk.get("kty") not in ("RSA", "EC") or jwk.get("use", "sig") != "sig":
            _log.warning("%s: key %r (kty %r, use %r) skipped", source, jwk["kid"], jwk.get("kty"), jwk.get("use"))
            continue
        try:
            parsed = jwt.PyJWK(jwk)
        except jwt.PyJWTError as exc:
            _log.warning("%s: key %r unreadable: %s", source, jwk["kid"], exc)
            continue
        alg = jwk.get("alg") or parsed.algorithm_name
        if alg not in ASYMMETRIC:
            _log.warning("%s: key %r has algorithm %r: skipped", source, jwk["kid"], alg)
            continue
        keys[jwk["kid"]] = VerificationKey(jwk["kid"], alg, parsed.key)
    return keys


class KeySet:
    """A fixed set of verification keys by ``kid`` (HMAC secrets, configured keys)."""

    def __init__(self, keys=()):
        self._keys = {}
        for k in keys:
            vk = k.verification_key() if isinstance(k, SigningKey) else k
            if not isinstance(vk, VerificationKey):
                raise ParameterError("keys", k, "SigningKey or VerificationKey objects")
            self._keys[vk.kid] = vk

    async def key(self, kid: str) -> VerificationKey | None:
        return self._keys.get(kid)

    def key_nowait(self, kid: str) -> VerificationKey | None:
        """The key, without waiting (a fixed set never needs to)."""
        return self._keys.get(kid)

    def kids(self) -> list[str]:
        return sorted(self._keys)


async def fetch_json(url: str, timeout: float = 2.0):
    """GET ``url`` and decode its JSON; any failure is a ``JWKSUnavailable`` naming the URL."""
    import aiohttp

    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session:
            async with session.get(url) as response:
                if response.status != 200:
                    raise JWKSUnavailable(url, f"HTTP {response.status}")
                return json.loads(await response.read())
    except JWKSUnavailable:
        raise
    except (aiohttp.ClientError, OSError) as exc:
        raise JWKSUnavailable(url, f"{type(exc).__name__}: {exc}") from None
    except TimeoutError:
        raise JWKSUnavailable(url, f"no answer within {timeout:g} s") from None
    except ValueError as exc:
        raise JWKSUnavailable(url, f"not JSON ({exc})") from None


class JWKSCache:
    """Verification keys from a JWKS URL, cached, refreshed, rotated without downtime.

    ``fetch(url)`` (default ``fetch_json``) returns the document; ``clock`` measures the
    cache's age (``LoopClock``: virtual under ``run_virtual``). Counters: ``fetches``,
    ``failures``, ``stale_served`` (a lookup answered from keys older than ``ttl`` because
    the URL failed), ``refused_refreshes`` (an unknown ``kid`` that did not trigger a fetch
    because the last one was less than ``min_refresh_interval`` ago: an attacker cycling
    random kids cannot make the gateway hammer the identity provider).
    """

    def __init__(self, url: str, *, fetch=None, clock=None, ttl: float = 300.0, min_refresh_interval: float = 30.0,
                 max_stale: float = 3600.0):
        self.url = url
        self.fetch = fetch or fetch_json
        self.clock = clock or LoopClock()
        self.ttl = check_number("ttl", ttl, minimum=0, min_exclusive=True)
        self.min_refresh_interval = check_number("min_refresh_interval", min_refresh_interval, minimum=0)
        self.max_stale = check_number("max_stale", max_stale, minimum=0)
        self._keys: dict[str, VerificationKey] = {}
        self._fetched_at: float | None = None
        self._attempted_at: float | None = None
        self._lock = asyncio.Lock()
        self.fetches = self.failures = self.stale_served = self.refused_refreshes = 0

    async def refresh(self) -> dict[str, VerificationKey]:
        """Fetch the document now (one fetch at a time); raise ``JWKSUnavailable`` on failure."""
        async with self._lock:
            self._attempted_at = self.clock.now()
            self.fetches += 1
            try:
                keys = parse_jwks(await self.fetch(self.url), self.url)
            except JWKSUnavailable:
                self.failures += 1
                raise
            except Exception as exc:  # a custom fetch's own error: still named by URL
                self.failures += 1
                raise JWKSUnavailable(self.url, f"{type(exc).__name__}: {exc}") from None
            self._keys, self._fetched_at = keys, self.clock.now()
            return keys

    def kids(self) -> list[str]:
        return sorted(self._keys)

    def key_nowait(self, kid: str) -> VerificationKey | None:
        """The key if the cached set is fresh and has it; None when ``key`` would have to
        fetch (stale set, unknown kid): then call ``key``."""
        if self._fetched_at is None or self.clock.now() - self._fetched_at >= self.ttl:
            return None
        return self._keys.get(kid)

    async def key(self, kid: str) -> VerificationKey | None:
        now = self.clock.now()
        if self._fetched_at is None or now - self._fetched_at >= self.ttl:
            try:
                await self.refresh()
            except JWKSUnavailable:
                if self._fetched_at is None or now - self._fetched_at >= self.ttl + self.max_stale:
                    raise
                self.stale_served += 1
                _log.warning("JWKS %s failed to refresh: serving keys fetched %.0f s ago", self.url,
                             now - self._fetched_at)
        found = self._keys.get(kid)
        if found is not None:
            return found
        # an unknown kid: perhaps a key published since the last fetch (rotation)
        if self._attempted_at is not None and now - self._attempted_at < self.min_refresh_interval:
            self.refused_refreshes += 1
            return None
        try:
            await self.refresh()
        except JWKSUnavailable:
            return None
        return self._keys.get(kid)
