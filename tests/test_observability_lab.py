"""Chapter 8's lab: the exercise checker accepts a right rule and rejects the naive ones; experiments give data."""

import asyncio

import pytest

from workbook.core.verdict import Verdict
from workbook.labs.ch08_observability.exercise import check_alert_rule, exercise_series, scenario
from workbook.labs.ch08_observability.experiments import (naive_versus_for, quantile_error, routing_demo,
                                                          service_alert_timeline, slo_table)

RATIO_1M = 'sum(rate(http_requests_total{status="500"}[1m])) / sum(rate(http_requests_total[1m]))'


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_right_rule_passes(seed):
    verdict = check_alert_rule({"expr": f"{RATIO_1M} > 0.03", "for": "3m"}, seed=seed)
    assert isinstance(verdict, Verdict) and verdict.passed, str(verdict)
    assert max(verdict.numbers["detection_s"]) <= 300


def test_the_right_rule_as_yaml_passes():
    answer = f"alert: CheckoutErrors\nexpr: '{RATIO_1M} > 0.03'\nfor: 3m\nlabels:\n  severity: page\n"
    assert check_alert_rule(answer)


def test_the_articles_value_over_threshold_without_for_pages_on_spikes():
    verdict = check_alert_rule({"expr": f"{RATIO_1M} > 0.05"})
    assert not verdict
    assert verdict.numbers["false_pages"] > 0 and "without for:" in verdict.hint


def test_a_for_too_long_pages_too_late():
    verdict = check_alert_rule({"expr": f"{RATIO_1M} > 0.03", "for": "10m"})
    assert not verdict
    failed = [c.name for c in verdict.checks if not c.passed]
    assert failed == ["each within 5 minutes of its start"]


def test_a_threshold_on_the_raw_counter_is_rejected():
    verdict = check_alert_rule({"expr": 'http_requests_total{status="500"} > 100', "for": "2m"})
    assert not verdict
    assert any(c.name.startswith("the condition is on a rate") and not c.passed for c in verdict.checks)
    assert "a counter only grows" in verdict.hint


def test_a_long_rate_window_lets_a_spike_through():
    verdict = check_alert_rule({"expr": RATIO_1M.replace("[1m]", "[10m]") + " > 0.03", "for": "1m"})
    assert not verdict and verdict.numbers["false_pages"] > 0


@pytest.mark.parametrize("answer,needle", [
    ({"expr": "rate(x[5m] > 1"}, "expr"),
    ({"expr": f"{RATIO_1M} > 0.03", "for": "3 minutes"}, "for"),
    (42, "answer"),
])
def test_an_answer_that_cannot_be_judged_says_why(answer, needle):
    verdict = check_alert_rule(answer)
    assert not verdict and needle in str(verdict)


def test_the_exercise_series_is_reproducible():
    a, _ = exercise_series(3)
    b, _ = exercise_series(3)
    key = a.series()[0]
    assert a.samples(key) == b.samples(key)
    sc = scenario(3)
    start, end, _ = sc["incident"]
    assert all(not (start - 600 < s < end + 600) for s, _, _ in sc["spikes"])


def test_experiments_return_plain_data():
    rows = quantile_error()
    coarse = [r for r in rows if r["layout"] == "coarse" and r["q"] == 0.5][0]
    stated = [r for r in rows if r["layout"] == "service (stated)" and r["q"] == 0.5][0]
    assert abs(coarse["error_pct"]) > abs(stated["error_pct"])
    result = asyncio.run(naive_versus_for(0))
    assert len(result["naive_pages"]) > 3 * len(result["prometheus_pages"]) and len(result["prometheus_pages"]) == 1
    timeline = service_alert_timeline()
    assert [r["HighErrorRatio"] for r in timeline[27:29]] == ["pending", "firing"]
    assert len(slo_table(0)) == 6
    demo = asyncio.run(routing_demo())
    assert [a for n in demo["pager"] for a in n["alerts"]] == ["ServiceDown/shop", "ServiceDown/shop"]
    team = [a for n in demo["team"] for a in n["alerts"]]
    assert "SlowRoute/search" not in team            # silenced
    assert all(n["delivered"] for n in demo["log"])
