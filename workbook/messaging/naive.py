"""The seed's broker and saga, rebuilt (not copied) only to show their defects live.

* ``NaiveBroker``: partition = ``hash(message_id) % n`` (differs per process, ignores
  keys); every subscriber of a topic gets every message even inside one "group"; the
  three delivery modes are accepted and ignored: no acks, no redelivery, no dead letters,
  no deduplication.
* ``NaiveSaga``: on a failed step it schedules the compensations without awaiting them,
  swallows their errors, and reports ``compensated`` straight away.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Any

from workbook.messaging.partitioner import python_hash_partition


class NaiveBroker:
    def __init__(self, partitions: int = 4):
        self.partitions = partitions
        self.subscribers: dict[str, list[tuple[str, Callable]]] = defaultdict(list)
        self.log: list[tuple[str, int, Any]] = []

    def subscribe(self, topic: str, group: str, handler: Callable[[Any], Awaitable[None]]) -> None:
        self.subscribers[topic].append((group, handler))

    async def publish(self, topic: str, message_id: str, payload: Any, delivery_mode: str = "at-least-once") -> None:
        partition = python_hash_partition(message_id, self.partitions)
        self.log.append((topic, partition, payload))
        for _group, handler in self.subscribers[topic]:  # the group is ignored: everyone gets everything
            try:
                await handler(payload)
            except Exception:  # noqa: BLE001 - the seed logs and moves on: the message is simply gone
                pass


class NaiveSaga:
    def __init__(self, steps: list[tuple[str, Callable, Callable]], trace: list | None = None):
        self.steps = steps
        self.trace = trace if trace is not None else []
        self.status = "running"

    async def run(self, saga_id: str) -> str:
        loop = asyncio.get_running_loop()
        done = []
        for name, action, compensation in self.steps:
            self.trace.append((loop.time(), "orchestrator", name, f"{name} ({saga_id})"))
            try:
                await action(saga_id, {})
            except Exception as exc:  # noqa: BLE001
                self.trace.append((loop.time(), name, "orchestrator", f"{type(exc).__name__} ({saga_id})"))
                for prev, _, comp in reversed(done):
                    self.trace.append((loop.time(), "orchestrator", prev, f"undo {prev} ({saga_id})"))
                    task = asyncio.ensure_future(comp(saga_id, {}))  # fire and forget
                    task.add_done_callback(lambda t: t.cancelled() or t.exception())  # errors swallowed
                self.status = "compensated"  # without waiting for a single compensation
                return self.status
            self.trace.append((loop.time(), name, "orchestrator", f"ok ({saga_id})"))
            done.append((name, action, compensation))
        self.status = "completed"
        return self.status
