"""Chapter 7 lab: the shop's traffic through the ingress sidecar, as Kiali would draw it.

Every function returns plain data for the notebook and the figures; runs are seeded and
in virtual time (see ``traffic_runs.build_mesh``).

* ``routing_rows``: chosen requests through the corrected VirtualService (first match wins,
  the header the payments route adds, no route = 404 ``NR``), and an overlapping pair of
  prefixes showing that order decides;
* ``fault_rows``: the fault filter measured: a delay and an abort, each on a percentage;
* ``with_fault``: a copy of a ``TrafficConfig`` whose route carries another ``FaultSpec``;
* ``mesh_run``: a mix of users, orders and payments requests at ``rate`` per second for
  ``duration`` seconds with the orders split and its faults as given, order-service
  charging payments through its own sidecars; ``edge_stats(run)``: request rate, error
  rate and p99 on each edge of the graph (caller -> service, service -> workload version),
  from the sidecars' request records;
* ``live_change_run``: the configuration changed twice while traffic runs (50/50 split,
  then an abort fault); per 10-second window, the v2 share and the error share.
"""

from __future__ import annotations

import asyncio
import math
from collections import Counter, defaultdict
from dataclasses import replace

from workbook.core.errors import ParameterError
from workbook.core.load import open_loop
from workbook.core.params import check_number
from workbook.core.seeds import stream
from workbook.core.simnet import Request, Response
from workbook.core.stats import quantile
from workbook.core.virtual_time import run_virtual
from workbook.labs.ch07_mesh.traffic_runs import build_mesh, corrected_config
from workbook.mesh import Endpoint, FaultSpec, Sidecar, TrafficConfig, parse_resources, simnet_transport

INGRESS = "istio-ingressgateway"
ROUTE_SERVICE = {"users": "user-service", "orders": "order-service", "payments": "payment-service"}
MIX = (("/api/users/7", 0.3), ("/api/orders/42", 0.5), ("/api/payments/9", 0.2))


def _probe_sidecar(config) -> tuple[Sidecar, list]:
    """A sidecar whose upstreams answer 200 and remember the headers they received."""
    seen = []

    async def transport(endpoint, request):
        seen.append((endpoint.name, dict(request.headers)))
        return Response(200, request.path)

    endpoints = [Endpoint(f"{s}-v1-0", s, {"app": s, "version": "v1"}) for s in ROUTE_SERVICE.values()]
    endpoints.append(Endpoint("order-service-v2-0", "order-service", {"app": "order-service", "version": "v2"}))
    return Sidecar("ingress", endpoints, transport, config=config), seen


_OVERLAP = """apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: overlap, namespace: default}
spec:
  hosts: ["*"]
  http:
  - name: everything-under-api
    match: [{uri: {prefix: /api}}]
    route: [{destination: {host: user-service}}]
  - name: orders
    match: [{uri: {prefix: /api/orders}}]
    route: [{destination: {host: order-service}}]
"""


def routing_rows() -> list[dict]:
    """Requests through the corrected routes, then through two overlapping prefixes."""
    rows = []
    for label, config, paths in (
            ("corrected", corrected_config(),
             ("/api/users/7", "/api/users", "/api/orders/42", "/api/payments/9", "/api/usersettings", "/health")),
            ("overlap (/api first)", parse_resources(_OVERLAP, "overlap.yaml"), ("/api/orders/42", "/api/users/7"))):
        sidecar, seen = _probe_sidecar(config)
        for path in paths:
            before = len(seen)
            response = run_virtual(sidecar.handle(Request("GET", path, {"host": "shop.example.com"})))
            record = sidecar.records[-1]
            added = seen[before][1].get("x-mesh-route") if len(seen) > before else None
            rows.append({"config": label, "path": path, "route": record.route or "-",
                         "upstream": seen[before][0] if len(seen) > before else "-",
                         "status": response.status, "flags": record.flags or "-",
                         "x-mesh-route": added or "-"})
    return rows


