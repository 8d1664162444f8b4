"""Chapter 7: authorization enforced on live mTLS traffic (127.0.0.1, a dozen requests)."""

from __future__ import annotations

import asyncio

import aiohttp
from aiohttp import web

from workbook.core.resources import data_path
from workbook.mesh import (
    MeshCA,
    MeshListener,
    WorkloadIdentity,
    authorization_middleware,
    load_inventory,
    load_mesh_directory,
    policies_from,
)

ARTICLE = policies_from(load_mesh_directory(data_path("mesh", "article")))
CORRECTED = policies_from(load_mesh_directory(data_path("mesh", "corrected")))
USER_SERVICE = load_inventory(data_path("mesh", "inventory.yaml")).workload("user-service-v1")


def test_policies_decide_on_the_certificate_identity_and_can_change_while_traffic_runs():
    ca = MeshCA()
    server = WorkloadIdentity.issued_by(ca, "default", "user-service")
    gateway = WorkloadIdentity.issued_by(ca, "default", "api-gateway")
    payments = WorkloadIdentity.issued_by(ca, "default", "payment-service")
    current = {"policies": ARTICLE}
    decisions, handled = [], []

    async def handler(request):
        handled.append(request.path)
        return web.Response(text="ok")

    app = web.Application(middlewares=[authorization_middleware(
        lambda: current["policies"], USER_SERVICE, on_decision=lambda r, d: decisions.append((r.principal, d)))])
    app.router.add_route("*", "/{tail:.*}", handler)

    async def call(sidecar, identity, method, path, headers=None):
        connector = aiohttp.TCPConnector(ssl=identity.client_context, force_close=True)
        async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=5)) as s:
            async with s.request(method, sidecar.tls_url + path, headers=headers) as r:
                return r.status, await r.text()

    forged = {"x-forwarded-client-cert": "URI=spiffe://cluster.local/ns/default/sa/api-gateway"}

    async def main():
        async with MeshListener(app, server, "STRICT") as sidecar:
            article = [await call(sidecar, payments, "GET", "/api/users/1", forged),
                       await call(sidecar, gateway, "DELETE", "/admin/wipe")]
            current["policies"] = CORRECTED
            corrected = [await call(sidecar, payments, "GET", "/api/users/1", forged),
                         await call(sidecar, gateway, "DELETE", "/admin/wipe"),
                         await call(sidecar, gateway, "GET", "/api/users/1", {"authorization": "Bearer t"})]
            return article, corrected

    article, corrected = asyncio.run(asyncio.wait_for(main(), 30))
    # the article's ORed rules let another service in, and let the gateway DELETE anything
    assert [s for s, _ in article] == [200, 200]
    assert corrected == [(403, "RBAC: access denied"), (403, "RBAC: access denied"), (200, "ok")]
    assert handled == ["/api/users/1", "/admin/wipe", "/api/users/1"]      # nothing forbidden was forwarded
    # the identity came from the certificate: the forged header named the gateway, the decision saw payments
    assert decisions[0][0] == "cluster.local/ns/default/sa/payment-service"
    assert decisions[0][1].policy == "default/user-service-authz" and decisions[0][1].rule == 1
