"""The sidecar's routing decision in virtual time: matches, weights, headers, faults, refused configuration."""

from __future__ import annotations

import math

import pytest

from workbook.core.load import open_loop
from workbook.core.simnet import Request, Response, SimNetwork
from workbook.core.virtual_time import run_virtual
from workbook.mesh import (Endpoint, MeshConfigError, Sidecar, compile_traffic, load_mesh_directory, parse_resources,
                           simnet_transport)
from workbook.core.resources import data_path

HEADER = "apiVersion: networking.istio.io/v1\nkind: {kind}\nmetadata: {{name: {name}, namespace: default}}\nspec:\n"


def resources(vs_spec: str, dr_spec: str | None = None):
    text = HEADER.format(kind="VirtualService", name="vs") + vs_spec
    if dr_spec:
        text += "\n---\n" + HEADER.format(kind="DestinationRule", name="dr") + dr_spec
    return parse_resources(text, "test.yaml")


SUBSETS = """  host: shop
  trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
"""


class Upstream:
    """A crafted transport: records what reaches each endpoint, answers from a script."""

    def __init__(self, clock=None):
        self.seen: list[tuple[str, Request]] = []
        self.status: dict[str, int] = {}

    async def __call__(self, endpoint: Endpoint, request: Request) -> Response:
        self.seen.append((endpoint.name, request))
        return Response(self.status.get(endpoint.name, 200), {"from": endpoint.name},
                        {"x-upstream": "1", "server-timing": "db;dur=1"})


def endpoints(*specs):
    return [Endpoint(name, service, {"version": version}) for name, service, version in specs]


def sidecar(vs: str, dr: str | None = None, eps=None, seed=0):
    upstream = Upstream()
    eps = eps or endpoints(*[(f"{s}-{v}", s, v) for s in ("shop", "a", "b", "c", "d", "e", "f") for v in ("v1",)],
                           ("shop-v2", "shop", "v2"))
    return Sidecar("client", eps, upstream, config=resources(vs, dr), seed=seed), upstream


MATCH_VS = """  hosts: [shop]
  http:
  - name: exact
    match: [{uri: {exact: /a}}]
    route: [{destination: {host: a}}]
  - name: prefix
    match: [{uri: {prefix: /a}}]
    route: [{destination: {host: b}}]
  - name: regex
    match: [{uri: {regex: "/r/[0-9]+"}}]
    route: [{destination: {host: c}}]
  - name: header-and-method
    match:
    - headers: {x-user: {exact: tester}}
      method: {exact: POST}
    route: [{destination: {host: d}}]
  - name: either
    match:
    - headers: {x-canary: {prefix: "yes"}}
    - uri: {prefix: /either}
    route: [{destination: {host: e}}]
  - name: without
    match:
    - withoutHeaders: {x-debug: {}}
      uri: {prefix: /w}
    route: [{destination: {host: f}}]
"""


@pytest.mark.parametrize("method,path,headers,route", [
    ("GET", "/a", {}, "exact"),
    ("GET", "/a?x=1", {}, "exact"),          # exact compares the path without its query
    ("GET", "/ab", {}, "prefix"),            # prefix, not exact; first match wins for /a itself
    ("GET", "/a/b", {}, "prefix"),
    ("GET", "/r/12", {}, "regex"),
    ("GET", "/r/12x", {}, None),              # a regex matches the whole path (RE2 full match)
    ("POST", "/x", {"x-user": "tester"}, "header-and-method"),
    ("GET", "/x", {"x-user": "tester"}, None),  # conditions inside a block are ANDed
    ("POST", "/x", {"X-User": "other"}, None),
    ("GET", "/x", {"x-canary": "yes-please"}, "either"),  # blocks are ORed
    ("GET", "/either/1", {}, "either"),
    ("GET", "/w", {}, "without"),
    ("GET", "/w", {"x-debug": "1"}, None),
])
def test_first_match_wins_with_envoy_match_semantics(method, path, headers, route):
    sc, up = sidecar(MATCH_VS)
    response = run_virtual(sc.handle(Request(method, path, {"host": "shop", **headers})))
    record = sc.records[-1]
    assert record.route == route
    if route is None:
        assert response.status == 404 and record.flags == "NR" and not up.seen  # nothing forwarded
    else:
        assert response.status == 200


