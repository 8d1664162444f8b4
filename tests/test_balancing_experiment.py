"""Chapter 5's virtual-time balancer comparison and remap shares (issue 11 point 5)."""

from __future__ import annotations

import pytest

from workbook.core import ParameterError
from workbook.labs.ch05_discovery.balancing_runs import (InstanceSpec, Stall, _finish_time, compare_balancers,
                                                         remap_shares)


@pytest.fixture(scope="module")
def rows():
    return {r["algorithm"]: r for r in compare_balancers(seed=0, duration=6.0)}


def test_the_run_is_deterministic_for_a_seed():
    algorithms = ("least_request", "peak_ewma")
    assert compare_balancers(seed=3, algorithms=algorithms, duration=4.0) == \
        compare_balancers(seed=3, algorithms=algorithms, duration=4.0)
    assert compare_balancers(seed=3, algorithms=algorithms, duration=4.0) != \
        compare_balancers(seed=4, algorithms=algorithms, duration=4.0)


def test_every_algorithm_sees_the_same_requests(rows):
    assert len({r["requests"] for r in rows.values()}) == 1


def test_the_articles_least_connections_sends_everything_to_the_first_instance(rows):
    naive = rows["naive_least_connections"]
    assert naive["share_fast-1"] == 1.0
    assert naive["p99_ms"] > 10 * rows["least_connections"]["p99_ms"]


def test_load_aware_balancers_beat_load_blind_ones_on_the_tail(rows):
    assert rows["least_connections"]["p99_ms"] < rows["round_robin"]["p99_ms"]
    assert rows["least_request"]["p99_ms"] < rows["random"]["p99_ms"]
    assert rows["peak_ewma"]["p99_ms"] < rows["random"]["p99_ms"]
    # they send less to the slow instances (a third of the speed) than an equal fifth
    for name in ("least_connections", "least_request", "peak_ewma"):
        assert rows[name]["share_slow-1"] < 0.17 and rows[name]["share_slow-2"] < 0.17
    assert rows["round_robin"]["share_slow-1"] == pytest.approx(0.2, abs=0.001)


def test_counting_in_flight_requests_stops_sending_to_a_stalled_instance(rows):
    # during the pause its in-flight count grows; round robin keeps sending it a fifth
    assert rows["least_connections"]["stall_sent_to_stalled"] <= 3
    assert rows["round_robin"]["stall_sent_to_stalled"] > 20
    assert rows["least_connections"]["stall_p99_ms"] < rows["round_robin"]["stall_p99_ms"]


def test_without_a_stall_there_are_no_stall_columns():
    (row,) = compare_balancers(algorithms=["round_robin"], stall=None, duration=1.0)
    assert "stall_p99_ms" not in row and row["max_ms"] < 500


def test_finish_time_pauses_work_during_the_stall():
    stall = Stall("x", 1.0, 0.5)
    assert _finish_time(0.0, 0.5, stall) == 0.5           # done before
    assert _finish_time(0.8, 0.5, stall) == 1.8           # interrupted: + 0.5
    assert _finish_time(1.2, 0.1, stall) == 1.6           # starts inside: waits for the end
    assert _finish_time(1.5, 0.1, stall) == 1.6           # after
    assert _finish_time(0.8, 0.5, None) == 1.3


def test_bad_input_is_named():
    with pytest.raises(ParameterError, match=r"'algorithms\[1\]' = 'fastest'"):
        compare_balancers(algorithms=["round_robin", "fastest"])
    with pytest.raises(ParameterError, match="'stall.instance' = 'nope'"):
        compare_balancers(stall=Stall("nope", 1.0, 0.1))
    with pytest.raises(ParameterError, match="'a.service_time'"):
        InstanceSpec("a", 0.0)
    with pytest.raises(ParameterError, match="'rate'"):
        compare_balancers(rate=0)


def test_remap_shares_near_one_in_n():
    rows = {r["balancer"].split(" ")[0] + r["balancer"].split(" ")[1]: r for r in remap_shares(10, keys=10_000)}
    ketama = rows["ring_hash(ketama,"]
    assert ketama["moved"] == ketama["owned_by_leaving"] and ketama["moved_between_others"] == 0
    maglev = rows["maglev(M"]
    assert abs(maglev["moved"] - 0.1) < 0.02 and maglev["moved_between_others"] < 0.01
    envoy = rows["ring_hash(Envoy"]
    assert envoy["moved"] > envoy["owned_by_leaving"]
