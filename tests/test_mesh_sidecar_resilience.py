"""Retries, timeouts, connection pools, outlier detection and balancers of the sidecar, in virtual time."""

from __future__ import annotations

import asyncio

import pytest

from workbook.core.simnet import Request, Response
from workbook.core.virtual_time import run_virtual
from workbook.mesh import (ConnectionPoolSettings, Endpoint, OutlierDetector, OutlierSettings, Sidecar,
                           parse_resources, should_retry)

HEADER = "apiVersion: networking.istio.io/v1\nkind: {kind}\nmetadata: {{name: {name}, namespace: default}}\nspec:\n"


def config(http: str = "", policy: str = "loadBalancer: {simple: ROUND_ROBIN}"):
    text = (HEADER.format(kind="VirtualService", name="vs") + "  hosts: [shop]\n  http:\n  - name: r\n"
            + "".join(f"    {line}\n" for line in http.strip().splitlines())
            + "    route: [{destination: {host: shop}}]\n---\n"
            + HEADER.format(kind="DestinationRule", name="dr") + f"  host: shop\n  trafficPolicy:\n")
    text += "".join(f"    {line}\n" for line in policy.strip().splitlines())
    return parse_resources(text, "test.yaml")


class Script:
    """Each endpoint answers from a list of outcomes: a status, 'refuse', 'reset', ('hang', s), ('slow', s, status)."""

    def __init__(self, **scripts):
        self.scripts = {k.replace("_", "-"): list(v) for k, v in scripts.items()}
        self.calls: list[tuple[float, str]] = []

    async def __call__(self, endpoint: Endpoint, request: Request) -> Response:
        loop = asyncio.get_running_loop()
        self.calls.append((loop.time(), endpoint.name))
        script = self.scripts.get(endpoint.name) or [200]
        outcome = script.pop(0) if len(script) > 1 else script[0]
        if outcome == "refuse":
            raise ConnectionRefusedError("refused")
        if outcome == "reset":
            raise ConnectionResetError("reset by peer")
        if isinstance(outcome, tuple):
            await asyncio.sleep(outcome[1])
            return Response(outcome[2] if len(outcome) > 2 else 200, endpoint.name)
        return Response(outcome, endpoint.name)


def make(script: Script, http="", policy="loadBalancer: {simple: ROUND_ROBIN}", hosts=("shop-1",), seed=0):
    eps = [Endpoint(h, "shop", {}) for h in hosts]
    return Sidecar("client", eps, script, config=config(http, policy), seed=seed)


def one(sc: Sidecar, path="/"):
    return run_virtual(sc.handle(Request("GET", path, {"host": "shop"})))


@pytest.mark.parametrize("retry_on,outcomes,status,tries", [
    ("5xx", [503, 500, 200], 200, 3),
    ("5xx", [503, 503, 503, 503, 503], 503, 4),           # attempts 3 = three retries, four tries
    ("connect-failure", [503, 200], 503, 1),              # a 503 response is no connect failure
    ("gateway-error", [500, 200], 500, 1),                # 500 is not a gateway error
    ("gateway-error", [502, 504, 200], 200, 3),
    ("retriable-4xx", [409, 200], 200, 2),                # 409 only
    ("retriable-4xx", [404, 200], 404, 1),
    ("connect-failure", ["refuse", 200], 200, 2),
    ("connect-failure", ["reset", 200], 503, 1),          # a reset after connecting is not a connect failure
    ("reset", ["reset", "refuse", 200], 200, 3),          # reset covers connect failures too (Envoy)
    ("5xx", ["reset", "refuse", 200], 200, 3),            # so does 5xx
    ("retriable-status-codes,429", [429, 200], 200, 2),
    ("429", [429, 503], 503, 2),                          # a bare status code enables retriable-status-codes
])
def test_retry_on_conditions_have_envoys_meaning(retry_on, outcomes, status, tries):
    sc = make(Script(shop_1=outcomes), f'retries: {{attempts: 3, retryOn: "{retry_on}"}}')
    assert one(sc).status == status
    record = sc.records[-1]
    assert record.tries == tries
    # URX: the last answer was retriable but the tries ran out (Envoy's "upstream retry limit exceeded")
    assert ("URX" in record.flags) == (tries == 4)


