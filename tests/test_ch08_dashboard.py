"""Chapter 8's live dashboard simulation and the lab additions the notebook prints."""

import asyncio

import pytest

from workbook.core.params import ParameterError
from workbook.labs.ch08_observability import experiments as ex
from workbook.labs.ch08_observability.dashboard import STEP, DashboardSim, scripted_run
from workbook.labs.ch08_observability.exercise import check_alert_rule
from workbook.observability import LATENCY_BUCKETS, ObservabilityError, load_rules


def test_an_error_fault_takes_the_alert_through_pending_firing_resolved():
    sim = scripted_run(0, schedule=((0, "none"), (120, "errors"), (420, "none")), until=780)
    changes = [(c["t"], c["to"]) for c in sim.transitions if c["alert"] == "HighErrorRatio"]
    assert [s for _, s in changes] == ["pending", "firing", "resolved"]
    (pending, _), (firing, _), (resolved, _) = changes
    assert 120 < pending <= 120 + 2 * STEP          # the first evaluation or two that see the errors
    assert firing - pending == 60                   # for: 1m, evaluated every 15 s
    assert 420 < resolved <= 420 + 60 + STEP        # once the 1 m rate no longer sees the fault
    assert all(p["SlowP90"] == "inactive" for p in sim.points)
    before = [p for p in sim.points if 60 <= p["t"] <= 120]
    assert all(p["error_ratio"] < 0.05 for p in before)
    assert 17 < sum(p["rate"] for p in before) / len(before) < 23  # 20 requests/s, Poisson


def test_a_slow_fault_fires_the_latency_alert_only():
    sim = scripted_run(1, schedule=((0, "none"), (60, "slow")), until=300)
    assert [c["to"] for c in sim.transitions if c["alert"] == "SlowP90"] == ["pending", "firing"]
    assert not [c for c in sim.transitions if c["alert"] == "HighErrorRatio"]
    assert sim.points[-1]["p90"] > 0.25


def test_the_same_seed_and_steps_give_the_same_numbers_and_another_seed_others():
    a, b, c = scripted_run(3), scripted_run(3), scripted_run(4)
    assert a.points == b.points and a.transitions == b.transitions
    assert a.points != c.points


def test_advance_rounds_up_to_whole_steps_and_returns_the_new_rows():
    sim = DashboardSim(0)
    rows = sim.advance(20)
    assert [r["t"] for r in rows] == [15.0, 30.0] and sim.now == 30.0


def test_bad_input_names_the_field():
    sim = DashboardSim(0)
    with pytest.raises(ObservabilityError, match="fault: expected one of none, errors, slow"):
        sim.set_fault("boom")
    with pytest.raises(ParameterError, match="seed"):
        DashboardSim(-1)
    with pytest.raises(ParameterError, match="seconds"):
        sim.advance(0)


def test_naive_versus_for_records_the_rule_states():
    result = asyncio.run(ex.naive_versus_for(0))
    states = result["states"]
    start, end, _ = result["scenario"]["incident"]
    assert {s for _, s in states} == {"inactive", "pending", "firing"}
    assert all(start <= t <= end + 120 for t, s in states if s == "firing")
    for s, e, _ in result["scenario"]["spikes"]:   # each spike: pending, never firing
        near = [st for t, st in states if s <= t <= e + 240]
        assert "pending" in near and "firing" not in near


def test_the_rules_the_notebook_prints_do_not_answer_the_exercise():
    rule = load_rules(ex.NAIVE_RULE)[0].rules[0]
    assert not check_alert_rule({"expr": rule.expr, "for": "5m"})
    from workbook.labs.ch08_observability.dashboard import DASHBOARD_RULES
    for rule in load_rules(DASHBOARD_RULES)[0].rules:
        assert not check_alert_rule({"expr": rule.expr.replace('=~"5.."', '="500"'), "for": "1m"})


def test_extrapolation_example_shows_increase_is_not_last_minus_first():
    rows = {r["t_s"]: r for r in ex.extrapolation_example()["rows"]}
    assert rows[67.5]["last_minus_first"] == 30 and rows[67.5]["increase_1m"] == pytest.approx(40)
    assert rows[60.0]["increase_1m"] == pytest.approx(40) and rows[60.0]["rate_1m_per_s"] == pytest.approx(40 / 60)


