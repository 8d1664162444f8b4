"""The gateway: an aiohttp application running each request through one documented pipeline.

Per request, in this order (``PIPELINE``), each step able to answer on its own:

1. **request id** taken from ``X-Request-Id`` or generated (``headers.request_id``);
2. **normalise** the path (400 ``PathRejected``): everything after sees one path;
3. **route** (404, or 405 with ``Allow``); steps 2-3 are pure functions of the method, raw
   path and host, so ``resolve`` keeps their answers in a bounded table;
4. **size**: a ``Content-Length`` above the route's ``max_body_bytes`` is a 413 before
   any byte of the body is read (a chunked body is counted while it streams);
5. **authenticate** (401 with ``WWW-Authenticate: Bearer``; a token verified before is
   answered from the verifier's cache without an await) and check the route's **scopes** (403): before the limiter, so the limiter counts per *verified* client (a
   caller cannot spend someone else's quota by claiming their name), and so an
   unauthenticated flood is refused by the cheapest check that knows who is calling;
6. **rate limit** (429 with ``Retry-After`` and ``RateLimit-Policy``/``RateLimit``):
   before the breaker and the upstream, so a refused request costs the upstream nothing
   and is never recorded as an upstream outcome;
7. **deadline**: the route's ``timeout_seconds`` starts; every step below sees what remains;
8. **retry within a budget** (``Retry`` + ``RetryBudget``, chapter 2) around 9-11, only for
   replayable requests (no body: a streamed body cannot be sent twice) and, beyond a
   refused connection (nothing was sent), only idempotent methods;
9. **breaker** (``CircuitBreaker``, one per route), asked by *each attempt* as in chapter 2's
   ``Pipeline`` (retry outside the breaker): an open breaker fails the attempt at once
   (503) and is not retried;
10. **pick an instance** (``workbook.balancing``, one balancer per service) per attempt, so
   a retry can go to another instance; ``start``/``finish`` keep in-flight counts true;
11. **forward** with the remaining deadline in ``x-envoy-expected-rq-timeout-ms``,
   hop-by-hop headers removed both ways, forwarding headers appended, bodies streamed
   both ways (``proxy``). The deadline bounds the wait for the response head and a small
   body (up to 64 KiB, read whole); a longer body then streams with ``timeout_seconds`` as
   the idle limit between chunks;
12. **access log**: one JSON line, whatever happened (``AccessLog``).

Errors are ``application/problem+json`` (RFC 9457). Upstream timeout 504, refused or
reset 502, body too large 413. Limiters and balancers are built by factories (defaults:
``workbook.ratelimit`` and ``workbook.balancing``), so tests and notebooks can swap them.

What each step costs, and what was done to make it cheap, is in ``benchmarks/RESULTS.md``
(section *gateway*); the default clock is a ``BoundLoopClock`` bound to the serving loop
at startup.
"""

from __future__ import annotations

import asyncio
import logging
import math

from aiohttp import web

from workbook.auth import (InsufficientScope, JWKSCache, JWKSUnavailable, JWTVerifier, KeySet, SigningKey,
                           TokenRejected, VerifierConfig, require_scopes)
from workbook.balancing import Backend, NoBackendAvailable, make_balancer
from workbook.core.clock import BoundLoopClock, LoopClock
from workbook.gateway.accesslog import AccessLog
from workbook.gateway.config import GatewaySettings, RateLimitSettings, RouteSettings, ServiceSettings
from workbook.gateway.errors import (BodyTooLarge, GatewayConfigError, GatewayError, IncompleteBody, UpstreamStatus,
                                     UpstreamTimeout, UpstreamUnavailable)
from workbook.gateway.headers import REQUEST_ID_HEADER, request_id
from workbook.gateway.normalize import normalize_path
from workbook.gateway.problem import problem_response
from workbook.gateway.proxy import Forwarder
from workbook.gateway.routing import RouteMatch, RouteRule, Router
from workbook.ratelimit import (MemoryRateLimiter, RateLimitPolicy, RedisRateLimiter, limit_key, ratelimit_header,
                               ratelimit_headers, ratelimit_policy_header)