def test_host_selects_the_virtual_service_short_name_and_fqdn_alike():
    sc, _ = sidecar(MATCH_VS)
    run_virtual(sc.handle(Request("GET", "/a", {"host": "shop.default.svc.cluster.local:8080"})))
    assert sc.records[-1].route == "exact"
    run_virtual(sc.handle(Request("GET", "/a", {"host": "other"})))  # no VirtualService: straight to the host
    assert sc.records[-1].route == "default" and sc.records[-1].status == 503 and sc.records[-1].flags == "UH"


SPLIT_VS = """  hosts: [shop]
  http:
  - name: split
    route:
    - {destination: {host: shop, subset: v1}, weight: 80}
    - {destination: {host: shop, subset: v2}, weight: 20}
"""


def test_an_80_20_split_lands_within_its_binomial_99_percent_interval():
    n, p = 10_000, 0.2
    sc, up = sidecar(SPLIT_VS, SUBSETS, seed=7)

    async def main():
        for _ in range(n):
            await sc.handle(Request("GET", "/", {"host": "shop"}))

    run_virtual(main())
    v2 = sum(1 for name, _ in up.seen if name == "shop-v2")
    half_width = 2.5758 * math.sqrt(n * p * (1 - p))  # 99 % normal approximation: +-103
    assert abs(v2 - n * p) <= half_width, v2
    assert {r.subset for r in sc.records} == {"v1", "v2"}


def test_a_subset_no_destination_rule_defines_is_503_nc_and_nothing_is_forwarded():
    sc, up = sidecar(SPLIT_VS.replace("subset: v2", "subset: v3"), SUBSETS, seed=1)

    async def main():
        return [await sc.handle(Request("GET", "/", {"host": "shop"})) for _ in range(50)]

    statuses = {(r.subset, r.status, r.flags) for r in sc.records} if run_virtual(main()) else set()
    assert ("v3", 503, "NC") in statuses
    assert all(name == "shop-v1" for name, _ in up.seen)


HEADERS_VS = """  hosts: [shop]
  http:
  - name: h
    headers:
      request:
        set: {x-env: prod}
        add: {x-trace: mesh}
        remove: [x-secret]
      response:
        set: {cache-control: no-store}
        remove: [server-timing]
    route:
    - destination: {host: shop, subset: v1}
      headers:
        request: {set: {x-env: dest, x-subset: v1}}
        response: {add: {x-served-by: v1}}
"""


def test_header_manipulation_request_and_response_route_wins_over_destination():
    sc, up = sidecar(HEADERS_VS, SUBSETS)
    response = run_virtual(sc.handle(Request("GET", "/", {"host": "shop", "x-secret": "s", "x-trace": "client"})))
    sent = up.seen[-1][1].headers
    assert "x-secret" not in sent
    assert sent["x-trace"] == "client,mesh"          # add appends to what is there
    assert sent["x-env"] == "prod"                    # route-level set applied last wins
    assert sent["x-subset"] == "v1"
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["x-served-by"] == "v1" and "server-timing" not in response.headers
    assert response.headers["x-upstream"] == "1"


FAULT_VS = """  hosts: [shop]
  http:
  - name: faulty
    fault:
      delay: {percentage: {value: DELAY}, fixedDelay: 2s}
      abort: {percentage: {value: ABORT}, httpStatus: 418}
    retries: {attempts: 3, retryOn: "4xx,5xx"}
    route: [{destination: {host: shop, subset: v1}}]
""".replace('"4xx,5xx"', '"5xx,retriable-4xx"')


def test_fault_abort_answers_locally_and_is_never_retried_or_forwarded():
    sc, up = sidecar(FAULT_VS.replace("DELAY", "0").replace("ABORT", "100"), SUBSETS)
    response = run_virtual(sc.handle(Request("GET", "/", {"host": "shop"})))
    assert response.status == 418 and sc.records[-1].flags == "FI" and sc.records[-1].tries == 0
    assert not up.seen


def test_fault_delay_and_abort_draw_independently_at_their_percentages():
    n = 4000
    sc, up = sidecar(FAULT_VS.replace("DELAY", "50").replace("ABORT", "10"), SUBSETS, seed=3)

    async def main():
        for _ in range(n):
            await sc.handle(Request("GET", "/", {"host": "shop"}))

    run_virtual(main())
    delayed = [r for r in sc.records if "DI" in r.flags]
    aborted = [r for r in sc.records if "FI" in r.flags]
    for count, p in ((len(delayed), 0.5), (len(aborted), 0.1)):
        assert abs(count - n * p) <= 2.5758 * math.sqrt(n * p * (1 - p)), (count, p)
    assert all(r.latency == pytest.approx(2.0) for r in delayed if r.status == 200)
    both = sum(1 for r in sc.records if r.flags == "DI,FI")
    assert abs(both - n * 0.05) <= 2.5758 * math.sqrt(n * 0.05 * 0.95)  # independent: 50 % x 10 %
    assert len(up.seen) == n - len(aborted)


