"""SLO, error budget and the SRE Workbook's alerting approaches on simulated incidents."""

import math

import pytest

from workbook.core.errors import ParameterError
from workbook.observability.slo import (APPROACHES, SLO, Approach, Incident, compare, episodes, evaluate_approach,
                                        simulate_traffic)


def test_budget_and_burn_rate_arithmetic():
    slo = SLO(0.999, 30)
    assert slo.budget_ratio == pytest.approx(0.001)
    assert slo.error_budget(1_000_000) == pytest.approx(1000)
    assert slo.burn_rate_for(0.02, 1) == pytest.approx(14.4)
    assert slo.burn_rate_for(0.05, 6) == pytest.approx(6)
    assert slo.burn_rate_for(0.10, 72) == pytest.approx(1)
    with pytest.raises(ParameterError, match="objective"):
        SLO(1.0)


def test_the_table_is_reproducible_for_a_seed():
    a, b = compare(11, days=30), compare(11, days=30)
    assert a["rows"] == b["rows"]
    assert compare(12, days=30)["rows"] != a["rows"]


def _row(rows, prefix):
    return next(r for r in rows if r["approach"].startswith(prefix))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_what_the_comparison_shows(seed):
    rows = compare(seed)["rows"]
    short, long_, duration, burn, multi, mwmb = (_row(rows, str(i)) for i in range(1, 7))
    # a short window pages on every insignificant spike
    assert short["false_pages"] >= 5
    # a long window keeps paging for a day and more after an incident
    assert long_["reset_median_min"] > 1000
    # a 1-minute condition that must hold for an hour misses incidents whose errors are noisy
    assert duration["missed"] >= 1
    # one burn rate over one hour misses the slow burns entirely
    assert burn["missed"] >= 1
    # multiwindow multi-burn-rate: no miss, no false page, as fast as multiple burn rates,
    # and it stops paging far sooner
    assert mwmb["missed"] == 0 and mwmb["false_pages"] == 0
    assert mwmb["detection_median_min"] == multi["detection_median_min"]
    assert mwmb["reset_median_min"] * 5 < multi["reset_median_min"]
    assert mwmb["paging_minutes_without_incident"] * 5 < multi["paging_minutes_without_incident"]


def test_for_semantics_in_the_incrementing_duration_approach():
    incident = Incident(start=2000, minutes=120, error_ratio=1.0)
    traffic = simulate_traffic(0, days=4, incidents=[incident], baseline_error_ratio=0.0)
    firing = evaluate_approach(APPROACHES[2], traffic)
    # true from minute 2000; Prometheus's for: 60m fires when now - active_at >= 60m
    assert episodes(firing) == [(2060, 2120)]


def test_multiwindow_condition_needs_both_windows():
    approach = Approach("x", ((60, 5, 14.4, "page"),))
    traffic = simulate_traffic(0, days=4, incidents=[Incident(3000, 30, 0.5)], baseline_error_ratio=0.0)
    (start, end), = episodes(evaluate_approach(approach, traffic))
    assert 3000 <= start <= 3002 and 3030 <= end <= 3035   # stops when the 5-minute window clears


def test_promql_spelling_of_an_approach():
    text = APPROACHES[5].promql(SLO())
    assert text.startswith("(slo:error_ratio:rate1h > (14.4 * 0.001) and slo:error_ratio:rate5m > (14.4 * 0.001))")
    assert "slo:error_ratio:rate3d" in text


def test_bad_simulation_parameters_are_named():
    with pytest.raises(ParameterError, match="days"):
        simulate_traffic(0, days=1)
    with pytest.raises(ParameterError, match="baseline_error_ratio"):
        simulate_traffic(0, baseline_error_ratio=2)
    assert math.isnan(compare(5, days=30)["rows"][0]["detection_median_min"]) is False