from workbook.resilience import (Backoff, CallNotPermittedError, CircuitBreaker, CircuitBreakerConfig,
                                 DeadlineExceededError, Retry, RetryBudget, RetryBudgetExhaustedError)
from workbook.resilience.deadline import Deadline, enter_deadline, exit_deadline

_log = logging.getLogger(__name__)

PIPELINE = ("request_id", "normalise", "route", "size", "authenticate", "rate_limit", "deadline", "retry", "breaker",
            "pick_instance", "forward", "access_log")
RESOLVE_CACHE = 4096
"""How many (method, raw path, host) resolutions ``Gateway.resolve`` keeps."""
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})


class RouteLimiter:
    """A route's limiter and policy, whatever the backend: ``await decide(key)``."""

    def __init__(self, name: str, settings: RateLimitSettings, limiter, policy: RateLimitPolicy):
        self.name, self.settings, self.limiter, self.policy = name, settings, limiter, policy

    async def decide(self, key: str):
        if isinstance(self.limiter, MemoryRateLimiter):
            return self.limiter.hit(key)
        return await self.limiter.decide(key)


def default_limiter_factory(name: str, settings: RateLimitSettings, *, clock=None, redis_client=None) -> RouteLimiter:
    policy = RateLimitPolicy(settings.algorithm, settings.limit, settings.period_seconds, settings.burst, name=name)
    if settings.backend == "redis":
        limiter = RedisRateLimiter(redis_client, policy, on_error=settings.on_backend_error)
    else:
        limiter = MemoryRateLimiter(policy, clock or LoopClock())
    return RouteLimiter(name, settings, limiter, policy)


def default_balancer_factory(name: str, settings: ServiceSettings):
    """The service's balancer from ``workbook.balancing`` (instances by id and weight)."""
    return make_balancer(settings.balancer, [Backend(i.id, i.weight) for i in settings.instances])


class _Route:
    """What the gateway builds once per route: its rule, breaker, budget, limiter, and the
    per-request constants (rewrite, limiter key template, scopes) computed once."""

    def __init__(self, settings: RouteSettings, gateway: "Gateway"):
        self.settings = settings
        self.name = settings.name
        cfg = gateway.settings
        self.max_body = settings.max_body_bytes if settings.max_body_bytes is not None else cfg.max_body_bytes
        b = settings.breaker
        self.breaker = CircuitBreaker(settings.name, CircuitBreakerConfig(
            failure_rate_threshold=b.failure_rate_threshold, sliding_window_size=b.sliding_window_size,
            minimum_number_of_calls=min(b.minimum_number_of_calls, b.sliding_window_size),
            wait_duration_in_open_state=b.wait_duration_in_open_state,
            permitted_number_of_calls_in_half_open_state=b.permitted_number_of_calls_in_half_open_state),
            clock=gateway.clock) if b.enabled else None
        r = settings.retries
        self.budget = RetryBudget(r.budget_percent, r.min_retries, clock=gateway.clock)
        # one Retry per route and per attempt count (a request with a body gets 1 attempt)
        self.retries = {n: Retry(n, Backoff(initial=0.01, cap=0.1), budget=self.budget, clock=gateway.clock,
                                 retry_on=_retryable, max_retry_after=0.0) for n in {1, r.attempts}}
        self.attempts = r.attempts
        self.retry_on_status = frozenset(r.retry_on_status)
        self.timeout = settings.timeout_seconds
        self.auth_required = settings.auth.required
        self.scopes = tuple(settings.auth.scopes)
        self.limiter = gateway.limiters.get(settings.rate_limit) if settings.rate_limit else None
        self.policy_header = ratelimit_policy_header(self.limiter.policy) if self.limiter is not None else None
        # the limiter's key with a placeholder for the client: one replace per request
        # a limiter in memory answers without an await
        self.hit = (self.limiter.limiter.hit if isinstance(getattr(self.limiter, "limiter", None), MemoryRateLimiter)
                    else None)
        if self.limiter is not None:
            template = limit_key(self.limiter.settings.key, client=_CLIENT, route=settings.name)
            head, found, tail = template.rpartition(_CLIENT)
            self.key_parts = (head, tail) if found else (template, None)  # None: the key names no client
        else:
            self.key_parts = None
        self.balancer = gateway.balancers[settings.upstream]
        self.urls = gateway.instances[settings.upstream]
        self.prefix_length = len(settings.path.rstrip("/"))
        self.rewrite = None if settings.rewrite_prefix is None else settings.rewrite_prefix.rstrip("/")

    def upstream_path(self, path: str) -> str:
        """``path`` with the route's prefix rewritten (``rewrite_prefix``), if any."""
        if self.rewrite is None:
            return path
        rest = path[self.prefix_length:]
        return (self.rewrite + rest if rest else self.settings.rewrite_prefix) or "/"


