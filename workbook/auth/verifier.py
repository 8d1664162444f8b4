"""Verify a bearer JWT: size, header, algorithm pinned to the key, signature, claims, time.

The order of the checks, each refusing with ``TokenRejected(reason, detail)``:

1. **size** (``too_large``): more than ``max_token_bytes`` (default 8 KiB) is refused
   *before any parsing*: a megabyte token costs one ``len``.
2. **shape** (``malformed``): three base64url parts, a JSON header.
3. **algorithm** (``alg_not_allowed``): the header's ``alg`` must be one of
   ``algorithms``; ``none`` (any spelling) never is. A ``crit`` header is refused
   (``unsupported_crit``, RFC 7515 4.1.11: we understand no extension).
4. **kid** (``missing_kid``, ``malformed_kid``, ``unknown_kid``): required, at most 128
   characters of ``[A-Za-z0-9._-]``, and only ever looked up in the key set (never a path,
   URL or query: ``../../dev/null`` is refused as malformed). ``jku``, ``x5u`` and an
   embedded ``jwk`` in the header are ignored: keys come from configuration only.
5. **key confusion** (``alg_key_mismatch``): the key found is pinned to one algorithm and
   the header must name exactly that one, so an HS256 token "signed" with an RS256 public
   key never reaches an HMAC check.
6. **signature and claims** by PyJWT with ``algorithms=[the key's alg]``:
   ``bad_signature``, ``wrong_audience``, ``wrong_issuer``, ``missing_claim``
   (``required_claims``, default ``exp iat iss aud sub``).
7. **time**, against the injected ``now()`` (epoch seconds, ``time.time`` by default)
   with a stated ``leeway`` (default 30 s of clock skew between issuer and gateway):
   ``expired`` when ``exp <= now - leeway``; ``not_yet_valid`` when ``nbf > now +
   leeway``; ``issued_in_future`` when ``iat > now + leeway``; with ``max_age``,
   ``too_old`` when ``now - iat > max_age + leeway``. Non-numeric times: ``malformed``.

Scopes (``scope``: space-separated, RFC 8693 4.2; or ``scp``: a list) are checked per
route by ``require_scopes``, which raises ``InsufficientScope`` (HTTP 403).
"""

from __future__ import annotations

import base64
import json
import math
import re
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import jwt

from workbook.auth.errors import InsufficientScope, TokenRejected
from workbook.auth.keys import SUPPORTED_ALGORITHMS
from workbook.core.errors import ParameterError
from workbook.core.params import check_int, check_number

KID_PATTERN = re.compile(r"[A-Za-z0-9._-]{1,128}\Z")
DEFAULT_REQUIRED_CLAIMS = ("exp", "iat", "iss", "aud", "sub")
DEFAULT_LEEWAY = 30.0


