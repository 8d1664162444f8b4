"""Two-phase commit: votes, locks, presumed abort, recovery at every crash point; the article's 2PC beside it."""

import logging

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workbook.core import ParameterError
from workbook.transactions import (CrashPlan, TwoPhaseSystem, check_atomicity, crash_points, run_transactions)

P = ["orders", "payments", "inventory"]
INITIAL = {"payments": {"alice": 100}, "inventory": {"sku1": 10}}


def order(qty=2, price=15):
    return {"orders": {"placed": 1}, "payments": {"alice": -qty * price}, "inventory": {"sku1": -qty}}


def run(plan=None, txs=None, protocol="2pc", gap=1.0, **kw):
    txs = txs or [("t1", order()), ("t2", order())]
    return run_transactions(P, txs, protocol=protocol, plan=plan, initial=INITIAL, gap=gap, **kw)


@pytest.fixture(autouse=True)
def quiet_naive_logs(caplog):
    caplog.set_level(logging.CRITICAL, logger="workbook.transactions.naive")


def test_happy_path_commits_everywhere():
    r = run()
    v = check_atomicity(r)
    assert v.passed and r.outcomes == {"t1": "commit", "t2": "commit"}
    assert r.system.data("payments") == {"alice": 40} and r.system.data("inventory") == {"sku1": 6}
    assert r.system.locks() == {"orders": 0, "payments": 0, "inventory": 0}


def test_a_participant_votes_no_on_its_invariant_and_nothing_is_applied():
    r = run(txs=[("big", order(qty=20))])
    assert r.outcomes == {"big": "abort"}
    assert r.system.data("inventory") == {"sku1": 10} and r.system.data("orders") == {}
    assert any("vote no (sku1 would go below zero)" in e for _, _, e, _ in r.trace)


def test_a_lock_conflict_votes_no():
    r = run(gap=0.0)
    assert sorted(r.outcomes.values()) == ["abort", "commit"]
    assert any("locked by" in e for _, _, e, _ in r.trace)
    assert check_atomicity(r).passed


def test_coordinator_crash_after_logging_commit_loses_no_decision():
    r = run(plan={"coordinator.after_decision": 3.0}, txs=[("t1", order())])
    assert r.outcomes == {"t1": "unknown"}                      # the client never heard back
    assert r.system.nodes["coordinator"].decision("t1") == "commit"
    assert r.system.states("t1") == {p: "committed" for p in P}  # recovery finished it
    assert check_atomicity(r).passed


def test_coordinator_crash_before_deciding_is_presumed_abort_and_blocks_the_participants():
    for downtime in (2.0, 6.0):
        r = run(plan={"coordinator.after_votes": downtime}, txs=[("t1", order())])
        assert r.system.states("t1") == {p: "aborted" for p in P}
        holds = r.system.lock_hold_times()
        # in doubt, they hold their locks until the coordinator is back
        assert all(downtime <= h["t1"] <= downtime + 0.2 for h in holds.values())
        asked = sum(1 for _, _, e, _ in r.trace if e.startswith("in doubt"))
        assert asked >= 3 * int(downtime - 1.0)


def test_a_participant_that_crashes_after_persisting_prepare_recovers_in_doubt():
    r = run(plan={"payments.after_prepare": 2.0}, txs=[("t1", order())])
    assert r.outcomes == {"t1": "abort"}                       # its vote was never sent
    assert any(a == "payments" and e == "recovered in doubt" for _, a, e, _ in r.trace)
    assert r.system.states("t1") == {p: "aborted" for p in P} and check_atomicity(r).passed


def test_a_participant_that_crashes_before_applying_commit_applies_it_after_restart():
    r = run(plan={"inventory.before_commit": 2.0}, txs=[("t1", order())])
    assert r.outcomes == {"t1": "commit"}
    assert r.system.data("inventory") == {"sku1": 8} and check_atomicity(r).passed


@pytest.mark.parametrize("point", crash_points(P))
def test_every_single_crash_point(point):
    r = run(plan={point: 2.5}, txs=[("t1", order()), ("t2", order()), ("too-big", order(qty=20))])
    v = check_atomicity(r)
    assert v.passed, str(v)
    assert r.crashes and r.crashes[0][2] == point            # the crash did happen
    total = r.system.data("payments").get("alice", 100)
    assert total == 100 - 30 * v.numbers["committed"]         # money moved only for whole transactions


