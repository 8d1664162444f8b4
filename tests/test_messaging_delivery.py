"""Delivery semantics counted: at-most-once loses, at-least-once duplicates, idempotent does neither."""

import asyncio
import subprocess
import sys

import pytest

from workbook.core.virtual_time import run_virtual
from workbook.messaging import BrokerConfig, Consumer, ConsumerCrash, DeliveryMode, InMemoryBroker, PoisonMessage
from workbook.labs.ch03_async.experiments import crash_experiment, lag_experiment, ordering_experiment
from workbook.messaging.idempotent import IdempotentHandler, PlainHandler, Transaction, connect
from workbook.messaging.outbox import Outbox, OutboxRelay
from workbook.messaging.partitioner import KeyPartitioner, python_hash_partition, stable_hash

CFG = BrokerConfig(visibility_timeout=5, session_timeout=1, max_deliveries=4)


def _ledger(conn, msg):
    conn.execute("INSERT INTO ledger VALUES (?)", (msg.id,))


def one_message_with_a_crash(mode, crash_stage):
    """One payment, one consumer that crashes once at ``crash_stage``, then a fresh consumer."""
    async def main():
        broker = InMemoryBroker(CFG)
        conn = connect()
        conn.execute("CREATE TABLE ledger (message_id TEXT)")
        handler = (IdempotentHandler if mode is DeliveryMode.EFFECTIVELY_ONCE else PlainHandler)(conn, _ledger)
        await broker.create_topic("pay", 1)
        await broker.create_group("pay", "ledger")
        await broker.publish("pay", {"amount": 5})
        crashed = []

        def fault(stage, msg):
            if stage == crash_stage and not crashed:
                crashed.append(stage)
                raise ConsumerCrash(stage)

        stop = asyncio.Event()
        first = Consumer(broker, "pay", "ledger", "first", handler, mode, fault=fault)
        await first.run(stop)
        assert first.crashed
        second = Consumer(broker, "pay", "ledger", "second", handler, mode)
        task = asyncio.ensure_future(second.run(stop))
        while await broker.lag("pay", "ledger"):
            await asyncio.sleep(0.5)
        stop.set()
        await task
        return conn.execute("SELECT COUNT(*) FROM ledger").fetchone()[0]
    return run_virtual(main())


@pytest.mark.parametrize("mode, stage, effects", [
    (DeliveryMode.AT_MOST_ONCE, "received", 1),       # not yet acked: redelivered
    (DeliveryMode.AT_MOST_ONCE, "applying", 0),       # acked, then crashed: lost
    (DeliveryMode.AT_LEAST_ONCE, "applying", 1),      # rolled back, redelivered
    (DeliveryMode.AT_LEAST_ONCE, "applied", 2),       # committed, not acked: duplicated
    (DeliveryMode.EFFECTIVELY_ONCE, "applying", 1),   # effect and dedup row rolled back together
    (DeliveryMode.EFFECTIVELY_ONCE, "applied", 1),    # redelivery recognised by its id
])
def test_crash_point_decides_lost_or_duplicated(mode, stage, effects):
    assert one_message_with_a_crash(mode, stage) == effects


def test_crash_experiment_counts_per_mode():
    res = {m: crash_experiment(m, messages=600, crash_rate=0.05, seed=3) for m in DeliveryMode}
    amo, alo, eo = (res[m] for m in DeliveryMode)
    assert amo.crashes > 0 and amo.lost > 0 and amo.duplicated == 0
    assert amo.lost == amo.crashes_by_stage["applying"]  # each crash inside the transaction loses one
    assert alo.lost == 0 and alo.duplicated >= alo.crashes_by_stage["applied"] > 0
    assert eo.lost == 0 and eo.duplicated == 0 and eo.applied == 600
    assert crash_experiment("effectively-once", messages=600, crash_rate=0.05, seed=3) == eo  # deterministic


def test_no_crashes_no_damage_in_any_mode():
    for m in DeliveryMode:
        r = crash_experiment(m, messages=200, crash_rate=0.0)
        assert (r.lost, r.duplicated, r.applied, r.crashes) == (0, 0, 200, 0)


