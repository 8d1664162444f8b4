"""Chapter 7 lab, ``graph_runs``: routing rows, timeouts, faults, the mesh graph's edge numbers,
configuration changed while traffic runs; and the notebook's exercise cell."""

import json
from pathlib import Path

import pytest

from workbook.core import ParameterError
from workbook.labs.ch07_mesh import graph_runs
from workbook.labs.ch07_mesh.traffic_runs import corrected_config
from workbook.mesh import FaultSpec

ROOT = Path(__file__).resolve().parent.parent


def test_routing_first_match_wins_and_prefix_is_a_string_prefix():
    rows = {(r["config"], r["path"]): r for r in graph_runs.routing_rows()}
    assert rows[("corrected", "/api/users/7")]["route"] == "users"
    assert rows[("corrected", "/api/usersettings")]["route"] == "users"  # prefix, not a path segment
    assert rows[("corrected", "/api/payments/9")]["x-mesh-route"] == "payments"
    assert rows[("corrected", "/api/orders/42")]["x-mesh-route"] == "-"
    assert rows[("corrected", "/health")]["status"] == 404 and rows[("corrected", "/health")]["flags"] == "NR"
    overlap = rows[("overlap (/api first)", "/api/orders/42")]
    assert overlap["route"] == "everything-under-api" and overlap["upstream"].startswith("user-service")


def test_timeouts_route_bounds_everything_per_try_is_retried():
    rows = {r["case"].split(";")[1].strip(): r for r in graph_runs.timeout_rows()}
    slow = rows["upstream takes 12 s"]
    assert (slow["status"], slow["flags"], slow["tries"], slow["answered_after_s"]) == (504, "UT", 1, 10.0)
    second = rows["first try 3 s, then 20 ms"]
    assert second["status"] == 200 and second["tries"] == 2 and 2.02 <= second["answered_after_s"] < 2.1
    every = rows["every try 3 s"]
    assert every["status"] == 504 and every["flags"] == "UT,URX" and every["tries"] == 4
    assert 8.0 <= every["answered_after_s"] < 9.0


def test_faults_hit_their_percentage_within_the_binomial_interval():
    for row in graph_runs.fault_rows(seed=0, n=2000):
        low, high = row["interval_99"]
        assert low <= row["hit"] <= high, row
        assert low >= 0
    abort = next(r for r in graph_runs.fault_rows(seed=1, n=1000) if r["fault"].startswith("abort"))
    assert abort["statuses"][503] == abort["hit"]  # aborted requests are answered, never forwarded


def test_with_fault_replaces_and_removes_and_names_a_bad_route():
    config = graph_runs.with_fault(corrected_config(), "orders", FaultSpec(abort_status=503, abort_percent=5.0))
    orders = next(r for _, rs in config.routes for r in rs if r.name == "orders")
    assert orders.fault.abort_percent == 5.0
    cleared = graph_runs.with_fault(config, "orders", None)
    assert next(r for _, rs in cleared.routes for r in rs if r.name == "orders").fault is None
    with pytest.raises(ParameterError, match="route_name"):
        graph_runs.with_fault(config, "nope", None)


def test_orders_config_validates_by_name():
    for kwargs, name in (({"v2_weight": 120}, "v2_weight"), ({"v2_weight": 2.5}, "v2_weight"),
                         ({"abort_percent": -1}, "abort_percent"), ({"delay_percent": 101}, "delay_percent")):
        with pytest.raises(ParameterError, match=name):
            graph_runs.orders_config(**kwargs)
    with pytest.raises(ParameterError, match="rate"):
        graph_runs.mesh_run(rate=0)


def test_edge_stats_count_every_request_once_per_layer():
    run = graph_runs.mesh_run(0, rate=40.0, duration=20.0)
    edges = {(e["source"], e["target"]): e for e in graph_runs.edge_stats(run)}
    ingress = [e for (s, _), e in edges.items() if s == graph_runs.INGRESS]
    assert sum(e["requests"] for e in ingress) == len(run["records"])
    orders = edges[(graph_runs.INGRESS, "order-service")]
    versions = edges[("order-service", "order-service v1")]["requests"] + \
        edges[("order-service", "order-service v2")]["requests"]
    assert versions == orders["requests"]
    assert all(e["error_rate"] == 0 for e in edges.values())
    charged = [e["requests"] for (s, t), e in edges.items() if t == "payment-service" and s != graph_runs.INGRESS]
    assert {s for (s, t) in edges if t == "payment-service"} == {graph_runs.INGRESS, "order-service v1",
                                                                 "order-service v2"}
    # a charge that started after the run's last second is outside the window edge_stats counts
    assert sum(1 for rs in run["calls"].values() for r in rs if r.start < 20.0) == sum(charged)
    assert 0.35 < sum(charged) / orders["requests"] < 0.65  # payment_share 0.5
    assert edges[("payment-service", "payment-service v1")]["requests"] == \
        edges[(graph_runs.INGRESS, "payment-service")]["requests"] + sum(charged)
    assert orders["rps"] == pytest.approx(orders["requests"] / 20.0, abs=0.01)


