"""Chapter 4's experiments: what the notebook claims, asserted on the lab's functions."""

import pytest

from workbook.consistency import Quorum
from workbook.core import quantile, stream
from workbook.labs.ch04_data import commit, events, quorums, replication, saga, services


# -- 1. database per service ---------------------------------------------------------------
def test_each_service_has_its_own_file_and_only_its_repository_writes_it(tmp_path):
    shop = services.open_shop(str(tmp_path))
    services.fill_shop(shop, customers=5, orders=40, seed=3)
    assert sorted(p.name for p in tmp_path.glob("*.sqlite")) == [f"{s}.sqlite" for s in sorted(services.SERVICES)]
    assert "no such function: wb_now" in services.foreign_write(shop)
    assert len(shop["orders"].list()) == 40 and shop["orders"].get("hack") is None


def test_the_articles_repository_aliases_and_ours_copies():
    seen = services.aliasing()
    assert seen["naive"] == {"caller_dict_gained": ["created_at", "id", "updated_at"], "stored_items": 2,
                             "stored_status": "shipped"}
    assert seen["repository"] == {"caller_dict_gained": [], "stored_items": 1, "stored_status": None}
    version, message = services.stale_writer()
    assert version == 2 and message.startswith("StaleVersion:") and "expected_version=1" in message


def test_api_composition_and_the_read_model_give_the_same_answer(tmp_path):
    shop = services.open_shop(str(tmp_path))
    services.fill_shop(shop, customers=7, orders=60, seed=1)
    composed = services.api_composition(shop)
    model = services.SpendReadModel(shop)
    assert model.catch_up() > 0 and model.catch_up() == 0          # a second catch-up finds nothing new
    assert model.query() == composed.rows
    paid = len(shop["payments"].list())
    assert composed.calls == {"payments": 1, "orders": paid, "users": len(composed.rows)}
    # a later payment reaches the read model at its next catch-up, and only then
    order = shop["orders"].get("o0000")
    shop["payments"].save("pay-extra", {"order_id": "o0000", "amount_cents": 100, "status": "captured"},
                          expected_version=0)
    cid = order.data["customer_id"]
    before = model.query().get(cid, ("", 0))[1]
    assert model.catch_up() == 1 and model.query()[cid][1] == before + 100
    assert model.query() == services.api_composition(shop).rows


# -- 2. event sourcing -------------------------------------------------------------------
def test_rebuilds_agree_and_snapshots_shorten_the_replay():
    check, _ = events.rebuild_check(60, 2, snapshot_every=3)
    assert check.equal == check.orders == 60
    assert check.snapshots > 0 and check.events_read_after_snapshot < check.events_read_from_scratch


def test_the_atomic_checkpoint_survives_crashes_and_the_separate_one_double_counts():
    _, store = events.rebuild_check(80, 5)
    positions = sorted(stream(5, "test").sample(range(1, len(store.read_all()) + 1), 8))
    atomic = events.projection_crashes(store, "atomic", positions)
    separate = events.projection_crashes(store, "separate", positions)
    assert atomic.restarts == separate.restarts == 8
    assert atomic.customers == atomic.truth and not atomic.wrong
    assert separate.wrong and separate.applied == atomic.applied + 8
    assert separate.rebuilt == separate.truth == atomic.rebuilt        # rebuilt from zero, the damage is gone


def test_old_events_load_through_the_upcaster_and_bad_ones_are_refused():
    out = events.old_events()
    assert out["loaded state"]["items"] == [{"sku": "lamp", "qty": 2, "unit_price_cents": 4500}]
    assert out["status after pay"] == "paid"
    assert out["v3 (newer than this code)"].startswith("UnknownEventVersion")
    assert out["unknown type"].startswith("UnknownEventType")


