"""A service client over aiohttp: headers propagated, errors decoded, a pipeline per service.

* Every request carries the current ``RequestContext`` (correlation id, user, tenant; a
  fresh correlation id if there is none) and the remaining deadline
  (``DEADLINE_HEADER``), so a chain of services shares one id and one time budget.
* Any 2xx is success (201, 202 and 204 too; the seed accepted only 200). A non-2xx
  answer raises ``HTTPStatusError`` carrying the status, which service and operation, and
  the ``error`` / ``message`` of its JSON body (or the start of a non-JSON body), plus
  ``Retry-After``. Connection failures raise ``ServiceConnectionError`` (a
  ``ConnectionError``) and socket timeouts ``ServiceTimeoutError`` (a ``TimeoutError``),
  both naming the service and URL, so the retry rule treats them as retryable; for a
  non-idempotent method (POST, PATCH) only a refused connection and a 429 stay
  retryable, since anything else may come after the work was done.
* ``call`` sends through the service's ``Pipeline`` (breaker, retry, timeouts...) when one
  is registered with ``pipelines``; ``health`` and ``health_all`` check one or all
  services, the latter concurrently.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime

import aiohttp

from workbook.transport.context import RequestContext, current_context
from workbook.resilience.deadline import deadline_headers
from workbook.resilience.errors import HTTPStatusError, parse_retry_after, request_idempotency
from workbook.core.errors import WorkbookError


IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})
"""RFC 9110's idempotent methods: sending one twice has the effect of sending it once."""


class ServiceConnectionError(WorkbookError, ConnectionError):
    """The service could not be reached (refused, reset, DNS...).

    ``retryable`` is False when the request may already have been processed (the
    connection broke after it was sent) and it is not idempotent."""

    def __init__(self, message: str, *, retryable: bool = True):
        super().__init__(message)
        self.retryable = retryable


class ServiceTimeoutError(WorkbookError, TimeoutError):
    """The socket read or connect timed out; ``retryable`` as for ``ServiceConnectionError``."""

    def __init__(self, message: str, *, retryable: bool = True):
        super().__init__(message)
        self.retryable = retryable


@dataclass(frozen=True)
class HealthResult:
    service: str
    healthy: bool
    status: int | None
    latency: float
    detail: str


