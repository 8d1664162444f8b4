"""The gateway's configuration: YAML validated by a pydantic schema, errors that name the
file, the route and the field.

``load_config(path)`` reads and validates a file; ``parse_config(data, source)`` a dict.
Every problem found is reported at once in one ``GatewayConfigError`` whose lines read
``gateway.yaml: routes[1] 'orders'.timeout_seconds: Input should be greater than 0``.
After the schema (types, ranges, unknown fields refused: a misspelt ``timout`` is an
error, not a silently ignored key), cross-references are checked: a route's ``upstream``
must be a service, its ``rate_limit`` a limiter, an authenticated route needs a ``jwt``
section, paths must already be normalised, regexes must compile, HMAC secrets must be
strong and not a known default, balancer names must exist.

Security by default: a route requires authentication unless it says
``auth: {required: false}``; retries apply only to requests that can be replayed.

``audit_article_config(path)`` reads the source article's sample (its own format), lists
its problems as ``ConfigFinding`` s and shows what our schema says of it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from workbook.auth.errors import WeakSecret
from workbook.auth.keys import check_hmac_secret
from workbook.balancing import BALANCERS
from workbook.gateway.errors import GatewayConfigError, PathRejected
from workbook.gateway.normalize import normalize_path
from workbook.ratelimit import LIMIT_KEY_SCOPES, LIMITER_FAIL_MODES, RATE_LIMIT_ALGORITHMS, WINDOW_ALGORITHMS

HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
MiB = 1024 * 1024


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class JWTSettings(_Strict):
    """Who may call: tokens from ``issuer`` for ``audience``, keys from ``jwks_url`` and/or
    ``hmac_secrets`` (kid -> secret, HS256)."""

    issuer: str = Field(min_length=1)
    audience: str = Field(min_length=1)
    algorithms: list[Literal["HS256", "RS256", "ES256"]] = Field(default=["RS256", "ES256"], min_length=1)
    jwks_url: str | None = None
    hmac_secrets: dict[str, str] = {}
    leeway_seconds: float = Field(default=30.0, ge=0, le=300)
    required_claims: list[str] = ["exp", "iat", "iss", "aud", "sub"]
    max_token_bytes: int = Field(default=8192, ge=256, le=65536)
    jwks_ttl_seconds: float = Field(default=300.0, gt=0)
    jwks_min_refresh_seconds: float = Field(default=30.0, ge=0)
    verified_token_cache: int = Field(default=4096, ge=0, le=1_000_000)

    @field_validator("jwks_url")
    @classmethod
    def _http_url(cls, v):
        if v is not None and not re.match(r"https?://[^/\s]+(/\S*)?\Z", v):
            raise ValueError("expected an http(s) URL")
        return v


class RateLimitSettings(_Strict):
    algorithm: str
    limit: int = Field(ge=1)
    period_seconds: float = Field(default=1.0, gt=0)
    burst: int | None = Field(default=None, ge=1)
    key: str = "client+route"
    backend: Literal["memory", "redis"] = "memory"
    on_backend_error: str = "closed"

    @field_validator("algorithm")
    @classmethod
    def _algorithm(cls, v):
        if v not in RATE_LIMIT_ALGORITHMS:
            raise ValueError(f"unknown algorithm {v!r}: expected one of {', '.join(RATE_LIMIT_ALGORITHMS)}")
        return v

    @field_validator("key")
    @classmethod
    def _key(cls, v):
        if v not in LIMIT_KEY_SCOPES:
            raise ValueError(f"expected one of {', '.join(LIMIT_KEY_SCOPES)}")
        return v

    @field_validator("on_backend_error")
    @classmethod
    def _fail(cls, v):
        if v not in LIMITER_FAIL_MODES:
            raise ValueError(f"expected one of {', '.join(LIMITER_FAIL_MODES)} (fail open or fail closed)")
        return v


class InstanceSettings(_Strict):
    id: str = Field(min_length=1)
    url: str
    weight: int = Field(default=1, ge=0)

    @field_validator("url")
    @classmethod
    def _url(cls, v):
        if not re.match(r"http://[A-Za-z0-9.\-\[\]:]+\Z", v):
            raise ValueError("expected http://host:port (no path)")
        return v


class ServiceSettings(_Strict):
    balancer: str = "round_robin"
    instances: list[InstanceSettings] = Field(min_length=1)

    @field_validator("balancer")
    @classmethod
    def _balancer(cls, v):
        if v not in BALANCERS:
            raise ValueError(f"unknown balancer {v!r}: expected one of {', '.join(BALANCERS)}")
        return v


class RetrySettings(_Strict):
    attempts: int = Field(default=2, ge=1, le=5)
    budget_percent: float = Field(default=20.0, ge=0, le=100)
    min_retries: int = Field(default=3, ge=0)
    retry_on_status: list[int] = [502, 503, 504]


class BreakerSettings(_Strict):
    enabled: bool = True
    failure_rate_threshold: float = Field(default=50.0, gt=0, le=100)
    sliding_window_size: int = Field(default=20, ge=1)
    minimum_number_of_calls: int = Field(default=10, ge=1)
    wait_duration_in_open_state: float = Field(default=10.0, ge=0.001)
    permitted_number_of_calls_in_half_open_state: int = Field(default=3, ge=1)


class AuthSettings(_Strict):
    required: bool = True
    scopes: list[str] = []


class RouteSettings(_Strict):
    name: str = Field(min_length=1)
    path: str
    match: Literal["exact", "prefix", "regex"] = "prefix"
    methods: list[str] = []
    host: str | None = None
    upstream: str = Field(min_length=1)
    timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    retries: RetrySettings = RetrySettings()
    auth: AuthSettings = AuthSettings()
    rate_limit: str | None = None
    breaker: BreakerSettings = BreakerSettings()
    rewrite_prefix: str | None = None
    max_body_bytes: int | None = Field(default=None, ge=0)

    @field_validator("methods")
    @classmethod
    def _methods(cls, v):
        bad = [m for m in v if m not in HTTP_METHODS]
        if bad:
            raise ValueError(f"unknown method(s) {bad}: expected some of {', '.join(HTTP_METHODS)} (upper case)")
        return v


class RedisSettings(_Strict):
    url: str = "redis://127.0.0.1:6379/0"


class GatewaySettings(_Strict):
    jwt: JWTSettings | None = None
    redis: RedisSettings | None = None
    rate_limiters: dict[str, RateLimitSettings] = {}
    services: dict[str, ServiceSettings] = Field(min_length=1)
    routes: list[RouteSettings] = Field(min_length=1)
    max_body_bytes: int = Field(default=10 * MiB, ge=0)
    encoded_slash: Literal["reject", "keep"] = "reject"
    max_header_bytes: int = Field(default=8190, ge=1024)

    def route(self, name: str) -> RouteSettings:
        return next(r for r in self.routes if r.name == name)

    def with_instances(self, urls: dict[str, list[str]]) -> "GatewaySettings":
        """A copy whose services have these instance URLs (ids ``<service>-1``...), e.g.
        the demo services started on free ports."""
        services = dict(self.services)
        for name, service_urls in urls.items():
            old = services[name].instances
            instances = [InstanceSettings(id=old[i].id if i < len(old) else f"{name}-{i + 1}", url=u,
                                          weight=old[i].weight if i < len(old) else 1)
                         for i, u in enumerate(service_urls)]
            services[name] = services[name].model_copy(update={"instances": instances})
        return self.model_copy(update={"services": services})


def _element(loc: tuple, data) -> str:
    """``('routes', 1, 'timeout_seconds')`` -> ``routes[1] 'orders'.timeout_seconds``."""
    text, node = "", data
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
            node = node[part] if isinstance(node, list) and part < len(node) else None
            label = (node.get("name") or node.get("id") or node.get("path")) if isinstance(node, dict) else None
            if isinstance(label, str):
                text += f" {label!r}"
        else:
            text += ("." if text else "") + str(part)
            node = node.get(part) if isinstance(node, dict) else None
    return text or "<top>"


def _message(err: dict) -> str:
    kind = err["type"]
    if kind == "extra_forbidden":
        return "unknown field (not part of the schema; misspelt?)"
    if kind == "missing":
        return "required field is missing"
    msg = err["msg"].removeprefix("Value error, ")
    got = err.get("input")
    if kind not in ("missing",) and not isinstance(got, (dict, list)):
        msg += f" (got {got!r})"
    return msg


def _cross_checks(cfg: GatewaySettings, data: dict) -> list[tuple[str, str]]:
    problems = []
    names = set()
    for i, r in enumerate(cfg.routes):
        where = f"routes[{i}] {r.name!r}"
        if r.name in names:
            problems.append((f"{where}.name", "another route has this name"))
        names.add(r.name)
        if r.upstream not in cfg.services:
            problems.append((f"{where}.upstream", f"unknown service {r.upstream!r}: expected one of "
                                                  f"{', '.join(sorted(cfg.services))}"))
        if r.rate_limit is not None and r.rate_limit not in cfg.rate_limiters:
            known = ", ".join(sorted(cfg.rate_limiters)) or "none defined in rate_limiters"
            problems.append((f"{where}.rate_limit", f"unknown limiter {r.rate_limit!r}: expected one of {known}"))
        if r.auth.required and cfg.jwt is None:
            problems.append((f"{where}.auth", "authentication required but there is no jwt section"))
        if r.auth.scopes and not r.auth.required:
            problems.append((f"{where}.auth.scopes", "scopes without authentication cannot be checked"))
        if r.match == "regex":
            try:
                re.compile(r.path)
            except re.error as exc:
                problems.append((f"{where}.path", f"invalid regular expression: {exc}"))
        else:
            try:
                normal = normalize_path(r.path, encoded_slash=cfg.encoded_slash)
            except PathRejected as exc:
                problems.append((f"{where}.path", str(exc)))
            else:
                if normal != r.path:
                    problems.append((f"{where}.path", f"not normalised: it would never match; write {normal!r}"))
        if r.rewrite_prefix is not None and (r.match != "prefix" or not r.rewrite_prefix.startswith("/")):
            problems.append((f"{where}.rewrite_prefix", "a prefix route only, and an absolute path ('/...')"))
    if cfg.jwt is not None:
        if cfg.jwt.jwks_url is None and not cfg.jwt.hmac_secrets:
            problems.append(("jwt", "no keys: give jwks_url and/or hmac_secrets"))
        if cfg.jwt.hmac_secrets and "HS256" not in cfg.jwt.algorithms:
            problems.append(("jwt.algorithms", "hmac_secrets are given but HS256 is not allowed"))
        for kid, secret in cfg.jwt.hmac_secrets.items():
            try:
                check_hmac_secret(secret)
            except WeakSecret as exc:
                problems.append((f"jwt.hmac_secrets.{kid}", exc.detail))
    for name, lim in cfg.rate_limiters.items():
        if lim.burst is not None and lim.algorithm in WINDOW_ALGORITHMS:
            problems.append((f"rate_limiters.{name}.burst", f"applies to bucket algorithms, not {lim.algorithm}"))
        if lim.backend == "redis" and cfg.redis is None:
            problems.append((f"rate_limiters.{name}.backend", "redis backend but there is no redis section"))
    for name, svc in cfg.services.items():
        ids = [inst.id for inst in svc.instances]
        if len(set(ids)) != len(ids):
            problems.append((f"services.{name}.instances", f"instance ids repeat: {ids}"))
    return problems


def parse_config(data, source: str = "<config>") -> GatewaySettings:
    """Validate ``data`` (a dict from YAML); raise ``GatewayConfigError`` listing every problem."""
    if not isinstance(data, dict):
        raise GatewayConfigError(source, [("<top>", f"expected a mapping, got {type(data).__name__}")])
    try:
        cfg = GatewaySettings.model_validate(data)
    except ValidationError as exc:
        raise GatewayConfigError(source, [(_element(e["loc"], data), _message(e)) for e in exc.errors()]) from None
    problems = _cross_checks(cfg, data)
    if problems:
        raise GatewayConfigError(source, problems)
    return cfg


def read_yaml(path) -> dict:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise GatewayConfigError(path, [("<file>", f"cannot be read: {exc.strerror or exc}")]) from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "<file>"
        raise GatewayConfigError(path, [(where, f"not valid YAML: {getattr(exc, 'problem', exc)}")]) from None


def load_config(path) -> GatewaySettings:
    return parse_config(read_yaml(path), str(path))


@dataclass(frozen=True)
class ConfigFinding:
    """One problem of the article's configuration: where, what, and what to do instead."""

    element: str
    problem: str
    fix: str


