"""Forwarding one request upstream and relaying the answer, both bodies streamed.

``Forwarder.send`` builds the upstream request: end-to-end headers only
(``upstream_request_headers``), ``Host`` set to the upstream's (the client's goes on in
``X-Forwarded-Host``), forwarding headers appended, ``X-Request-Id``, the remaining deadline
in ``x-envoy-expected-rq-timeout-ms`` (replacing any the client sent: a client does not
set the gateway's internal deadlines), ``Expect`` dropped (the gateway's server answered
it), and the body passed chunk by chunk from the client's stream (never read whole;
counted against ``max_body``: over it, ``BodyTooLarge``). It returns once the response
*head* has arrived, within the remaining deadline (else ``UpstreamTimeout``); a refused
connection, a reset or an early close is ``UpstreamUnavailable``. A body of known length
up to ``SMALL`` (64 KiB) is read there too, within the same deadline (as Envoy's route
timeout covers the whole response); a failure of that body is still an
``UpstreamUnavailable`` or ``UpstreamTimeout`` (retryable like any other) since nothing was
sent to the client yet. The deadline is watched by ``CoarseTimeouts`` (one periodic timer
for all requests, 5 ms resolution), not by a timer per request.

``Forwarder.relay`` sends the answer back: end-to-end headers
(``client_response_headers``); a body ``send`` read goes with the head in one write
(bounded memory, fewer system calls); a longer or unknown-length body is streamed, each
read limited to the route's timeout (idle limit), ``Content-Length`` kept when the
upstream gave one (else chunked). ``Content-Encoding`` is untouched (the client session
never decompresses). A failure after the head was sent cannot become a 502 any more: the
connection is closed so that a truncated body never looks complete.

The client session keeps no cookies (``DummyCookieJar``: one user's ``Set-Cookie`` must
never be replayed for another) and adds no headers of its own (``ProxyRequest``).
"""

from __future__ import annotations

import asyncio

import aiohttp
from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

from workbook.gateway.errors import BodyTooLarge, IncompleteBody, UpstreamTimeout, UpstreamUnavailable
from workbook.gateway.headers import client_response_headers, upstream_request_headers
from workbook.gateway.timeouts import CoarseTimeouts
from workbook.resilience.deadline import DEADLINE_HEADER, current_deadline

CHUNK = 64 * 1024
SMALL = 64 * 1024
"""A response of known length up to this is read and sent in one write; longer or unknown: streamed."""
URL_CACHE = 4096
"""How many upstream URLs ``Forwarder`` keeps parsed (the table is cleared when full)."""
_NO_TIMEOUT = aiohttp.ClientTimeout(total=None)
_TRANSPORT_ERRORS = (TimeoutError, aiohttp.ClientError, ConnectionError, OSError)


class ProxyRequest(aiohttp.ClientRequest):
    """aiohttp's client request adding **no header of its own**: a proxy forwards what the
    client sent. aiohttp would add ``Accept``, ``Accept-Encoding: gzip, deflate`` (an
    upstream could then compress for a client that never asked), ``User-Agent`` and, on a
    body-less POST, ``Content-Type``. The session's ``skip_auto_headers`` does the same
    but builds and merges a header set per request; this sets one shared set once."""

    _ADD_NOTHING = CIMultiDict((name, None) for name in ("Accept", "Accept-Encoding", "Content-Type", "User-Agent"))

    def update_auto_headers(self, skip_auto_headers) -> None:
        self._skip_auto_headers = self._ADD_NOTHING

    def update_headers(self, headers) -> None:
        """``Host`` (the upstream's, first, as RFC 9110 7.2 asks) then the headers as given,
        copied in one C call: ``Forwarder.send`` never passes a ``Host`` of its own (the
        client's goes on in ``X-Forwarded-Host``), so aiohttp's per-header loop, which only
        special-cases ``Host``, has nothing to do."""
        self.headers = CIMultiDict()
        self.headers["Host"] = self.url.host_port_subcomponent
        if headers:
            self.headers.extend(headers)


class ProxyResponse(aiohttp.ClientResponse):
    """aiohttp's client response, carrying the body ``Forwarder.send`` read (``read_body``:
    None when the body is left to stream)."""

    read_body: bytes | None = None


