"""What a sidecar costs (chapter 7): added latency per hop and the cost of one decision.

Real time, everything on 127.0.0.1 in one process and one event loop (client, proxies and
the demo service share it, so the figures are the *sum* of the CPU each hop spends, which
is what a hop adds on an idle machine): sequential ``GET /stock/apple`` (a closed loop,
one request at a time) through

* ``direct``: the demo service itself;
* ``bare proxy``: an aiohttp handler that forwards with one ``ClientSession`` and nothing else;
* ``inbound sidecar``: ``sidecar_app`` in inbound mode (one hop);
* ``outbound + inbound``: the client's sidecar routing by a VirtualService to the inbound
  sidecar of the instance (Istio's two hops), with a DestinationRule's pool and outlier
  detection active;
* ``outbound + inbound, mTLS``: the same two hops, the one between the sidecars TLS 1.3
  with both certificates verified (the inbound sidecar behind a STRICT ``MeshListener``).

Each candidate takes ``REQUESTS`` requests per round, the candidates taking turns, best of
``ROUNDS`` rounds for each figure (p50, p99, requests/s) separately: load from other
processes inflates a figure rarely and only upwards. Connections are kept alive, so the
mTLS row shows the per-request cost of encryption, not of handshakes.

Then the decision alone: ``Sidecar.handle`` per request with a transport that answers at
once (no network), for the article's corrected configuration (route, split, pool,
balancer, outlier detector, records), in microseconds per request.
"""

from __future__ import annotations

import asyncio
import time

import aiohttp
from aiohttp import web

from workbook.core.realtime import serve
from workbook.core.resources import data_path
from workbook.core.simnet import Request, Response
from workbook.core.stats import quantiles
from workbook.mesh import (Endpoint, MeshCA, MeshListener, Sidecar, WorkloadIdentity, compile_traffic,
                           load_mesh_directory, parse_resources, sidecar_app)
from workbook.transport.demo_service import make_demo_app

REQUESTS = 1000
ROUNDS = 3
DECISIONS = 20_000

CONFIG = """apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: shop, namespace: default}
spec:
  hosts: [shop]
  http:
  - name: stock
    match: [{uri: {prefix: /stock/}}]
    retries: {attempts: 2, retryOn: "5xx"}
    timeout: 5s
    route: [{destination: {host: shop, subset: v1}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: shop, namespace: default}
spec:
  host: shop
  trafficPolicy:
    connectionPool: {tcp: {maxConnections: 100}, http: {http1MaxPendingRequests: 100}}
    outlierDetection: {consecutive5xxErrors: 5, interval: 10s, baseEjectionTime: 30s}
  subsets:
  - {name: v1, labels: {version: v1}}
"""


def bare_proxy(target: str) -> web.Application:
    async def ctx(app):
        async with aiohttp.ClientSession() as session:
            app["session"] = session
            yield

    async def handler(request):
        async with request.app["session"].get(target + request.path_qs) as resp:
            return web.Response(status=resp.status, body=await resp.read(),
                                content_type=resp.content_type)

    app = web.Application()
    app.cleanup_ctx.append(ctx)
    app.router.add_route("*", "/{tail:.*}", handler)
    return app


async def _nothing(endpoint, request):  # replaced by sidecar_app on startup
    raise ConnectionRefusedError


async def _rounds(candidates: dict[str, str]) -> dict[str, list[float]]:
    """[best p50, best p99, best requests/s] per candidate, the candidates taking turns each round."""
    best: dict[str, list[float]] = {}
    async with aiohttp.ClientSession() as session:
        for url in candidates.values():  # warm up connections
            for _ in range(50):
                async with session.get(url + "/stock/apple", headers={"Host": "shop"}) as r:
                    await r.read()
        for _ in range(ROUNDS):
            for name, url in candidates.items():
                times = []
                began = time.perf_counter()
                for _ in range(REQUESTS):
                    t0 = time.perf_counter()
                    async with session.get(url + "/stock/apple", headers={"Host": "shop"}) as r:
                        await r.read()
                        assert r.status == 200, (name, r.status)
                    times.append(time.perf_counter() - t0)
                total = time.perf_counter() - began
                p50, p99 = quantiles(times, (0.5, 0.99))
                old = best.get(name, [float("inf"), float("inf"), 0.0])
                best[name] = [min(old[0], p50), min(old[1], p99), max(old[2], REQUESTS / total)]
    return best