def timeout_rows() -> list[dict]:
    """The corrected routes' timeouts on crafted upstreams: the orders route's 10 s timeout, the
    users route's 2 s ``perTryTimeout`` with 3 retries; when the answer came and how."""
    cases = (("orders: timeout 10 s; upstream takes 12 s", "/api/orders/42", [12.0]),
             ("users: perTryTimeout 2 s; first try 3 s, then 20 ms", "/api/users/7", [3.0, 0.02]),
             ("users: perTryTimeout 2 s; every try 3 s", "/api/users/7", [3.0]))
    rows = []
    for label, path, script in cases:
        script = list(script)

        async def transport(endpoint, request, script=script):
            await asyncio.sleep(script.pop(0) if len(script) > 1 else script[0])
            return Response(200, request.path)

        endpoints = [Endpoint(f"{s}-v1-{i}", s, {"app": s, "version": v})
                     for s in ROUTE_SERVICE.values() for i, v in enumerate(("v1", "v2"))]
        sidecar = Sidecar("ingress", endpoints, transport, config=corrected_config())
        response = run_virtual(sidecar.handle(Request("GET", path, {"host": "shop.example.com"})))
        record = sidecar.records[-1]
        rows.append({"case": label, "status": response.status, "flags": record.flags or "-", "tries": record.tries,
                     "answered_after_s": round(record.latency, 3)})
    return rows


def with_fault(config: TrafficConfig, route_name: str, fault: FaultSpec | None) -> TrafficConfig:
    """A copy of ``config`` where route ``route_name`` has ``fault`` (None removes it)."""
    found = False
    new_routes = []
    for patterns, routes in config.routes:
        rs = []
        for r in routes:
            if r.name == route_name:
                found, r = True, replace(r, fault=fault)
            rs.append(r)
        new_routes.append((patterns, tuple(rs)))
    if not found:
        raise ParameterError("route_name", route_name, "the name of an http route of the configuration")
    return replace(config, routes=tuple(new_routes))


def _send_orders(sidecar: Sidecar):
    async def send(_i=None):
        return await sidecar.handle(Request("GET", "/api/orders/42", {"host": "shop.example.com"}))
    return send


async def _exactly(send, n: int, *, rate: float, rng) -> None:
    """``n`` requests with exponential gaps at ``rate`` per second (each one runs concurrently)."""
    tasks = []
    for _ in range(n):
        tasks.append(asyncio.ensure_future(send()))
        await asyncio.sleep(rng.expovariate(rate))
    await asyncio.gather(*tasks)


def fault_rows(seed: int = 0, n: int = 2000) -> list[dict]:
    """The fault filter on the orders route over ``n`` requests (50 per second): the share delayed or
    aborted against the configured percentage's binomial 99 % interval, statuses, p50 and p99."""
    rows = []
    cases = (("delay 5 s on 10 %", FaultSpec(delay=5.0, delay_percent=10.0)),
             ("abort 503 on 25 %", FaultSpec(abort_status=503, abort_percent=25.0)),
             ("the article's delay: 5 s on 0.1 %", FaultSpec(delay=5.0, delay_percent=0.1)))
    for label, fault in cases:
        config = with_fault(corrected_config(), "orders", fault)
        _, sidecar, _ = build_mesh(seed, config=config)

        send = _send_orders(sidecar)
        run_virtual(_exactly(send, n, rate=50.0, rng=stream(seed, "faults", label)))
        flags = Counter(r.flags for r in sidecar.records)
        hit = flags["DI"] if fault.delay_percent else flags["FI"]
        percent = fault.delay_percent or fault.abort_percent
        half = 2.5758 * math.sqrt(n * percent / 100 * (1 - percent / 100))
        rows.append({"fault": label, "requests": n, "hit": hit, "expected": n * percent / 100,
                     "interval_99": (round(max(0.0, n * percent / 100 - half), 1), round(n * percent / 100 + half, 1)),
                     "statuses": dict(sorted(Counter(r.status for r in sidecar.records).items())),
                     "p50_ms": round(1000 * quantile([r.latency for r in sidecar.records], 0.5), 1),
                     "p99_ms": round(1000 * quantile([r.latency for r in sidecar.records], 0.99), 1)})
    return rows


