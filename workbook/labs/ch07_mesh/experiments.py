"""Chapter 7's experiments: the article's mesh configuration checked, evaluated and run.

Every function returns plain data (lists of dicts, counters) for the notebook to print and
plot; nothing here draws.

* ``validation_rows(version)``: what the strict schema validation and the
  ``istioctl analyze`` checks say about ``data/mesh/<version>/`` ("article" or "corrected").
* ``request_grid()``: the requests the two AuthorizationPolicies are judged on: every
  caller (api-gateway, user-service, payment-service, a plaintext client) x method x path x
  header variant, for user-service and for order-service.
* ``intended(target, request)``: what the article's author meant each policy to do (the
  policy read as one sentence: *only these callers, with these methods, on these paths,
  carrying this header*).
* ``authorization_rows(policies)`` / ``compare_policies()``: the decision of a policy set
  on every request of the grid, with the policy and rule that decided, next to the
  intention; ``unintended_admissions()`` the requests the article lets in that its author
  meant to refuse, with the rule responsible.
* ``mtls_mode_matrix()`` (async, real time on 127.0.0.1): STRICT, PERMISSIVE and DISABLE
  against a plaintext client, a mesh client, a client whose certificate comes from another
  CA and one whose certificate has expired: who gets in, and the reason for each refusal.
* ``rotation_run()`` (async, real time): certificates rotated while a client keeps calling.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

import aiohttp
from aiohttp import web

from workbook.core.resources import data_path
from workbook.mesh import (
    AuthzPolicy,
    AuthzRequest,
    IstioSchemas,
    MeshCA,
    MeshListener,
    WorkloadIdentity,
    analyze,
    bundled_schemas,
    evaluate_authorization,
    load_inventory,
    load_mesh_directory,
    peer_principal,
    policies_from,
)
from workbook.mesh.mtls import utc_now

VERSIONS = ("article", "corrected")
GATEWAY = "cluster.local/ns/default/sa/api-gateway"
USER_SVC = "cluster.local/ns/default/sa/user-service"
PAYMENT_SVC = "cluster.local/ns/default/sa/payment-service"
CALLERS = {"api-gateway": GATEWAY, "user-service": USER_SVC, "payment-service": PAYMENT_SVC, "plaintext": None}
METHODS = ("GET", "POST", "DELETE")


@dataclass(frozen=True)
class GridTarget:
    """A workload the grid calls: its inventory name, paths, and the header its policy checks."""

    workload: str
    paths: tuple[str, ...]
    header: str
    header_values: tuple[str | None, ...]


TARGETS = {
    "user-service": GridTarget("user-service-v1", ("/api/users", "/api/users/42", "/admin/users"),
                           "authorization", (None, "Bearer eyJhbGciOi", "Basic dXNlcjpwdw==")),
    "order-service": GridTarget("order-service-v1", ("/api/orders", "/api/orders/7", "/internal/reindex"),
                            "x-user-id", (None, "", "u-42")),
}


def mesh_resources(version: str):
    if version not in VERSIONS:
        raise ValueError(f"version {version!r}: expected one of {VERSIONS}")
    return load_mesh_directory(data_path("mesh", version))


def inventory():
    return load_inventory(data_path("mesh", "inventory.yaml"))


def validation_rows(version: str, schemas: IstioSchemas | None = None) -> list[dict]:
    """Schema findings then analysis findings for one version, one row per finding."""
    resources = mesh_resources(version)
    report = (schemas or bundled_schemas()).validate_all(resources)
    rows = []
    for check, findings in (("schema", report.findings), ("analyze", analyze(resources, inventory()))):
        for f in findings:
            rows.append({"check": check, "file": f.source.rsplit("/", 2)[-1] if "/" in f.source else f.source,
                         "line": f.line, "resource": f.resource, "severity": f.severity, "code": f.code,
                         "path": f.path, "message": f.message})
    return rows


def request_grid() -> list[tuple[str, AuthzRequest]]:
    """(target, request) for every caller x method x path x header value: 108 per target."""
    grid = []
    for target, t in TARGETS.items():
        for principal in CALLERS.values():
            for method in METHODS:
                for path in t.paths:
                    for value in t.header_values:
                        headers = {} if value is None else {t.header: value}
                        grid.append((target, AuthzRequest(method, path, host=target, port=8080,
                                                          headers=headers, principal=principal)))
    return grid


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root + "/")


def intended(target: str, request: AuthzRequest) -> bool:
    """What the article's author meant: every condition of the policy at once.

    user-service: only the api-gateway, GET or POST, on /api/users or below, with a bearer
    token. order-service: only the api-gateway or user-service, GET/POST/PUT/DELETE, on
    /api/orders or below, with a non-empty x-user-id.
    """
    if target == "user-service":
        auth = request.header("authorization") or ""
        return (request.principal == GATEWAY and request.method in ("GET", "POST")
                and _under(request.path, "/api/users") and auth.startswith("Bearer ") and len(auth) > 7)
    if target == "order-service":
        return (request.principal in (GATEWAY, USER_SVC) and request.method in ("GET", "POST", "PUT", "DELETE")
                and _under(request.path, "/api/orders") and bool(request.header("x-user-id")))
    raise ValueError(f"target {target!r}: expected one of {sorted(TARGETS)}")


def authorization_rows(policies: Iterable[AuthzPolicy], grid=None) -> list[dict]:
    """One row per request of the grid: caller, request, intended and actual decision, who decided."""
    policies = list(policies)
    inv = inventory()
    rows = []
    for target, request in grid or request_grid():
        decision = evaluate_authorization(policies, request, inv.workload(TARGETS[target].workload))
        header = TARGETS[target].header
        rows.append({
            "target": target,
            "caller": next(k for k, v in CALLERS.items() if v == request.principal),
            "method": request.method, "path": request.path,
            "header": ("(absent)" if request.header(header) is None
                                            else f"{header}: {request.header(header)!r}"),
            "intended": "ALLOW" if intended(target, request) else "DENY",
            "decision": "ALLOW" if decision.allowed else "DENY",
            "decided_by": (f"{decision.policy} rule {decision.rule}" if decision.policy else decision.action),
        })
    return rows


def compare_policies() -> dict[str, dict]:
    """For the article's and the corrected policies: how many grid decisions match the intent."""
    out = {}
    for version in VERSIONS:
        rows = authorization_rows(policies_from(mesh_resources(version)))
        per_target = {}
        for target in TARGETS:
            mine = [r for r in rows if r["target"] == target]
            per_target[target] = {
                "requests": len(mine),
                "intended_allows": sum(r["intended"] == "ALLOW" for r in mine),
                "allowed": sum(r["decision"] == "ALLOW" for r in mine),
                "wrongly_allowed": sum(r["decision"] == "ALLOW" and r["intended"] == "DENY" for r in mine),
                "wrongly_denied": sum(r["decision"] == "DENY" and r["intended"] == "ALLOW" for r in mine),
            }
        out[version] = per_target
    return out