def test_projection_lag_is_bounded_when_it_keeps_up_and_grows_when_it_cannot():
    fast = events.projection_lag(rate=50, duration=10, poll_interval=0.05, batch=100, per_event=0.002, seed=0)
    slow = events.projection_lag(rate=50, duration=10, poll_interval=0.05, batch=100, per_event=0.025, seed=0)
    assert max(fast.behind) < 20 and quantile(fast.delays, 0.99) < 0.1
    half = len(slow.behind) // 2
    assert slow.behind[-1] > 2 * max(slow.behind[:half // 2]) and slow.behind[-1] > 50


# -- 3. replication ----------------------------------------------------------------------
def test_cdc_feeds_a_replica_and_another_services_copy_in_order_and_idempotently():
    r = replication.cdc_pipeline(80, 4)
    assert r.writes == r.changes and r.replica_equal and r.shipping_equal and r.shipping_expected > 0
    assert r.redelivered is False and r.gap.startswith("ReplicationGap")
    assert all(lag >= 0 for lag in r.lags) and len(r.lags) == r.changes


def test_the_articles_synchroniser_returns_early_and_swallows_failures():
    r = replication.naive_sync(12, fail_every=4)
    assert r.strong_copied_on_return == 0 and r.strong_copied_later == 12
    assert r.eventual_copied == 9 and r.swallowed == 3


def test_replication_lag_grows_with_the_shipping_delay():
    short, long_ = (replication.replication_lag(rate=50, duration=5, delay={"kind": "exponential", "mean": m},
                                                poll_interval=0.05, seed=1) for m in (0.02, 0.1))
    assert len(short.lags) == short.writes and len(long_.lags) == long_.writes
    assert quantile(long_.lags, 0.5) > quantile(short.lags, 0.5)
    assert quantile(short.lags, 0.99) > 2 * quantile(short.lags, 0.5)


def test_read_your_writes_removes_the_stale_reads():
    off, on = (replication.read_your_writes(e, clients=5, updates=10, delay={"kind": "exponential", "mean": 0.05},
                                            seed=2) for e in (False, True))
    assert off.stale > 0 and on.stale == 0
    assert on.where["primary"] <= off.stale + 5 and on.where["replica"] > 0


# -- 4. consistency ----------------------------------------------------------------------
def test_the_three_histories_get_the_expected_verdicts():
    stale = quorums.stale_read()
    assert stale.reads == (None,) and not stale.verdict.passed
    plain = quorums.new_then_old("plain")
    assert plain.reads == (1, None) and not plain.verdict.passed
    assert "b: read -> None" in str(plain.verdict.numbers["counterexample"])
    abd = quorums.new_then_old("abd")
    assert abd.reads == (1, 1) and abd.verdict.passed


def test_random_histories_abd_always_linearizable_r1w1_not():
    abd = quorums.random_histories(Quorum(3, 2, 2), "abd", histories=8, seed=1)
    loose = quorums.random_histories(Quorum(3, 1, 1), "plain", histories=8, seed=1)
    assert abd.linearizable == 8 and loose.linearizable < 8 and loose.first_counterexample
    assert abd.read_p50 > loose.read_p50


def test_pbs_curves_fall_with_time_and_vanish_with_overlapping_quorums():
    curves = quorums.pbs_curves(times=(0.0, 0.01, 0.05), trials=800, seed=0)
    assert curves["N=3, R=2, W=2"] == [0.0, 0.0, 0.0]
    a = curves["N=3, R=1, W=1"]
    assert a[0] > a[1] > a[2]


# -- 5. two-phase commit and sagas -------------------------------------------------------
def test_2pc_is_atomic_at_every_crash_point_and_the_articles_is_not():
    rows = commit.crash_table(downtime=1.0, transactions=2, seed=0)
    correct = [r for r in rows if r.protocol == "2pc"]
    naive = [r for r in rows if r.protocol == "naive"]
    assert len(correct) == len(naive) == 20
    assert all(r.fired and r.passed and r.partial == 0 and not r.misled for r in correct)
    assert sum(r.partial for r in naive) > 0 and sum(r.misled for r in naive) > 0
    assert not any(r.fired for r in naive if r.point.endswith(("before_prepare", "after_prepare"))
                   and not r.point.startswith("coordinator"))


def test_locks_are_held_as_long_as_the_coordinator_is_down():
    rows = commit.blocking([0.5, 3.0], seed=0)
    for r in rows:
        assert r.downtime <= r.max_lock_hold < r.downtime + 0.2
        assert r.client_outcome == "unknown" and set(r.final.values()) == {"aborted"}


def test_the_saga_holds_no_lock_but_exposes_its_intermediate_state():
    ok, refused, down = (saga.saga_run(f, downtime=2.0) for f in saga.FAULTS)
    assert (ok.status, refused.status, down.status) == ("completed", "compensated", "completed")
    assert refused.stock == 10 and refused.balance == 10_000
    assert down.lock_time == 0.0 and down.exposure >= 2.0
    with pytest.raises(ValueError, match="fault"):
        saga.saga_run("meteor")


def test_saga_anomalies_and_their_countermeasures():
    assert saga.lost_sale("none").lost_sale
    locked = saga.lost_sale("semantic lock")
    assert not locked.lost_sale and locked.b_status == "completed" and locked.final_stock == 0
    assert saga.lost_update("overwrite").final_balance == 10_000
    assert saga.lost_update("commutative").final_balance == 10_500
    reread = saga.lost_update("reread")
    assert reread.final_balance == 10_500 and reread.stale_writes_refused == 1
