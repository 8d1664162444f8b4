"""Experiments that count what each delivery guarantee loses, duplicates or reorders.

Every function here is deterministic for a given seed: it builds a broker (in-memory in
virtual time by default, or any ``Broker`` passed in), runs producers and consumers, and
returns plain numbers. The notebook prints them and ``workbook.labs.ch03_async.figures`` draws them.

* ``crash_experiment``: a stream of payments into a ledger while consumers crash at random
  points (on receipt, inside the ledger transaction, after its commit). A supervisor
  restarts crashed consumers under new names. Counted at the end: messages whose effect
  never happened (**lost**, not counting dead letters) and extra applications of one
  message (**duplicated**).
* ``ordering_experiment``: per-key sequence numbers processed by several consumers;
  counts **order violations** (a message handled after a later one of the same key).
* ``lag_experiment``: a burst of messages absorbed by the topic (queue-based load
  leveling) and drained by 1..N consumers; lag over time and time to drain.
"""

from __future__ import annotations

import asyncio
import random
import sqlite3
from dataclasses import asdict, dataclass, field

from workbook.core.params import check_int, check_number
from workbook.core.virtual_time import run_virtual
from workbook.messaging.broker import Broker, BrokerConfig
from workbook.messaging.consumer import CRASH_STAGES, Consumer, DeliveryMode
from workbook.messaging.errors import ConsumerCrash
from workbook.messaging.idempotent import IdempotentHandler, PlainHandler, connect
from workbook.messaging.memory import InMemoryBroker

EXPERIMENT_CONFIG = BrokerConfig(visibility_timeout=5.0, session_timeout=2.0, max_deliveries=10, max_in_flight=1)


@dataclass
class CrashResult:
    mode: str
    messages: int
    consumers: int
    crash_rate: float
    lost: int
    duplicated: int
    applied: int
    crashes: int
    crashes_by_stage: dict[str, int] = field(default_factory=dict)
    dead_lettered: int = 0
    deliveries: int = 0
    duration: float = 0.0

    def as_dict(self) -> dict:
        return asdict(self)


def _ledger_apply(conn: sqlite3.Connection, message) -> None:
    conn.execute("INSERT INTO ledger(message_id, amount) VALUES (?, ?)", (message.id, message.payload["amount"]))


async def crash_run(broker: Broker, mode, *, messages: int = 1000, consumers: int = 3, crash_rate: float = 0.02,
                    partitions: int = 4, seed: int = 0, service_time: float = 0.001, restart_delay: float = 0.5,
                    topic: str = "payments", group: str = "ledger", check_every: float = 0.5,
                    db_path: str = ":memory:", max_duration: float = 1e6, handler_factory=None) -> CrashResult:
    """Publish ``messages`` payments and consume them while consumers crash; count the damage.

    ``handler_factory(conn, apply, name)`` builds the handler (default: ``IdempotentHandler``
    for effectively-once, ``PlainHandler`` otherwise); the exercise passes its own.
    """
    mode = DeliveryMode.parse(mode)
    check_int("messages", messages, minimum=1)
    check_int("consumers", consumers, minimum=1)
    check_number("crash_rate", crash_rate, minimum=0, maximum=0.5)
    rng = random.Random(seed)
    loop = asyncio.get_running_loop()
    start = loop.time()
    conn = connect(db_path)
    conn.execute("CREATE TABLE IF NOT EXISTS ledger (message_id TEXT NOT NULL, amount INTEGER NOT NULL)")
    factory = handler_factory or (IdempotentHandler if mode is DeliveryMode.EFFECTIVELY_ONCE else PlainHandler)
    handler = factory(conn, _ledger_apply, name=group)
    await broker.create_topic(topic, partitions)
    await broker.create_group(topic, group, exist_ok=True)
    ids = []
    for i in range(messages):
        m = await broker.publish(topic, {"n": i, "amount": 1}, key=f"acct-{i % 97}")
        ids.append(m.id)

    crashes = dict.fromkeys(CRASH_STAGES, 0)
    deliveries = [0]

    def fault(stage, message):
        if stage == "received":
            deliveries[0] += 1
            if rng.random() < crash_rate:
                fault.armed = rng.choice(CRASH_STAGES)
        if getattr(fault, "armed", None) == stage:
            fault.armed = None
            crashes[stage] += 1
            raise ConsumerCrash(f"consumer crashed at {stage} of message {message.id}")

    stop = asyncio.Event()
    generation = [0]
    tasks: set[asyncio.Task] = set()

    def spawn(slot: int):
        generation[0] += 1
        c = Consumer(broker, topic, group, f"c{slot}.{generation[0]}", handler, mode, batch=10, poll_timeout=0.5,
                     fault=fault, service_time=lambda: service_time)

        async def life():
            await c.run(stop)
            if c.crashed and not stop.is_set():
                await asyncio.sleep(restart_delay)
                if not stop.is_set():
                    spawn(slot)

        t = asyncio.ensure_future(life())
        tasks.add(t)
        t.add_done_callback(tasks.discard)

    for slot in range(consumers):
        spawn(slot)
    while loop.time() - start < max_duration:
        await asyncio.sleep(check_every)
        if await broker.lag(topic, group) == 0 and await broker.pending_count(topic, group) == 0:
            break
    stop.set()
    while tasks:
        await asyncio.gather(*list(tasks), return_exceptions=True)
    counts = dict(conn.execute("SELECT message_id, COUNT(*) FROM ledger GROUP BY message_id").fetchall())
    dead = {m.headers.get("x-original-id") for m in await broker.dead_letters(topic)}
    lost = sum(1 for i in ids if counts.get(i, 0) == 0 and i not in dead)
    duplicated = sum(n - 1 for n in counts.values() if n > 1)
    conn.close()
    return CrashResult(mode.value, messages, consumers, crash_rate, lost, duplicated, sum(counts.values()),
                       sum(crashes.values()), crashes, len(dead), deliveries[0], round(loop.time() - start, 6))


