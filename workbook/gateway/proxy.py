"""Forwarding one request upstream and relaying the answer, both bodies streamed.

``Forwarder.send`` builds the upstream request: end-to-end headers only (``headers``),
``Host`` set to the upstream's (the client's goes on in ``X-Forwarded-Host``), forwarding
headers appended, ``X-Request-Id``, the remaining deadline in
``x-envoy-expected-rq-timeout-ms`` (replacing any the client sent: a client does not set
the gateway's internal deadlines), ``Expect`` dropped (the gateway's server answered it),
and the body passed chunk by chunk from the client's stream (never read whole; counted
against ``max_body``: over it, ``BodyTooLarge``). It returns once the response *head* has
arrived, within the remaining deadline (else ``UpstreamTimeout``); a refused connection,
a reset or an early close is ``UpstreamUnavailable``.

``Forwarder.relay`` streams the response back: end-to-end headers, ``Content-Length``
kept when the upstream gave one (else chunked; a body of known length up to ``SMALL``,
64 KiB, is read and sent with the head in one write: bounded memory, fewer syscalls), ``Content-Encoding`` untouched (the
client session never decompresses), the route's timeout as the idle limit between reads
(the session's ``sock_read``). A failure after the
head was sent cannot become a 502 any more: the connection is closed so that a truncated
body never looks complete.

The client session keeps no cookies (``DummyCookieJar``: one user's ``Set-Cookie`` must
never be replayed for another) and adds no headers of its own.
"""

from __future__ import annotations

import asyncio

import aiohttp
from aiohttp import web
from yarl import URL

from workbook.gateway.errors import BodyTooLarge, IncompleteBody, UpstreamTimeout, UpstreamUnavailable
from workbook.gateway.headers import REQUEST_ID_HEADER, add_forwarding_headers, end_to_end
from workbook.resilience.deadline import DEADLINE_HEADER, current_deadline

CHUNK = 64 * 1024
SMALL = 64 * 1024
"""A response of known length up to this is read and sent in one write; longer or unknown: streamed."""


class Forwarder:
    def __init__(self, *, limit: int = 200):
        self.session = aiohttp.ClientSession(
            auto_decompress=False, cookie_jar=aiohttp.DummyCookieJar(),
            skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
            connector=aiohttp.TCPConnector(limit=limit))
        self._timeouts: dict[float | None, aiohttp.ClientTimeout] = {}

    def _timeout(self, idle: float | None) -> aiohttp.ClientTimeout:
        found = self._timeouts.get(idle)
        if found is None:
            found = self._timeouts[idle] = aiohttp.ClientTimeout(total=None, sock_read=idle)
        return found

    async def close(self) -> None:
        await self.session.close()

    async def send(self, request: web.BaseRequest, base_url: str, path: str, query: str | None, rid: str, *,
                   max_body: int, entry: dict, idempotent: bool, idle_timeout: float | None = None
                   ) -> aiohttp.ClientResponse:
        headers = end_to_end(request.headers, drop=("Host", "Expect", DEADLINE_HEADER, REQUEST_ID_HEADER))
        add_forwarding_headers(headers, remote=request.remote, proto=request.scheme,
                               host=request.headers.get("Host"))
        headers[REQUEST_ID_HEADER] = rid
        deadline = current_deadline()
        remaining = deadline.remaining() if deadline is not None else None
        if remaining is not None:
            if remaining <= 0:
                raise UpstreamTimeout("the route's deadline passed before the request was sent")
            headers[DEADLINE_HEADER] = str(int(remaining * 1000))
        state = {"too_large": False, "client_error": None}
        data = None
        if request.body_exists:
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
        url = URL(base_url + path + (f"?{query}" if query else ""), encoded=True)
        try:
            async with asyncio.timeout(remaining):
                return await self.session.request(request.method, url, headers=headers, data=data,
                                                  allow_redirects=False, timeout=self._timeout(idle_timeout))
        except (BodyTooLarge, IncompleteBody):
            raise
        except TimeoutError:
            if client_side() is not None:
                raise client_side() from None
            raise UpstreamTimeout(f"{base_url} sent no response head within the route's deadline") from None
        except aiohttp.ClientConnectorError as exc:
            if client_side() is not None:
                raise client_side() from None
            raise UpstreamUnavailable(f"{base_url} refused the connection ({exc.os_error or exc})", connect=True,
                                      retryable=not request.body_exists) from None
        except Exception as exc:
            if client_side() is not None:
                raise client_side() from None
            if not isinstance(exc, (aiohttp.ClientError, ConnectionError, OSError)):
                raise
            raise UpstreamUnavailable(f"{base_url} failed: {type(exc).__name__}: {exc}",
                                      retryable=idempotent and not request.body_exists) from None

    async def relay(self, request: web.BaseRequest, upstream: aiohttp.ClientResponse, rid: str, entry: dict, *,
                    idle_timeout: float, extra_headers=None) -> web.StreamResponse:
        """The upstream's answer to the client. Reads between chunks are limited by the
        session's ``sock_read`` (the route's timeout, set by ``send``)."""
        headers = end_to_end(upstream.headers)
        headers[REQUEST_ID_HEADER] = rid
        if extra_headers:
            headers.update(extra_headers)
        length = upstream.headers.get("Content-Length")
        known = int(length) if length is not None and length.isdigit() else None
        if known is not None and known <= SMALL and request.method != "HEAD":
            # a small body of known length: read it and send head and body in one write
            try:
                body = await upstream.read()
            except (TimeoutError, aiohttp.ClientError, ConnectionError, OSError) as exc:
                raise UpstreamUnavailable(f"upstream body failed: {type(exc).__name__}") from None
            finally:
                upstream.release()
            headers.popall("Content-Length", None)
            entry["bytes_out"] += len(body)
            return web.Response(status=upstream.status, reason=upstream.reason, body=body, headers=headers)
        headers.popall("Content-Length", None)
        response = web.StreamResponse(status=upstream.status, reason=upstream.reason, headers=headers)
        if known is not None:
            response.content_length = known
        try:
            await response.prepare(request)
            if request.method != "HEAD":
                while True:
                    chunk = await upstream.content.readany()
                    if not chunk:
                        break
                    entry["bytes_out"] += len(chunk)
                    await response.write(chunk)
            await response.write_eof()
        except (TimeoutError, aiohttp.ClientError, ConnectionError, OSError) as exc:
            entry["error"] = f"relay aborted: {type(exc).__name__}"
            if request.transport is not None:
                request.transport.close()
        finally:
            upstream.release()
        return response