def test_istio_default_retry_policy_applies_when_the_route_says_nothing():
    sc = make(Script(shop_1=[503, 503, 503, 200]))
    assert one(sc).status == 503 and sc.records[-1].tries == 3  # 2 retries on 503 (retriable-status-codes)
    sc = make(Script(shop_1=[500, 200]))
    assert one(sc).status == 500 and sc.records[-1].tries == 1
    sc = make(Script(shop_1=["refuse", 200]))
    assert one(sc).status == 200 and sc.records[-1].tries == 2
    sc = make(Script(shop_1=[503, 200]), "retries: {attempts: 0}")
    assert one(sc).status == 503 and sc.records[-1].tries == 1


def test_should_retry_never_retries_an_overflow():
    assert not should_retry(frozenset({"5xx", "reset", "connect-failure"}), frozenset(), failure="overflow")
    assert should_retry(frozenset({"unavailable"}), frozenset(), status=200, grpc_status="14")


def test_retries_avoid_hosts_already_tried():
    script = Script(shop_1=[503], shop_2=[200], shop_3=[503])
    sc = make(script, 'retries: {attempts: 2, retryOn: "5xx"}', hosts=("shop-1", "shop-2", "shop-3"))
    assert one(sc).status == 200
    assert [name for _, name in script.calls][-1] == "shop-2"
    assert len({name for _, name in script.calls}) == len(script.calls)


def test_retry_backoff_is_envoys_fully_jittered_25_ms_base():
    script = Script(shop_1=[503] * 4 + [200])
    sc = make(script, 'retries: {attempts: 4, retryOn: "5xx"}')
    assert one(sc).status == 200
    times = [t for t, _ in script.calls]
    gaps = [b - a for a, b in zip(times, times[1:])]
    caps = [0.025, 0.075, 0.175, 0.25]  # (2^n - 1) x 25 ms, capped at 250 ms
    assert all(0 <= g < cap for g, cap in zip(gaps, caps)), gaps


def test_per_try_timeout_retries_and_ends_in_504_ut():
    script = Script(shop_1=[("hang", 5.0)])
    sc = make(script, 'retries: {attempts: 2, perTryTimeout: 1s, retryOn: "5xx"}')
    response = one(sc)
    record = sc.records[-1]
    assert response.status == 504 and "UT" in record.flags and record.tries == 3
    assert 3.0 <= record.latency < 3.0 + 0.025 + 0.075


def test_per_try_timeout_is_not_retried_under_connect_failure_only():
    sc = make(Script(shop_1=[("hang", 5.0), 200]),
              'retries: {attempts: 2, perTryTimeout: 1s, retryOn: connect-failure}')
    assert one(sc).status == 504 and sc.records[-1].tries == 1


def test_route_timeout_is_overall_retries_included():
    script = Script(shop_1=[("hang", 5.0)])
    sc = make(script, 'timeout: 2500ms\nretries: {attempts: 5, perTryTimeout: 1s, retryOn: "5xx"}')
    response = one(sc)
    record = sc.records[-1]
    assert response.status == 504 and record.flags == "UT" and record.latency == pytest.approx(2.5)
    assert record.tries == 3 and len(script.calls) == 3


def test_route_timeout_alone_is_never_retried():
    script = Script(shop_1=[("slow", 3.0), 200])
    sc = make(script, 'timeout: 1s\nretries: {attempts: 3, retryOn: "5xx"}')
    assert one(sc).status == 504 and len(script.calls) == 1


async def burst(sc: Sidecar, n: int):
    return await asyncio.gather(*(sc.handle(Request("GET", "/", {"host": "shop"})) for _ in range(n)))


POOL = """connectionPool:
  tcp: {maxConnections: 1}
  http: {http1MaxPendingRequests: 1, maxRequestsPerConnection: MRPC}
loadBalancer: {simple: ROUND_ROBIN}"""


def test_pool_overflow_is_503_uo_never_retried_nor_forwarded():
    script = Script(shop_1=[("slow", 1.0, 200)])
    sc = make(script, 'retries: {attempts: 3, retryOn: "5xx,reset"}', POOL.replace("MRPC", "0"))
    responses = run_virtual(burst(sc, 4))
    assert sorted(r.status for r in responses) == [200, 200, 503, 503]
    overflow = [r for r in sc.records if r.status == 503]
    assert all(r.flags == "UO" and r.tries == 1 for r in overflow)
    assert len(script.calls) == 2                       # one on the connection, one pending
    finished = sorted(r.end for r in sc.records if r.status == 200)
    assert finished == pytest.approx([1.0, 2.0])        # the pending one waited for the connection
    stats = next(iter(sc.clusters.values())).pool.stats
    assert stats["overflow_pending"] == 2 and stats["cx_opened"] == 1 and stats["pending_max"] == 1


