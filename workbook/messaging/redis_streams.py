"""The Redis Streams backend: the same ``Broker`` interface over a real redis-server.

Mapping (keys are prefixed, ``wb:`` by default):

* partition ``p`` of topic ``t`` is the stream ``wb:s:t:p``; the message at offset ``o``
  has the entry id ``0-(o+1)``: ``XADD`` with the id ``0-*`` (Redis >= 7.0) takes the next
  sequence number atomically, so offsets are dense and equal to the in-memory backend's,
  and a publish is one plain command;
  an entry has one field, ``message``: a JSON list of id, kind, key, headers, reply_to,
  correlation_id, timestamp and the payload (its JSON text, as is), so one ``json.loads``
  decodes all of it and redis-py parses one field-value pair per entry (each bulk string
  costs its pure-Python parser about a microsecond); entries of the earlier layout, two
  fields ``payload`` (the JSON text) and ``meta`` (the same list without the payload), are
  still read;
* a consumer group is a Redis consumer group on each partition stream (``XGROUP
  CREATE``; ``BUSYGROUP`` becomes ``GroupExists``); members and their last heartbeat live
  in the hash ``wb:m:t:g``; the partition assignment is computed from the sorted live
  members, exactly as in memory;
* new messages come from ``XREADGROUP ... >``; unacknowledged ones sit in the group's
  pending entries list (PEL) with their delivery count; ``XACK`` resolves them;
* a pending entry is **reclaimed** (``XCLAIM``, which increments its delivery count) when
  its consumer is gone (left or missed heartbeats), when it has been idle longer than the
  visibility timeout, or when it was nacked (flag in ``wb:k:t:g``); past
  ``max_deliveries`` it is published to ``t.dlq`` with the reason and ``XACK``-ed;
* committed offset = the first pending offset, else the group's ``last-delivered-id``.

It runs in real time (the wall clock, shared by all clients on the machine). Dead-letter
publication and the ``XACK`` that follows are two commands: a crash between them can put
one message twice into the dead-letter topic (same message id), never zero times.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import time
import uuid
from typing import Any

from workbook.core.params import check_int, check_number
from workbook.messaging.broker import Broker, BrokerConfig, dlq_topic
from redis.exceptions import ConnectionError as RedisConnectionError, ResponseError, TimeoutError as RedisTimeout

from workbook.messaging.errors import (BrokerUnavailable, ConsumerNameClash, GroupExists, MessagingError, UnknownGroup,
                                       UnknownTopic)
from workbook.messaging.message import (Delivery, Message, check_headers, check_publish, check_topic, decode_payload,
                                        trusted_message)
from workbook.messaging.partitioner import KeyPartitioner

# One poll, atomically: heartbeat, expiry of silent members, assignment, pending lists,
# reclaims and new reads, so no other client's poll, join or ack can fall between deciding
# which partitions this consumer owns (and how much room they have) and reading from them.
# KEYS: members hash, nack flags hash, then every partition's stream (partition p = KEYS[p + 3]).
# ARGV: group, consumer, now, session timeout (s), visibility timeout (ms), max_deliveries,
#       max_in_flight, max_messages, pending entries scanned per partition.
# Returns {claims, reads, dead, expired}: claims {p, attempt, entry id, {field, value, ...}}
# (redeliveries), reads {p, {{entry id, {field, value, ...}}, ...}} (first deliveries, as
# XREADGROUP returns them: no per-entry extras to parse), both in partition order; dead {p, entry id, deliveries, nack reason or ''}: due entries past
# max_deliveries, left pending for the client to dead-letter (their partition delivers nothing
# else in this call); expired: the members removed for missed heartbeats.
_POLL = """
local group, me, now = ARGV[1], ARGV[2], tonumber(ARGV[3])
local session, vt = tonumber(ARGV[4]), tonumber(ARGV[5])
local maxdel, maxfl, budget, scan = tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9])
redis.call('HSET', KEYS[1], me, ARGV[3])
local flat = redis.call('HGETALL', KEYS[1])
local live, expired, alive = {}, {}, {}
for i = 1, #flat, 2 do
  if now - tonumber(flat[i + 1]) > session then expired[#expired + 1] = flat[i]
  else live[#live + 1] = flat[i]; alive[flat[i]] = true end
end
if #expired > 0 then redis.call('HDEL', KEYS[1], unpack(expired)) end
table.sort(live)
local claims, reads, dead = {}, {}, {}
for p = 0, #KEYS - 3 do
  if live[(p % #live) + 1] == me then
    local stream = KEYS[p + 3]
    local pend = redis.call('XPENDING', stream, group, '-', '+', scan)
    local in_flight, blocked = #pend, false
    for _, e in ipairs(pend) do
      local eid, owner, idle, count = e[1], e[2], e[3], e[4]
      local flag = p .. ':' .. eid
      local reason = redis.call('HGET', KEYS[2], flag)
      if reason or idle >= vt or not alive[owner] then
        blocked = true
        if count >= maxdel then
          dead[#dead + 1] = {p, eid, count, reason or ''}
        else
          if budget <= 0 then break end
          budget = budget - 1
          local got = redis.call('XCLAIM', stream, group, me, 0, eid)
          if reason then redis.call('HDEL', KEYS[2], flag) end
          if got[1] then claims[#claims + 1] = {p, count + 1, eid, got[1][2]} end
        end
      end
    end
    local room = math.min(maxfl - in_flight, budget)
    if not blocked and room > 0 then
      local got = redis.call('XREADGROUP', 'GROUP', group, me, 'COUNT', room, 'STREAMS', stream, '>')
      if got then
        reads[#reads + 1] = {p, got[1][2]}
        budget = budget - #got[1][2]
      end
    end
  end
end
return {claims, reads, dead, expired}
"""

# XACK and the removal of a nack flag, in one command.
_ACK = """
local n = redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('HDEL', KEYS[2], ARGV[3])
return n
"""

_ENCODE_META = json.JSONEncoder(separators=(",", ":")).encode
_DECODE_OWN = json.JSONDecoder().raw_decode
# (value, end) of JSON text this backend wrote: json.loads without its type checks and its
# two wrapper calls (our texts have no surrounding whitespace to skip)
_QUOTE = json.encoder.encode_basestring_ascii  # what _ENCODE_META writes for a str, without its per-call setup


def _encode_entry(message_id: str, kind: str, key: str | None, headers: dict[str, str], reply_to: str | None,
                  correlation_id: str | None, ts: float, text: str) -> str:
    """The ``message`` field: ``_ENCODE_META([message_id, kind, key, headers, reply_to,
    correlation_id, ts, json.loads(text)])``, the same text, written directly: a third of the
    cost (``JSONEncoder.encode`` sets up a new C encoder on every call) and the payload's
    text is not encoded twice. Every field is already validated: strings, ``None``, a dict of
    str to str, a finite float (``repr`` is how JSON writes it), the payload's JSON text."""
    return (f'[{_QUOTE(message_id)},"{kind}",{"null" if key is None else _QUOTE(key)},'
            f'{_ENCODE_META(headers) if headers else "{}"},{"null" if reply_to is None else _QUOTE(reply_to)},'
            f'{"null" if correlation_id is None else _QUOTE(correlation_id)},{ts!r},{text}]')

PENDING_SCAN = 1000
"""Pending entries examined per partition and poll (more than ``max_in_flight`` ever allows)."""


def _entry_id(offset: int) -> str:
    return f"0-{offset + 1}"


def _offset(entry_id: str) -> int:
    return int(entry_id.partition("-")[2]) - 1


_CONNECTION_ERRORS = (RedisConnectionError, RedisTimeout, ConnectionError)


async def _raise_translated(broker: RedisStreamsBroker, name: str, exc: BaseException):
    """Raise what ``exc`` (met by the broker's method ``name``) means to a caller: Redis'
    connection errors become ``BrokerUnavailable`` and ``NOGROUP`` becomes ``UnknownGroup``;
    either empties the caches (a restarted server may have lost topics and groups). A
    connection error also closes every pooled connection, so the next command opens a fresh
    one: calling again after a ``BrokerUnavailable`` is how a client reconnects. Anything
    else is raised as it is."""
    if isinstance(exc, _CONNECTION_ERRORS) and not isinstance(exc, BrokerUnavailable):
        broker._forget()
        try:  # every pooled connection is stale after a restart: each would fail once more
            await broker.redis.connection_pool.disconnect()
        except Exception:  # noqa: BLE001 - closing broken sockets may fail too; nothing to do
            pass
        raise BrokerUnavailable(f"{name}: Redis at {broker.url} is unreachable "
                                f"({type(exc).__name__}: {exc})") from exc
    if isinstance(exc, ResponseError) and "NOGROUP" in str(exc):
        broker._forget()
        raise UnknownGroup(f"{name}: a consumer group is missing on the server ({exc}); "
                           "was Redis restarted without persistence?") from None
    raise exc


def _translating_errors(method):
    """``method`` with its Redis errors translated by ``_raise_translated`` (``publish``,
    the hottest path, does the same in its own body: one coroutine frame less per call)."""

    @functools.wraps(method)
    async def wrapper(self, *args, **kwargs):
        try:
            return await method(self, *args, **kwargs)
        except (*_CONNECTION_ERRORS, ResponseError) as exc:
            await _raise_translated(self, method.__name__, exc)
    return wrapper


class RedisStreamsBroker(Broker):
    """Delivery guarantees are those of ``Broker`` with real time. A Redis outage surfaces as
    ``BrokerUnavailable`` from the call that met it (nothing is retried here: the command may
    or may not have been applied); ``Consumer``, ``Requester`` and ``serve_requests`` retry
    with backoff. Work in flight across an outage: deliveries stay pending in Redis and are
    redelivered after ``visibility_timeout`` unless acknowledged after the restart; a server
    that restarts without persistence has lost every stream, group and pending entry."""

    def __init__(self, url: str, config: BrokerConfig | None = None, *, prefix: str = "wb",
                 partitioner: KeyPartitioner | None = None, poll_interval: float = 0.01):
        import redis.asyncio as aioredis

        self.config = config or BrokerConfig()
        self.url, self.prefix = url, prefix
        self.redis = aioredis.Redis.from_url(url, decode_responses=True)
        self.partitioner = partitioner or KeyPartitioner()
        self.poll_interval = poll_interval
        self._shas = {s: hashlib.sha1(s.encode()).hexdigest() for s in (_POLL, _ACK)}
        self._stream_key: dict[tuple[str, int], str] = {}
        self._ack_keys: dict[tuple[str, str, int], tuple[str, str]] = {}
        self._nacked: set[tuple[str, str, int, str]] = set()  # nack flags this client set, until acked
        self._ids = 0
        self._id_prefix = f"r{uuid.uuid4().hex[:12]}"  # ids are what idempotent consumers deduplicate on
        self.events: list[tuple[float, str, dict]] = []
        self._partitions: dict[str, int] = {}  # topics never change their partition count: cached
        self._groups: set[tuple[str, str]] = set()  # groups are never deleted: cached once seen
        self._stream_names: dict[str, list[str]] = {}
        self._keys: dict[tuple[str, str], list[str]] = {}

    def _forget(self) -> None:
        """Drop every cached fact about the server's data (after an outage or a missing group)."""
        self._partitions.clear()
        self._groups.clear()

    # -- keys -----------------------------------------------------------------------------------
    def _k(self, kind: str, *parts) -> str:
        return ":".join([self.prefix, kind, *map(str, parts)])

    @staticmethod
    def now() -> float:
        return time.time()

    async def close(self) -> None:
        await self.redis.aclose()

    # -- topics ---------------------------------------------------------------------------------
    async def create_topic(self, name: str, partitions: int = 1, *, exist_ok: bool = True) -> None:
        check_topic(name, where="create_topic")
        check_int("partitions", partitions, minimum=1)
        created = await self.redis.hsetnx(self._k("topics"), name, partitions)
        if not created:
            have = int(await self.redis.hget(self._k("topics"), name))
            if have != partitions or not exist_ok:
                raise ValueError(f"create_topic: topic {name!r} already exists with {have} partition(s); "
                                 f"asked for {partitions}")

    async def partitions(self, topic: str) -> int:
        return self._partitions.get(topic) or await self._partition_count(topic)

    async def _partition_count(self, topic: str) -> int:
        n = await self.redis.hget(self._k("topics"), topic)
        if n is None:
            check_topic(topic)
            known = ", ".join(sorted(await self.redis.hkeys(self._k("topics")))) or "none"
            raise UnknownTopic(f"topic {topic!r} does not exist (create it first; known topics: {known})")
        self._partitions[topic] = int(n)
        return int(n)

    async def publish(self, topic: str, payload: Any, *, key: str | None = None, kind: str = "event",
                      headers: dict[str, str] | None = None, reply_to: str | None = None,
                      correlation_id: str | None = None, message_id: str | None = None) -> Message:
        text = check_publish(topic, payload, kind, reply_to, correlation_id, key, message_id)
        headers = check_headers(topic, headers)
        try:  # the errors _translating_errors translates for the other methods, in this frame
            n = self._partitions.get(topic) or await self._partition_count(topic)
            p = self.partitioner.partition(key, n)
            if message_id is None:
                self._ids += 1
                message_id = f"{self._id_prefix}-{self._ids:07d}"
            ts = self.now()
            entry = _encode_entry(message_id, kind, key, headers, reply_to, correlation_id, ts, text)
            stream = self._stream_key.get((topic, p)) or self._stream_key.setdefault((topic, p),
                                                                                       self._k("s", topic, p))
            eid = await self.redis.execute_command("XADD", stream, "0-*", "message", entry)
        except ResponseError as exc:
            if "Invalid stream ID" in str(exc):
                raise MessagingError(f"publish to {topic!r}: this Redis server cannot add with the id '0-*' "
                                     "(it needs Redis >= 7.0)") from exc
            await _raise_translated(self, "publish", exc)
        except _CONNECTION_ERRORS as exc:
            await _raise_translated(self, "publish", exc)
        return trusted_message(topic, _DECODE_OWN(text)[0], message_id, key, kind, headers, reply_to, correlation_id,
                               p, _offset(eid), ts)

    async def _script(self, source: str, numkeys: int, *keys_and_args):
        """EVALSHA of a script (loaded at the first NOSCRIPT): what redis-py's Script object
        does, without its per-call import, tuple copies and pipeline check."""
        from redis.exceptions import NoScriptError

        sha = self._shas[source]
        try:
            return await self.redis.evalsha(sha, numkeys, *keys_and_args)
        except NoScriptError:
            await self.redis.script_load(source)
            return await self.redis.evalsha(sha, numkeys, *keys_and_args)

    @staticmethod
    def _message(topic: str, p: int, entry_id: str, flat: list[str]) -> Message:
        """The message of an entry's fields as XREADGROUP returns them: ``[name, value, ...]``."""
        if len(flat) == 2:  # ["message", text]
            message_id, kind, key, headers, reply_to, correlation_id, ts, payload = _DECODE_OWN(flat[1])[0]
        else:  # the earlier layout: ["payload", text, "meta", text]
            fields = dict(zip(flat[::2], flat[1::2]))
            message_id, kind, key, headers, reply_to, correlation_id, ts = json.loads(fields["meta"])
            payload = decode_payload(fields["payload"])
        return trusted_message(topic, payload, message_id, key, kind, headers, reply_to, correlation_id, p,
                               _offset(entry_id), ts)

    # -- groups -----------------------------------------------------------------------------------
    async def create_group(self, topic: str, group: str, *, start: str = "earliest", exist_ok: bool = False) -> None:
        n = await self.partitions(topic)
        if not isinstance(group, str) or not group:
            raise ValueError(f"create_group on topic {topic!r}: group name must be a non-empty string, got {group!r}")
        if start not in ("earliest", "latest"):
            raise ValueError(f"create_group {group!r} on {topic!r}: start must be 'earliest' or 'latest', "
                             f"got {start!r}")
        from redis.exceptions import ResponseError

        # The Redis groups first, the registry entry last: a creator that dies half-way leaves an
        # unregistered group, which the next create_group completes (BUSYGROUP: already there),
        # never a registered group that lacks some partitions (NOGROUP on every poll).
        for p in range(n):
            try:
                await self.redis.xgroup_create(self._k("s", topic, p), group,
                                               id="0" if start == "earliest" else "$", mkstream=True)
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise
        if not await self.redis.hsetnx(self._k("g", topic), group, repr(self.now())):
            if exist_ok:
                return
            members = sorted(await self.redis.hkeys(self._k("m", topic, group)))
            raise GroupExists(f"topic {topic!r}: consumer group {group!r} already exists (members: "
                              f"{members or 'none'}); two services sharing a group name would split each other's "
                              "messages: pick another name, or pass exist_ok=True to join the existing group "
                              "on purpose")

    async def _check_group(self, topic: str, group: str) -> int:
        n = await self.partitions(topic)
        if (topic, group) in self._groups:
            return n
        if not await self.redis.hexists(self._k("g", topic), group):
            known = sorted(await self.redis.hkeys(self._k("g", topic)))
            raise UnknownGroup(f"topic {topic!r} has no consumer group {group!r} (known: {known or 'none'})")
        self._groups.add((topic, group))
        return n

    async def _live(self, topic: str, group: str, members: dict | None = None) -> list[str]:
        """Live members after removing those silent for longer than the session timeout."""
        if members is None:
            members = await self.redis.hgetall(self._k("m", topic, group))
        now = self.now()
        dead = [m for m, seen in members.items() if now - float(seen) > self.config.session_timeout]
        if dead:
            await self.redis.hdel(self._k("m", topic, group), *dead)
            self.events.append((now, "rebalance", {"topic": topic, "group": group,
                                                   "why": f"{', '.join(sorted(dead))} missed heartbeats"}))
        return sorted(m for m in members if m not in dead)

    async def join(self, topic: str, group: str, consumer: str) -> None:
        if not isinstance(consumer, str) or not consumer:
            raise ValueError(f"join topic {topic!r}, group {group!r}: consumer name must be a non-empty string, "
                             f"got {consumer!r}")
        await self._check_group(topic, group)
        await self._live(topic, group)
        if not await self.redis.hsetnx(self._k("m", topic, group), consumer, repr(self.now())):
            raise ConsumerNameClash(f"topic {topic!r}, group {group!r}: a live consumer named {consumer!r} "
                                    "is already a member; give each instance a unique name")

    async def leave(self, topic: str, group: str, consumer: str) -> None:
        await self._check_group(topic, group)
        await self.redis.hdel(self._k("m", topic, group), consumer)

    async def heartbeat(self, topic: str, group: str, consumer: str) -> None:
        await self._check_group(topic, group)
        await self.redis.hset(self._k("m", topic, group), consumer, repr(self.now()))

    async def _owners(self, topic: str, group: str, n: int, members: dict | None = None
                      ) -> tuple[dict[int, str], list[str]]:
        live = await self._live(topic, group, members)
        return ({p: live[p % len(live)] for p in range(n)} if live else {}), live

    async def assignment(self, topic: str, group: str) -> dict[str, list[int]]:
        n = await self._check_group(topic, group)
        owners, live = await self._owners(topic, group, n)
        out: dict[str, list[int]] = {m: [] for m in live}
        for p, m in sorted(owners.items()):
            out[m].append(p)
        return out

    # -- consuming ----------------------------------------------------------------------------------
    async def poll(self, topic: str, group: str, consumer: str, *, max_messages: int = 10,
                   timeout: float = 0.0) -> list[Delivery]:
        """Heartbeat, then up to ``max_messages`` deliveries from the partitions ``consumer``
        owns, waiting up to ``timeout`` seconds for one.

        Each round is one Lua call (``_POLL``): membership, assignment, in-flight counts,
        reclaims and new reads happen atomically on the server, so two consumers that poll
        during a rebalance can never both read from one partition (per-key order holds however
        slow either client's link is). Only dead-lettering (rare) costs extra round trips."""
        check_int("max_messages", max_messages, minimum=1)
        check_number("timeout", timeout, minimum=0)
        n = await self._check_group(topic, group)
        deadline = time.monotonic() + timeout
        while True:
            out = await self._collect(topic, group, consumer, n, max_messages)
            if out or time.monotonic() >= deadline:
                return out
            await asyncio.sleep(min(self.poll_interval, max(0.0, deadline - time.monotonic())))

    async def _collect(self, topic: str, group: str, consumer: str, n: int, max_messages: int) -> list[Delivery]:
        keys = self._poll_keys(topic, group, n)
        cfg = self.config
        while True:
            now = self.now()
            claims, reads, dead, expired = await self._script(
                _POLL, len(keys), *keys, group, consumer, repr(now), cfg.session_timeout,
                cfg.visibility_timeout * 1000, cfg.max_deliveries, cfg.max_in_flight, max_messages, PENDING_SCAN)
            if expired:
                self.events.append((now, "rebalance", {"topic": topic, "group": group,
                                                       "why": f"{', '.join(sorted(expired))} missed heartbeats"}))
            out = [Delivery(self._message(topic, p, eid, flat), group, consumer, attempt)
                   for p, attempt, eid, flat in claims]
            for p, entries in reads:
                out += [Delivery(self._message(topic, p, eid, flat), group, consumer, 1)
                        for eid, flat in entries]
            if claims and reads:  # partition order, as the in-memory broker delivers
                out.sort(key=lambda d: d.message.partition)
            if not dead:
                return out
            # due entries past max_deliveries: dead-letter them, then poll again (their
            # partitions delivered nothing else), as the in-memory broker does within one poll
            for p, eid, times, reason in dead:
                why = reason or f"not acknowledged within {cfg.visibility_timeout:g}s"
                await self._dead_letter(topic, group, p, eid, f"{why} (after {times} deliveries)", times)
            if out:
                return out

    def _poll_keys(self, topic: str, group: str, n: int) -> list[str]:
        keys = self._keys.get((topic, group))
        if keys is None or len(keys) != n + 2:
            keys = self._keys[(topic, group)] = [self._k("m", topic, group), self._k("k", topic, group),
                                                 *self._streams(topic, n)]
        return keys

    def _streams(self, topic: str, n: int) -> list[str]:
        names = self._stream_names.get(topic)
        if names is None or len(names) != n:
            names = self._stream_names[topic] = [self._k("s", topic, p) for p in range(n)]
        return names

    async def ack(self, delivery: Delivery) -> bool:
        if (delivery.topic, delivery.group) not in self._groups:  # XACK to no group is a silent 0
            await self._check_group(delivery.topic, delivery.group)
        topic, group, p = delivery.message.topic, delivery.group, delivery.message.partition
        eid = f"0-{delivery.message.offset + 1}"
        keys = self._ack_keys.get((topic, group, p))
        if keys is None:
            keys = self._ack_keys[(topic, group, p)] = (self._k("s", topic, p), self._k("k", topic, group))
        if self._nacked and (topic, group, p, eid) in self._nacked:  # XACK and the nack flag's removal
            self._nacked.discard((topic, group, p, eid))
            return bool(await self._script(_ACK, 2, *keys, group, eid, f"{p}:{eid}"))
        return bool(await self.redis.xack(keys[0], group, eid))

    async def _is_pending(self, delivery: Delivery) -> bool:
        eid = _entry_id(delivery.offset)
        got = await self.redis.xpending_range(self._k("s", delivery.topic, delivery.partition), delivery.group,
                                              min=eid, max=eid, count=1)
        return bool(got)

    async def nack(self, delivery: Delivery, reason: str = "nack", *, requeue: bool = True) -> None:
        if (delivery.topic, delivery.group) not in self._groups:
            await self._check_group(delivery.topic, delivery.group)
        if not await self._is_pending(delivery):
            return
        eid = _entry_id(delivery.offset)
        if not requeue:
            await self._dead_letter(delivery.topic, delivery.group, delivery.partition, eid,
                                    f"{reason} (rejected, not retryable)", delivery.attempt)
        else:
            await self.redis.hset(self._k("k", delivery.topic, delivery.group), f"{delivery.partition}:{eid}",
                                  str(reason))
            self._nacked.add((delivery.topic, delivery.group, delivery.partition, eid))

    async def _dead_letter(self, topic: str, group: str, p: int, eid: str, reason: str, attempts: int) -> None:
        stream = self._k("s", topic, p)
        entries = await self.redis.xrange(stream, min=eid, max=eid)
        if entries:
            m = self._message(topic, p, eid, [x for kv in entries[0][1].items() for x in kv])
            await self.create_topic(dlq_topic(topic), 1)
            headers = dict(m.headers)
            headers.update({"x-dead-letter-reason": reason, "x-original-topic": topic, "x-original-partition": str(p),
                            "x-original-offset": str(m.offset), "x-original-id": m.id, "x-group": group,
                            "x-deliveries": str(attempts)})
            await self.publish(dlq_topic(topic), m.payload, key=m.key, kind=m.kind, headers=headers,
                               reply_to=m.reply_to, correlation_id=m.correlation_id, message_id=f"{m.id}@{group}")
        await self.redis.xack(stream, group, eid)
        await self.redis.hdel(self._k("k", topic, group), f"{p}:{eid}")
        self.events.append((self.now(), "dead-letter", {"topic": topic, "group": group, "partition": p,
                                                        "offset": _offset(eid), "reason": reason}))

    # -- offsets and replay ---------------------------------------------------------------------------
    async def committed(self, topic: str, group: str) -> dict[int, int]:
        n = await self._check_group(topic, group)
        out = {}
        for p in range(n):
            stream = self._k("s", topic, p)
            info = {g["name"]: g for g in await self.redis.xinfo_groups(stream)}[group]
            nxt = _offset(info["last-delivered-id"]) + 1 if info["last-delivered-id"] != "0-0" else 0
            first = await self.redis.xpending_range(stream, group, min="-", max="+", count=1)
            out[p] = _offset(first[0]["message_id"]) if first else nxt
        return out

    async def end_offsets(self, topic: str) -> dict[int, int]:
        n = await self.partitions(topic)
        async with self.redis.pipeline(transaction=False) as pipe:
            for p in range(n):
                pipe.xlen(self._k("s", topic, p))  # entries are never deleted: length = end offset
            return dict(enumerate(await pipe.execute()))

    async def pending_count(self, topic: str, group: str) -> int:
        n = await self._check_group(topic, group)
        total = 0
        for p in range(n):
            total += (await self.redis.xpending(self._k("s", topic, p), group))["pending"]
        return total

    async def read(self, topic: str, partition: int, from_offset: int = 0, limit: int | None = None) -> list[Message]:
        n = await self.partitions(topic)
        check_int(f"partition of topic {topic!r} ({n} partitions)", partition, minimum=0, maximum=n - 1)
        check_int("from_offset", from_offset, minimum=0)
        if limit is not None:
            check_int("limit", limit, minimum=0)
            if limit == 0:
                return []
        entries = await self.redis.xrange(self._k("s", topic, partition), min=_entry_id(from_offset), max="+",
                                          count=limit)
        return [self._message(topic, partition, eid, [x for kv in f.items() for x in kv]) for eid, f in entries]

    async def seek(self, topic: str, group: str, partition: int, offset: int) -> None:
        n = await self._check_group(topic, group)
        check_int(f"partition of topic {topic!r} ({n} partitions)", partition, minimum=0, maximum=n - 1)
        end = (await self.end_offsets(topic))[partition]
        check_int(f"offset (end of {topic}[{partition}] is {end})", offset, minimum=0, maximum=end)
        stream = self._k("s", topic, partition)
        pending = await self.redis.xpending_range(stream, group, min="-", max="+", count=100000)
        if pending:
            await self.redis.xack(stream, group, *[e["message_id"] for e in pending])
        await self.redis.xgroup_setid(stream, group, f"0-{offset}")  # the id before offset's entry


for _name in ("create_topic", "partitions", "create_group", "join", "leave", "heartbeat", "assignment",
              "poll", "ack", "nack", "committed", "end_offsets", "pending_count", "read", "seek"):
    setattr(RedisStreamsBroker, _name, _translating_errors(getattr(RedisStreamsBroker, _name)))
del _name
