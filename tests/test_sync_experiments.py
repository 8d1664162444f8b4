"""The virtual-time experiments: deterministic, fast, and their verdicts hold."""

import math

import pytest

from workbook.core import ParameterError, Verdict
from workbook.labs.ch02_sync.experiments import (BROWNOUT, HEALTHY, WINDOW_CONFIG, ConsecutiveFailureConfig, Phase,
                                                 Scenario, breaker_study, breaker_timeline, bulkhead_comparison,
                                                 half_open_flood, hedging, hedging_verdict, order_comparison,
                                                 retry_storm, share_above, storm_verdict, timeout_sweep,
                                                 timeout_verdict)
from workbook.resilience import CircuitBreakerConfig


def test_breaker_timeline_is_deterministic_and_consistent():
    a = breaker_timeline("sliding_window", seed=3)
    b = breaker_timeline("sliding_window", seed=3)
    assert a.calls == b.calls and a.transitions == b.transitions
    assert len(a.calls) == int(a.duration * 10)
    c = a.counts()
    assert sum(c.values()) == len(a.calls)
    for t, outcome, _ in a.calls:  # every rejected call happened while the breaker was not CLOSED
        if outcome == "rejected":
            assert a.state_at(t) != "CLOSED"


def test_neighbouring_seeds_give_different_runs():
    assert breaker_timeline(seed=1).calls != breaker_timeline(seed=2).calls


def test_healthy_service_never_opens_any_breaker():
    for kind in ("consecutive_failure", "sliding_window"):
        run = breaker_timeline(kind, scenario=HEALTHY)
        assert run.transitions == [] and run.counts()["rejected"] == 0


def test_kind_and_config_are_checked():
    with pytest.raises(ParameterError, match="kind"):
        breaker_timeline("seed")
    with pytest.raises(ParameterError, match="config"):
        breaker_timeline("sliding_window", config={"sliding_window_size": 5})
    with pytest.raises(ParameterError, match="config"):
        breaker_timeline("consecutive_failure", config=WINDOW_CONFIG)
    with pytest.raises(ParameterError, match="failure_threshold"):
        ConsecutiveFailureConfig(failure_threshold=0)


def test_consecutive_failure_config_is_used():
    hair = breaker_timeline("consecutive_failure", config=ConsecutiveFailureConfig(failure_threshold=1))
    default = breaker_timeline("consecutive_failure")
    assert hair.detection is not None and default.detection is None


def test_scenario_fault_window():
    assert BROWNOUT.fault == (20.0, 50.0)
    assert HEALTHY.fault == (30.0, 30.0)
    noisy = Scenario((Phase(0.0, failure_rate=0.05, fault=False), Phase(10.0, failure_rate=0.5), Phase(20.0,
                      failure_rate=0.05, fault=False)), duration=30.0)
    assert noisy.fault == (10.0, 20.0)
    with pytest.raises(ParameterError, match="failure_rate"):
        Phase(0.0, failure_rate=2)


def test_breaker_study_verdict_passes_and_window_limits_trials():
    rows, verdict = breaker_study(range(3))
    assert isinstance(verdict, Verdict) and verdict
    assert all(r["max half-open admitted"] <= 3 for r in rows if r["breaker"] == "sliding_window")


def test_half_open_flood_consecutive_admits_all_window_admits_permitted():
    assert half_open_flood(40, permitted=4) == {"consecutive_failure": 40, "sliding_window": 4}


def test_retry_storm_amplification():
    naive, budget = retry_storm("naive"), retry_storm("budget")
    assert 20 < naive.amplification <= 27  # close to 3 x 3 x 3
    assert budget.amplification < 2.0
    assert storm_verdict(naive, budget)


def test_timeout_sweep_tradeoff():
    points = timeout_sweep((0.02, 0.1, 0.2, 3.2), requests=500)
    assert points[0].availability < 0.6 < points[1].availability
    assert points[3].p99 > 3 * points[1].p99
    assert timeout_verdict(points)


def test_hedging_cuts_tail_for_little_load():
    plain, hedged = hedging(None, requests=1500), hedging(0.05, requests=1500)
    assert plain.load == 1.0 and 1.0 < hedged.load < 1.12
    assert hedging_verdict(plain, hedged)
    # the hedge fires for about the share of unhedged requests slower than its delay
    assert abs((hedged.load - 1) - share_above(plain, 0.05)) < 0.02
    assert plain.q(0.9) < 0.05 < plain.q(0.95)  # 50 ms lies between the p90 and the p95


def test_slow_outcomes_follow_the_slow_call_duration_threshold():
    """The brownout's slow calls take 2 s: slow for a 1 s threshold, not for a 3 s one."""
    strict = breaker_timeline("sliding_window")
    lenient = breaker_timeline("sliding_window", config=CircuitBreakerConfig(
        **{**WINDOW_CONFIG.__dict__, "slow_call_duration_threshold": 3.0}))
    assert strict.counts()["slow"] > 0
    assert lenient.counts()["slow"] == 0
    assert all(latency <= 3.0 for _, outcome, latency in lenient.calls if outcome == "ok")


def test_retry_storm_budget_is_a_parameter_and_bounds_the_amplification():
    twenty = retry_storm("budget", duration=20.0)
    fifty = retry_storm("budget", duration=20.0, budget_percent=50)
    assert "20 % budget" in twenty.label and "50 % budget" in fifty.label
    assert twenty.amplification < fifty.amplification < 1.5 ** 3 + 0.5
    with pytest.raises(ValueError, match="budget_percent"):
        retry_storm("budget", budget_percent=150)
    with pytest.raises(ValueError, match="mode"):
        retry_storm("fancy")


def test_bulkhead_isolates_a_slow_dependency():
    shared, isolated = bulkhead_comparison(False), bulkhead_comparison(True)
    assert shared.inventory_availability < 0.5 and math.isinf(shared.inventory_p99)
    assert isolated.inventory_availability == 1.0 and isolated.inventory_p99 < 0.05
    assert shared.recommendations_ok == isolated.recommendations_ok  # the slow one fails either way


def test_retry_outside_the_breaker_sends_fewer_calls_to_a_failing_service():
    outside, inside = order_comparison(True), order_comparison(False)
    assert outside.calls == inside.calls == 300
    assert inside.reached > 2 * outside.reached
