"""The virtual-time experiments: deterministic, fast, and their verdicts hold."""

import math

import pytest

from workbook.labs.ch02_sync.experiments import (Phase, breaker_study, breaker_timeline, check_breaker_exercise,
                                       half_open_flood, hedging, hedging_verdict, quantile, retry_storm,
                                       storm_verdict, timeout_sweep, timeout_verdict)


def test_breaker_timeline_is_deterministic_and_consistent():
    a = breaker_timeline("window", seed=3)
    b = breaker_timeline("window", seed=3)
    assert a.calls == b.calls and a.transitions == b.transitions
    assert len(a.calls) == int(a.duration * 10)
    c = a.counts()
    assert sum(c.values()) == len(a.calls)
    # every rejected call happened while the breaker was not CLOSED
    for t, outcome, _ in a.calls:
        if outcome == "rejected":
            assert a.state_at(t) != "CLOSED"


def test_healthy_service_never_opens_any_breaker():
    for kind in ("seed", "window"):
        run = breaker_timeline(kind, phases=(Phase(0.0),), duration=30)
        assert run.transitions == [] and run.counts()["rejected"] == 0


def test_breaker_study_verdict_passes_and_window_limits_trials():
    rows, verdict = breaker_study(range(3))
    assert verdict.startswith("PASS")
    assert all(r["max half-open admitted"] <= 3 for r in rows if r["breaker"] == "window")


def test_half_open_flood_seed_admits_all_window_admits_permitted():
    assert half_open_flood(40, permitted=4) == {"seed": 40, "window": 4}


def test_retry_storm_amplification():
    naive, budget = retry_storm("naive"), retry_storm("budget")
    assert 20 < naive.amplification <= 27  # close to 3 x 3 x 3
    assert budget.amplification < 2.0
    assert storm_verdict(naive, budget).startswith("PASS")


def test_timeout_sweep_tradeoff():
    points = timeout_sweep((0.02, 0.1, 3.2), requests=500)
    assert points[0].availability < 0.6 < points[1].availability
    assert points[2].p99 > 3 * points[1].p99
    assert timeout_verdict(points).startswith("PASS")


def test_hedging_cuts_tail_for_little_load():
    plain, hedged = hedging(None, requests=1500), hedging(0.05, requests=1500)
    assert plain.load == 1.0 and 1.0 < hedged.load < 1.12
    assert hedging_verdict(plain, hedged).startswith("PASS")


def test_quantile_nearest_rank():
    assert quantile([1, 2, 3, 4], 0.5) == 2 and quantile([5], 0.99) == 5 and math.isnan(quantile([], 0.5))


def test_exercise_checker(capsys):
    assert check_breaker_exercise(dict(sliding_window_size=10, minimum_number_of_calls=10)).startswith("PASS")
    assert check_breaker_exercise(dict(slow_call_rate_threshold=100)).startswith("FAIL")
    assert "not valid" in check_breaker_exercise(dict(sliding_window_size=0))
    assert "PASS" in capsys.readouterr().out


def test_bad_kind_is_named():
    with pytest.raises(ValueError, match="kind"):
        breaker_timeline("fancy")


def test_slow_outcomes_follow_the_slow_call_duration_threshold():
    """The brownout's slow calls take 2 s: slow for a 1 s threshold, not for a 3 s one."""
    strict = breaker_timeline("window", duration=40.0)
    lenient = breaker_timeline("window", duration=40.0, breaker_settings={"slow_call_duration_threshold": 3.0})
    assert strict.counts()["slow"] > 0
    assert lenient.counts()["slow"] == 0
    assert all(latency <= 3.0 for _, outcome, latency in lenient.calls if outcome == "ok")


def test_retry_storm_budget_is_a_parameter_and_bounds_the_amplification():
    """Exercise 2 of the notebook changes the budget: a larger budget lets more retries
    through, and the amplification stays near 1 + budget per hop, far below 27."""
    twenty = retry_storm("budget", duration=20.0)
    fifty = retry_storm("budget", duration=20.0, budget_percent=50)
    assert "20 % budget" in twenty.label and "50 % budget" in fifty.label
    assert twenty.amplification < fifty.amplification < 1.5 ** 3 + 0.5
    with pytest.raises(ValueError, match="budget_percent"):
        retry_storm("budget", budget_percent=150)
