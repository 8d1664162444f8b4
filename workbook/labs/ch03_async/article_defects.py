"""The source article's broker, live: what its partitioner, groups and delivery modes do."""

from __future__ import annotations

from workbook.core.virtual_time import run_virtual
from workbook.labs.ch03_async.delivery import EXPERIMENT_CONFIG
from workbook.messaging.consumer import DeliveryMode
from workbook.messaging.memory import InMemoryBroker


def partition_across_processes(ids: list[str], partitions: int = 8, hash_seeds=("1", "2")) -> dict[str, dict]:
    """Partitions of ``ids`` computed in separate Python processes with different PYTHONHASHSEED.

    Returns ``{seed: {"python_hash": [...], "crc32": [...]}}``: the article's ``hash(id) % n``
    changes with the process, CRC-32 does not.
    """
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = str(Path(__file__).resolve().parents[3])  # the repository root
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
    """Two members of one group "billing": the article's broker charges each order twice, ours once."""
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


def naive_modes_demo(messages: int = 10, failing: int = 3) -> dict[str, int]:
    """The article's broker in each delivery mode, with a handler that fails once on ``failing`` messages.

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
