"""Per-key order and queue-based load leveling.

* ``ordering_experiment``: per-key sequence numbers processed by several consumers;
  counts **order violations** (a message handled after a later one of the same key),
  with the order id as the partition key and without a key (round-robin).
* ``lag_experiment``: a burst of messages absorbed by the topic and drained by 1..N
  consumers; lag over time, peak lag and time to drain.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from workbook.core.params import check_int, check_number
from workbook.core.seeds import stream
from workbook.core.virtual_time import run_virtual
from workbook.labs.ch03_async.delivery import EXPERIMENT_CONFIG
from workbook.messaging.memory import InMemoryBroker


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
    check_int("messages", messages, minimum=1)
    check_int("keys", keys, minimum=1)
    check_int("consumers", consumers, minimum=1)
    check_int("seed", seed, minimum=0)
    key_rng, service_rng = stream(seed, "order-keys"), stream(seed, "service-times")
    broker = InMemoryBroker(EXPERIMENT_CONFIG)
    await broker.create_topic("orders", partitions)
    await broker.create_group("orders", "fulfilment")
    for i in range(messages):
        k = f"order-{key_rng.randrange(keys)}"
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
                await asyncio.sleep(service_rng.expovariate(1 / mean_service_time))
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
    check_int("partitions", partitions, minimum=1)
    check_number("service_time", service_time, minimum=0, min_exclusive=True)
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
