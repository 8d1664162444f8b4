"""The same Sidecar as real aiohttp proxies on 127.0.0.1: one beside each demo instance, one beside the client.

Real time, bounded: a few dozen requests, each test well under a few seconds.
"""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest

from workbook.core.external import free_port
from workbook.core.realtime import serve
from workbook.mesh import (Endpoint, MeshCA, MeshConfigError, MeshListener, Sidecar, Workload, WorkloadIdentity,
                           authorization_middleware, parse_resources, policies_from, sidecar_app)
from workbook.transport.demo_service import COUNTS, FAULTS, make_demo_app

HEADER = "apiVersion: networking.istio.io/v1\nkind: {kind}\nmetadata: {{name: {name}, namespace: default}}\nspec:\n"


def config(http: str, weights=(100, 0)):
    route = ("    - {destination: {host: shop}}\n" if weights is None else
             f"    - {{destination: {{host: shop, subset: v1}}, weight: {weights[0]}}}\n"
             f"    - {{destination: {{host: shop, subset: v2}}, weight: {weights[1]}}}\n")
    return parse_resources(
        HEADER.format(kind="VirtualService", name="vs") + f"""  hosts: [shop]
  http:
  - name: stock
    match: [{{uri: {{prefix: /stock/}}}}]
{http}    route:
{route}---
""" + HEADER.format(kind="DestinationRule", name="dr") + """  host: shop
  trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
""", "live.yaml")


async def _unused(*_):  # the proxy app installs the real transport on startup
    raise ConnectionRefusedError("not started")


class Mesh:
    """Two demo instances (v1, v2), an inbound sidecar beside each, an outbound one for the client."""

    def __init__(self, http="", weights=(100, 0), inbound_middlewares=()):
        self.demo = {v: make_demo_app(f"shop-{v}", seed=i) for i, v in enumerate(("v1", "v2"))}
        self.http, self.weights, self.inbound_middlewares = http, weights, inbound_middlewares

    async def __aenter__(self):
        self._demo = serve(*self.demo.values())
        demo_urls = await self._demo.__aenter__()
        self.inbound = {v: Sidecar(f"shop-{v}-sidecar", [Endpoint("app", "app", address=url)], _unused, inbound="app")
                        for v, url in zip(self.demo, demo_urls)}
        self._inbound = serve(*(sidecar_app(s, middlewares=self.inbound_middlewares) for s in self.inbound.values()))
        inbound_urls = await self._inbound.__aenter__()
        endpoints = [Endpoint(f"shop-{v}", "shop", {"version": v}, address=url)
                     for v, url in zip(self.demo, inbound_urls)]
        self.client_sidecar = Sidecar("client-sidecar", endpoints, _unused, config=config(self.http, self.weights),
                                      seed=1)
        self._outbound = serve(sidecar_app(self.client_sidecar))
        (self.url,) = await self._outbound.__aenter__()
        self.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        return self

    async def __aexit__(self, *exc):
        await self.session.close()
        for ctx in (self._outbound, self._inbound, self._demo):
            await ctx.__aexit__(*exc)

    async def get(self, path="/stock/apple", host="shop"):
        async with self.session.get(self.url + path, headers={"Host": host}) as resp:
            body = await resp.read()
            return resp.status, body


def served_by(body: bytes) -> str:
    import json
    return json.loads(body)["service"]


def test_live_routing_and_a_weight_change_while_traffic_runs():
    async def main():
        async with Mesh() as m:
            results = []

            async def traffic():
                for i in range(30):
                    results.append((i, *(await m.get())))

            async def switch():
                while len(results) < 10:
                    await asyncio.sleep(0.001)
                m.client_sidecar.apply(m.client_sidecar.config.with_weights("stock", {"v1": 0, "v2": 100}))
                return len(results)

            _, switched_at = await asyncio.gather(traffic(), switch())
            return results, switched_at, m.client_sidecar.records, m.inbound["v1"].records

    results, switched_at, records, inbound_v1 = asyncio.run(main())
    assert all(status == 200 for _, status, _ in results)
    before = [served_by(b) for i, _, b in results if i < 10]
    after = [served_by(b) for i, _, b in results if i > switched_at]
    assert set(before) == {"shop-v1"} and after and set(after) == {"shop-v2"}
    assert len(inbound_v1) <= switched_at + 1  # v1's own sidecar saw nothing after the switch


def test_live_retries_go_around_a_failing_instance():
    async def main():
        async with Mesh('    retries: {attempts: 2, retryOn: "5xx"}\n', weights=None) as m:
            m.demo["v1"][FAULTS].update({"error_rate": 1.0})
            statuses = [(await m.get())[0] for _ in range(20)]
            return statuses, m.client_sidecar.records

    statuses, records = asyncio.run(main())
    assert statuses == [200] * 20
    retried = [r for r in records if r.tries > 1]
    # round robin: every request starts on the next host, v1; its retry avoids v1 and reaches v2
    assert len(retried) == 20 and all(r.host == "shop-v2" and r.tries == 2 for r in retried)