def crash_experiment(mode, *, messages: int = 1000, consumers: int = 3, crash_rate: float = 0.02,
                     partitions: int = 4, seed: int = 0, config: BrokerConfig | None = None,
                     handler_factory=None) -> CrashResult:
    """``crash_run`` on a fresh in-memory broker in virtual time."""
    return run_virtual(crash_run(InMemoryBroker(config or EXPERIMENT_CONFIG), mode, messages=messages,
                                 consumers=consumers, crash_rate=crash_rate, partitions=partitions, seed=seed,
                                 handler_factory=handler_factory))


def compare_modes(**kwargs) -> list[CrashResult]:
    """The crash experiment once per delivery mode, with the same seed and crash rate."""
    return [crash_experiment(m, **kwargs) for m in DeliveryMode]


# -- ordering -------------------------------------------------------------------------------------
@dataclass
class OrderingResult:
    keyed: bool
    messages: int
    keys: int
    partitions: int
    consumers: int
    violations: int
    keys_with_violations: int
    processed: list[tuple[float, str, int, str]] = field(default_factory=list, repr=False)


async def ordering_run(*, keyed: bool, messages: int = 200, keys: int = 5, partitions: int = 4,
                       consumers: int = 3, seed: int = 0, mean_service_time: float = 0.01) -> OrderingResult:
    rng = random.Random(seed)
    broker = InMemoryBroker(EXPERIMENT_CONFIG)
    await broker.create_topic("orders", partitions)
    await broker.create_group("orders", "fulfilment")
    for i in range(messages):
        k = f"order-{rng.randrange(keys)}"
        await broker.publish("orders", {"key": k, "n": i}, key=k if keyed else None)
    seqs: dict[str, int] = {}
    # sequence numbers per key in publish order (the order the producer meant)
    everything = sorted([m for p in range(partitions) for m in await broker.read("orders", p)],
                        key=lambda m: m.payload["n"])
    seq_of = {}
    for m in everything:
        k = m.payload["key"]
        seq_of[m.id] = seqs.get(k, 0)
        seqs[k] = seq_of[m.id] + 1
    processed: list[tuple[float, str, int, str]] = []
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    async def consume(name: str):
        await broker.join("orders", "fulfilment", name)
        while not stop.is_set():
            for d in await broker.poll("orders", "fulfilment", name, max_messages=1, timeout=0.2):
                await asyncio.sleep(rng.expovariate(1 / mean_service_time))
                processed.append((loop.time(), d.message.payload["key"], seq_of[d.message.id], name))
                await broker.ack(d)
        await broker.leave("orders", "fulfilment", name)

    tasks = [asyncio.ensure_future(consume(f"c{i}")) for i in range(consumers)]
    while len(processed) < messages:  # every message is acked exactly once here (no faults)
        await asyncio.sleep(0.1)
    stop.set()
    await asyncio.gather(*tasks)
    violations, bad_keys, highest = 0, set(), {}
    for _, k, s, _ in processed:
        if s < highest.get(k, -1):
            violations += 1
            bad_keys.add(k)
        highest[k] = max(highest.get(k, -1), s)
    return OrderingResult(keyed, messages, keys, partitions, consumers, violations, len(bad_keys), processed)


def ordering_experiment(**kwargs) -> OrderingResult:
    return run_virtual(ordering_run(**kwargs))


# -- lag under a burst -----------------------------------------------------------------------------
@dataclass
class LagResult:
    consumers: int
    partitions: int
    burst: int
    drain_time: float
    max_lag: int
    samples: list[tuple[float, int]] = field(default_factory=list, repr=False)