def test_bad_mode_is_named():
    with pytest.raises(ValueError, match="delivery mode 'exactly-once' is not one of"):
        DeliveryMode.parse("exactly-once")


def test_poison_message_goes_to_dlq_and_does_not_block():
    async def main():
        broker = InMemoryBroker(CFG)
        conn = connect()
        conn.execute("CREATE TABLE ledger (message_id TEXT)")

        def apply(c, msg):
            if "amount" not in msg.payload:
                raise PoisonMessage("payload has no 'amount'")
            _ledger(c, msg)

        await broker.create_topic("pay", 1)
        await broker.create_group("pay", "ledger")
        await broker.publish("pay", {"oops": 1}, key="a")
        await broker.publish("pay", {"amount": 1}, key="a")
        stop = asyncio.Event()
        c = Consumer(broker, "pay", "ledger", "c", PlainHandler(conn, apply), "at-least-once")
        task = asyncio.ensure_future(c.run(stop))
        await asyncio.sleep(2)
        stop.set()
        await task
        dead = await broker.dead_letters("pay")
        return conn.execute("SELECT COUNT(*) FROM ledger").fetchone()[0], dead
    applied, dead = run_virtual(main())
    assert applied == 1 and len(dead) == 1
    assert "poison message: PoisonMessage: payload has no 'amount'" in dead[0].headers["x-dead-letter-reason"]


def test_transient_handler_failure_is_retried_until_max_deliveries():
    async def main():
        broker = InMemoryBroker(CFG)
        conn = connect()
        conn.execute("CREATE TABLE ledger (message_id TEXT)")
        calls = []

        def apply(c, msg):
            calls.append(msg.id)
            if len(calls) < 3:
                raise ConnectionError("ledger replica busy")
            _ledger(c, msg)

        await broker.create_topic("pay", 1)
        await broker.create_group("pay", "ledger")
        await broker.publish("pay", {"amount": 1})
        stop = asyncio.Event()
        task = asyncio.ensure_future(Consumer(broker, "pay", "ledger", "c", PlainHandler(conn, apply),
                                              "at-least-once").run(stop))
        await asyncio.sleep(2)
        stop.set()
        await task
        return len(calls), conn.execute("SELECT COUNT(*) FROM ledger").fetchone()[0], await broker.dead_letters("pay")
    assert run_virtual(main()) == (3, 1, [])


def test_outbox_relay_crash_republishes_same_id_and_idempotent_consumer_applies_once():
    async def main():
        broker = InMemoryBroker(CFG)
        await broker.create_topic("orders", 2)
        await broker.create_group("orders", "mail")
        shop = connect()
        shop.execute("CREATE TABLE orders (id TEXT)")
        outbox = Outbox(shop)
        for i in range(5):
            with Transaction(shop) as tx:
                tx.execute("INSERT INTO orders VALUES (?)", (f"o{i}",))
                outbox.add(tx, "orders", {"order": f"o{i}"}, key=f"o{i}")
        try:  # a failed business transaction leaves no outbox row
            with Transaction(shop) as tx:
                tx.execute("INSERT INTO orders VALUES ('o-bad')")
                outbox.add(tx, "orders", {"order": "o-bad"})
                raise RuntimeError("card declined")
        except RuntimeError:
            pass
        crashes = iter([True, False, True])

        def fault(stage):
            if next(crashes, False):
                raise ConsumerCrash("relay died after publish")

        relay = OutboxRelay(outbox, broker, fault=fault)
        await relay.drain()
        published = [m for p in range(2) for m in await broker.read("orders", p)]
        mail = connect()
        mail.execute("CREATE TABLE sent (order_id TEXT)")
        h = IdempotentHandler(mail, lambda c, m: c.execute("INSERT INTO sent VALUES (?)", (m.payload["order"],)))
        for m in published:
            h.handle(m)
        return published, mail.execute("SELECT order_id FROM sent ORDER BY order_id").fetchall(), h.duplicates
    published, sent, dups = run_virtual(main())
    assert len(published) == 7 and len({m.id for m in published}) == 5  # two re-sends, same ids
    assert sent == [(f"o{i}",) for i in range(5)] and dups == 2


def test_outbox_add_outside_transaction_is_refused():
    conn = connect()
    with pytest.raises(RuntimeError, match="inside the business transaction"):
        Outbox(conn).add(conn, "orders", {})