def test_red_demo_exposes_counts_by_status_and_the_stated_buckets():
    red = asyncio.run(ex.red_demo(requests=9))
    text = "\n".join(red["lines"])
    assert 'status="200"} 6.0' in text and 'status="404"} 3.0' in text
    assert 'http_request_duration_seconds_count{method="GET",route="/stock/{sku}",service="inventory"} 9.0' in text
    assert red["bucket_bounds"] == [f"{b:g}" if b < 1 else f"{b:.1f}" for b in LATENCY_BUCKETS] + ["+Inf"]
    assert red["content_type"].startswith("text/plain")


@pytest.mark.prometheus
def test_compare_with_prometheus_agrees(prometheus_with):
    prometheus_with  # noqa: B018 (the fixture skips with an install hint when prometheus is missing)
    result = ex.compare_with_prometheus(0)
    assert result["agree"] and result["compared"] == 40
    assert result["max_rel_diff"] <= 1e-9


def test_repeat_demo_waits_groups_and_repeats_an_unchanged_group_hourly():
    sent = asyncio.run(ex.repeat_demo(minutes=150))
    assert [(n["time"], n["alerts"]) for n in sent] == [
        (30.0, ["db-1"]),                       # group_wait
        (1230.0, ["db-1", "db-2"]),             # the group changed at 20 min: next group_interval tick
        (4830.0, ["db-1", "db-2"]),             # unchanged: repeat_interval (1 h) later
        (8430.0, ["db-1", "db-2"])]
    assert {n["status"] for n in sent} == {"firing"}


def test_resilience_demo_reports_breaker_and_retry_metrics():
    lines = asyncio.run(ex.resilience_demo())
    assert 'circuit_breaker_calls_total{breaker="inventory",outcome="error"} 4.0' in lines
    assert 'circuit_breaker_calls_total{breaker="inventory",outcome="not_permitted"} 2.0' in lines
    assert 'circuit_breaker_state{breaker="inventory",state="OPEN"} 1.0' in lines
    assert 'retries_total{name="inventory"} 2.0' in lines
    assert lines == asyncio.run(ex.resilience_demo())


def test_service_alert_timeline_carries_the_templated_summaries_and_keep_firing_for():
    timeline = ex.service_alert_timeline()
    firing = [r for r in timeline if r["HighErrorRatio"] == "firing"]
    assert firing and all(r["summaries"]["HighErrorRatio"].startswith("inventory: ") for r in firing)
    assert firing[0]["summaries"]["HighErrorRatio"].endswith("% of requests fail")
    stopped = next(r["minute"] for r in timeline if r["minute"] > firing[0]["minute"] and r["error_ratio"] <= 0.05)
    resolved = next(r["minute"] for r in timeline if r["minute"] > stopped and r["HighErrorRatio"] == "inactive")
    assert resolved - stopped == 5  # keep_firing_for: 5m


def test_error_span_is_where_the_failure_began_with_its_event():
    from workbook.labs.ch08_observability import traces as tr
    failed = tr.error_span(0)
    assert (failed["service"], failed["status"]) == ("payments", "ERROR")
    assert failed["attributes"]["http.response.status_code"] == 503
    assert [e["name"] for e in failed["events"]] == ["card processor unavailable"]
    assert "gateway: POST /checkout (SERVER)" in failed["failed_spans"]
    assert tr.error_span(0) == failed


def test_compare_with_prometheus_without_the_binaries_says_how_to_install(monkeypatch):
    from workbook.core import prometheus_server
    from workbook.core.external import INSTALL_HINTS, ServiceUnavailable

    def missing(name):
        raise ServiceUnavailable(f"{name} not found on PATH: {INSTALL_HINTS[name]}")

    monkeypatch.setattr(prometheus_server, "find_executable", missing)
    with pytest.raises(ServiceUnavailable, match="apt-get install -y prometheus"):
        ex.compare_with_prometheus(0)


def test_one_request_logs_are_plain_rows_of_its_trace_and_shop_logs_is_the_same_run():
    from workbook.labs.ch08_observability import traces as tr
    one = tr.one_request(0)
    assert one["logs"] and all(r["trace_id"] == one["trace_id"] for r in one["logs"])
    assert tr.shop_logs(0).query(trace_id=one["trace_id"]) == one["logs"]
