"""The broker interface shared by every backend, and its settings.

Model (Kafka's log + Redis Streams' pending-entries list):

* A **topic** is split into ``partitions``; each partition is an append-only log and a
  message's ``offset`` is its index in it. Messages are never deleted, so any group can
  **replay** from an offset (``read``, ``seek``).
* A **consumer group** reads a topic independently of every other group (every group
  gets every message). Inside a group the partitions are **shared**: each partition is
  owned by exactly one live member at a time (round-robin over the sorted member names),
  so the messages of one key are handled by one consumer, in order.
* Members **join**, **leave** or stop **heart-beating** (``poll`` counts as a heartbeat);
  a member silent for ``session_timeout`` is removed. Any membership change is a
  **rebalance**: partitions are reassigned and the unacknowledged deliveries of a moved
  partition become due again at once.
* A delivered message stays **pending** for its group until ``ack``. If not acked within
  ``visibility_timeout``, or ``nack``-ed, it is **redelivered** (``attempt`` + 1). After
  ``max_deliveries`` attempts, or a ``nack(requeue=False)``, it goes to the
  **dead-letter topic** ``<topic>.dlq`` with the reason in its headers, and its partition
  moves on: a poison message never blocks a partition.
* **A dead member's messages wait for the session timeout, not the visibility timeout.**
  A member that crashes (no ack, no nack, no leave) still owns its partitions until it has
  been silent for ``session_timeout``; only the owner of a partition is given its due
  redeliveries, so its unacknowledged messages, and everything behind them in its
  partitions, are redelivered to a survivor only after ``session_timeout`` (then at once,
  whatever is left of their visibility timeout). ``visibility_timeout`` governs a *live*
  member that is slow or lost a message. Keep ``session_timeout`` short to recover fast.
* Per partition at most ``max_in_flight`` messages are pending at once, and a partition
  with a message due for redelivery delivers nothing new until it is resolved: with the
  default of 1 per-key order holds even across crashes and retries.
* The **committed offset** of a group in a partition is the first offset not yet
  resolved (acked or dead-lettered); everything before it is done. Lag is the end offset
  minus the committed offset.

Delivery semantics are *not* a broker setting: they follow from when the consumer
acknowledges (see ``workbook.messaging.consumer``). Broker outages (``BrokerUnavailable``)
and what they do to work in flight are described in ``redis_streams`` and ``consumer``.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any

from workbook.core.params import check_int, check_number
from workbook.messaging.message import Delivery, Message

DLQ_SUFFIX = ".dlq"
MAX_TOPIC_LENGTH = 249


@dataclass(frozen=True)
class BrokerConfig:
    visibility_timeout: float = 30.0
    """Seconds a delivered message may stay unacknowledged before it is redelivered."""
    session_timeout: float = 10.0
    """Seconds without a poll or heartbeat after which a member is removed from its group;
    also how long a crashed member's unacknowledged messages wait before redelivery."""
    max_deliveries: int = 5
    """Deliveries of one message to one group before it is dead-lettered."""
    max_in_flight: int = 1
    """Pending (delivered, unacknowledged) messages per partition and group."""

    def __post_init__(self):
        check_number("visibility_timeout", self.visibility_timeout, minimum=0, min_exclusive=True)
        check_number("session_timeout", self.session_timeout, minimum=0, min_exclusive=True)
        check_int("max_deliveries", self.max_deliveries, minimum=1)
        check_int("max_in_flight", self.max_in_flight, minimum=1)


def dlq_topic(topic: str) -> str:
    """``<topic>.dlq``; for a name too long for that (over 245 characters), its first 236
    characters, ``-``, the CRC-32 of the whole name in hex and ``.dlq``: always a valid name
    (at most 249 characters), the same in every process, different for different topics."""
    name = topic + DLQ_SUFFIX
    if len(name) <= MAX_TOPIC_LENGTH:
        return name
    from workbook.messaging.partitioner import stable_hash

    return f"{topic[:MAX_TOPIC_LENGTH - len(DLQ_SUFFIX) - 9]}-{stable_hash(topic):08x}{DLQ_SUFFIX}"


class Broker(abc.ABC):
    """What producers and consumers need; implemented by ``InMemoryBroker`` and ``RedisStreamsBroker``.

    All methods are coroutines so that a networked backend fits the same interface.
    """

    config: BrokerConfig

    # -- topics and producing -----------------------------------------------------------
    @abc.abstractmethod
    async def create_topic(self, name: str, partitions: int = 1, *, exist_ok: bool = True) -> None: ...

    @abc.abstractmethod
    async def partitions(self, topic: str) -> int: ...

    @abc.abstractmethod
    async def publish(self, topic: str, payload: Any, *, key: str | None = None, kind: str = "event",
                      headers: dict[str, str] | None = None, reply_to: str | None = None,
                      correlation_id: str | None = None, message_id: str | None = None) -> Message: ...

    # -- groups ---------------------------------------------------------------------------
    @abc.abstractmethod
    async def create_group(self, topic: str, group: str, *, start: str = "earliest",
                           exist_ok: bool = False) -> None: ...

    @abc.abstractmethod
    async def join(self, topic: str, group: str, consumer: str) -> None: ...

    @abc.abstractmethod
    async def leave(self, topic: str, group: str, consumer: str) -> None: ...

    @abc.abstractmethod
    async def heartbeat(self, topic: str, group: str, consumer: str) -> None: ...

    @abc.abstractmethod
    async def assignment(self, topic: str, group: str) -> dict[str, list[int]]: ...

    # -- consuming ------------------------------------------------------------------------
    @abc.abstractmethod
    async def poll(self, topic: str, group: str, consumer: str, *, max_messages: int = 10,
                   timeout: float = 0.0) -> list[Delivery]: ...

    @abc.abstractmethod
    async def ack(self, delivery: Delivery) -> bool: ...

    @abc.abstractmethod
    async def nack(self, delivery: Delivery, reason: str = "nack", *, requeue: bool = True) -> None: ...

    # -- offsets and replay -----------------------------------------------------------------
    @abc.abstractmethod
    async def committed(self, topic: str, group: str) -> dict[int, int]: ...

    @abc.abstractmethod
    async def end_offsets(self, topic: str) -> dict[int, int]: ...

    @abc.abstractmethod
    async def pending_count(self, topic: str, group: str) -> int: ...

    @abc.abstractmethod
    async def read(self, topic: str, partition: int, from_offset: int = 0,
                   limit: int | None = None) -> list[Message]: ...

    @abc.abstractmethod
    async def seek(self, topic: str, group: str, partition: int, offset: int) -> None: ...

    async def lag(self, topic: str, group: str) -> int:
        """Messages of ``topic`` not yet resolved by ``group`` (end offset - committed offset)."""
        ends, done = await self.end_offsets(topic), await self.committed(topic, group)
        return sum(ends[p] - done.get(p, 0) for p in ends)

    async def dead_letters(self, topic: str) -> list[Message]:
        """Every message dead-lettered from ``topic`` (reason in ``headers['x-dead-letter-reason']``)."""
        name = dlq_topic(topic)
        try:
            n = await self.partitions(name)
        except LookupError:
            return []
        out: list[Message] = []
        for p in range(n):
            out.extend(await self.read(name, p))
        return out

    async def close(self) -> None:
        return None
