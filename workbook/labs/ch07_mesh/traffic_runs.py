"""Chapter 7 lab: the corrected Istio configuration *executed* by sidecars, in virtual time.

Every function returns plain data (dicts, lists of rows) for the notebook; all runs are
seeded and deterministic. The mesh is the article's shop: ``order-service`` v1 (two
instances) and v2 (one), ``user-service`` and ``payment-service``, each instance a node
of a ``SimNetwork``; the client's ``Sidecar`` applies ``data/mesh/corrected``.

* ``split_run``: the 80/20 orders split measured against its binomial 99 % interval;
* ``retry_rows``: one crafted upstream per row through each ``retryOn`` condition;
* ``outlier_run``: one instance of order-service v1 starts failing; when Envoy's outlier
  detection ejects it, when it comes back, and the error rate per second around it;
* ``pool_run``: a burst against ``maxConnections`` / ``http1MaxPendingRequests``: how many
  are served, queued, refused with 503 ``UO``;
* ``canary_run``: the progressive canary (5, 25, 50, 100 %) with a healthy, an erroring or
  a slow v2, analysed as Flagger does; the weights over time and every analysis.
"""

from __future__ import annotations

import asyncio
import math
from collections import Counter

from workbook.core.errors import ParameterError
from workbook.core.load import open_loop
from workbook.core.resources import data_path
from workbook.core.seeds import stream
from workbook.core.simnet import Request, Response, SimNetwork
from workbook.core.stats import quantile
from workbook.core.virtual_time import run_virtual
from workbook.mesh import (
    CanaryAnalysis,
    Endpoint,
    Sidecar,
    compile_traffic,
    load_mesh_directory,
    parse_resources,
    run_canary,
    simnet_transport,
)

INSTANCES = (("order-service", "v1", 2), ("order-service", "v2", 1), ("user-service", "v1", 2),
             ("payment-service", "v1", 1))
ORDERS = Request("GET", "/api/orders/42", {"host": "shop.example.com"})


def corrected_config():
    return compile_traffic(load_mesh_directory(data_path("mesh", "corrected")))


class Behaviour:
    """What an instance does, changeable while traffic runs: its error share, status and service time."""

    def __init__(self, rng, error_rate: float = 0.0, status: int = 500, service_time: float = 0.02):
        self.rng, self.error_rate, self.status, self.service_time = rng, error_rate, status, service_time

    async def __call__(self, request: Request) -> Response:
        await asyncio.sleep(self.service_time)
        if self.error_rate and self.rng.random() < self.error_rate:
            return Response(self.status, {"error": "failing on purpose"})
        return Response(200, {"path": request.path})


def build_mesh(seed: int = 0, *, config=None, latency: float = 0.001):
    """The simulated shop: ``(net, sidecar, behaviours)``; ``behaviours[name]`` changes an instance."""
    net = SimNetwork(seed, latency=latency)
    endpoints, behaviours = [], {}
    for service, version, count in INSTANCES:
        for i in range(count):
            name = f"{service}-{version}-{i}"
            behaviours[name] = Behaviour(stream(seed, "instance", name))
            net.add_service(name, behaviours[name])
            endpoints.append(Endpoint(name, service, {"app": service, "version": version}))
    net.add_service("client")
    sidecar = Sidecar("client", endpoints, simnet_transport(net, "client"),
                      config=config if config is not None else corrected_config(), seed=seed)
    return net, sidecar, behaviours


def _send(sidecar: Sidecar, request: Request = ORDERS):
    async def send(_i):
        return await sidecar.handle(Request(request.method, request.path, dict(request.headers)))
    return send


def split_run(seed: int = 0, n: int = 10_000) -> dict:
    """The orders route's 80/20 split over ``n`` requests, with the binomial 99 % interval for v2."""
    _, sidecar, _ = build_mesh(seed)

    async def main():
        for _ in range(n):
            await sidecar.handle(Request(ORDERS.method, ORDERS.path, dict(ORDERS.headers)))

    run_virtual(main())
    counts = Counter(r.subset for r in sidecar.records)
    half = 2.5758 * math.sqrt(n * 0.2 * 0.8)
    return {"requests": n, "v1": counts["v1"], "v2": counts["v2"], "expected_v2": n * 0.2,
            "interval_99": (n * 0.2 - half, n * 0.2 + half), "within": abs(counts["v2"] - n * 0.2) <= half}


_RETRY_VS = """apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: r, namespace: default}}
spec:
  hosts: [shop]
  http:
  - name: r
    {retries}
    route: [{{destination: {{host: shop}}}}]
"""