async def lag_run(*, consumers: int, burst: int = 500, burst_seconds: float = 1.0, partitions: int = 8,
                  service_time: float = 0.01, sample_every: float = 0.1) -> LagResult:
    """``burst`` messages arrive evenly over ``burst_seconds``; each consumer handles one per ``service_time``."""
    check_int("consumers", consumers, minimum=1)
    check_int("burst", burst, minimum=1)
    broker = InMemoryBroker(EXPERIMENT_CONFIG)
    await broker.create_topic("jobs", partitions)
    await broker.create_group("jobs", "workers")
    loop = asyncio.get_running_loop()
    start = loop.time()
    stop = asyncio.Event()

    async def produce():
        for i in range(burst):
            await broker.publish("jobs", {"n": i}, key=f"job-{i}")
            await asyncio.sleep(burst_seconds / burst)

    producer = asyncio.ensure_future(produce())

    async def work(name: str):
        await broker.join("jobs", "workers", name)
        while not stop.is_set():
            for d in await broker.poll("jobs", "workers", name, max_messages=partitions, timeout=0.2):
                await asyncio.sleep(service_time)
                await broker.ack(d)
        await broker.leave("jobs", "workers", name)

    tasks = [asyncio.ensure_future(work(f"w{i:02d}")) for i in range(consumers)]
    samples = []
    while True:
        lag = await broker.lag("jobs", "workers")
        samples.append((round(loop.time() - start, 6), lag))
        if lag == 0 and producer.done():
            break
        await asyncio.sleep(sample_every)
    stop.set()
    await asyncio.gather(*tasks)
    return LagResult(consumers, partitions, burst, samples[-1][0], max(s[1] for s in samples), samples)


def lag_experiment(consumer_counts=(1, 2, 4, 8, 16), **kwargs) -> list[LagResult]:
    return [run_virtual(lag_run(consumers=c, **kwargs)) for c in consumer_counts]


# -- the producer side: dual write against the transactional outbox ----------------------------------
@dataclass
class OutboxResult:
    orders: int
    crash_rate: float
    dual_write_lost: int
    outbox_lost: int
    outbox_republished: int
    consumer_duplicates_skipped: int
    emails_sent: int


def outbox_experiment(orders: int = 200, *, crash_rate: float = 0.05, seed: int = 0) -> OutboxResult:
    """Orders committed, then ``OrderPlaced`` published; the producer crashes between the two.

    Dual write: a crash after the commit loses the event (the order exists, nobody hears of
    it). Outbox: the event row commits with the order; the relay may crash after publishing
    and before marking the row, so it republishes (same id) and the idempotent consumer
    skips the copy. Counted: events lost each way, republished copies, emails sent.
    """
    from workbook.messaging.idempotent import Transaction
    from workbook.messaging.outbox import Outbox, OutboxRelay

    check_int("orders", orders, minimum=1)
    check_number("crash_rate", crash_rate, minimum=0, maximum=1)

    async def main():
        rng = random.Random(seed)
        broker = InMemoryBroker(EXPERIMENT_CONFIG)
        for t in ("orders-naive", "orders"):
            await broker.create_topic(t, 2)
        # dual write
        db = connect()
        db.execute("CREATE TABLE orders (id TEXT)")
        for i in range(orders):
            with Transaction(db) as tx:
                tx.execute("INSERT INTO orders VALUES (?)", (f"o{i}",))
            if rng.random() < crash_rate:
                continue  # crashed after the commit, before the publish: the event is gone
            await broker.publish("orders-naive", {"order": f"o{i}"}, key=f"o{i}")
        naive_events = {m.payload["order"] for p in range(2) for m in await broker.read("orders-naive", p)}
        # outbox
        db2 = connect()
        db2.execute("CREATE TABLE orders (id TEXT)")
        outbox = Outbox(db2)

        def fault(stage):
            if rng.random() < crash_rate:
                raise ConsumerCrash("relay crashed after publishing, before marking the row")

        relay = OutboxRelay(outbox, broker, fault=fault)
        for i in range(orders):
            with Transaction(db2) as tx:
                tx.execute("INSERT INTO orders VALUES (?)", (f"o{i}",))
                outbox.add(tx, "orders", {"order": f"o{i}"}, key=f"o{i}")
        await relay.drain()
        published = [m for p in range(2) for m in await broker.read("orders", p)]
        mail = connect()
        mail.execute("CREATE TABLE sent (order_id TEXT)")
        h = IdempotentHandler(mail, lambda c, m: c.execute("INSERT INTO sent VALUES (?)", (m.payload["order"],)),
                              name="mailer")
        for m in published:
            h.handle(m)
        sent = {r[0] for r in mail.execute("SELECT order_id FROM sent")}
        return OutboxResult(orders, crash_rate, orders - len(naive_events), orders - len(sent),
                            len(published) - len({m.id for m in published}), h.duplicates,
                            mail.execute("SELECT COUNT(*) FROM sent").fetchone()[0])

    return run_virtual(main())


