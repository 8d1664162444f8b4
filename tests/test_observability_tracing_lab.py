"""Chapter 8's trace and log experiments return reproducible plain data for the notebook."""

import asyncio

from workbook.labs.ch08_observability.traces import (TRACEPARENT_CASES, dependency_edges, drill_down_demo,
                                                     live_trace, one_request, sampling_sweep, sampling_table,
                                                     tail_buffer_cost, traceparent_table)


def test_traceparent_table_accepts_only_the_valid_and_future_versions():
    rows = traceparent_table()
    assert len(rows) == len(TRACEPARENT_CASES)
    accepted = [r["case"] for r in rows if r["accepted"]]
    assert accepted == ["valid, sampled", "valid, not sampled", "future version with an extra field"]
    assert all(r["server"] == "ignores it, starts a new trace" for r in rows if not r["accepted"])


def test_live_trace_over_three_http_hops_and_the_broker_is_one_trace():
    result = asyncio.run(asyncio.wait_for(live_trace(timeout=5), 30))
    assert result["one_trace"]
    spans = {s["span"]: s for s in result["spans"]}
    assert spans["orders: GET /checkout"]["parent"] == "checkout: GET"
    assert spans["shipping: process orders.placed"]["parent"] == "orders: publish orders.placed"
    assert spans["shipping: process orders.placed"]["links"] == ["orders: publish orders.placed"]
    assert sum(1 for s in result["spans"] if s["kind"] == "SERVER") == 3


def test_one_request_is_reproducible_and_goes_through_five_services_and_the_broker():
    first, again = one_request(4), one_request(4)
    assert first == again
    rows = first["waterfall"]
    assert {r["service"] for r in rows} == {"gateway", "orders", "inventory", "payments", "shipping"}
    assert {"PRODUCER", "CONSUMER"} <= {r["kind"] for r in rows}
    root = rows[0]["duration_ms"]
    assert round(sum(r["duration_ms"] for r in first["critical_path"]), 3) == root
    assert one_request(5)["trace_id"] != first["trace_id"]


def test_dependency_edges_and_sampling_table_numbers():
    edges = {(e["from"], e["to"]): e for e in dependency_edges(1, duration=20)["edges"]}
    assert edges[("orders", "payments")]["errors"] == edges[("gateway", "orders")]["errors"] > 0
    assert edges[("orders", "broker")]["topics"] == "orders.placed"
    head, tail = sampling_table(2, duration=30)
    assert head["kept"] == tail["kept"] and tail["errors_kept"] == tail["error_traces"] > head["errors_kept"]


def test_drill_down_demo_goes_from_the_alert_to_the_exemplar_trace_to_its_logs():
    result = drill_down_demo(0)
    assert result["fired"] and result["how"] == "exemplar"
    assert 240 < result["alert"]["fired_at"] <= 420, "fires during the incident"
    assert result["p90_at_fire"] > 0.25 and result["latency_s"] > 0.25
    states = [row["state"] for row in result["timeline"]]
    assert states.index("pending") < states.index("firing"), "pending before firing (for: 2m)"
    logs = result["logs"]
    assert logs and {row["trace_id"] for row in logs} == {result["trace_id"]}
    assert {row["service"] for row in logs} >= {"gateway", "orders", "inventory"}
    assert any(row["level"] == "WARNING" and "slow stock lookup" in row["message"] for row in logs)
    assert result == drill_down_demo(0), "reproducible for a seed"


def test_sampling_sweep_and_the_tail_samplers_buffer():
    rows = sampling_sweep(2, ratios=(0.05, 0.2), duration=30)
    assert [r["ratio"] for r in rows] == [0.05, 0.2] and rows[0]["kept"] < rows[1]["kept"]
    assert all(r["tail_errors_kept"] >= r["head_errors_kept"] for r in rows)
    cost = tail_buffer_cost(2, duration=20)
    assert cost["late_spans"] == 0 and cost["traces_kept"] > 0 and cost["max_spans_buffered"] > 0
    assert cost == tail_buffer_cost(2, duration=20)
