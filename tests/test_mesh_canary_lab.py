"""Chapter 7 lab, traffic_runs: the corrected configuration executed in virtual time, as plain data."""

from __future__ import annotations

import json

import pytest

from workbook.labs.ch07_mesh.traffic_runs import canary_run, outlier_run, pool_run, retry_rows, split_run


def test_split_run_lands_in_its_99_percent_interval():
    result = split_run(seed=0, n=10_000)
    assert result["within"] and result["v1"] + result["v2"] == 10_000
    low, high = result["interval_99"]
    assert low < result["v2"] < high


def test_retry_rows_show_envoys_conditions():
    rows = {(r["retryOn"], r["upstream"]): r for r in retry_rows()}
    assert rows[("gateway-error", "500 200")]["tries"] == 1
    assert rows[("connect-failure", "reset 200")]["flags"] == "UC"
    assert rows[("(Istio default)", "503 503 503")] == {"retryOn": "(Istio default)", "upstream": "503 503 503",
                                                        "tries": 3, "status": 503, "flags": "URX"}
    assert rows[("5xx", "500 500 500 500")]["tries"] == 4


def test_outlier_run_ejects_the_failing_instance_and_doubles_the_second_ejection():
    result = outlier_run(seed=0)
    events = [(e["event"], e["host"]) for e in result["events"]]
    assert events[:3] == [("eject", "order-service-v1-0"), ("uneject", "order-service-v1-0"),
                          ("eject", "order-service-v1-0")]
    first, back, second = (e["time"] for e in result["events"][:3])
    assert 20 <= first < 21 and back == 60.0       # 30 s base, let back at the first tick after it
    assert "60 s" in result["events"][2]["why"]      # the second ejection lasts 2 x 30 s
    during = [row for row in result["per_second"] if 22 <= row["second"] < 60]
    assert all(row["to_failing"] == 0 and row["errors"] == 0 for row in during)
    assert result["errors"] <= 12                  # 5 to eject, 5 to eject again, a few in flight
    json.dumps(result)


def test_pool_run_overflows_as_503_uo_beyond_connections_plus_pending():
    result = pool_run(100)
    assert result["served"] == 75 and result["overflow_503_UO"] == 25  # 50 connections + 25 pending
    assert result["pool"]["pending_max"] == 25 and result["latest_served"] == pytest.approx(1.0, abs=0.01)


@pytest.mark.parametrize("v2,outcome,steps", [("healthy", "promoted", [5, 25, 50, 100]),
                                               ("errors", "rolled back", [5, 0]),
                                               ("slow", "rolled back", [5, 0])])
def test_canary_run_promotes_or_rolls_back(v2, outcome, steps):
    result = canary_run(v2, seed=0)
    assert result["outcome"] == outcome and [w for _, w in result["weights"]] == steps
    assert set(result["subsets_after"]) == ({"v2"} if outcome == "promoted" else {"v1"})
    json.dumps(result, default=str)


def test_canary_run_is_deterministic_and_refuses_an_unknown_variant():
    assert canary_run("errors", seed=3) == canary_run("errors", seed=3)
    with pytest.raises(ValueError, match="healthy"):
        canary_run("flaky")
