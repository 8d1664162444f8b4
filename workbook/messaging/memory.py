"""The in-memory broker: the default backend, deterministic and instant in virtual time.

Everything the interface promises (see ``workbook.messaging.broker``) is implemented
here with plain dicts and lists; time comes from the injected clock (``LoopClock`` by
default, virtual under ``run_virtual``), and timeouts (visibility, session) are checked
whenever a client calls in, so nothing runs in the background. ``events`` records
rebalances, redeliveries and dead letters as ``(time, what, detail)`` tuples.

``poll(timeout=...)`` waits on the event loop's timers, so it needs a loop clock; with a
``ManualClock`` call it with ``timeout=0`` and move the clock by hand.
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass, field
from typing import Any

from workbook.core.clock import Clock, LoopClock
from workbook.core.params import check_int, check_number
from workbook.messaging.broker import Broker, BrokerConfig, dlq_topic
from workbook.messaging.errors import ConsumerNameClash, GroupExists, UnknownGroup, UnknownTopic
from workbook.messaging.message import Delivery, Message, check_headers, check_publish, check_topic, decode_payload
from workbook.messaging.partitioner import KeyPartitioner


@dataclass
class _Stored:
    id: str
    key: str | None
    kind: str
    payload: str
    headers: dict[str, str]
    reply_to: str | None
    correlation_id: str | None
    timestamp: float


@dataclass
class _Pending:
    consumer: str
    attempt: int
    due: float
    reason: str = ""


@dataclass
class _PartitionCursor:
    committed: int = 0
    next: int = 0
    pending: dict[int, _Pending] = field(default_factory=dict)
    done: set[int] = field(default_factory=set)

    def resolve(self, offset: int) -> None:
        self.pending.pop(offset, None)
        self.done.add(offset)
        while self.committed in self.done:
            self.done.discard(self.committed)
            self.committed += 1


@dataclass
class _Group:
    name: str
    cursors: list[_PartitionCursor]
    members: dict[str, float] = field(default_factory=dict)  # consumer -> last seen
    owner: dict[int, str] = field(default_factory=dict)
    generation: int = 0
    created: float = 0.0


class InMemoryBroker(Broker):
    """Topics, partitions, consumer groups, acks, redelivery and dead letters in one process."""

    def __init__(self, config: BrokerConfig | None = None, *, clock: Clock | None = None,
                 partitioner: KeyPartitioner | None = None):
        self.config = config or BrokerConfig()
        self.clock = clock or LoopClock()
        self.partitioner = partitioner or KeyPartitioner()
        self._logs: dict[str, list[list[_Stored]]] = {}
        self._groups: dict[tuple[str, str], _Group] = {}
        self._ids = itertools.count(1)
        self._changed: dict[str, asyncio.Event] = {}
        self.events: list[tuple[float, str, dict]] = []
        self.published = 0

    # -- topics -----------------------------------------------------------------------------
    async def create_topic(self, name: str, partitions: int = 1, *, exist_ok: bool = True) -> None:
        check_topic(name, where="create_topic")
        check_int("partitions", partitions, minimum=1)
        if name in self._logs:
            if len(self._logs[name]) != partitions or not exist_ok:
                raise ValueError(f"create_topic: topic {name!r} already exists with "
                                 f"{len(self._logs[name])} partition(s); asked for {partitions}")
            return
        self._logs[name] = [[] for _ in range(partitions)]

    async def partitions(self, topic: str) -> int:
        return len(self._log(topic))

    def _log(self, topic: str) -> list[list[_Stored]]:
        try:
            return self._logs[topic]
        except KeyError:
            check_topic(topic)
            known = ", ".join(sorted(self._logs)) or "none"
            raise UnknownTopic(f"topic {topic!r} does not exist (create it first; known topics: {known})") from None

    async def publish(self, topic: str, payload: Any, *, key: str | None = None, kind: str = "event",
                      headers: dict[str, str] | None = None, reply_to: str | None = None,
                      correlation_id: str | None = None, message_id: str | None = None) -> Message:
        text = check_publish(topic, payload, kind, reply_to, correlation_id, key, message_id)
        headers = check_headers(topic, headers)
        log = self._log(topic)
        p = self.partitioner.partition(key, len(log))
        stored = _Stored(message_id or f"m{next(self._ids):07d}", key, kind, text, headers,
                         reply_to, correlation_id, self.clock.now())
        log[p].append(stored)
        self.published += 1
        self._wake(topic)
        return self._message(topic, p, len(log[p]) - 1, stored)

    def _message(self, topic: str, p: int, offset: int, s: _Stored) -> Message:
        return Message(topic, decode_payload(s.payload), s.id, s.key, s.kind, dict(s.headers), s.reply_to,
                       s.correlation_id, p, offset, s.timestamp)

    def _wake(self, topic: str) -> None:
        ev = self._changed.pop(topic, None)
        if ev is not None:
            ev.set()

    # -- groups -----------------------------------------------------------------------------
    async def create_group(self, topic: str, group: str, *, start: str = "earliest", exist_ok: bool = False) -> None:
        log = self._log(topic)
        if not isinstance(group, str) or not group:
            raise ValueError(f"create_group on topic {topic!r}: group name must be a non-empty string, got {group!r}")
        if start not in ("earliest", "latest"):
            raise ValueError(f"create_group {group!r} on {topic!r}: start must be 'earliest' or 'latest', "
                             f"got {start!r}")
        if (topic, group) in self._groups:
            if exist_ok:
                return
            g = self._groups[(topic, group)]
            raise GroupExists(f"topic {topic!r}: consumer group {group!r} already exists (created at "
                              f"t={g.created:g}s, members: {sorted(g.members) or 'none'}); two services sharing "
                              "a group name would split each other's messages: pick another name, or pass "
                              "exist_ok=True to join the existing group on purpose")
        cursors = [_PartitionCursor() for _ in log]
        if start == "latest":
            for c, part in zip(cursors, log):
                c.committed = c.next = len(part)
        self._groups[(topic, group)] = _Group(group, cursors, created=self.clock.now())

    def _group(self, topic: str, group: str) -> _Group:
        try:
            return self._groups[(topic, group)]
        except KeyError:
            self._log(topic)
            known = sorted(g for t, g in self._groups if t == topic)
            raise UnknownGroup(f"topic {topic!r} has no consumer group {group!r} (known: {known or 'none'})") from None

    async def join(self, topic: str, group: str, consumer: str) -> None:
        if not isinstance(consumer, str) or not consumer:
            raise ValueError(f"join topic {topic!r}, group {group!r}: consumer name must be a non-empty string, "
                             f"got {consumer!r}")
        g = self._group(topic, group)
        self._expire(topic, g)
        if consumer in g.members:
            raise ConsumerNameClash(f"topic {topic!r}, group {group!r}: a live consumer named {consumer!r} "
                                    "is already a member; give each instance a unique name")
        g.members[consumer] = self.clock.now()
        self._rebalance(topic, g, f"{consumer} joined")

    async def leave(self, topic: str, group: str, consumer: str) -> None:
        g = self._group(topic, group)
        if g.members.pop(consumer, None) is not None:
            self._rebalance(topic, g, f"{consumer} left", gone={consumer})

    async def heartbeat(self, topic: str, group: str, consumer: str) -> None:
        g = self._group(topic, group)
        self._expire(topic, g)
        if consumer not in g.members:
            g.members[consumer] = self.clock.now()
            self._rebalance(topic, g, f"{consumer} rejoined")
        g.members[consumer] = self.clock.now()

    async def assignment(self, topic: str, group: str) -> dict[str, list[int]]:
        g = self._group(topic, group)
        self._expire(topic, g)
        out: dict[str, list[int]] = {m: [] for m in sorted(g.members)}
        for p, m in sorted(g.owner.items()):
            out[m].append(p)
        return out

    def _expire(self, topic: str, g: _Group) -> None:
        now = self.clock.now()
        dead = [m for m, seen in g.members.items() if now - seen > self.config.session_timeout]
        for m in dead:
            del g.members[m]
        if dead:
            self._rebalance(topic, g, f"{', '.join(sorted(dead))} missed heartbeats", gone=set(dead))

    def _rebalance(self, topic: str, g: _Group, why: str, gone: set[str] = frozenset()) -> None:
        """Reassign partitions. Unacked deliveries held by a member that is *gone* become due at
        once, in every partition (also one that moved away from it in an earlier rebalance while
        it kept its in-flight messages); a live member keeps its in-flight messages until it acks
        them or their visibility timeout expires (as in a cooperative rebalance), so a join
        causes no duplicate."""
        members = sorted(g.members)
        g.owner = {p: members[p % len(members)] for p in range(len(g.cursors))} if members else {}
        g.generation += 1
        now = self.clock.now()
        if gone:
            for cur in g.cursors:
                for pend in cur.pending.values():
                    if pend.consumer in gone:
                        pend.due = min(pend.due, now)
        self.events.append((now, "rebalance", {"topic": topic, "group": g.name, "generation": g.generation,
                                                "why": why, "owner": dict(g.owner)}))
        self._wake(topic)

    # -- consuming --------------------------------------------------------------------------
    async def poll(self, topic: str, group: str, consumer: str, *, max_messages: int = 10,
                   timeout: float = 0.0) -> list[Delivery]:
        check_int("max_messages", max_messages, minimum=1)
        check_number("timeout", timeout, minimum=0)
        g = self._group(topic, group)
        deadline = self.clock.now() + timeout
        while True:
            await self.heartbeat(topic, group, consumer)
            out = await self._collect(topic, g, consumer, max_messages)
            now = self.clock.now()
            if out or now >= deadline:
                return out
            wake = deadline
            for cur in g.cursors:
                for pend in cur.pending.values():
                    if pend.due > now:
                        wake = min(wake, pend.due)
            wake = min(wake, now + self.config.session_timeout / 2)  # keep heart-beating while waiting
            ev = self._changed.setdefault(topic, asyncio.Event())
            try:
                await asyncio.wait_for(ev.wait(), max(0.0, wake - now))
            except asyncio.TimeoutError:
                pass

    async def _collect(self, topic: str, g: _Group, consumer: str, max_messages: int) -> list[Delivery]:
        log = self._log(topic)
        now = self.clock.now()
        out: list[Delivery] = []
        mine = [p for p, m in sorted(g.owner.items()) if m == consumer]
        for p in mine:
            cur = g.cursors[p]
            redelivered = False
            for off in sorted(o for o, pend in cur.pending.items() if pend.due <= now):
                pend = cur.pending[off]
                if pend.attempt >= self.config.max_deliveries:
                    reason = pend.reason or f"not acknowledged within {self.config.visibility_timeout:g}s"
                    await self._dead_letter(topic, g, p, off, f"{reason} (after {pend.attempt} deliveries)",
                                            pend.attempt)
                    continue
                redelivered = True
                if len(out) >= max_messages:
                    break
                pend.attempt += 1
                pend.consumer, pend.due = consumer, now + self.config.visibility_timeout
                out.append(Delivery(self._message(topic, p, off, log[p][off]), g.name, consumer, pend.attempt))
                self.events.append((now, "redeliver", {"topic": topic, "group": g.name, "partition": p,
                                                       "offset": off, "attempt": pend.attempt, "to": consumer}))
            if redelivered:
                continue  # order: nothing new from this partition until the redelivery is resolved
            while (cur.next < len(log[p]) and len(cur.pending) < self.config.max_in_flight
                   and len(out) < max_messages):
                off = cur.next
                cur.next += 1
                cur.pending[off] = _Pending(consumer, 1, now + self.config.visibility_timeout)
                out.append(Delivery(self._message(topic, p, off, log[p][off]), g.name, consumer, 1))
        return out

    async def ack(self, delivery: Delivery) -> bool:
        g = self._group(delivery.topic, delivery.group)
        cur = g.cursors[delivery.partition]
        if delivery.offset not in cur.pending:
            return False
        cur.resolve(delivery.offset)
        self._wake(delivery.topic)
        return True

    async def nack(self, delivery: Delivery, reason: str = "nack", *, requeue: bool = True) -> None:
        g = self._group(delivery.topic, delivery.group)
        cur = g.cursors[delivery.partition]
        pend = cur.pending.get(delivery.offset)
        if pend is None:
            return
        pend.reason = str(reason)
        if not requeue:
            await self._dead_letter(delivery.topic, g, delivery.partition, delivery.offset,
                                    f"{reason} (rejected, not retryable)", pend.attempt)
        else:
            pend.due = self.clock.now()
        self._wake(delivery.topic)

    async def _dead_letter(self, topic: str, g: _Group, p: int, off: int, reason: str, attempts: int) -> None:
        s = self._log(topic)[p][off]
        name = dlq_topic(topic)
        await self.create_topic(name, 1)
        headers = dict(s.headers)
        headers.update({"x-dead-letter-reason": reason, "x-original-topic": topic, "x-original-partition": str(p),
                        "x-original-offset": str(off), "x-original-id": s.id, "x-group": g.name,
                        "x-deliveries": str(attempts)})
        await self.publish(name, decode_payload(s.payload), key=s.key, kind=s.kind, headers=headers,
                           reply_to=s.reply_to, correlation_id=s.correlation_id, message_id=f"{s.id}@{g.name}")
        g.cursors[p].resolve(off)
        self.events.append((self.clock.now(), "dead-letter", {"topic": topic, "group": g.name, "partition": p,
                                                              "offset": off, "reason": reason}))

    # -- offsets and replay -------------------------------------------------------------------
    async def committed(self, topic: str, group: str) -> dict[int, int]:
        return {p: c.committed for p, c in enumerate(self._group(topic, group).cursors)}

    async def end_offsets(self, topic: str) -> dict[int, int]:
        return {p: len(part) for p, part in enumerate(self._log(topic))}

    async def pending_count(self, topic: str, group: str) -> int:
        return sum(len(c.pending) for c in self._group(topic, group).cursors)

    async def read(self, topic: str, partition: int, from_offset: int = 0, limit: int | None = None) -> list[Message]:
        log = self._log(topic)
        self._check_partition(topic, partition, len(log))
        check_int("from_offset", from_offset, minimum=0)
        part = log[partition]
        stop = len(part) if limit is None else min(len(part), from_offset + check_int("limit", limit, minimum=0))
        return [self._message(topic, partition, o, part[o]) for o in range(from_offset, stop)]

    async def seek(self, topic: str, group: str, partition: int, offset: int) -> None:
        """Move ``group`` in ``partition`` to ``offset``: later messages are delivered (again)."""
        g = self._group(topic, group)
        self._check_partition(topic, partition, len(g.cursors))
        end = len(self._log(topic)[partition])
        check_int(f"offset (end of {topic}[{partition}] is {end})", offset, minimum=0, maximum=end)
        g.cursors[partition] = _PartitionCursor(committed=offset, next=offset)
        self._wake(topic)

    @staticmethod
    def _check_partition(topic: str, partition: int, n: int) -> None:
        check_int(f"partition of topic {topic!r} ({n} partitions)", partition, minimum=0, maximum=n - 1)
