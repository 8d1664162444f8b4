"""Authorization enforced on live HTTP traffic: the sidecar's RBAC filter as aiohttp middleware.

``authz_request_from_http(request)`` builds the ``AuthzRequest`` a sidecar sees: method,
path, host, destination port and headers from the HTTP request, and the peer's identity
from the *verified certificate* of the connection (``peer_principal``), never from a
header such as ``x-forwarded-client-cert``, which a client could write itself.

``authorization_middleware(policies, workload)`` refuses what the policies refuse with
Envoy's answer (403, body ``RBAC: access denied``) before the handler runs, so nothing
forbidden is forwarded. ``policies`` may be a list or a function returning the current
list: configuration changed while traffic runs applies to the next request.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Union

from aiohttp import web

from workbook.mesh.analysis import Workload
from workbook.mesh.authz import AuthzDecision, AuthzPolicy, AuthzRequest, evaluate_authorization
from workbook.mesh.mtls import peer_principal

PolicySource = Union[Iterable[AuthzPolicy], Callable[[], Iterable[AuthzPolicy]]]


def authz_request_from_http(request: web.Request, *, port: int | None = None) -> AuthzRequest:
    """The ``AuthzRequest`` for an aiohttp request; identity from the TLS peer certificate only."""
    sockname = request.transport.get_extra_info("sockname") if request.transport else None
    peer = request.transport.get_extra_info("peername") if request.transport else None
    return AuthzRequest(
        method=request.method, path=request.path_qs, host=request.host or "",
        port=port if port is not None else (sockname[1] if sockname else 0),
        headers={k.lower(): v for k, v in request.headers.items()},
        principal=peer_principal(request.transport),
        source_ip=peer[0] if peer else "", destination_ip=sockname[0] if sockname else "")


def authorization_middleware(policies: PolicySource, workload: Workload, *, root_namespace: str = "istio-system",
                             on_decision: Callable[[AuthzRequest, AuthzDecision], None] | None = None):
    """aiohttp middleware deciding every request with Istio's semantics before the handler runs."""

    @web.middleware
    async def middleware(request: web.Request, handler):
        current = policies() if callable(policies) else policies
        authz = authz_request_from_http(request)
        decision = evaluate_authorization(current, authz, workload, root_namespace=root_namespace)
        if on_decision is not None:
            on_decision(authz, decision)
        if not decision.allowed:
            return web.Response(status=403, text="RBAC: access denied")
        return await handler(request)

    return middleware