def _mixed_send(sidecar: Sidecar, rng):
    paths, weights = zip(*MIX)

    async def send(_i):
        path = rng.choices(paths, weights)[0]
        return await sidecar.handle(Request("GET", path, {"host": "shop.example.com"}))

    return send


def orders_config(v2_weight: int = 20, abort_percent: float = 0.0, delay_percent: float = 0.0,
                  delay: float = 0.5) -> TrafficConfig:
    """The corrected configuration with the orders split and faults as given."""
    if isinstance(v2_weight, bool) or not isinstance(v2_weight, int) or not 0 <= v2_weight <= 100:
        raise ParameterError("v2_weight", v2_weight, "an integer percentage in [0, 100]")
    check_number("abort_percent", abort_percent, minimum=0, maximum=100)
    check_number("delay_percent", delay_percent, minimum=0, maximum=100)
    config = corrected_config().with_weights("orders", {"v1": 100 - v2_weight, "v2": v2_weight})
    fault = None
    if abort_percent or delay_percent:
        fault = FaultSpec(delay=delay if delay_percent else 0.0, delay_percent=float(delay_percent),
                          abort_status=503 if abort_percent else None, abort_percent=float(abort_percent))
    return with_fault(config, "orders", fault)


def _orders_pay(net, sidecar: Sidecar, behaviours: dict, config, seed: int, share: float) -> dict[str, Sidecar]:
    """Each order-service instance gets its own outbound sidecar and charges a payment on ``share``
    of its successful requests (a failed payment makes the order a 502); returns the sidecars."""
    outbound = {}
    for name in [n for n in behaviours if n.startswith("order-service-")]:
        out = outbound[name] = Sidecar(name, sidecar.endpoints, simnet_transport(net, name), config=config, seed=seed)
        pays = stream(seed, "pays", name)

        async def handler(request, own=behaviours[name], out=out, rng=pays):
            response = await own(request)
            if response.status < 500 and rng.random() < share:
                paid = await out.handle(Request("POST", "/api/payments/charge", {"host": "payment-service"}))
                if paid.status >= 500:
                    return Response(502, {"error": f"payment failed with {paid.status}"})
            return response

        net.services[name].handler = handler
    return outbound


def mesh_run(seed: int = 0, *, v2_weight: int = 20, abort_percent: float = 0.0, delay_percent: float = 0.0,
             v2_error_rate: float = 0.0, payment_share: float = 0.5, payment_error_rate: float = 0.0,
             rate: float = 40.0, duration: float = 30.0, incidents=()) -> dict:
    """The shop's mixed traffic through the ingress sidecar, order-service calling payment-service
    through its own sidecars on ``payment_share`` of orders; ``edge_stats`` reads the result.

    ``incidents``: ``(time, instance, error_rate)`` triples, each changing an instance's error
    rate at that moment of the run (e.g. ``(30.0, "payment-service-v1-0", 0.5)``).
    """
    check_number("rate", rate, minimum=0, min_exclusive=True)
    check_number("duration", duration, minimum=0, min_exclusive=True)
    check_number("v2_error_rate", v2_error_rate, minimum=0, maximum=1)
    check_number("payment_share", payment_share, minimum=0, maximum=1)
    check_number("payment_error_rate", payment_error_rate, minimum=0, maximum=1)
    config = orders_config(v2_weight, abort_percent, delay_percent)
    net, sidecar, behaviours = build_mesh(seed, config=config)
    behaviours["order-service-v2-0"].error_rate = v2_error_rate
    behaviours["payment-service-v1-0"].error_rate = payment_error_rate
    incidents = sorted(incidents)
    for i, (at, instance, error_rate) in enumerate(incidents):
        check_number(f"incidents[{i}].time", at, minimum=0, maximum=duration)
        check_number(f"incidents[{i}].error_rate", error_rate, minimum=0, maximum=1)
        if instance not in behaviours:
            raise ParameterError(f"incidents[{i}].instance", instance, f"one of {sorted(behaviours)}")
    inner = _orders_pay(net, sidecar, behaviours, config, seed, payment_share)
    rng = stream(seed, "mesh", "paths")

    async def main():
        async def operator():
            for at, instance, error_rate in incidents:
                await asyncio.sleep(at - sidecar.clock.now())
                behaviours[instance].error_rate = error_rate

        task = asyncio.ensure_future(operator())
        await open_loop(_mixed_send(sidecar, rng), rate=rate, duration=duration, rng=stream(seed, "mesh", "arrivals"))
        await task

    run_virtual(main())
    return {"records": sidecar.records, "duration": duration,
            "calls": {name: out.records for name, out in sorted(inner.items())},
            "settings": {"v2_weight": v2_weight, "abort_percent": abort_percent, "delay_percent": delay_percent,
                         "v2_error_rate": v2_error_rate, "payment_share": payment_share,
                         "payment_error_rate": payment_error_rate, "incidents": incidents}}