def test_max_requests_per_connection_closes_connections():
    sc = make(Script(shop_1=[200]), "", POOL.replace("MRPC", "1").replace("maxConnections: 1", "maxConnections: 10"))
    run_virtual(_five(sc))
    stats = next(iter(sc.clusters.values())).pool.stats
    assert stats["cx_opened"] == 5 and stats["cx_closed"] == 5
    sc = make(Script(shop_1=[200]), "", POOL.replace("MRPC", "0").replace("maxConnections: 1", "maxConnections: 10"))
    run_virtual(_five(sc))
    assert next(iter(sc.clusters.values())).pool.stats["cx_opened"] == 1


async def _five(sc):
    for _ in range(5):
        await sc.handle(Request("GET", "/", {"host": "shop"}))


def test_http2_max_requests_caps_requests_in_flight():
    sc = make(Script(shop_1=[("slow", 1.0, 200)]), "", "connectionPool: {http: {http2MaxRequests: 2}}")
    statuses = sorted(r.status for r in run_virtual(burst(sc, 5)))
    assert statuses == [200, 200, 503, 503, 503]


OUTLIER = """loadBalancer: {simple: ROUND_ROBIN}
outlierDetection:
  consecutive5xxErrors: 3
  interval: 10s
  baseEjectionTime: 30s
  maxEjectionPercent: PCT"""


def test_outlier_detection_ejects_after_consecutive_5xx_and_returns_at_an_interval_tick():
    script = Script(shop_1=[500], shop_2=[200])
    sc = make(script, "retries: {attempts: 0}", OUTLIER.replace("PCT", "50"), hosts=("shop-1", "shop-2"))

    async def main():
        for _ in range(6):  # round robin: shop-1 gets 3 (500s), ejected at its third
            await sc.handle(Request("GET", "/", {"host": "shop"}))
        after = []
        for _ in range(4):
            await sc.handle(Request("GET", "/", {"host": "shop"}))
            after.append(sc.records[-1].host)
        await sc.clock.sleep(35.0)  # ejected at ~0 s for 30 s: back at the 30 s tick... (ticks at 10, 20, 30, 40)
        back = []
        for _ in range(4):
            await sc.handle(Request("GET", "/", {"host": "shop"}))
            back.append(sc.records[-1].host)
        return after, back

    after, back = run_virtual(main())
    assert after == ["shop-2"] * 4 and "shop-1" in back
    detector = next(iter(sc.clusters.values())).detector
    kinds = [(kind, host) for _, kind, host, _ in detector.events]
    assert kinds[:2] == [("eject", "shop-1"), ("uneject", "shop-1")]
    assert detector.events[1][0] == 30.0  # the first interval tick at least 30 s after the ejection


def test_max_ejection_percent_10_with_two_hosts_ejects_nothing():
    """(ejected + 1) / hosts = 50 % > 10 %: Envoy refuses (always_eject_one_host is off)."""
    sc = make(Script(shop_1=[500], shop_2=[200]), "retries: {attempts: 0}", OUTLIER.replace("PCT", "10"),
              hosts=("shop-1", "shop-2"))
    run_virtual(_five(sc))
    detector = next(iter(sc.clusters.values())).detector
    assert not detector.ejected and [e[1] for e in detector.events] == ["overflow"]


def _detector(**kw):
    settings = OutlierSettings(**{"consecutive_5xx": 3, "interval": 10.0, "base_ejection_time": 30.0,
                                  "max_ejection_percent": 100.0, **kw})
    return OutlierDetector(settings, ["a", "b", "c"])


def test_ejection_time_is_base_times_the_backoff_which_decays_while_healthy():
    d = _detector()
    for _ in range(3):
        d.record("a", 503, 1.0)
    assert d.ejected == {"a"}
    d.advance(30.0)
    assert d.ejected == {"a"}           # at the 30 s tick only 29 s have passed
    d.advance(40.0)
    assert not d.ejected                # let back at the 40 s tick
    for _ in range(3):
        d.record("a", 503, 41.0)        # second ejection soon after: 2 x 30 s
    assert d.monitors["a"].backoff == 2
    d.advance(100.0)
    assert d.ejected == {"a"}           # 59 s after the ejection
    d.advance(110.0)
    assert not d.ejected                # at 69 s >= 60 s
    d.advance(150.0)                    # healthy ticks: backoff decrements once per interval
    assert d.monitors["a"].backoff == 0 and d.monitors["a"].num_ejections == 2


