"""The same ``Sidecar`` as a real HTTP proxy: an aiohttp server beside a service instance.

``sidecar_app(sidecar)`` answers every method and path by ``sidecar.handle``; its
transport is ``http_transport(session)``, real HTTP to each ``Endpoint.address``
(``http://127.0.0.1:PORT``), created on the app's startup and closed on cleanup. Serve it
with ``workbook.core.realtime.serve``. Routing, retries, timeouts, faults, pools and outlier
detection are the sidecar's, unchanged; only the clock is the loop's real one.

Errors of the real network are mapped to what Envoy distinguishes: a refused or
unreachable connect is a connect failure (``ConnectionRefusedError``), a connection closed
before the response (server disconnected, payload cut) a reset (``ConnectionResetError``).
Hop-by-hop headers (RFC 9110 section 7.6.1) are not forwarded either way. A request the
proxy cannot read is a 400; an unexpected error a 500 naming it; the proxy keeps serving.
Extra aiohttp ``middlewares`` (e.g. ``authorization_middleware`` from ``enforce``) run
before the sidecar, so a request they refuse is never forwarded. With ``client_ssl`` (a
workload's mTLS client context) and the inbound app served by a ``MeshListener``, the hop
between sidecars is TLS 1.3 verified on both sides and the inbound side reads the caller's
identity from its certificate.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Iterable

import aiohttp
from aiohttp import web

from workbook.core.simnet import Request, Response
from workbook.mesh.sidecar import Endpoint, Sidecar, Transport

_HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
                        "transfer-encoding", "upgrade", "content-length", "host"})
SIDECAR = web.AppKey("sidecar", Sidecar)


def http_transport(session: aiohttp.ClientSession) -> Transport:
    """Send a ``Request`` to ``endpoint.address`` over real HTTP with ``session``."""

    async def send(endpoint: Endpoint, request: Request) -> Response:
        if not endpoint.address:
            raise ConnectionRefusedError(f"endpoint {endpoint.name} has no address")
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
        body = request.body
        if body is not None and not isinstance(body, (bytes, str)):
            body, headers = json.dumps(body).encode(), {**headers, "content-type": "application/json"}
        try:
            async with session.request(request.method, endpoint.address.rstrip("/") + request.path,
                                       headers=headers, data=body, allow_redirects=False) as resp:
                content = await resp.read()
                out = {k.lower(): v for k, v in resp.headers.items() if k.lower() not in _HOP_BY_HOP}
                return Response(resp.status, content, out)
        except aiohttp.ClientConnectorError as exc:
            raise ConnectionRefusedError(f"{endpoint.address}: {exc}") from None
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError, aiohttp.ClientOSError) as exc:
            raise ConnectionResetError(f"{endpoint.address}: {type(exc).__name__}: {exc}") from None

    return send


def sidecar_app(sidecar: Sidecar, *, middlewares: Iterable = (), client_ssl: ssl.SSLContext | None = None
                ) -> web.Application:
    """An aiohttp app proxying every request through ``sidecar`` (its transport set to real HTTP).

    ``client_ssl``: the TLS context its upstream connections use, e.g. a
    ``WorkloadIdentity.client_context`` so that sidecar-to-sidecar traffic is mutual TLS
    (endpoints then have ``https://`` addresses, the inbound side a ``MeshListener``).
    """

    async def session_ctx(app: web.Application):
        connector = aiohttp.TCPConnector(ssl=client_ssl if client_ssl is not None else False)
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None), connector=connector,
                                         auto_decompress=False) as session:
            # aiohttp re-sends an idempotent request once when the server drops the connection
            # (RFC 9112 section 9.3.1); a try must be one attempt, retries are the sidecar's.
            if hasattr(session, "_retry_connection"):
                session._retry_connection = False
            sidecar.transport = http_transport(session)
            yield

    async def handler(request: web.Request) -> web.StreamResponse:
        try:
            body = await request.read()
        except Exception as exc:  # a body the client never finished, a bad chunked encoding
            return web.Response(status=400, text=f"bad request body: {type(exc).__name__}")
        headers: dict[str, str] = {}
        for k, v in request.headers.items():
            k = k.lower()
            headers[k] = f"{headers[k]},{v}" if k in headers else v
        response = await sidecar.handle(Request(request.method, request.path_qs, headers, body or None,
                                                request.remote or ""))
        payload = response.body
        if payload is None:
            payload = b""
        elif isinstance(payload, str):
            payload = payload.encode()
        elif not isinstance(payload, bytes):
            payload = json.dumps(payload).encode()
            response.headers.setdefault("content-type", "application/json")
        out = {k: v for k, v in response.headers.items() if k.lower() not in _HOP_BY_HOP}
        return web.Response(status=response.status, body=payload, headers=out)

    app = web.Application(middlewares=list(middlewares))
    app[SIDECAR] = sidecar
    app.cleanup_ctx.append(session_ctx)
    app.router.add_route("*", "/{tail:.*}", handler)
    return app
