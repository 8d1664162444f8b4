"""Chapter 3's lab: consumers restart as new processes; redelivery delays; derived streams."""

import pytest

from workbook.core.errors import ParameterError
from workbook.labs.ch03_async.broker_tour import (poison_and_dead_letters, redelivery_delays, replay_from_offset,
                                                  request_reply)
from workbook.labs.ch03_async.delivery import ProcessConnection, crash_experiment
from workbook.labs.ch03_async.ordering import lag_experiment, ordering_experiment
from workbook.labs.ch03_async.producer import outbox_experiment
from workbook.messaging.errors import ConsumerCrash
from workbook.messaging.idempotent import IdempotentHandler, Transaction, connect


def test_every_restart_builds_a_fresh_handler_on_the_same_database():
    built = []

    def factory(conn, apply, name):
        built.append(conn)
        return IdempotentHandler(conn, apply, name=name)

    r = crash_experiment("effectively-once", messages=300, consumers=3, crash_rate=0.05, seed=2,
                         handler_factory=factory)
    assert r.restarts > 0 and len(built) == 3 + r.restarts
    assert all(isinstance(c, ProcessConnection) for c in built) and len({id(c) for c in built}) == len(built)
    assert len({id(c._conn) for c in built}) == 1  # one database
    assert (r.lost, r.duplicated) == (0, 0)


def test_a_killed_process_connection_rolls_back_and_refuses_everything_after():
    conn = connect()
    conn.execute("CREATE TABLE t (x INTEGER)")
    proc = ProcessConnection(conn, "p1")
    proc.reset(crash_before=3)  # BEGIN, INSERT, then die before COMMIT
    with pytest.raises(ConsumerCrash, match="before statement 3"):
        with Transaction(proc) as tx:
            tx.execute("INSERT INTO t VALUES (1)")
    assert conn.execute("SELECT COUNT(*) FROM t").fetchone()[0] == 0 and not conn.in_transaction
    with pytest.raises(ConsumerCrash, match="p1 is dead"):
        proc.execute("INSERT INTO t VALUES (2)")
    assert conn.execute("SELECT COUNT(*) FROM t").fetchone()[0] == 0


def test_statement_crashes_and_failed_writes_leave_the_idempotent_consumer_exact():
    r = crash_experiment("effectively-once", messages=300, crash_rate=0.1, seed=3, statement_crashes=True,
                         apply_failure_rate=0.1)
    assert r.crashes_by_stage["statement"] > 0 and r.ledger_failures > 0
    assert (r.lost, r.duplicated) == (0, 0)


def test_a_dead_member_holds_its_messages_for_the_session_timeout_not_the_visibility_timeout():
    d = redelivery_delays(visibility_timeout=1.0, session_timeout=10.0, step=0.25)
    assert d.live_holder == 1.0
    assert 10.0 <= d.dead_holder <= 10.5
    d2 = redelivery_delays(visibility_timeout=5.0, session_timeout=2.0, step=0.25)
    assert d2.live_holder == 5.0 and 2.0 <= d2.dead_holder <= 2.5


def test_tour_steps():
    lines = poison_and_dead_letters()
    assert lines[0] == "handled: [5, 7] | committed offsets: {0: 4}" and len(lines) == 3
    assert [o for o, _ in replay_from_offset()] == [0, 1, 2, 3]
    reply, timeout = request_reply()
    assert "correlation_id=shop-1" in reply and timeout.startswith("RequestTimeout")


def test_streams_are_derived_so_neighbouring_seeds_differ_and_runs_repeat():
    a, b = (ordering_experiment(keyed=False, messages=100, seed=s) for s in (1, 2))
    assert a.processed != b.processed
    assert ordering_experiment(keyed=False, messages=100, seed=1).processed == a.processed
    assert outbox_experiment(100, seed=4) == outbox_experiment(100, seed=4)


@pytest.mark.parametrize("call, name", [
    (lambda: ordering_experiment(keyed=True, keys=0), "keys"),
    (lambda: ordering_experiment(keyed=True, seed=-1), "seed"),
    (lambda: lag_experiment((1,), partitions=0), "partitions"),
    (lambda: lag_experiment((0,)), "consumers"),
    (lambda: crash_experiment("at-least-once", apply_failure_rate=0.9), "apply_failure_rate"),
    (lambda: outbox_experiment(10, seed=-3), "seed"),
    (lambda: redelivery_delays(session_timeout=0), "session_timeout"),
])
def test_bad_parameters_are_named(call, name):
    with pytest.raises(ParameterError) as info:
        call()
    assert info.value.name == name