def _workload(host: str) -> tuple[str, str]:
    service, version, _index = host.rsplit("-", 2)
    return service, version


def edge_stats(run: dict, start: float = 0.0, end: float | None = None) -> list[dict]:
    """Per edge: requests, rate (per second), error rate (share of 5xx), p99 (ms), over the
    requests that started in ``[start, end)`` (the whole run by default).

    Edges are caller -> service (every request the caller's sidecar handled, aborts by the
    fault filter included; the caller is the ingress or a workload ``service version``) and
    service -> ``service version`` (the requests that reached a workload of that version).
    """
    end = run["duration"] if end is None else end
    if not 0 <= start < end:
        raise ParameterError("start, end", (start, end), f"0 <= start < end (the run lasted {run['duration']:g} s)")
    groups: dict[tuple[str, str], list] = defaultdict(list)
    callers = [(INGRESS, run["records"])]
    callers += [(" ".join(_workload(name)), records) for name, records in run.get("calls", {}).items()]
    for source, records in callers:
        for r in records:
            service = ROUTE_SERVICE.get(r.route)
            if service is None or not start <= r.start < end:
                continue
            groups[(source, service)].append(r)
            if r.host:
                svc, version = _workload(r.host)
                groups[(svc, f"{svc} {version}")].append(r)
    rows = []
    for (source, target), records in sorted(groups.items()):
        errors = sum(1 for r in records if r.status >= 500)
        rows.append({"source": source, "target": target, "requests": len(records),
                     "rps": round(len(records) / (end - start), 2),
                     "error_rate": round(errors / len(records), 4),
                     "p99_ms": round(1000 * quantile([r.latency for r in records], 0.99), 1)})
    return rows


def live_change_run(seed: int = 0, *, rate: float = 50.0, window: float = 10.0) -> dict:
    """90 s of orders: 80/20 until 30 s, 50/50 from 30 s, plus a 20 % abort fault from 60 s."""
    _, sidecar, _ = build_mesh(seed)
    changes = ((30.0, "split 50/50", lambda c: c.with_weights("orders", {"v1": 50, "v2": 50})),
               (60.0, "abort 503 on 20 %", lambda c: with_fault(c, "orders",
                                                                FaultSpec(abort_status=503, abort_percent=20.0))))

    async def main():
        async def operator():
            for at, note, change in changes:
                await sidecar.clock.sleep(at - sidecar.clock.now())
                sidecar.apply(change(sidecar.config), note=note)

        task = asyncio.ensure_future(operator())
        await open_loop(_send_orders(sidecar), rate=rate, duration=90.0, rng=stream(seed, "live", "arrivals"))
        await task

    run_virtual(main())
    rows = []
    for k in range(int(90 / window)):
        w = [r for r in sidecar.records if k * window <= r.start < (k + 1) * window]
        rows.append({"from_s": k * window, "requests": len(w),
                     "v2_share": round(sum(1 for r in w if r.subset == "v2") / len(w), 3),
                     "aborted_503_FI": sum(1 for r in w if r.flags == "FI"),
                     "error_share": round(sum(1 for r in w if r.status >= 500) / len(w), 3)})
    return {"applied": [(round(t, 3), note) for t, note in sidecar.applied[1:]], "windows": rows}