def test_a_configuration_that_fails_validation_is_refused_and_the_old_one_stays():
    sc, up = sidecar(SPLIT_VS, SUBSETS)
    before = sc.config
    with pytest.raises(MeshConfigError) as info:
        sc.apply(load_mesh_directory(data_path("mesh", "article")))
    assert "spec.trafficPolicy.circuitBreaker" in str(info.value) and "destination-rules.yaml" in str(info.value)
    assert sc.config is before
    bad_retry = resources(SPLIT_VS.replace("  - name: split\n", "  - name: split\n    retries: {attempts: 2, retryOn: "
                                                               "\"5xx,sometimes\"}\n"), SUBSETS)
    with pytest.raises(MeshConfigError, match=r"spec.http\[0\].retries.retryOn.*sometimes"):
        sc.apply(bad_retry)
    with pytest.raises(MeshConfigError, match="weight"):
        sc.apply(resources(SPLIT_VS.replace("weight: 20", "weight: twenty"), SUBSETS))
    assert sc.config is before


def test_the_corrected_article_configuration_compiles_with_its_settings():
    config = compile_traffic(load_mesh_directory(data_path("mesh", "corrected")))
    users = config.routes_for("user-service")[0]
    assert users.retries.attempts == 3 and users.retries.per_try_timeout == 2.0
    assert users.retries.retry_on == {"5xx", "connect-failure", "reset"}
    assert users.fault.delay == 5.0 and users.fault.delay_percent == 0.1
    orders = config.routes_for("api.example.com")[1]
    assert orders.timeout == 10.0 and [d.weight for d in orders.destinations] == [80, 20]
    rules = config.rules_for("order-service")
    assert rules.policy.connection_pool.max_connections == 50 and rules.policy.outlier.consecutive_5xx == 5
    assert rules.policy_for("v2").load_balancer == "round_robin"


@pytest.mark.parametrize("method,path", [("GE T", "/"), ("", "/"), ("GET", "nope"), ("GET", "/a b"), (None, "/")])
def test_a_bad_request_is_a_400_and_the_sidecar_keeps_serving(method, path):
    sc, up = sidecar(SPLIT_VS, SUBSETS)
    response = run_virtual(sc.handle(Request(method, path, {"host": "shop"})))
    assert response.status == 400 and not up.seen
    assert run_virtual(sc.handle(Request("GET", "/", {"host": "shop"}))).status == 200


def test_a_transport_bug_is_a_500_naming_it_and_leaves_no_phantom_connection():
    async def broken(endpoint, request):
        raise ValueError("garbled upstream")

    sc = Sidecar("c", endpoints(("shop-v1", "shop", "v1")), broken, config=resources(SPLIT_VS, SUBSETS))
    response = run_virtual(sc.handle(Request("GET", "/", {"host": "shop"})))
    assert response.status == 500 and "garbled upstream" in response.body
    cluster = next(iter(sc.clusters.values()))
    assert cluster.pool.active == 0 and cluster.balancer.inflight("shop-v1") == 0


def test_configuration_changed_while_traffic_runs_takes_effect_at_the_next_request():
    """Over the simulated network: 50/50, then 0/100 at t = 5 s, while requests keep arriving."""
    net = SimNetwork(5, latency=0.002)
    eps = []
    for v in ("v1", "v2"):
        net.add_service(f"shop-{v}", service_time=0.05)
        eps.append(Endpoint(f"shop-{v}", "shop", {"version": v}))
    net.add_service("client")
    sc = Sidecar("client", eps, simnet_transport(net, "client"),
                 config=resources(SPLIT_VS.replace("80", "50").replace("20", "50"), SUBSETS), seed=5)

    async def main():
        async def switch():
            await sc.clock.sleep(5.0)
            sc.apply(sc.config.with_weights("split", {"v1": 0, "v2": 100}), note="all to v2")

        async def send(i):
            return await sc.handle(Request("GET", "/", {"host": "shop"}))

        task = __import__("asyncio").ensure_future(switch())
        await open_loop(send, rate=50, duration=10)
        await task

    run_virtual(main())
    before = [r for r in sc.records if r.start < 5.0]
    after = [r for r in sc.records if r.start >= 5.0]
    assert {r.subset for r in before} == {"v1", "v2"} and len(after) >= 240
    assert {r.subset for r in after} == {"v2"} and all(r.status == 200 for r in sc.records)
    served_v1 = [t for t, event, _, dst, _ in net.log if event == "send" and dst == "shop-v1"]
    assert served_v1 and max(served_v1) < 5.0