def test_the_naive_2pc_commits_partially_under_the_same_single_crashes():
    partial = {}
    for point in crash_points(P):
        v = check_atomicity(run(plan={point: 2.5}, protocol="naive"))
        partial[point] = v.numbers["partial"]
    assert partial["coordinator.after_first_send"] == 1
    assert partial["payments.before_commit"] == 2          # t1 and t2 both half-done: errors logged, ignored
    assert partial["orders.before_prepare"] == 0           # never reached: the naive protocol asks nobody
    assert sum(partial.values()) >= 5


def test_the_checker_catches_a_client_told_commit_for_a_transaction_that_committed_nowhere():
    """The article's coordinator ignores failed commit calls and answers "commit" anyway."""
    r = run(plan={"coordinator.after_votes": 2.5}, txs=[("t1", order()), ("t2", order())], gap=0.05,
            protocol="naive")
    assert r.outcomes["t2"] == "commit" and "committed" not in r.system.states("t2").values()
    v = check_atomicity(r)
    assert not v.passed and v.numbers["misled"] >= 1 and v.numbers["partial"] == 0
    assert "the client was told 'commit'" in str(v)
    good = check_atomicity(run(plan={"coordinator.after_votes": 2.5}, txs=[("t1", order()), ("t2", order())],
                               gap=0.05))
    assert good.passed and good.numbers["misled"] == 0


schedules = st.dictionaries(st.sampled_from(crash_points(P)),
                            st.tuples(st.sampled_from([0.2, 1.0, 2.5, 6.0]), st.integers(1, 2)), min_size=1, max_size=3)


@settings(max_examples=30, deadline=None)
@given(schedules, st.sampled_from([0.0, 0.3, 1.0]), st.integers(0, 3),
       st.sampled_from([0.01, {"kind": "exponential", "mean": 0.2}]))
def test_2pc_is_atomic_under_generated_crash_schedules(plan, gap, seed, latency):
    """Random latency lets messages overtake each other (an abort may reach a participant before the prepare)."""
    txs = [("t1", order()), ("t2", order(qty=1)), ("t3", order(qty=3)), ("too-big", order(qty=20))]
    r = run(plan=CrashPlan(plan), txs=txs, gap=gap, seed=seed, horizon=200.0, latency=latency)
    v = check_atomicity(r)
    assert v.passed, f"{plan}\n{v}"
    assert r.system.settled()
    for tx, outcome in r.outcomes.items():                   # what the client was told is what happened
        if outcome in ("commit", "abort"):
            assert set(r.system.states(tx).values()) == {"committed" if outcome == "commit" else "aborted"}


@settings(max_examples=15, deadline=None)
@given(schedules)
def test_naive_2pc_under_the_same_generated_schedules_is_never_better(plan):
    txs = [("t1", order()), ("t2", order(qty=1))]
    good = check_atomicity(run(plan=CrashPlan(plan), txs=txs))
    naive_run = run(plan=CrashPlan(plan), txs=txs, protocol="naive")
    naive = check_atomicity(naive_run)
    assert good.numbers["partial"] == 0
    fired = [point for _, _, point in naive_run.crashes]
    if len(fired) == 1 and (fired[0].endswith("before_commit") or fired[0] == "coordinator.after_first_send"):
        assert naive.numbers["partial"] >= 1      # one crash in its commit phase always leaves a partial commit


def test_bad_input_names_the_field():
    with pytest.raises(ParameterError, match="participants"):
        run_transactions(P, [("t1", {})])
    with pytest.raises(ParameterError, match="participants"):
        TwoPhaseSystem([])
    with pytest.raises(ParameterError, match=r"participants\['payments'\]"):
        run_transactions(P, [("t1", {"payments": {"alice": 1.5}})])
    with pytest.raises(ParameterError, match="participants.*shipping"):
        run_transactions(P, [("t1", {"shipping": {"box": 1}})])
    with pytest.raises(ParameterError, match="crash point"):
        CrashPlan({"coordinator.lunch": 1.0})
    with pytest.raises(ParameterError, match="protocol"):
        run_transactions(P, [("t1", order())], protocol="3pc")