class ServiceClient:
    def __init__(self, session: aiohttp.ClientSession, services: dict[str, str], *, pipelines: dict | None = None,
                 socket_timeout: float = 30.0):
        self.session = session
        self.services = dict(services)
        self.pipelines = dict(pipelines or {})
        self.socket_timeout = socket_timeout
        self.sent = 0

    def url(self, service: str, path: str) -> str:
        try:
            base = self.services[service]
        except KeyError:
            raise KeyError(f"no service {service!r} registered (known: {', '.join(sorted(self.services))})") from None
        return base.rstrip("/") + "/" + path.lstrip("/")

    def headers(self, context: RequestContext | None = None) -> dict[str, str]:
        context = context or current_context() or RequestContext.new()
        return {**context.headers(), **deadline_headers()}

    async def request(self, service: str, method: str, path: str, *, json=None, context: RequestContext | None = None,
                      idempotent: bool | None = None):
        """One HTTP request, no resilience: the decoded body of a 2xx, else an exception.

        ``idempotent`` (default: whether ``method`` is in ``IDEMPOTENT_METHODS``; pass True
        for, say, a POST carrying an idempotency key) decides what the retry rule may send
        again. For a non-idempotent request only what proves it was not processed stays
        retryable: a refused connection (never sent) and a 429 (refused by the server);
        a timeout, a dropped connection or a 5xx may mean it was done, and doing it twice
        (two orders, two payments) is worse than an error.
        """
        url = self.url(service, path)
        operation = f"{method.upper()} {path}"
        if idempotent is None:
            idempotent = method.upper() in IDEMPOTENT_METHODS
        self.sent += 1
        try:
            async with self.session.request(method, url, json=json, headers=self.headers(context),
                                            timeout=aiohttp.ClientTimeout(total=self.socket_timeout)) as resp:
                raw = await resp.read()
                body = _decode(raw, resp.content_type)
                if 200 <= resp.status < 300:
                    return body
                detail = body if isinstance(body, dict) else {}
                raise HTTPStatusError(
                    resp.status, service=service, operation=operation,
                    error=str(detail.get("error") or detail.get("title") or ""),  # ours, or RFC 9457's
                    message=str(detail.get("message") or detail.get("detail") or "") if detail
                    else raw[:200].decode("utf-8", "replace"),
                    body=body, retry_after=_retry_after(resp.headers), idempotent=idempotent)
        except aiohttp.ClientConnectionError as exc:
            not_sent = isinstance(exc, (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError))
            if isinstance(exc, asyncio.TimeoutError):
                raise ServiceTimeoutError(f"{service} {operation} at {url}: timed out ({exc})",
                                          retryable=idempotent or not_sent) from exc
            raise ServiceConnectionError(f"{service} {operation} at {url}: cannot connect ({exc})",
                                         retryable=idempotent or not_sent) from exc
        except aiohttp.ClientPayloadError as exc:  # the connection broke in the middle of the body
            raise ServiceConnectionError(f"{service} {operation} at {url}: answer broken off ({exc})",
                                         retryable=idempotent) from exc
        except asyncio.TimeoutError as exc:
            raise ServiceTimeoutError(f"{service} {operation} at {url}: no answer within "
                                      f"{self.socket_timeout:g} s", retryable=idempotent) from exc

    async def get(self, service: str, path: str, **kw):
        return await self.request(service, "GET", path, **kw)

    async def call(self, service: str, method: str, path: str, **kw):
        """``request`` through the service's pipeline, if one is registered; the request's
        idempotency is declared to the pipeline (``request_idempotency``), so its retry and
        hedge layers never re-send a non-idempotent request that may have been processed
        (a per-try timeout, say)."""
        pipeline = self.pipelines.get(service)
        if pipeline is None:
            return await self.request(service, method, path, **kw)
        idempotent = kw.get("idempotent")
        if idempotent is None:
            idempotent = method.upper() in IDEMPOTENT_METHODS
        with request_idempotency(bool(idempotent)):
            return await pipeline.call_async(self.request, service, method, path, **kw)

    async def health(self, service: str, path: str = "/health", timeout: float = 2.0) -> HealthResult:
        # real latency on purpose: this client only ever talks to real sockets
        start = time.perf_counter()
        try:
            async with asyncio.timeout(timeout):
                body = await self.request(service, "GET", path)
            healthy = not isinstance(body, dict) or body.get("status", "ok") in ("ok", "UP", "up")
            return HealthResult(service, healthy, 200, time.perf_counter() - start,
                                "ok" if healthy else f"status {body.get('status')!r}")
        except HTTPStatusError as exc:
            return HealthResult(service, False, exc.status, time.perf_counter() - start, str(exc))
        except (ConnectionError, TimeoutError) as exc:
            return HealthResult(service, False, None, time.perf_counter() - start,
                                f"{type(exc).__name__}: {exc}" if str(exc) else f"no answer within {timeout:g} s")

    async def health_all(self, services=None, timeout: float = 2.0) -> dict[str, HealthResult]:
        """Check every (or the given) service concurrently; one slow service does not delay the others."""
        names = list(services or self.services)
        results = await asyncio.gather(*(self.health(n, timeout=timeout) for n in names))
        return dict(zip(names, results))


def _decode(raw: bytes, content_type: str):
    if not raw:
        return None
    if content_type == "application/json" or (content_type.startswith("application/")
                                              and content_type.endswith("+json")):
        # application/problem+json (RFC 9457) is the standard shape of an HTTP API's error body
        import json
        try:
            return json.loads(raw)
        except ValueError:
            return raw.decode("utf-8", "replace")
    return raw.decode("utf-8", "replace")


def _retry_after(headers):
    """``Retry-After`` in seconds, either form. An HTTP-date is counted from the response's
    own ``Date`` header when it has one (no clock skew between us and the server), else from
    the wall clock: this client is real-time only, so reading it here is deliberate."""
    value = headers.get("Retry-After")
    if value is None:
        return None
    now = None
    date = headers.get("Date")
    if date is not None:
        try:
            now = parsedate_to_datetime(date)
        except (TypeError, ValueError, IndexError):
            now = None
    if now is None:
        now = datetime.now(timezone.utc)
    return parse_retry_after(value, now=now)