async def _measure() -> list[dict]:
    ca = MeshCA()
    server, client = (WorkloadIdentity.issued_by(ca, "default", sa) for sa in ("shop", "client"))
    async with serve(make_demo_app("shop-v1")) as (demo,):
        inbound = Sidecar("inbound", [Endpoint("app", "app", address=demo)], _nothing, inbound="app",
                          keep_records=False)
        tls_inbound = Sidecar("inbound-tls", [Endpoint("app", "app", address=demo)], _nothing, inbound="app",
                              keep_records=False)
        async with serve(bare_proxy(demo), sidecar_app(inbound)) as (bare, inbound_url), \
                MeshListener(sidecar_app(tls_inbound), server, "STRICT") as listener:
            def outbound(address: str) -> Sidecar:
                return Sidecar("client", [Endpoint("shop-v1", "shop", {"version": "v1"}, address=address)],
                               _nothing, config=parse_resources(CONFIG), keep_records=False)

            async with serve(sidecar_app(outbound(inbound_url)),
                             sidecar_app(outbound(listener.tls_url), client_ssl=client.client_context)
                             ) as (outbound_url, tls_url):
                best = await _rounds({"direct": demo, "bare proxy": bare, "inbound sidecar": inbound_url,
                                      "outbound + inbound": outbound_url, "outbound + inbound, mTLS": tls_url})
    base = best["direct"]
    return [{"path": name, "p50_ms": 1000 * b[0], "p99_ms": 1000 * b[1], "rps": b[2],
             "added_p50_ms": 1000 * (b[0] - base[0]), "added_p99_ms": 1000 * (b[1] - base[1])}
            for name, b in best.items()]


async def _decisions() -> float:
    async def instant(endpoint, request):
        return Response(200, "ok")

    endpoints = [Endpoint(f"order-service-{v}-{i}", "order-service", {"version": v, "app": "order-service"})
                 for v in ("v1", "v2") for i in range(2)]
    sidecar = Sidecar("client", endpoints, instant,
                      config=compile_traffic(load_mesh_directory(data_path("mesh", "corrected"))), keep_records=False)
    best = float("inf")
    for _ in range(3):
        began = time.perf_counter()
        for _ in range(DECISIONS):
            await sidecar.handle(Request("GET", "/api/orders/42", {"host": "shop.example.com"}))
        best = min(best, (time.perf_counter() - began) / DECISIONS)
    return best


def run() -> str:
    rows = asyncio.run(_measure())
    decision = asyncio.run(_decisions())
    out = ["### Sidecar hops (real time, 127.0.0.1, one process, sequential requests, "
           f"{REQUESTS} per round, each figure the best of {ROUNDS} rounds)", "",
           "| path | p50 ms | p99 ms | requests/s | added p50 ms | added p99 ms |",
           "|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        out.append(f"| {r['path']} | {r['p50_ms']:.3f} | {r['p99_ms']:.3f} | {r['rps']:,.0f} | "
                   f"{r['added_p50_ms']:.3f} | {r['added_p99_ms']:.3f} |")
    by = {r["path"]: r for r in rows}
    per_hop = by["inbound sidecar"]["added_p50_ms"]
    bare = by["bare proxy"]["added_p50_ms"]
    out += ["", f"One sidecar hop adds {per_hop:.3f} ms at p50 against {bare:.3f} ms for a bare aiohttp proxy "
                f"({per_hop / bare if bare > 0 else float('nan'):.2f}x); Istio's two hops "
                f"(outbound + inbound) add {by['outbound + inbound']['added_p50_ms']:.3f} ms, "
                f"{by['outbound + inbound, mTLS']['added_p50_ms']:.3f} ms with mutual TLS between the sidecars "
                "(kept-alive connections: no handshake per request).", "",
            f"Decision alone (`Sidecar.handle`, instant transport, the corrected article configuration: route, "
            f"80/20 split, pool, least-request/round-robin balancer, outlier detector): "
            f"**{decision * 1e6:.1f} us** per request (best of 3 x {DECISIONS:,})."]
    return "\n".join(out)


if __name__ == "__main__":
    print(run())