class Forwarder:
    def __init__(self, *, limit: int = 200):
        self.session = aiohttp.ClientSession(
            auto_decompress=False, cookie_jar=aiohttp.DummyCookieJar(), request_class=ProxyRequest,
            response_class=ProxyResponse,
            timeout=_NO_TIMEOUT, connector=aiohttp.TCPConnector(limit=limit))
        self.timeouts = CoarseTimeouts(asyncio.get_running_loop())
        self._urls: dict[str, URL] = {}

    async def close(self) -> None:
        self.timeouts.close()
        await self.session.close()

    async def send(self, request: web.BaseRequest, base_url: str, path: str, query: str | None, rid: str, *,
                   max_body: int, entry: dict, idempotent: bool, idle_timeout: float | None = None
                   ) -> ProxyResponse:
        """The upstream's response, its head arrived within the current deadline; a body of
        known length up to ``SMALL`` is read too, within the same deadline, so that
        ``relay`` sends it in one write (``idle_timeout`` is for ``relay``'s streaming)."""
        deadline = current_deadline()
        remaining = deadline.remaining() if deadline is not None else None
        if remaining is not None:
            if remaining <= 0:
                raise UpstreamTimeout("the route's deadline passed before the request was sent")
            extra = ((DEADLINE_HEADER, str(int(remaining * 1000))),)
        else:
            extra = ()
        headers = upstream_request_headers(request.headers, remote=request.remote, proto=request.scheme, rid=rid,
                                           extra=extra)
        has_body = request.body_exists
        state = {"too_large": False, "client_error": None, "head": False}
        data = None
        if has_body:  # streamed from the client's connection, counted against max_body
            async def body():
                try:
                    async for chunk in request.content.iter_chunked(CHUNK):
                        entry["bytes_in"] += len(chunk)
                        if entry["bytes_in"] > max_body:
                            state["too_large"] = True
                            raise BodyTooLarge(f"request body over {max_body} bytes")
                        yield chunk
                except BodyTooLarge:
                    raise
                except Exception as exc:  # the client's stream broke, not the upstream
                    state["client_error"] = exc
                    raise
            data = body()

        def client_side():
            if state["too_large"]:
                return BodyTooLarge(f"request body over {max_body} bytes")
            if state["client_error"] is not None:
                exc = state["client_error"]
                return IncompleteBody(f"the request body broke after {entry['bytes_in']} bytes: "
                                      f"{type(exc).__name__}")
            return None
        target = base_url + path + (f"?{query}" if query else "")
        url = self._urls.get(target)
        if url is None:  # parsed once per target: hot paths come back
            if len(self._urls) >= URL_CACHE:
                self._urls.clear()
            url = self._urls[target] = URL(target, encoded=True)
        method = request.method
        timeouts = self.timeouts
        watch = timeouts.start(remaining)  # the deadline, for the head and a small body
        try:
            try:
                upstream = await self.session.request(method, url, headers=headers, data=data,
                                                      allow_redirects=False)
                state["head"] = True
                length = upstream.content_length
                if length is not None and length <= SMALL and method != "HEAD":
                    try:
                        upstream.read_body = await upstream.read()
                    finally:
                        upstream.release()
                return upstream
            except asyncio.CancelledError:
                if timeouts.expired(watch):
                    raise TimeoutError from None
                raise
            finally:
                timeouts.finish(watch)
        except (BodyTooLarge, IncompleteBody):
            raise
        except TimeoutError:
            if client_side() is not None:
                raise client_side() from None
            if state["head"]:
                raise UpstreamTimeout(f"{base_url} did not finish its body within the route's deadline") from None
            raise UpstreamTimeout(f"{base_url} sent no response head within the route's deadline") from None
        except aiohttp.ClientConnectorError as exc:
            if client_side() is not None:
                raise client_side() from None
            raise UpstreamUnavailable(f"{base_url} refused the connection ({exc.os_error or exc})", connect=True,
                                      retryable=not has_body) from None
        except Exception as exc:
            if client_side() is not None:
                raise client_side() from None
            if not isinstance(exc, (aiohttp.ClientError, ConnectionError, OSError)):
                raise
            what = "body" if state["head"] else "request"
            raise UpstreamUnavailable(f"{base_url} failed ({what}): {type(exc).__name__}: {exc}",
                                      retryable=idempotent and not has_body) from None

    async def relay(self, request: web.BaseRequest, upstream: aiohttp.ClientResponse, rid: str, entry: dict, *,
                    idle_timeout: float | None, extra_headers=()) -> web.StreamResponse:
        """The upstream's answer to the client: a body ``send`` already read goes in one
        write; otherwise streamed, each read limited to ``idle_timeout``."""
        if isinstance(extra_headers, dict):
            extra_headers = tuple(extra_headers.items())
        headers = client_response_headers(upstream.headers, rid=rid, extra=extra_headers or ())
        body = getattr(upstream, "read_body", None)
        if body is not None:
            upstream.release()
            entry["bytes_out"] += len(body)
            return web.Response(status=upstream.status, reason=upstream.reason, body=body, headers=headers)
        known = upstream.content_length
        response = web.StreamResponse(status=upstream.status, reason=upstream.reason, headers=headers)
        if known is not None:
            response.content_length = known
        loop = asyncio.get_running_loop()
        try:
            await response.prepare(request)
            if request.method != "HEAD":
                async with asyncio.timeout(None) as scope:
                    while True:
                        if idle_timeout is not None:
                            scope.reschedule(loop.time() + idle_timeout)
                        chunk = await upstream.content.readany()
                        if not chunk:
                            break
                        entry["bytes_out"] += len(chunk)
                        await response.write(chunk)
            await response.write_eof()
        except _TRANSPORT_ERRORS as exc:
            entry["error"] = f"relay aborted: {type(exc).__name__}"
            if request.transport is not None:
                request.transport.close()
        finally:
            upstream.release()
        return response