@dataclass(frozen=True)
class VerifierConfig:
    """What a token must satisfy. Checked when built (``ParameterError`` naming the setting)."""

    issuer: str
    audience: str
    algorithms: tuple[str, ...] = ("RS256", "ES256")
    leeway: float = DEFAULT_LEEWAY
    required_claims: tuple[str, ...] = DEFAULT_REQUIRED_CLAIMS
    max_token_bytes: int = 8192
    max_age: float | None = None

    def __post_init__(self):
        for name in ("issuer", "audience"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise ParameterError(name, getattr(self, name), "a non-empty string")
        algs = tuple(self.algorithms)
        if not algs or any(a not in SUPPORTED_ALGORITHMS for a in algs):
            raise ParameterError("algorithms", self.algorithms, f"a non-empty subset of {SUPPORTED_ALGORITHMS}")
        object.__setattr__(self, "algorithms", algs)
        object.__setattr__(self, "required_claims", tuple(self.required_claims))
        check_number("leeway", self.leeway, minimum=0, maximum=300)
        check_int("max_token_bytes", self.max_token_bytes, minimum=256, maximum=65536)
        if self.max_age is not None:
            check_number("max_age", self.max_age, minimum=0, min_exclusive=True)


_PYJWT_REASONS = (
    (jwt.InvalidSignatureError, "bad_signature"),
    (jwt.InvalidAudienceError, "wrong_audience"),
    (jwt.InvalidIssuerError, "wrong_issuer"),
    (jwt.MissingRequiredClaimError, "missing_claim"),
    (jwt.InvalidAlgorithmError, "alg_not_allowed"),
    (jwt.InvalidKeyError, "alg_key_mismatch"),
    (jwt.DecodeError, "malformed"),
)


def _reject(reason: str, detail: str):
    raise TokenRejected(reason, detail)


def _read_header(token: str) -> dict:
    """The JOSE header as a dict (read here, not by PyJWT, so each refusal has its own reason)."""
    part = token.split(".", 1)[0]
    try:
        raw = base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
        header = json.loads(raw)
    except (ValueError, TypeError) as exc:
        _reject("malformed", f"unreadable header: {type(exc).__name__}")
    if not isinstance(header, dict):
        _reject("malformed", "the header is not a JSON object")
    return header


class JWTVerifier:
    """``await verifier.verify(token) -> claims``; ``keys`` is a ``KeySet`` or ``JWKSCache``
    (anything with ``async key(kid) -> VerificationKey | None``). Counts accepted and
    rejected tokens by reason in ``rejections``."""

    def __init__(self, config: VerifierConfig, keys, *, now: Callable[[], float] = time.time, cache_size: int = 0):
        if not isinstance(config, VerifierConfig):
            raise ParameterError("config", config, "a VerifierConfig")
        if not callable(getattr(keys, "key", None)):
            raise ParameterError("keys", keys, "a KeySet or JWKSCache (async key(kid))")
        self.config, self.keys, self.now = config, keys, now
        self.cache_size = check_int("cache_size", cache_size, minimum=0, maximum=1_000_000)
        self._cache: OrderedDict[str, tuple[str, dict]] = OrderedDict()
        self.accepted = 0
        self.cache_hits = 0
        self.rejections: dict[str, int] = {}

    async def verify(self, token) -> dict:
        """The token's claims, or ``TokenRejected``.

        With ``cache_size`` > 0, tokens whose signature and claims were verified are kept
        (least recently used out), keyed by the *exact* token string, as Envoy's
        ``jwt_cache_config`` does: a hit skips the signature and claim checks but not the
        time checks (an expired cached token is refused) nor the key lookup (a token whose
        key was withdrawn from the key set is verified again, and refused).
        """
        try:
            cached = self._cache.get(token) if self.cache_size else None
            if cached is not None and await self.keys.key(cached[0]) is not None:
                self._check_times(cached[1])
                self._cache.move_to_end(token)
                self.cache_hits += 1
                claims = cached[1]
            else:
                claims = await self._verify(token)
        except TokenRejected as exc:
            self.rejections[exc.reason] = self.rejections.get(exc.reason, 0) + 1
            raise
        self.accepted += 1
        return claims

    def cached(self, token) -> dict | None:
        """``verify``'s answer for a token verified before, without an await: the claims if
        the token is cached, its key is known without waiting (``keys.key_nowait``) and now
        lies inside the validity window its time claims allow (``exp``, ``nbf``, ``iat``,
        ``max_age``, with the leeway; kept from the full check, one microsecond inside each
        edge). Otherwise None, and ``verify`` must be awaited: it decides, and counts, every
        refusal (an expired token among them)."""
        found = self._cache.get(token) if self.cache_size else None
        if found is None:
            return None
        kid, claims, valid_from, valid_until = found
        if not valid_from <= self.now() <= valid_until:
            return None
        key_nowait = getattr(self.keys, "key_nowait", None)
        if key_nowait is None or key_nowait(kid) is None:
            return None
        self._cache.move_to_end(token)
        self.cache_hits += 1
        self.accepted += 1
        return claims

    def _validity(self, claims: dict) -> tuple[float, float]:
        """The times at which ``_check_times`` accepts ``claims`` (already checked numeric),
        narrowed by one microsecond at each edge so that float rounding never lets a
        cached answer accept what the full check refuses."""
        cfg = self.config
        valid_from, valid_until = -math.inf, math.inf
        if "exp" in claims:
            valid_until = float(claims["exp"]) + cfg.leeway
        for name in ("nbf", "iat"):
            if name in claims:
                valid_from = max(valid_from, float(claims[name]) - cfg.leeway)
        if cfg.max_age is not None and "iat" in claims:
            valid_until = min(valid_until, float(claims["iat"]) + cfg.max_age + cfg.leeway)
        return valid_from + 1e-6, valid_until - 1e-6

    async def _verify(self, token) -> dict:
        cfg = self.config
        if not isinstance(token, str):
            _reject("malformed", f"a token is a string, got {type(token).__name__}")
        if len(token) > cfg.max_token_bytes:
            _reject("too_large", f"{len(token)} bytes > max_token_bytes {cfg.max_token_bytes}: refused unparsed")
        if token.count(".") != 2:
            _reject("malformed", "a signed JWT has three dot-separated parts")
        header = _read_header(token)
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in cfg.algorithms:
            _reject("alg_not_allowed", f"alg {alg!r} is not one of {list(cfg.algorithms)}")
        if "crit" in header:
            _reject("unsupported_crit", f"critical header extensions {header['crit']!r} are not understood")
        kid = header.get("kid")
        if kid is None:
            _reject("missing_kid", "the header names no kid")
        if not isinstance(kid, str) or not KID_PATTERN.match(kid):
            _reject("malformed_kid", f"kid {str(kid)[:40]!r} is not 1-128 characters of [A-Za-z0-9._-]")
        key = await self.keys.key(kid)
        if key is None:
            _reject("unknown_kid", f"no key with kid {kid!r}")
        if key.alg != alg:
            _reject("alg_key_mismatch", f"the header says {alg} but key {kid!r} is for {key.alg} only")
        try:
            claims = jwt.decode(
                token, key.key, algorithms=[key.alg], audience=cfg.audience, issuer=cfg.issuer,
                options={"verify_exp": False, "verify_nbf": False, "verify_iat": False,
                         "require": list(cfg.required_claims)})
        except jwt.PyJWTError as exc:
            for kind, reason in _PYJWT_REASONS:
                if isinstance(exc, kind):
                    _reject(reason, str(exc))
            _reject("invalid", f"{type(exc).__name__}: {exc}")
        self._check_times(claims)
        if self.cache_size:
            self._cache[token] = (kid, claims, *self._validity(claims))
            if len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return claims

    def _check_times(self, claims: dict) -> None:
        cfg, now = self.config, self.now()
        times = {}
        for name in ("exp", "nbf", "iat"):
            if name in claims:
                value = claims[name]
                if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
                    _reject("malformed", f"claim {name!r} must be a number of seconds, got {value!r}")
                times[name] = float(value)
        if "exp" in times and times["exp"] <= now - cfg.leeway:
            _reject("expired", f"expired {now - times['exp']:.0f} s ago (leeway {cfg.leeway:g} s)")
        if "nbf" in times and times["nbf"] > now + cfg.leeway:
            _reject("not_yet_valid", f"valid only in {times['nbf'] - now:.0f} s (leeway {cfg.leeway:g} s)")
        if "iat" in times and times["iat"] > now + cfg.leeway:
            _reject("issued_in_future", f"issued {times['iat'] - now:.0f} s in the future (leeway {cfg.leeway:g} s)")
        if cfg.max_age is not None and "iat" in times and now - times["iat"] > cfg.max_age + cfg.leeway:
            _reject("too_old", f"issued {now - times['iat']:.0f} s ago > max_age {cfg.max_age:g} s")


def scopes_of(claims: dict) -> list[str]:
    """The token's scopes: ``scope`` (a space-separated string) or ``scp`` (a list or string)."""
    value = claims.get("scope", claims.get("scp", ""))
    if isinstance(value, str):
        return value.split()
    if isinstance(value, list):
        return [s for s in value if isinstance(s, str)]
    return []


def require_scopes(claims: dict, required) -> list[str]:
    """Return the granted scopes, or raise ``InsufficientScope`` naming the missing ones."""
    granted = scopes_of(claims)
    missing = [s for s in required if s not in granted]
    if missing:
        raise InsufficientScope(missing, granted)
    return granted