def retry_rows() -> list[dict]:
    """Crafted upstream outcomes through ``retryOn`` conditions: tries, final status, Envoy's flags."""
    cases = [("5xx", [503, 200]), ("5xx", [500, 500, 500, 500]), ("gateway-error", [500, 200]),
             ("gateway-error", [502, 200]), ("connect-failure", [503, 200]), ("connect-failure", ["refuse", 200]),
             ("connect-failure", ["reset", 200]), ("reset", ["reset", 200]), ("retriable-4xx", [409, 200]),
             ("retriable-4xx", [404, 200]), ("(Istio default)", [503, 503, 503]), ("(Istio default)", [500, 200])]
    rows = []
    for retry_on, outcomes in cases:
        script = list(outcomes)

        async def transport(endpoint, request, script=script):
            outcome = script.pop(0) if len(script) > 1 else script[0]
            if outcome == "refuse":
                raise ConnectionRefusedError("refused")
            if outcome == "reset":
                raise ConnectionResetError("reset")
            return Response(outcome, "")

        retries = "" if retry_on.startswith("(") else f'retries: {{attempts: 3, retryOn: "{retry_on}"}}'
        sidecar = Sidecar("client", [Endpoint("shop-0", "shop")], transport,
                          config=parse_resources(_RETRY_VS.format(retries=retries)))
        response = run_virtual(sidecar.handle(Request("GET", "/", {"host": "shop"})))
        record = sidecar.records[-1]
        rows.append({"retryOn": retry_on, "upstream": " ".join(map(str, outcomes)), "tries": record.tries,
                     "status": response.status, "flags": record.flags})
    return rows


def outlier_run(seed: int = 0, *, rate: float = 50.0, duration: float = 120.0, fail_at: float = 20.0,
                recover_at: float = 70.0) -> dict:
    """order-service-v1-0 answers 500 from ``fail_at`` to ``recover_at``; traffic at ``rate``/s on v1.

    Returns the detector's events and, per second, requests, errors and the share sent to
    the failing instance. With the corrected DestinationRule (5 consecutive 5xx, 10 s
    interval, 30 s base ejection, max 50 %) the instance is out within a few requests.
    """
    config = corrected_config().with_weights("orders", {"v1": 100, "v2": 0})
    _, sidecar, behaviours = build_mesh(seed, config=config)
    bad = behaviours["order-service-v1-0"]

    async def main():
        async def faults():
            await asyncio.sleep(fail_at)
            bad.error_rate = 1.0
            await asyncio.sleep(recover_at - fail_at)
            bad.error_rate = 0.0

        task = asyncio.ensure_future(faults())
        await open_loop(_send(sidecar), rate=rate, duration=duration, rng=stream(seed, "arrivals"))
        await task

    run_virtual(main())
    per_second = []
    for second in range(int(duration)):
        window = [r for r in sidecar.records if second <= r.start < second + 1]
        per_second.append({"second": second, "requests": len(window),
                           "errors": sum(1 for r in window if r.status >= 500),
                           "to_failing": sum(1 for r in window if r.host == "order-service-v1-0")})
    detector = sidecar.clusters["outbound|8080|v1|order-service"].detector
    return {"events": [{"time": round(t, 3), "event": kind, "host": host, "why": why}
                       for t, kind, host, why in detector.events],
            "per_second": per_second,
            "errors": sum(row["errors"] for row in per_second)}


def pool_run(burst: int = 100, *, service_time: float = 0.5) -> dict:
    """``burst`` simultaneous orders against order-service v1's pool (50 connections, 25 pending)."""
    config = corrected_config().with_weights("orders", {"v1": 100, "v2": 0})
    _, sidecar, behaviours = build_mesh(0, config=config)
    for b in behaviours.values():
        b.service_time = service_time

    async def main():
        return await asyncio.gather(*(_send(sidecar)(i) for i in range(burst)))

    responses = run_virtual(main())
    flags = Counter(r.flags or "-" for r in sidecar.records)
    stats = sidecar.clusters["outbound|8080|v1|order-service"].pool.stats
    return {"burst": burst, "served": sum(1 for r in responses if r.status == 200),
            "overflow_503_UO": flags.get("UO", 0), "pool": dict(stats),
            "latest_served": max(r.end for r in sidecar.records if r.status == 200)}


def canary_run(v2: str = "healthy", seed: int = 0, *, rate: float = 20.0,
               analysis: CanaryAnalysis | None = None) -> dict:
    """Roll order-service v2 out on the ``orders`` route: ``v2`` is ``healthy``, ``errors`` or ``slow``.

    ``errors``: v2 answers 500 on 5 % of requests (Istio's default retries only retry 503,
    so they do not hide it); ``slow``: v2 takes 800 ms instead of 20 ms. Flagger's checks:
    success rate >= 99 %, p99 <= 500 ms, rollback after ``threshold`` failed checks.
    """
    analysis = analysis or CanaryAnalysis(interval=60.0, threshold=2)
    config = corrected_config().with_weights("orders", {"v1": 100, "v2": 0})
    _, sidecar, behaviours = build_mesh(seed, config=config)
    canary = behaviours["order-service-v2-0"]
    if v2 == "errors":
        canary.error_rate, canary.status = 0.05, 500
    elif v2 == "slow":
        canary.service_time = 0.8
    elif v2 != "healthy":
        raise ParameterError("v2", v2, "'healthy', 'errors' or 'slow'")
    arrivals = stream(seed, "canary", "arrivals")

    async def load(duration):
        await open_loop(_send(sidecar), rate=rate, duration=duration, rng=arrivals)

    async def main():
        result = await run_canary(sidecar, "orders", load, analysis=analysis)
        mark = len(sidecar.records)
        await load(10.0)  # ten seconds after the decision: where does traffic go?
        return result, sidecar.records[mark:]

    run, after = run_virtual(main())
    return {"v2": v2, "outcome": run.outcome, "weights": run.weights, "analyses": run.rows(),
            "subsets_after": dict(Counter(r.subset for r in after)),
            "p99_ms_v1": 1000 * quantile([r.latency for r in sidecar.records if r.subset == "v1"], 0.99)}