def test_keyed_partitioning_keeps_order_unkeyed_does_not():
    keyed = ordering_experiment(keyed=True, messages=200, seed=1)
    unkeyed = ordering_experiment(keyed=False, messages=200, seed=1)
    assert keyed.violations == 0 and len(keyed.processed) == 200
    assert unkeyed.violations > 0


def test_lag_drains_faster_with_consumers_up_to_partition_count():
    r = {x.consumers: x for x in lag_experiment((1, 2, 4, 8), burst=800, partitions=4)}
    assert r[1].drain_time > r[2].drain_time > r[4].drain_time
    assert r[4].drain_time == r[8].drain_time  # a partition has one owner: extra consumers idle
    assert r[1].max_lag > r[4].max_lag


def test_stable_partitioner_survives_process_boundaries_python_hash_does_not():
    ids = [f"msg-{i}" for i in range(40)]
    code = ("import sys; from workbook.messaging.partitioner import python_hash_partition as h, stable_hash as s;"
            f"ids={ids!r}; print([h(i, 8) for i in ids]); print([s(i) % 8 for i in ids])")
    outs = []
    for seed in ("1", "2"):
        env = {"PYTHONHASHSEED": seed, "PYTHONPATH": sys.path[0] if sys.path[0] else "."}
        import os
        env = {**os.environ, **env}
        outs.append(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                                   check=True).stdout.splitlines())
    assert outs[0][0] != outs[1][0]  # the seed's hash(id) % n: differs between processes
    assert outs[0][1] == outs[1][1] == str([stable_hash(i) % 8 for i in ids])
    assert KeyPartitioner().partition("msg-1", 8) == stable_hash("msg-1") % 8
    assert python_hash_partition("x", 1) == 0


@pytest.mark.redis
@pytest.mark.parametrize("mode", list(DeliveryMode))
def test_crash_experiment_on_redis_streams(mode, redis_url):
    """The same crash experiment against a real redis-server (real time, short timeouts, 200 messages)."""
    from workbook.labs.ch03_async.experiments import crash_run
    from workbook.messaging.redis_streams import RedisStreamsBroker

    cfg = BrokerConfig(visibility_timeout=1.0, session_timeout=0.3, max_deliveries=10)

    async def main():
        broker = RedisStreamsBroker(redis_url, cfg)
        try:
            return await crash_run(broker, mode, messages=200, consumers=3, crash_rate=0.05, partitions=4, seed=1,
                                   service_time=0.0, restart_delay=0.05, check_every=0.1, max_duration=60)
        finally:
            await broker.close()

    r = asyncio.run(main())
    assert r.crashes > 0
    if mode is DeliveryMode.AT_MOST_ONCE:
        assert r.duplicated == 0 and r.lost == r.crashes_by_stage["applying"]
    elif mode is DeliveryMode.AT_LEAST_ONCE:
        assert r.lost == 0 and r.duplicated >= r.crashes_by_stage["applied"]
    else:
        assert (r.lost, r.duplicated, r.applied) == (0, 0, 200)


def test_two_producers_outboxes_never_share_a_message_id():
    """Two services, each with its own outbox database, publish to one topic; the consumer
    deduplicates by message id, so equal ids from different producers would silently drop the
    second service's event."""
    async def main():
        broker = InMemoryBroker(CFG)
        await broker.create_topic("orders", 1)
        ids = []
        for shop in ("eu", "us"):
            db = connect()
            outbox = Outbox(db)
            with Transaction(db) as tx:
                ids.append(outbox.add(tx, "orders", {"shop": shop}))
            await OutboxRelay(outbox, broker).drain()
        mail = connect()
        mail.execute("CREATE TABLE sent (shop TEXT)")
        h = IdempotentHandler(mail, lambda c, m: c.execute("INSERT INTO sent VALUES (?)", (m.payload["shop"],)))
        for m in await broker.read("orders", 0):
            h.handle(m)
        return ids, [r[0] for r in mail.execute("SELECT shop FROM sent ORDER BY shop")]
    ids, sent = run_virtual(main())
    assert ids[0] != ids[1]
    assert sent == ["eu", "us"]