def test_a_success_resets_the_count_and_gateway_errors_count_only_502_503_504():
    d = _detector(consecutive_5xx=0, consecutive_gateway=2)
    d.record("a", 500, 0.0)
    d.record("a", 500, 0.0)
    assert not d.ejected                # 500 is not a gateway error; 5xx detection is off (0)
    d.record("b", 503, 0.0)
    d.record("b", 200, 0.0)
    d.record("b", 504, 0.0)
    assert not d.ejected
    d.record("b", 502, 0.0)
    assert d.ejected == {"b"}


def test_connect_failures_and_timeouts_count_as_5xx_for_outlier_detection():
    script = Script(shop_1=["refuse"], shop_2=[200])
    sc = make(script, "retries: {attempts: 0}", OUTLIER.replace("PCT", "50"), hosts=("shop-1", "shop-2"))
    run_virtual(_five(sc))
    run_virtual(_five(sc))
    assert next(iter(sc.clusters.values())).detector.ejected == {"shop-1"}


def test_min_health_percent_is_a_panic_threshold():
    d = _detector(min_health_percent=50.0)
    for host in ("a", "b"):
        for _ in range(3):
            d.record(host, 503, 0.0)
    assert d.ejected == {"a", "b"}
    assert d.available(["a", "b", "c"], 0.0) == ["a", "b", "c"]  # 33 % healthy < 50 %: use them all
    d0 = _detector()
    for host in ("a", "b", "c"):
        for _ in range(3):
            d0.record(host, 503, 0.0)
    assert d0.available(["a", "b", "c"], 0.0) == []  # Istio's default 0 %: no panic, no host


def test_all_hosts_ejected_is_503_uh():
    sc = make(Script(shop_1=[500]), "retries: {attempts: 0}", OUTLIER.replace("PCT", "100"))
    run_virtual(_five(sc))
    assert [r.flags for r in sc.records][-2:] == ["UH", "UH"]


def test_round_robin_alternates_and_consistent_hash_keeps_a_key_on_one_host():
    script = Script()
    sc = make(script, "", hosts=("shop-1", "shop-2", "shop-3"))
    run_virtual(_five(sc))
    assert [n for _, n in script.calls] == ["shop-1", "shop-2", "shop-3", "shop-1", "shop-2"]
    script = Script()
    sc = make(script, "", "loadBalancer: {consistentHash: {httpHeaderName: x-user}}",
              hosts=("shop-1", "shop-2", "shop-3"))

    async def users():
        for user in ["ann", "bob", "cy"] * 4:
            await sc.handle(Request("GET", "/", {"host": "shop", "x-user": user}))

    run_virtual(users())
    hosts = [n for _, n in script.calls]
    assert hosts[0::3] == [hosts[0]] * 4 and hosts[1::3] == [hosts[1]] * 4 and hosts[2::3] == [hosts[2]] * 4


def test_pool_limits_changed_while_traffic_runs_apply_to_the_next_request():
    script = Script(shop_1=[("slow", 1.0, 200)])
    sc = make(script, "", "connectionPool: {http: {http2MaxRequests: 1}}")

    async def main():
        first = await burst(sc, 3)
        sc.apply(config("", "connectionPool: {http: {http2MaxRequests: 3}}"))
        second = await burst(sc, 3)
        return [r.status for r in first], [r.status for r in second]

    first, second = run_virtual(main())
    assert sorted(first) == [200, 503, 503] and second == [200, 200, 200]


def test_connection_pool_settings_defaults_are_istios_unlimited():
    assert ConnectionPoolSettings().max_connections == 2 ** 32 - 1


def test_least_request_sends_fewer_requests_to_a_slow_host():
    script = Script(shop_1=[("slow", 1.0, 200)], shop_2=[("slow", 0.01, 200)], shop_3=[("slow", 0.01, 200)])
    sc = make(script, "", "loadBalancer: {simple: LEAST_REQUEST}", hosts=("shop-1", "shop-2", "shop-3"))

    async def main():
        async def one_more(i):
            await asyncio.sleep(i * 0.02)
            await sc.handle(Request("GET", "/", {"host": "shop"}))
        await asyncio.gather(*(one_more(i) for i in range(150)))

    run_virtual(main())
    counts = {h: sum(1 for _, n in script.calls if n == h) for h in ("shop-1", "shop-2", "shop-3")}
    assert counts["shop-1"] < counts["shop-2"] / 2 and counts["shop-1"] < counts["shop-3"] / 2, counts