def test_edge_stats_show_aborts_on_the_ingress_edge_and_v2_errors_on_the_v2_edge():
    run = graph_runs.mesh_run(0, v2_weight=50, abort_percent=20.0, v2_error_rate=0.5, rate=40.0, duration=30.0)
    edges = {(e["source"], e["target"]): e for e in graph_runs.edge_stats(run)}
    orders = edges[(graph_runs.INGRESS, "order-service")]
    v1, v2 = edges[("order-service", "order-service v1")], edges[("order-service", "order-service v2")]
    assert v1["error_rate"] == 0 and 0.35 < v2["error_rate"] < 0.65
    assert v1["requests"] + v2["requests"] < orders["requests"]  # the aborted ones reached no workload
    assert orders["error_rate"] > v2["error_rate"] * v2["requests"] / orders["requests"]


def test_a_failing_payment_call_turns_the_order_into_a_502():
    run = graph_runs.mesh_run(0, payment_share=1.0, payment_error_rate=1.0, duration=10.0)
    orders = [r for r in run["records"] if r.route == "orders"]
    assert orders and all(r.status == 502 for r in orders)
    assert all(r.status == 500 for records in run["calls"].values() for r in records)
    edges = {(e["source"], e["target"]): e for e in graph_runs.edge_stats(run)}
    assert edges[(graph_runs.INGRESS, "order-service")]["error_rate"] == 1.0
    assert edges[("order-service v1", "payment-service")]["error_rate"] == 1.0
    assert edges[(graph_runs.INGRESS, "user-service")]["error_rate"] == 0.0
    quiet = graph_runs.mesh_run(0, payment_share=0.0, duration=10.0)
    assert quiet["calls"] == {"order-service-v1-0": [], "order-service-v1-1": [], "order-service-v2-0": []}


def test_delay_fault_shows_in_the_edge_p99():
    quiet = graph_runs.edge_stats(graph_runs.mesh_run(0, duration=20.0))
    delayed = graph_runs.edge_stats(graph_runs.mesh_run(0, delay_percent=30.0, duration=20.0))
    p99 = {e["target"]: e["p99_ms"] for e in delayed}
    assert p99["order-service"] >= 500 and p99["user-service"] < 100
    assert {e["target"]: e["p99_ms"] for e in quiet}["order-service"] < 100


def test_edges_in_a_window_while_traffic_runs_show_an_incident_downstream():
    run = graph_runs.mesh_run(0, duration=40.0, incidents=[(20.0, "payment-service-v1-0", 0.4)])
    before = {(e["source"], e["target"]): e for e in graph_runs.edge_stats(run, 0.0, 20.0)}
    after = {(e["source"], e["target"]): e for e in graph_runs.edge_stats(run, 20.0, 40.0)}
    assert all(e["error_rate"] == 0 for e in before.values())
    assert 0.3 < after[("payment-service", "payment-service v1")]["error_rate"] < 0.5
    assert 0.1 < after[(graph_runs.INGRESS, "order-service")]["error_rate"] < 0.3  # the 502s of failed charges
    assert after[(graph_runs.INGRESS, "user-service")]["error_rate"] == 0
    whole = {(e["source"], e["target"]): e for e in graph_runs.edge_stats(run)}
    key = (graph_runs.INGRESS, "order-service")
    assert whole[key]["requests"] == before[key]["requests"] + after[key]["requests"]
    assert after[key]["rps"] == pytest.approx(after[key]["requests"] / 20.0, abs=0.01)
    with pytest.raises(ParameterError, match="start, end"):
        graph_runs.edge_stats(run, 30.0, 30.0)
    with pytest.raises(ParameterError, match=r"incidents\[0\].instance"):
        graph_runs.mesh_run(0, incidents=[(1.0, "nobody", 0.5)])


def test_mesh_run_is_deterministic():
    a = graph_runs.edge_stats(graph_runs.mesh_run(3, v2_weight=30, abort_percent=5.0, duration=15.0))
    b = graph_runs.edge_stats(graph_runs.mesh_run(3, v2_weight=30, abort_percent=5.0, duration=15.0))
    assert a == b


def test_configuration_changed_while_traffic_runs_takes_effect_at_once():
    live = graph_runs.live_change_run(0)
    assert live["applied"] == [(30.0, "split 50/50"), (60.0, "abort 503 on 20 %")]
    windows = live["windows"]
    assert all(0.12 < w["v2_share"] < 0.28 and w["aborted_503_FI"] == 0 for w in windows[:3])
    assert all(0.4 < w["v2_share"] < 0.6 and w["aborted_503_FI"] == 0 for w in windows[3:6])
    assert all(0.13 < w["error_share"] < 0.27 and w["aborted_503_FI"] > 0 for w in windows[6:])


def test_the_notebook_does_not_show_a_passing_answer_above_the_exercise():
    from workbook.labs.ch07_mesh.exercise import model_answer

    nb = json.loads((ROOT / "notebooks" / "07_service_mesh.ipynb").read_text())
    code = ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]
    assert "check_authorization_answer(answer)" in code[-1]
    for text in code[:-1]:
        assert "model_answer" not in text and "check_authorization_answer" not in text
        assert "corrected/security" not in text
    printed = "".join("".join(o.get("text", "")) for c in nb["cells"] if c["cell_type"] == "code"
                      for o in c["outputs"])
    assert "FAIL: AuthorizationPolicies" in printed and "PASS: AuthorizationPolicies" not in printed
    assert '"Bearer *"]\n    when' not in printed and model_answer() not in printed