def audit_article_config(path) -> tuple[dict, list[ConfigFinding], GatewayConfigError | None]:
    """``(raw, findings, schema_error)`` for the source article's sample configuration.

    ``findings`` are its problems read with the article's own code in mind; ``schema_error``
    is what ``parse_config`` says when the same file is given to this gateway.
    """
    source = str(path)
    raw = read_yaml(path)
    findings = []
    secret = raw.get("jwt_secret")
    if secret is None:
        findings.append(ConfigFinding("jwt_secret", "absent: the code falls back to jwt.decode(..., 'secret'), so anyone "
                                "can mint an accepted token", "jwt.jwks_url with RS256/ES256 keys"))
    else:
        try:
            check_hmac_secret(secret)
        except WeakSecret as exc:
            findings.append(ConfigFinding("jwt_secret", exc.detail, "jwt.jwks_url with RS256/ES256 keys, or a 32-byte "
                                    "random secret from the environment"))
    findings.append(ConfigFinding("jwt_secret", "no issuer, audience or required claims are checked: any HS256 token "
                            "with that secret passes, whoever it was minted for", "jwt.issuer, jwt.audience, "
                            "jwt.required_claims"))
    if "redis" in raw:
        findings.append(ConfigFinding("redis", "every limiter allows the request when Redis fails (except Exception: "
                                "return True), silently", "rate_limiters.*.on_backend_error: closed (counted, logged)"))
    for i, r in enumerate(raw.get("routes") or []):
        where = f"routes[{i}] {r.get('path')!r}"
        prefix = r.get("path", "")
        findings.append(ConfigFinding(f"{where}.path", f"prefix match by startswith: {prefix!r} also matches "
                                f"{prefix + '-internal'!r}", "match on whole segments (match: prefix)"))
        if "service_url" in r:
            findings.append(ConfigFinding(f"{where}.service_url", "never used: instances come from services.*",
                                    "remove it"))
        if r.get("method", "GET") in ("POST", "PATCH") and r.get("retries", 3):
            findings.append(ConfigFinding(f"{where}.retries", f"{r.get('retries', 3)} retries (the default) on a "
                                    f"{r.get('method')}: a retried POST may be processed twice",
                                    "retry only replayable, idempotent requests"))
        if "timeout" not in r:
            findings.append(ConfigFinding(f"{where}.timeout", "default 30 s, and no deadline passed downstream",
                                    "timeout_seconds, sent on as x-envoy-expected-rq-timeout-ms"))
        rl = r.get("rate_limit") or {}
        if rl.get("strategy") == "token_bucket":
            findings.append(ConfigFinding(f"{where}.rate_limit", f"token_bucket is called with window={rl.get('window')} "
                                    f"as the refill rate: {rl.get('window')} tokens per second, not "
                                    f"{rl.get('requests')} per {rl.get('window')} s",
                                    "algorithm: token_bucket, limit, period_seconds"))
        if r.get("circuit_breaker"):
            findings.append(ConfigFinding(f"{where}.circuit_breaker", "opens after 5 consecutive failures, half-open "
                                    "admits unlimited calls, shared by all instances", "breaker: failure rate "
                                    "over a window, limited half-open trials"))
    for name, svc in (raw.get("services") or {}).items():
        for j, inst in enumerate((svc or {}).get("instances") or []):
            if "host" in inst:
                findings.append(ConfigFinding(f"services.{name}.instances[{j}]", f"host {inst['host']!r} and port as "
                                        "separate fields; no scheme", "url: http://host:port"))
                break
    try:
        parse_config(raw, source)
        error = None
    except GatewayConfigError as exc:
        error = exc
    return raw, findings, error
