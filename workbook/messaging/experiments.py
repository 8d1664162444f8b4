"""Experiments that count what each delivery guarantee loses, duplicates or reorders.

Every function here is deterministic for a given seed: it builds a broker (in-memory in
virtual time by default, or any ``Broker`` passed in), runs producers and consumers, and
returns plain numbers. The notebook prints them and ``workbook.viz.messaging`` draws them.

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
                    db_path: str = ":memory:", max_duration: float = 1e6) -> CrashResult:
    """Publish ``messages`` payments and consume them while consumers crash; count the damage."""
    mode = DeliveryMode.parse(mode)
    check_int("messages", messages, minimum=1)
    check_int("consumers", consumers, minimum=1)
    check_number("crash_rate", crash_rate, minimum=0, maximum=0.5)
    rng = random.Random(seed)
    loop = asyncio.get_running_loop()
    start = loop.time()
    conn = connect(db_path)
    conn.execute("CREATE TABLE IF NOT EXISTS ledger (message_id TEXT NOT NULL, amount INTEGER NOT NULL)")
    handler = (IdempotentHandler if mode is DeliveryMode.EFFECTIVELY_ONCE else PlainHandler)(conn, _ledger_apply,
                                                                                            name=group)
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
                     partitions: int = 4, seed: int = 0, config: BrokerConfig | None = None) -> CrashResult:
    """``crash_run`` on a fresh in-memory broker in virtual time."""
    return run_virtual(crash_run(InMemoryBroker(config or EXPERIMENT_CONFIG), mode, messages=messages,
                                 consumers=consumers, crash_rate=crash_rate, partitions=partitions, seed=seed))


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