def test_an_endpoint_moved_to_a_new_address_is_reached_at_the_new_one():
    seen = []

    async def transport(endpoint, request):
        seen.append(endpoint.address)
        return Response(200, "ok")

    sc = Sidecar("c", [Endpoint("shop-v1", "shop", {"version": "v1"}, address="old")], transport,
                 config=resources(SPLIT_VS.replace("weight: 20", "weight: 0"), SUBSETS))
    run_virtual(sc.handle(Request("GET", "/", {"host": "shop"})))
    sc.set_endpoints([Endpoint("shop-v1", "shop", {"version": "v1"}, address="new")])
    run_virtual(sc.handle(Request("GET", "/", {"host": "shop"})))
    assert seen == ["old", "new"]


def test_a_fault_delay_is_outside_the_route_timeout():
    """The fault filter runs before the router, whose timer starts only then (Istio's fault task relies on it)."""
    vs = FAULT_VS.replace("DELAY", "100").replace("ABORT", "0").replace("    retries:", "    timeout: 1s\n    retries:")
    sc, up = sidecar(vs, SUBSETS)
    response = run_virtual(sc.handle(Request("GET", "/", {"host": "shop"})))
    assert response.status == 200 and sc.records[-1].latency == pytest.approx(2.0) and sc.records[-1].flags == "DI"


REWRITE_VS = """  hosts: [shop]
  http:
  - name: api
    match: [{uri: {prefix: /api/v1/}}]
    rewrite: {uri: /, authority: shop.internal}
    route: [{destination: {host: shop, subset: v1}}]
  - name: legacy
    match: [{uri: {exact: /old}}]
    rewrite: {uri: /new}
    route: [{destination: {host: shop, subset: v1}}]
"""


@pytest.mark.parametrize("path,sent", [("/api/v1/orders/7?x=1", "/orders/7?x=1"), ("/old?y=2", "/new?y=2")])
def test_rewrite_replaces_the_matched_prefix_or_the_whole_path(path, sent):
    sc, up = sidecar(REWRITE_VS, SUBSETS)
    assert run_virtual(sc.handle(Request("GET", path, {"host": "shop"}))).status == 200
    assert up.seen[-1][1].path == sent
    if path.startswith("/api"):
        assert up.seen[-1][1].headers["host"] == "shop.internal"


def test_fields_the_sidecar_does_not_execute_are_listed_and_redirects_refused():
    extra = "    mirror: {host: shadow}\n    corsPolicy: {allowOrigins: [{exact: 'https://a.example'}]}\n"
    vs = SPLIT_VS.replace("  - name: split\n", "  - name: split\n" + extra)
    dr = SUBSETS + "  - name: v3\n    labels: {version: v3}\n    trafficPolicy: {tls: {mode: ISTIO_MUTUAL}}\n"
    config = compile_traffic(resources(vs, dr))
    assert config.unsupported == ("VirtualService default/vs: spec.http[0].mirror",
                                  "VirtualService default/vs: spec.http[0].corsPolicy",
                                  "DestinationRule default/dr: spec.subsets[2].trafficPolicy.tls")
    with pytest.raises(MeshConfigError, match="redirect"):
        compile_traffic(resources("  hosts: [shop]\n  http:\n  - redirect: {uri: /elsewhere}\n"))


def test_pool_settings_not_executed_are_listed_too():
    dr = SUBSETS.replace("  trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}",
                         "  trafficPolicy:\n    connectionPool: {http: {maxRetries: 3, http2MaxRequests: 10}}")
    config = compile_traffic(resources(SPLIT_VS, dr))
    assert config.unsupported == ("DestinationRule default/dr: spec.trafficPolicy.connectionPool.http.maxRetries",)
    assert config.rules_for("shop").policy.connection_pool.max_requests == 10