def test_live_per_try_timeout_and_no_route_and_dead_endpoint():
    async def main():
        async with Mesh("    timeout: 300ms\n    retries: {attempts: 1, perTryTimeout: 100ms, retryOn: 5xx}\n") as m:
            m.demo["v1"][FAULTS].update({"latency": 1.0})
            began = time.monotonic()
            status, _ = await m.get()
            elapsed = time.monotonic() - began
            no_route = await m.get("/orders")
            dead_address = f"http://127.0.0.1:{free_port()}"
            m.client_sidecar.set_endpoints([Endpoint("shop-v1", "shop", {"version": "v1"}, address=dead_address)])
            dead = await m.get()
            m.demo["v1"][FAULTS].update({"latency": 0.0})
            return status, elapsed, no_route, dead, m.client_sidecar.records

    status, elapsed, no_route, dead, records = asyncio.run(main())
    assert status == 504 and records[0].flags == "UT,URX" and records[0].tries == 2 and elapsed < 0.9
    assert no_route[0] == 404 and records[1].flags == "NR"
    assert dead[0] == 503 and b"connection failure" in dead[1] and records[2].flags.startswith("UF")


def test_live_sidecar_answers_garbage_with_400_and_keeps_serving():
    async def main():
        async with Mesh() as m:
            host, port = m.url.removeprefix("http://").split(":")
            reader, writer = await asyncio.open_connection(host, int(port))
            writer.write(b"GARBAGE \x00\x01 nonsense\r\n\r\n")
            await writer.drain()
            first_line = await asyncio.wait_for(reader.readline(), 5)
            writer.close()
            ok = await m.get()
            return first_line, ok

    first_line, ok = asyncio.run(main())
    assert b" 400 " in first_line
    assert ok[0] == 200


def test_live_apply_refuses_an_invalid_configuration_and_keeps_routing():
    async def main():
        async with Mesh() as m:
            before = m.client_sidecar.config
            with pytest.raises(MeshConfigError):
                m.client_sidecar.apply(config("    retries: {attempts: -1}\n"))
            assert m.client_sidecar.config is before
            return await m.get()

    assert asyncio.run(main())[0] == 200


AUTHZ = """apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: shop-read-only, namespace: default}
spec:
  selector: {matchLabels: {app: shop}}
  action: ALLOW
  rules:
  - to:
    - operation: {methods: [GET], paths: ["/stock/*"]}
"""


def test_live_inbound_sidecar_forwards_nothing_its_authorization_policy_forbids():
    policies = policies_from(parse_resources(AUTHZ))
    guard = authorization_middleware(policies, Workload("shop", "default", {"app": "shop"}))

    async def main():
        async with Mesh(inbound_middlewares=[guard]) as m:
            read = await m.get()
            async with m.session.post(m.url + "/stock/apple", headers={"Host": "shop"}) as resp:
                write = resp.status, await resp.text()
            return read[0], write, m.demo["v1"][COUNTS]["stock"], m.inbound["v1"].records

    read, write, handled, inbound_records = asyncio.run(main())
    assert read == 200 and write[0] == 403 and "RBAC" in write[1]
    assert handled == 1 and len(inbound_records) == 1  # the POST never reached the sidecar's router nor the app


def test_live_sidecar_to_sidecar_over_mtls_identity_from_the_certificate():
    """Outbound sidecars with workload certificates -> an inbound sidecar behind a STRICT MeshListener."""
    frontend_only = "  - from:\n    - source: {principals: [cluster.local/ns/default/sa/frontend]}\n    to:\n"
    policy = AUTHZ.replace("  - to:\n", frontend_only)
    ca = MeshCA()
    server = WorkloadIdentity.issued_by(ca, "default", "shop")
    callers = {sa: WorkloadIdentity.issued_by(ca, "default", sa) for sa in ("frontend", "intruder")}
    workload = Workload("shop", "default", {"app": "shop"})
    guard = authorization_middleware(policies_from(parse_resources(policy)), workload)

    async def main():
        async with serve(make_demo_app("shop-v1")) as (demo,):
            inbound = Sidecar("shop-v1-sidecar", [Endpoint("app", "app", address=demo)], _unused, inbound="app")
            async with MeshListener(sidecar_app(inbound, middlewares=[guard]), server, "STRICT") as listener:
                endpoint = [Endpoint("shop-v1", "shop", {"version": "v1"}, address=listener.tls_url)]
                outbound = {sa: Sidecar(sa, endpoint, _unused, config=config("")) for sa in callers}
                plaintext = Sidecar("plain", [Endpoint("shop-v1", "shop", {"version": "v1"}, address=listener.url)],
                                    _unused, config=config(""))
                apps = [sidecar_app(outbound[sa], client_ssl=callers[sa].client_context) for sa in callers]
                async with serve(*apps, sidecar_app(plaintext)) as urls, aiohttp.ClientSession() as session:
                    out = {}
                    for name, url in zip([*callers, "plaintext"], urls):
                        async with session.get(url + "/stock/apple", headers={"Host": "shop"}) as resp:
                            out[name] = resp.status, await resp.text()
                    return out, [r.kind for r in listener.refusals], len(inbound.records)

    out, refusals, forwarded = asyncio.run(main())
    assert out["frontend"][0] == 200
    assert out["intruder"][0] == 403 and "RBAC" in out["intruder"][1]  # identity read from its certificate
    # STRICT refuses it before HTTP; one try is one connection (aiohttp's own re-send is off)
    assert out["plaintext"][0] == 503 and refusals == ["plaintext"]
    assert forwarded == 1                                                # only the frontend's request