def unintended_admissions(version: str = "article") -> list[dict]:
    """The requests a version allows that its author meant to refuse, with the deciding rule."""
    rows = authorization_rows(policies_from(mesh_resources(version)))
    return [r for r in rows if r["decision"] == "ALLOW" and r["intended"] == "DENY"]


def admissions_by_rule(version: str = "article") -> dict[str, int]:
    """How many unintended admissions each rule is responsible for."""
    return dict(sorted(Counter(r["decided_by"] for r in unintended_admissions(version)).items()))


# ---- real time, 127.0.0.1 ----

def _peer_app() -> web.Application:
    async def handler(request):
        return web.json_response({"peer": peer_principal(request.transport)})
    app = web.Application()
    app.router.add_get("/", handler)
    return app


async def _try(url: str, context) -> str:
    connector = aiohttp.TCPConnector(ssl=context if context is not None else False, force_close=True)
    try:
        async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=5)) as s, \
                s.get(url) as r:
            body = await r.json()
            return f"{r.status} peer={body['peer'] or '(none: plaintext)'}"
    except (TimeoutError, aiohttp.ClientError, OSError) as exc:
        return f"failed ({type(exc).__name__})"


async def mtls_mode_matrix() -> list[dict]:
    """Each PeerAuthentication mode against four clients: the outcome and the listener's reason."""
    ca = MeshCA()
    server = WorkloadIdentity.issued_by(ca, "default", "order-service")
    clients = {
        "plaintext": None,
        "mesh mTLS (api-gateway)": WorkloadIdentity.issued_by(ca, "default", "api-gateway"),
        "certificate from another CA": WorkloadIdentity(MeshCA().issue("default", "api-gateway"), ca.root_pem),
        "expired certificate": WorkloadIdentity.issued_by(
            ca, "default", "api-gateway", not_before=utc_now() - dt.timedelta(hours=2), ttl=dt.timedelta(hours=1)),
    }
    rows = []
    for mode in ("STRICT", "PERMISSIVE", "DISABLE"):
        async with MeshListener(_peer_app(), server, mode) as sidecar:
            for name, identity in clients.items():
                before = len(sidecar.refusals)
                url = (sidecar.url if identity is None else sidecar.tls_url) + "/"
                outcome = await _try(url, identity.client_context if identity else None)
                await asyncio.sleep(0.02)  # let the listener record a refusal
                reasons = sorted({r.reason for r in sidecar.refusals[before:]})
                rows.append({"mode": mode, "client": name, "outcome": outcome,
                             "refused_because": "; ".join(reasons)})
    return rows


async def rotation_run(calls: int = 40, rotations: int = 4) -> dict:
    """A client calls ``calls`` times over mTLS while both certificates rotate ``rotations`` times."""
    ca = MeshCA()
    server = WorkloadIdentity.issued_by(ca, "default", "order-service", ttl=dt.timedelta(minutes=5))
    client = WorkloadIdentity.issued_by(ca, "default", "api-gateway", ttl=dt.timedelta(minutes=5))
    statuses: Counter[str] = Counter()
    done = asyncio.Event()
    async with MeshListener(_peer_app(), server, "STRICT") as sidecar:
        connector = aiohttp.TCPConnector(ssl=client.client_context, force_close=True)
        async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=5)) as s:
            async def caller():
                for _ in range(calls):
                    try:
                        async with s.get(sidecar.tls_url + "/") as r:
                            await r.read()
                            statuses[str(r.status)] += 1
                    except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                        statuses[type(exc).__name__] += 1
                done.set()

            async def rotator():
                for i in range(rotations):
                    if done.is_set():
                        break
                    await asyncio.sleep(0.01)
                    who, sa = (server, "order-service") if i % 2 else (client, "api-gateway")
                    who.rotate(ca.issue("default", sa, ttl=dt.timedelta(minutes=5)))

            await asyncio.gather(caller(), rotator())
        refusals = len(sidecar.refusals)
    return {"calls": calls, "statuses": dict(statuses), "server_rotations": server.rotations,
            "client_rotations": client.rotations, "refused_connections": refusals}
