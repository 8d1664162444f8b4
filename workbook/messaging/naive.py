"""The article's broker, rebuilt (not copied) only to show its defects live.

* ``NaiveBroker``: partition = ``hash(message_id) % n`` (differs per process, ignores
  keys); every subscriber of a topic gets every message even inside one "group"; the
  three delivery modes are accepted and ignored: no acks, no redelivery, no dead letters,
  no deduplication.
"""

from __future__ import annotations

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
            except Exception:  # noqa: BLE001 - the article's code logs and moves on: the message is simply gone
                pass