# -- the seed's defects, live ---------------------------------------------------------------------------
def partition_across_processes(ids: list[str], partitions: int = 8, hash_seeds=("1", "2")) -> dict[str, dict]:
    """Partitions of ``ids`` computed in separate Python processes with different PYTHONHASHSEED.

    Returns ``{seed: {"python_hash": [...], "crc32": [...]}}``: the seed's ``hash(id) % n``
    changes with the process, CRC-32 does not.
    """
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = str(Path(__file__).resolve().parents[2])
    code = ("import json, sys; from workbook.messaging.partitioner import python_hash_partition as h, stable_hash;"
            "ids, n = json.loads(sys.argv[1]), int(sys.argv[2]);"
            "print(json.dumps({'python_hash': [h(i, n) for i in ids], 'crc32': [stable_hash(i) % n for i in ids]}))")
    out = {}
    for hs in hash_seeds:
        env = {**os.environ, "PYTHONHASHSEED": str(hs), "PYTHONPATH": root}
        proc = subprocess.run([sys.executable, "-c", code, json.dumps(ids), str(partitions)], env=env,
                              capture_output=True, text=True, timeout=60, check=True)
        out[str(hs)] = json.loads(proc.stdout)
    return out


def naive_fanout_demo(messages: int = 10) -> dict[str, int]:
    """Two members of one group "billing": the seed's broker charges each order twice, ours once."""
    from workbook.messaging.naive import NaiveBroker

    async def main():
        charges = {"naive": 0, "group": 0}
        naive = NaiveBroker()

        async def charge(payload):
            charges["naive"] += 1

        naive.subscribe("orders", "billing", charge)
        naive.subscribe("orders", "billing", charge)  # a second instance of the same service
        for i in range(messages):
            await naive.publish("orders", f"o{i}", {"order": i})
        broker = InMemoryBroker(EXPERIMENT_CONFIG)
        await broker.create_topic("orders", 4)
        await broker.create_group("orders", "billing")
        for c in ("billing-1", "billing-2"):
            await broker.join("orders", "billing", c)
        for i in range(messages):
            await broker.publish("orders", {"order": i}, key=f"o{i}")
        for _ in range(messages):
            for c in ("billing-1", "billing-2"):
                for d in await broker.poll("orders", "billing", c, max_messages=100):
                    charges["group"] += 1
                    await broker.ack(d)
        return charges

    return run_virtual(main())


# -- exercise checker --------------------------------------------------------------------------------------
def check_effectively_once(handler_factory, *, messages: int = 400, crash_rate: float = 0.05, seed: int = 0) -> str:
    """Run the crash experiment at-least-once with the learner's handler; return a verdict line.

    ``handler_factory(conn, apply, name=...)`` must return an object with
    ``handle(message, inside=None) -> bool`` that calls ``apply(conn, message)`` inside a
    transaction and calls ``inside()`` (the crash point) before committing.
    """
    try:
        r = crash_experiment("at-least-once", messages=messages, crash_rate=crash_rate, seed=seed,
                             handler_factory=handler_factory)
    except Exception as exc:  # noqa: BLE001 - the learner's code: report, do not raise
        return f"ERROR: the handler raised {type(exc).__name__}: {exc}"
    head = "PASS" if r.lost == 0 and r.duplicated == 0 else "NOT YET"
    hint = "" if head == "PASS" else (" (hint: record the message id in the same transaction as the effect, "
                                      "and skip the effect when the id is already there)")
    return (f"{head}: {r.messages} messages, {r.crashes} crashes -> {r.lost} lost, {r.duplicated} duplicated"
            + hint)


def naive_modes_demo(messages: int = 10, failing: int = 3) -> dict[str, int]:
    """The seed's broker in each delivery mode, with a handler that fails once on ``failing`` messages.

    Returns handled messages per mode: the same in every mode, because no mode acks,
    retries or dead-letters: a failed message is simply gone.
    """
    from workbook.messaging.naive import NaiveBroker

    async def main():
        out = {}
        for mode in DeliveryMode:
            broker, handled, failed = NaiveBroker(), [], set()

            async def handler(payload, handled=handled, failed=failed):
                if payload["n"] < failing and payload["n"] not in failed:
                    failed.add(payload["n"])
                    raise ConnectionError("ledger briefly unavailable")
                handled.append(payload["n"])

            broker.subscribe("payments", "ledger", handler)
            for i in range(messages):
                await broker.publish("payments", f"p{i}", {"n": i}, delivery_mode=mode.value)
            out[mode.value] = len(handled)
        return out

    return run_virtual(main())
