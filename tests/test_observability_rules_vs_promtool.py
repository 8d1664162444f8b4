"""The workbook's alert-rule evaluator against the real ``promtool test rules`` (2.42).

For each case the workbook's evaluator runs the rule on the series at every evaluation
and writes what it found firing at every step as a promtool unit test; promtool then
evaluates the same rule file on the same series and must agree at every step (pending vs
firing timing, ``for:`` boundaries, ``keep_firing_for``, which 2.42.0 supports, label and
annotation templating, gaps within and beyond the 5-minute lookback).
"""

import pytest

from workbook.core.prometheus_server import promtool
from workbook.observability import SeriesStore
from workbook.observability.rules import AlertState, RuleEvaluator, load_rules, promtool_unit_test

pytestmark = pytest.mark.prometheus

_ = None  # a missing sample


def _case(rules_yaml, series, *, interval=60, end=None):
    store = SeriesStore()
    steps = 0
    for name, labels, values in series:
        for i, v in enumerate(values):
            if v is not None:
                store.add(name, labels, i * interval, v)
        steps = max(steps, len(values))
    end = end if end is not None else (steps - 1) * interval
    return rules_yaml, store, interval, end


CASES = {
    # held exactly `for` (fires on the boundary), broken once (starts over), held again
    "for_boundary_and_reset": _case("""
groups:
- name: g
  rules:
  - alert: HighErrors
    expr: errors > 5
    for: 3m
""", [("errors", {"route": "/a"}, [0, 6, 6, 6, 6, 0, 6, 6, 6, 9, 9, 0, 0])]),
    # for: 0 fires at once; for 2m30s with 1m evaluations fires at the third
    "for_zero_and_off_grid": _case("""
groups:
- name: g
  rules:
  - alert: Now
    expr: errors > 5
  - alert: Later
    expr: errors > 5
    for: 2m30s
""", [("errors", {"route": "/a"}, [0, 6, 6, 6, 6, 6, 0, 0])]),
    # keep_firing_for: stays firing 2m after the condition stops, not after a pending one
    "keep_firing_for": _case("""
groups:
- name: g
  rules:
  - alert: Flappy
    expr: errors > 5
    for: 1m
    keep_firing_for: 2m
""", [("errors", {"route": "/a"}, [0, 6, 6, 6, 0, 0, 0, 0, 6, 0, 6, 6, 0, 6, 0, 0, 0])]),
    # several series, templated labels and annotations, $value formatting (1e+06 style)
    "labels_and_templates": _case("""
groups:
- name: g
  rules:
  - alert: SlowRoute
    expr: latency_seconds > 0.25
    for: 2m
    labels:
      severity: page
      route_upper: '{{ $labels.route | toUpper }}'
    annotations:
      summary: 'route {{ $labels.route }} at {{ $value }}s'
      pretty: '{{ $value | humanize }} ({{ printf "%.1f" $value }})'
""", [("latency_seconds", {"route": "/a"}, [0.1, 0.3, 0.3, 0.5, 0.5, 0.2, 1234567.0, 1234567.0, 1234567.0]),
      ("latency_seconds", {"route": "/b"}, [0.3, 0.3, 0.3, 0.3, 0.0001, 0.3, 0.3, 0.3, 0.3])]),
    # a gap shorter than the 5-minute lookback keeps the alert; a longer one resolves it
    "gaps_and_lookback": _case("""
groups:
- name: g
  rules:
  - alert: Up
    expr: errors > 5
    for: 2m
""", [("errors", {"route": "/a"}, [6, 6, 6, _, _, _, 6, 6, _, _, _, _, _, _, _, 6, 6, 6, 6])]),
    # a counter's rate and a ratio of sums (the SLO shape), with and without bool and `and`
    "rate_ratio_and_multiwindow": _case("""
groups:
- name: g
  rules:
  - alert: ErrorRatio
    expr: sum by (route) (rate(requests_total{code="500"}[3m])) / sum by (route) (rate(requests_total[3m])) > 0.1
    for: 2m
  - alert: TwoWindows
    expr: (rate(requests_total{code="500"}[5m]) > 0.05) and (rate(requests_total{code="500"}[1m]) > 0.05)
""", [("requests_total", {"route": "/a", "code": "200"}, [i * 60 for i in range(25)]),
      ("requests_total", {"route": "/a", "code": "500"}, [0] * 6 + [(i - 5) * 12 for i in range(6, 14)]
      + [96] * 11)]),
}


def _expected(rules_yaml, store, interval, end):
    groups = load_rules(rules_yaml)
    evaluator = RuleEvaluator(groups, store)
    names = [r.name for g in groups for r in g.rules]
    expected, states = {}, []
    for t, alerts in evaluator.run(0, end, interval):
        expected[t] = {n: [a for a in alerts if a.rule == n and a.state == AlertState.FIRING] for n in names}
        states.append({(a.rule, a.state) for a in alerts})
    return expected, states


@pytest.mark.parametrize("case", sorted(CASES))
def test_evaluator_agrees_with_promtool_at_every_evaluation(case, promtool_binary, tmp_path):
    rules_yaml, store, interval, end = CASES[case]
    (tmp_path / "rules.yml").write_text(rules_yaml)
    assert promtool("check", "rules", str(tmp_path / "rules.yml")).ok
    expected, states = _expected(rules_yaml, store, interval, end)
    (tmp_path / "test.yml").write_text(promtool_unit_test("rules.yml", store, input_interval=interval, end=end,
                                                          evaluation_interval=interval, expected=expected))
    result = promtool("test", "rules", str(tmp_path / "test.yml"))
    assert result.ok, result.output
    # every case exercises both states, so agreement is not agreement on "nothing fired"
    seen = set().union(*states)
    assert any(s == AlertState.PENDING for _, s in seen) or case == "for_zero_and_off_grid"
    assert any(s == AlertState.FIRING for _, s in seen)


def test_promtool_notices_a_disagreement(promtool_binary, tmp_path):
    """The differential test can fail: shift the expected firing one evaluation early and promtool objects."""
    rules_yaml, store, interval, end = CASES["for_boundary_and_reset"]
    (tmp_path / "rules.yml").write_text(rules_yaml)
    expected, _ = _expected(rules_yaml, store, interval, end)
    times = sorted(expected)
    shifted = {t: expected[times[min(i + 1, len(times) - 1)]] for i, t in enumerate(times)}
    (tmp_path / "test.yml").write_text(promtool_unit_test("rules.yml", store, input_interval=interval, end=end,
                                                          evaluation_interval=interval, expected=shifted))
    result = promtool("test", "rules", str(tmp_path / "test.yml"))
    assert not result.ok and "HighErrors" in result.output


def test_for_boundary_case_fires_exactly_when_for_has_elapsed():
    rules_yaml, store, interval, end = CASES["for_boundary_and_reset"]
    _, states = _expected(rules_yaml, store, interval, end)
    firing = [i for i, s in enumerate(states) if ("HighErrors", AlertState.FIRING) in s]
    assert firing == [4, 9, 10]  # active at 1m, fires at 4m; broken at 5m; active at 6m, fires at 9m
