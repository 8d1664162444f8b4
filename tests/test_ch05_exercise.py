"""Chapter 5's exercise checker: a right choice passes; round robin and each naive answer is rejected."""

from __future__ import annotations

import pytest

from workbook.core import Verdict
from workbook.labs.ch05_discovery.exercise import check_balancing_choice

RIGHT = {"algorithm": "least_connections", "timeout": 0.2, "retries": 1, "consecutive_failures": 3,
         "ejection_time": 5.0}


def failed_checks(verdict: Verdict) -> list[str]:
    return [c.name for c in verdict.failures]


def test_a_load_aware_balancer_with_a_timeout_above_the_tail_and_ejection_passes():
    verdict = check_balancing_choice(RIGHT)
    assert isinstance(verdict, Verdict)
    assert verdict.passed, str(verdict)
    assert all(n >= 1 for n in verdict.numbers["ejections"])  # the stalled instance was ejected


def test_peak_ewma_with_the_same_policy_passes_too():
    assert check_balancing_choice({**RIGHT, "algorithm": "peak_ewma"}).passed


def test_round_robin_is_rejected_on_the_tail():
    verdict = check_balancing_choice({"algorithm": "round_robin"})
    assert not verdict.passed
    assert "p99 of all requests <= 150 ms" in failed_checks(verdict)
    assert "hint:" in str(verdict)


@pytest.mark.parametrize("algorithm", ["random", "naive_least_connections", "ring_hash", "maglev",
                                       "weighted_round_robin"])
def test_load_blind_and_the_articles_balancers_are_rejected(algorithm):
    verdict = check_balancing_choice({"algorithm": algorithm})
    assert not verdict.passed
    assert "p99 of all requests <= 150 ms" in failed_checks(verdict)


def test_least_connections_alone_lets_what_it_sent_wait_out_the_pause():
    verdict = check_balancing_choice({"algorithm": "least_connections"})
    assert failed_checks(verdict) == ["p99 of the requests that arrived during the stall <= 250 ms"]


def test_round_robin_with_the_right_policy_is_still_rejected():
    verdict = check_balancing_choice({**RIGHT, "algorithm": "round_robin"})
    assert not verdict.passed
    assert "failed requests <= 0.1 %" in failed_checks(verdict)


def test_a_timeout_below_the_normal_tail_is_a_retry_storm():
    verdict = check_balancing_choice({"algorithm": "least_connections", "timeout": 0.02, "retries": 2})
    assert "extra tries <= 5 % (no retry storm)" in failed_checks(verdict)


def test_a_timeout_without_retries_turns_slow_answers_into_failures():
    verdict = check_balancing_choice({"algorithm": "least_connections", "timeout": 0.1, "retries": 0})
    assert "failed requests <= 0.1 %" in failed_checks(verdict)


@pytest.mark.parametrize("answer, words", [
    ("least_connections", "TypeError"),
    ({"algorithm": "fastest"}, "algorithm must be one of"),
    ({"algorithm": "least_connections", "timout": 0.2}, "unknown key(s) timout"),
    ({"algorithm": "least_connections", "timeout": -1}, "policy.timeout"),
    ({"algorithm": "least_connections", "retries": 1}, "policy.retries"),
])
def test_bad_answers_are_rejected_with_a_reason(answer, words):
    verdict = check_balancing_choice(answer)
    assert not verdict.passed
    assert words in str(verdict)


def test_a_timeout_makes_least_connections_forget_the_stalled_instance_and_ejection_repairs_it():
    """A timed-out try leaves the balancer's in-flight count although the instance still holds
    it: least connections then sees the stalled instance as idle and sends it more."""
    from workbook.labs.ch05_discovery.balancing_runs import CallPolicy, Stall, compare_balancers

    stall = Stall("fast-1", 3.0, 2.0)
    plain, = compare_balancers(0, algorithms=["least_connections"], stall=stall)
    timeout, = compare_balancers(0, algorithms=["least_connections"], stall=stall, policy=CallPolicy(0.2, 1))
    ejecting, = compare_balancers(0, algorithms=["least_connections"], stall=stall,
                                  policy=CallPolicy(0.2, 1, consecutive_failures=3, ejection_time=5.0))
    assert timeout["stall_p99_ms"] > plain["stall_p99_ms"] and timeout["extra_tries_pct"] > 0.5
    assert ejecting["ejections"] == 1 and ejecting["stall_p99_ms"] < timeout["stall_p99_ms"]


def test_policy_settings_are_validated_by_name():
    from workbook.core import ParameterError
    from workbook.labs.ch05_discovery.balancing_runs import CallPolicy, compare_balancers

    for kwargs, name in (({"timeout": 0}, "policy.timeout"),
                         ({"consecutive_failures": 3}, "policy.consecutive_failures"),
                         ({"timeout": 0.1, "max_ejection_percent": 120}, "policy.max_ejection_percent")):
        with pytest.raises(ParameterError, match=name):
            CallPolicy(**kwargs)
    with pytest.raises(ParameterError, match="'policy'"):
        compare_balancers(algorithms=["round_robin"], policy={"timeout": 0.1})


def test_the_notebook_does_not_show_a_passing_answer_above_the_exercise():
    import json
    from pathlib import Path

    nb = json.loads((Path(__file__).resolve().parent.parent / "notebooks" / "05_discovery.ipynb").read_text())
    code = ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]
    assert "check_balancing_choice(my_choice)" in code[-1] and '"round_robin"' in code[-1]
    for text in code[:-1]:
        assert "consecutive_failures" not in text and "check_balancing_choice" not in text
    printed = "".join("".join(o.get("text", "")) for c in nb["cells"] if c["cell_type"] == "code"
                      for o in c["outputs"])
    assert "FAIL: balancer and caller policy" in printed and "PASS: balancer" not in printed
