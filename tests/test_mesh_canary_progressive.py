"""The progressive canary (Flagger's analysis) in virtual time: promoted when healthy, rolled back when not."""

from __future__ import annotations

import pytest

from workbook.core.errors import ParameterError
from workbook.core.load import open_loop
from workbook.core.seeds import stream
from workbook.core.simnet import Request, Response, SimNetwork
from workbook.core.virtual_time import run_virtual
from workbook.mesh import (CanaryAnalysis, Endpoint, Sidecar, analyse_window, parse_resources, run_canary,
                           simnet_transport)
from workbook.mesh.sidecar import RequestRecord

CONFIG = """apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: shop, namespace: default}
spec:
  hosts: [shop]
  http:
  - name: main
    route:
    - {destination: {host: shop, subset: v1}, weight: 100}
    - {destination: {host: shop, subset: v2}, weight: 0}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: shop, namespace: default}
spec:
  host: shop
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
"""


def rollout(v2_error_rate=0.0, v2_service_time=0.02, seed=0, analysis=None):
    net = SimNetwork(seed, latency=0.001)
    rng = stream(seed, "v2 errors")

    async def v2(request):
        if v2_error_rate and rng.random() < v2_error_rate:
            return Response(500, "broken")
        return "v2"

    net.add_service("shop-v1", service_time=0.02)
    net.add_service("shop-v2", v2, service_time=v2_service_time)
    net.add_service("client")
    eps = [Endpoint(f"shop-{v}", "shop", {"version": v}) for v in ("v1", "v2")]
    sidecar = Sidecar("client", eps, simnet_transport(net, "client"), config=parse_resources(CONFIG), seed=seed)
    arrivals = stream(seed, "arrivals")

    async def load(duration):
        async def send(i):
            return await sidecar.handle(Request("GET", "/", {"host": "shop"}))
        await open_loop(send, rate=20, duration=duration, rng=arrivals)

    async def main():
        run = await run_canary(sidecar, "main", load, analysis=analysis or CanaryAnalysis(interval=60, threshold=2))
        mark = len(sidecar.records)
        await load(10)
        return run, sidecar.records[mark:]

    run, after = run_virtual(main())
    return run, after


def test_a_healthy_canary_is_promoted_step_by_step():
    run, after = rollout()
    assert run.outcome == "promoted"
    assert [w for _, w in run.weights] == [5, 25, 50, 100]
    assert [t for t, _ in run.weights] == pytest.approx([0, 60, 120, 180], abs=0.1)  # + requests in flight
    assert [a.action for a in run.analyses] == ["advance", "advance", "advance", "promote"]
    assert all(a.passed and a.success_rate == 100.0 and a.p99_ms < 500 for a in run.analyses)
    counts = [a.requests for a in run.analyses]
    assert counts[0] < counts[1] < counts[2] < counts[3]  # v2's share of ~1200 requests per window grows
    assert {r.subset for r in after} == {"v2"}


def test_an_erroring_canary_is_rolled_back_after_the_failed_check_limit():
    run, after = rollout(v2_error_rate=0.2)
    assert run.outcome == "rolled back"
    assert [w for _, w in run.weights] == [5, 0]
    assert [a.action for a in run.analyses] == ["hold", "rollback"]  # a failed check holds the weight
    assert all(a.weight == 5 and not a.passed and a.success_rate < 99 for a in run.analyses)
    assert "request-success-rate" in run.analyses[0].reasons[0]
    assert {r.subset for r in after} == {"v1"}  # every request back on v1 at once


def test_a_slow_canary_is_rolled_back_on_its_p99():
    run, _ = rollout(v2_service_time=0.8)
    assert run.outcome == "rolled back"
    assert all(a.success_rate == 100.0 and a.p99_ms > 500 for a in run.analyses)
    assert "request-duration p99" in run.analyses[-1].reasons[0]


def test_failed_checks_accumulate_within_a_rollout_as_in_flagger():
    """threshold 3: the erroring canary holds twice at 5 %, then rolls back on the third failure."""
    run, _ = rollout(v2_error_rate=0.2, analysis=CanaryAnalysis(interval=60, threshold=3))
    assert [a.failed_checks for a in run.analyses] == [1, 2, 3] and run.outcome == "rolled back"


def test_the_rollout_is_deterministic_for_a_seed():
    a, _ = rollout(v2_error_rate=0.2, seed=4)
    b, _ = rollout(v2_error_rate=0.2, seed=4)
    assert a.rows() == b.rows() and a.weights == b.weights


def test_a_window_without_canary_traffic_is_a_failed_check():
    analysis = CanaryAnalysis()
    result, passed = analyse_window([], 0, 60, "v2", "main", analysis, 5, 0)
    assert not passed and result.failed_checks == 1 and "no values found" in result.reasons[0]
    record = RequestRecord(1.0, 1.2, "GET", "/", "main", "v2", "shop-v2", 1, 200, "")
    result, passed = analyse_window([record], 0, 60, "v2", "main", analysis, 5, 1)
    assert passed and result.failed_checks == 1 and result.p99_ms == pytest.approx(200.0)


@pytest.mark.parametrize("field,value", [("step_weights", (25, 5)), ("step_weights", (5, 150)), ("step_weights", ()),
                                         ("interval", 0), ("min_success_rate", 101), ("threshold", 0)])
def test_bad_analysis_settings_are_refused_naming_the_field(field, value):
    with pytest.raises(ParameterError, match=field):
        CanaryAnalysis(**{field: value})