_CLIENT = "\x00client\x00"
"""Where the client goes in a route's limiter key (``limit_key`` puts the client last)."""


class Gateway:
    """Build with settings (``load_config``), then ``app = await gateway.application()``.

    ``verifier`` replaces the one built from ``settings.jwt`` (a test's ``KeySet``);
    ``limiter_factory(name, settings)`` and ``balancer_factory(name, settings)`` replace
    the defaults; ``now`` is the epoch clock for token times, ``clock`` the loop clock for
    deadlines, breakers, budgets and latencies.
    """

    def __init__(self, settings: GatewaySettings, *, verifier=None, limiter_factory=None, balancer_factory=None,
                 clock=None, now=None, access_log: AccessLog | None = None, redis_client=None,
                 source: str = "<config>"):
        if not isinstance(settings, GatewaySettings):
            raise GatewayConfigError(source, [("<top>", "expected GatewaySettings (see load_config)")])
        self.settings, self.source = settings, source
        self.clock = clock or BoundLoopClock()  # bound to the serving loop at startup
        self.now = now
        self.verifier = verifier
        self.access_log = access_log or AccessLog()
        self.redis_client = redis_client
        self._own_redis = False
        if redis_client is None and settings.redis is not None and any(
                lim.backend == "redis" for lim in settings.rate_limiters.values()):
            import redis.asyncio
            self.redis_client = redis.asyncio.Redis.from_url(settings.redis.url, socket_timeout=1.0,
                                                             socket_connect_timeout=1.0)
            self._own_redis = True
        make_limiter = limiter_factory or (lambda n, s: default_limiter_factory(
            n, s, clock=self.clock, redis_client=self.redis_client))
        make_lb = balancer_factory or default_balancer_factory
        self.limiters = {n: make_limiter(n, s) for n, s in settings.rate_limiters.items()}
        self.balancers = {n: make_lb(n, s) for n, s in settings.services.items()}
        self.instances = {n: {i.id: i.url for i in s.instances} for n, s in settings.services.items()}
        self.routes = {r.name: _Route(r, self) for r in settings.routes}
        self.router = Router(RouteRule(r.name, r.path, r.match, tuple(r.methods), r.host, self.routes[r.name])
                             for r in settings.routes)
        self.forwarder: Forwarder | None = None
        self.requests = 0
        self.statuses: dict[int, int] = {}
        self._resolved: dict[tuple, tuple[str, RouteMatch]] = {}

    async def _build_verifier(self):
        jwt_cfg = self.settings.jwt
        if self.verifier is not None or jwt_cfg is None:
            return
        config = VerifierConfig(issuer=jwt_cfg.issuer, audience=jwt_cfg.audience, algorithms=tuple(jwt_cfg.algorithms),
                                leeway=jwt_cfg.leeway_seconds, required_claims=tuple(jwt_cfg.required_claims),
                                max_token_bytes=jwt_cfg.max_token_bytes)
        hmac_keys = KeySet(SigningKey.hmac(secret, kid) for kid, secret in jwt_cfg.hmac_secrets.items())
        keys = hmac_keys
        if jwt_cfg.jwks_url:
            cache = JWKSCache(jwt_cfg.jwks_url, ttl=jwt_cfg.jwks_ttl_seconds, clock=self.clock,
                              min_refresh_interval=jwt_cfg.jwks_min_refresh_seconds)
            try:
                await cache.refresh()
            except JWKSUnavailable as exc:
                raise GatewayConfigError(self.source, [("jwt.jwks_url", f"{jwt_cfg.jwks_url} did not answer with a "
                                                                        f"JWKS: {exc.detail}")]) from None
            keys = _Chain(hmac_keys, cache) if jwt_cfg.hmac_secrets else cache
        kwargs = {"now": self.now} if self.now is not None else {}
        self.verifier = JWTVerifier(config, keys, cache_size=jwt_cfg.verified_token_cache, **kwargs)

    async def application(self) -> web.Application:
        """The aiohttp application (fetches the JWKS first: a dead URL is a ``GatewayConfigError``)."""
        await self._build_verifier()
        app = web.Application(handler_args={"max_line_size": self.settings.max_header_bytes,
                                            "max_field_size": self.settings.max_header_bytes})
        app.router.add_route("*", "/{tail:.*}", self.handle)

        async def on_startup(_app):
            if isinstance(self.clock, BoundLoopClock):
                self.clock.bind(asyncio.get_running_loop())
            self.forwarder = Forwarder()

        async def on_cleanup(_app):
            if self.forwarder is not None:
                await self.forwarder.close()
            if self._own_redis:
                await self.redis_client.aclose()

        app.on_startup.append(on_startup)
        app.on_cleanup.append(on_cleanup)
        return app

    # -- the pipeline --------------------------------------------------------------
    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        now = self.clock.now
        started = now()
        rid, _ = request_id(request.headers)
        entry = {"request_id": rid, "method": request.method, "path": None, "route": None, "upstream": None,
                 "instance": None, "status": None, "latency_ms": None, "limiter": None, "attempts": 0,
                 "bytes_in": 0, "bytes_out": 0, "error": None}  # FIELDS, in order
        try:
            response = await self._handle(request, rid, entry)
        except GatewayError as exc:
            response = self._problem(exc.status, exc.title, exc.detail, request, rid, kind=exc.kind)
            entry["error"] = type(exc).__name__
        except Exception as exc:  # a bug: answered and logged, never a crash
            _log.exception("gateway: unexpected error for %s", rid)
            response = self._problem(500, "Internal gateway error", type(exc).__name__, request, rid, kind="internal")
            entry["error"] = f"{type(exc).__name__}: {exc}"
        status = response.status
        entry["status"] = status
        entry["latency_ms"] = round((now() - started) * 1000, 3)
        self.requests += 1
        statuses = self.statuses
        statuses[status] = statuses.get(status, 0) + 1
        self.access_log.write(entry)
        return response

    def _problem(self, status, title, detail, request, rid, *, kind, headers=None, **extra):
        headers = dict(headers or {})
        headers[REQUEST_ID_HEADER] = rid
        return problem_response(status, title, detail, kind=kind, headers=headers,
                                instance=None, request_id=rid, **extra)

    def resolve(self, method: str, raw_path: str, host: str | None) -> tuple[str, RouteMatch]:
        """``(normalised path, route match)`` for a request target (``PathRejected`` if the
        path has no single meaning). Both steps are pure functions of their inputs, so
        answers are kept in a bounded table (cleared when it reaches ``RESOLVE_CACHE``
        entries; a rejected path is never kept): a path seen before costs one lookup."""
        key = (method, raw_path, host)
        found = self._resolved.get(key)
        if found is None:
            path = normalize_path(raw_path, encoded_slash=self.settings.encoded_slash)
            found = (path, self.router.match(method, path, host))
            if len(self._resolved) >= RESOLVE_CACHE:
                self._resolved.clear()
            self._resolved[key] = found
        return found

    async def _handle(self, request, rid, entry):
        raw = request.raw_path
        if "?" in raw:
            raw, query = raw.split("?", 1)
        else:
            query = None
        headers = request.headers
        method = request.method
        path, found = self.resolve(method, raw, headers.get("Host"))
        entry["path"] = path
        if found.rule is None:
            if found.allowed:
                return self._problem(405, "Method not allowed", f"{method} is not routed for {path}",
                                     request, rid, kind="method-not-allowed", headers={"Allow": ", ".join(found.allowed)})
            return self._problem(404, "No route", f"no route matches {path}", request, rid, kind="no-route")
        route: _Route = found.rule.target
        entry["route"], entry["upstream"] = route.name, route.settings.upstream
        length = headers.get("Content-Length")
        if length is not None and length.isdigit() and int(length) > route.max_body:
            raise BodyTooLarge(f"Content-Length {int(length)} > {route.max_body} bytes allowed on route "
                               f"{route.name!r}")
        claims = None
        if route.auth_required:
            header = headers.get("Authorization")
            verifier = self.verifier
            if verifier is not None and header is not None and header.startswith("Bearer "):
                claims = verifier.cached(header[7:].strip())  # a token verified before: no await
            if claims is None:
                claims = await self._authenticate(request, rid)
                if not isinstance(claims, dict):  # a problem response
                    return claims
            if route.scopes:
                try:
                    require_scopes(claims, route.scopes)
                except InsufficientScope as exc:
                    return self._problem(403, "Insufficient scope", str(exc), request, rid, kind="insufficient-scope",
                                         headers={"WWW-Authenticate": 'Bearer error="insufficient_scope", scope="'
                                                  + " ".join(route.scopes) + '"'})
        limit_headers = ()
        limiter = route.limiter
        if limiter is not None:
            head, tail = route.key_parts
            if tail is None:
                key = head
            else:
                sub = claims.get("sub") if claims else None
                key = head + (str(sub) if sub else f"ip:{request.remote}") + tail
            decision = route.hit(key) if route.hit is not None else await limiter.decide(key)
            if decision.allowed:  # the policy field is the same for every request: built once per route
                limit_headers = (("RateLimit-Policy", route.policy_header),
                                 ("RateLimit", ratelimit_header(limiter.policy, decision)))
                entry["limiter"] = "allowed/fail_" + decision.fail_mode if decision.fail_mode else "allowed"
            else:
                entry["limiter"] = "rejected/fail_" + decision.fail_mode if decision.fail_mode else "rejected"
                return self._problem(429, "Too many requests", f"limit {limiter.policy.limit} per "
                                     f"{limiter.policy.period:g} s on {route.name!r}", request, rid,
                                     kind="rate-limited", headers=ratelimit_headers(limiter.policy, decision))
        return await self._forward(request, route, path, query, rid, entry, limit_headers)

    async def _authenticate(self, request, rid):
        header = request.headers.get("Authorization")
        verifier = self.verifier
        if verifier is None:
            raise GatewayConfigError(self.source, [("jwt", "no verifier: call application() first")])
        if header is None or not header.startswith("Bearer "):
            return self._problem(401, "Authentication required", "expected Authorization: Bearer <token>",
                                 request, rid, kind="unauthenticated",
                                 headers={"WWW-Authenticate": 'Bearer realm="gateway"'})
        try:
            return await verifier.verify(header[7:].strip())
        except TokenRejected as exc:
            return self._problem(401, "Invalid token", str(exc), request, rid, kind="invalid-token",
                                 reason=exc.reason,
                                 headers={"WWW-Authenticate": f'Bearer realm="gateway", error="invalid_token", '
                                                              f'error_description="{exc.reason}"'})
        except JWKSUnavailable as exc:
            return self._problem(503, "Keys unavailable", str(exc), request, rid, kind="jwks-unavailable")

    async def _attempt(self, request, route: _Route, upstream_path, query, rid, entry, attempts, idempotent):
        """One try: breaker permission, an instance, the forward, the outcomes recorded."""
        n = entry["attempts"] = entry["attempts"] + 1
        breaker, balancer, now = route.breaker, route.balancer, self.clock.now
        token = breaker.acquire_permission() if breaker is not None else None
        try:
            backend = balancer.pick(rid)
        except NoBackendAvailable:
            if breaker is not None:
                breaker.release_permission(token)
            raise
        entry["instance"] = backend.name
        balancer.start(backend)
        began = now()
        failed = True
        try:
            upstream = await self.forwarder.send(
                request, route.urls[backend.name], upstream_path, query, rid, max_body=route.max_body, entry=entry,
                idempotent=idempotent, idle_timeout=route.timeout)
            status = upstream.status
            failed = status >= 500
            if failed and status in route.retry_on_status and n < attempts:
                upstream.release()
                raise UpstreamStatus(status, retryable=idempotent)
            return upstream
        except (BodyTooLarge, IncompleteBody):
            failed = False  # the client's doing: the upstream is not to blame
            if breaker is not None:
                breaker.release_permission(token)
                token = None
            raise
        except Exception as exc:
            if breaker is not None:
                breaker.on_error(token, now() - began, exc)
                token = None
            raise
        finally:
            elapsed = now() - began
            balancer.finish(backend, elapsed, failed=failed)
            if breaker is not None and token is not None:
                if failed:
                    breaker.on_error(token, elapsed, UpstreamStatus(500, retryable=False))
                else:
                    breaker.on_success(token, elapsed)

    async def _forward(self, request, route: _Route, path, query, rid, entry, extra_headers):
        replayable = not request.body_exists
        idempotent = request.method in IDEMPOTENT_METHODS
        attempts = route.attempts if replayable else 1
        retry = route.retries[attempts]
        token = enter_deadline(Deadline(self.clock.now() + route.timeout, self.clock))
        try:
            upstream = await retry.call_async(self._attempt, request, route, route.upstream_path(path), query, rid,
                                              entry, attempts, idempotent)
        except CallNotPermittedError as exc:
            return self._problem(503, "Circuit open", str(exc), request, rid, kind="circuit-open",
                                 headers={"Retry-After": str(max(1, math.ceil(
                                     route.settings.breaker.wait_duration_in_open_state)))})
        except NoBackendAvailable as exc:
            return self._problem(503, "No instance", str(exc), request, rid, kind="no-instance")
        except RetryBudgetExhaustedError as exc:
            last = exc.last_error
            status = last.status if isinstance(last, (GatewayError, UpstreamStatus)) else 503
            return self._problem(status if status in (502, 503, 504) else 503, "Retry budget exhausted", str(exc),
                                 request, rid, kind="retry-budget-exhausted")
        except UpstreamStatus as exc:  # not retried (non-idempotent): its body was released
            return self._problem(exc.status, "Upstream error", str(exc), request, rid, kind="upstream-error")
        except (DeadlineExceededError, TimeoutError):
            raise UpstreamTimeout(f"no response from {route.settings.upstream} within {route.timeout:g} s") from None
        finally:
            exit_deadline(token)
        entry["status"] = upstream.status
        return await self.forwarder.relay(request, upstream, rid, entry, idle_timeout=route.timeout,
                                          extra_headers=extra_headers)


def _retryable(exc: BaseException) -> bool:
    if isinstance(exc, UpstreamStatus):
        return exc.retryable
    if isinstance(exc, UpstreamUnavailable):
        return exc.retryable
    return False


class _Chain:
    """Look a kid up in several key sources, in order."""

    def __init__(self, *sources):
        self.sources = sources

    async def key(self, kid):
        for source in self.sources:
            found = await source.key(kid)
            if found is not None:
                return found
        return None

    def key_nowait(self, kid):
        """The first source's key found without waiting; None: ``key`` must be awaited."""
        for source in self.sources:
            found = source.key_nowait(kid)
            if found is not None:
                return found
        return None

