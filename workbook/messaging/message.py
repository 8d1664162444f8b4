"""Messages: commands, events, requests and replies, and how they are validated.

A ``Message`` is immutable once published. Its payload is stored as JSON text, so a
consumer never shares mutable objects with the producer or the log, and both backends
(in-memory and Redis Streams) carry exactly the same bytes.

* ``kind``: ``"command"`` (do this; one logical receiver), ``"event"`` (this happened; any
  number of groups), ``"request"`` / ``"reply"`` (a command that expects an answer on the
  ``reply_to`` topic, matched by ``correlation_id``).
* ``key``: decides the partition (see ``partitioner``); messages with one key keep
  their order. ``None`` spreads messages round-robin and gives no order.
* ``id``: unique per logical message. A producer retrying (or an outbox relay re-sending)
  reuses the id, which is what an idempotent consumer deduplicates on.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

from workbook.messaging.errors import InvalidMessage, InvalidTopicName, PayloadNotSerialisable

KINDS = ("command", "event", "request", "reply")
TOPIC_RE = re.compile(r"[A-Za-z0-9._-]{1,249}")  # use with fullmatch: "$" accepts a final "\n"


@dataclass(frozen=True)
class Message:
    topic: str
    payload: Any
    id: str
    key: str | None = None
    kind: str = "event"
    headers: dict[str, str] = field(default_factory=dict)
    reply_to: str | None = None
    correlation_id: str | None = None
    partition: int = -1
    offset: int = -1
    timestamp: float = 0.0


_new_object = object.__new__
_set_attribute = object.__setattr__


def trusted_message(topic: str, payload: Any, id: str, key: str | None, kind: str, headers: dict[str, str],
                    reply_to: str | None, correlation_id: str | None, partition: int, offset: int,
                    timestamp: float) -> Message:
    """A ``Message`` from fields a broker itself validated or read back from its own log:
    equal to ``Message(...)`` of the same fields, built without the frozen dataclass'
    ``__init__`` (one ``object.__setattr__`` per field, about twice the cost). Not for
    fields from callers: those go through ``check_publish`` first."""
    m = _new_object(Message)
    _set_attribute(m, "__dict__", {"topic": topic, "payload": payload, "id": id, "key": key, "kind": kind,
                                   "headers": headers, "reply_to": reply_to, "correlation_id": correlation_id,
                                   "partition": partition, "offset": offset, "timestamp": timestamp})
    return m


@dataclass
class Delivery:
    """One delivery of a message to one consumer of one group (``attempt`` counts from 1)."""

    message: Message
    group: str
    consumer: str
    attempt: int

    @property
    def topic(self) -> str:
        return self.message.topic

    @property
    def partition(self) -> int:
        return self.message.partition

    @property
    def offset(self) -> int:
        return self.message.offset


def check_topic(name, *, where: str = "topic") -> str:
    """Return ``name`` if it is a valid topic name, else raise InvalidTopicName saying why."""
    if not isinstance(name, str):
        raise InvalidTopicName(f"{where}: topic name must be a string, got {type(name).__name__} {name!r}")
    if not TOPIC_RE.fullmatch(name) or name in (".", ".."):
        bad = sorted({c for c in name if not re.fullmatch(r"[A-Za-z0-9._-]", c)})
        why = "it is empty" if not name else (
            f"it has {len(name)} characters (at most 249)" if len(name) > 249 else
            f"it contains {', '.join(repr(c) for c in bad)}" if bad else "'.' and '..' are reserved")
        raise InvalidTopicName(f"{where}: invalid topic name {name!r}: {why}; "
                               "allowed are 1-249 characters of letters, digits, '.', '_' and '-'")
    return name


def check_kind(kind) -> str:
    if kind not in KINDS:
        raise ValueError(f"message kind {kind!r} is not one of {', '.join(KINDS)}")
    return kind


def check_headers(topic: str, headers) -> dict[str, str]:
    """A copy of ``headers`` if it maps strings to strings (``None``: no headers), else
    InvalidMessage naming the offending header: both backends carry headers as text."""
    if headers is None:
        return {}
    if not isinstance(headers, dict):
        raise InvalidMessage(f"publish to topic {topic!r}: headers must be a dict of str to str, "
                             f"got {type(headers).__name__}")
    for k, v in headers.items():
        if not isinstance(k, str) or not isinstance(v, str):
            raise InvalidMessage(f"publish to topic {topic!r}: header {k!r} = {v!r} ({type(k).__name__} -> "
                                 f"{type(v).__name__}): header names and values must be strings")
    return dict(headers)


def check_publish(topic: str, payload: Any, kind: str, reply_to: str | None,
                  correlation_id: str | None = None, key: str | None = None, message_id: str | None = None) -> str:
    """Every backend's checks before a publish; returns the payload's JSON text."""
    if not (type(topic) is str and TOPIC_RE.fullmatch(topic)) or topic in (".", ".."):
        check_topic(topic, where="publish")
    if kind not in KINDS:
        check_kind(kind)
    if reply_to is not None:
        check_topic(reply_to, where="publish(reply_to=...)")
    if not (key is None or type(key) is str) or not (correlation_id is None or type(correlation_id) is str) or not (
            message_id is None or type(message_id) is str):
        for name, value in (("key", key), ("correlation_id", correlation_id), ("message_id", message_id)):
            if value is not None and type(value) is not str:
                raise InvalidMessage(f"publish to topic {topic!r}: {name} must be a string or None, "
                                     f"got {type(value).__name__} {value!r}")
    return encode_payload(topic, payload)


MAX_PAYLOAD_DEPTH = 200
"""When JSON encoding runs out of stack, the error names the element at this nesting depth."""


_ENCODER = json.JSONEncoder(allow_nan=False, sort_keys=True, separators=(",", ":"))
_ENCODE = _ENCODER.encode
# one encoder for every call: json.dumps with arguments builds a new JSONEncoder each time


def _fast_encoder() -> tuple[dict, Any] | None:
    """(markers, C encoder) made once instead of on every ``_ENCODE`` call (which is what
    ``JSONEncoder.encode`` does), or None without the C accelerator. ``markers`` holds the
    containers being encoded (its cycle check): empty between calls, except after a failed
    call, which leaves its entries behind; the pair is then replaced."""
    make = json.encoder.c_make_encoder
    if make is None:
        return None
    markers: dict = {}
    return markers, make(markers, _ENCODER.default, json.encoder.encode_basestring_ascii, None,
                         _ENCODER.key_separator, _ENCODER.item_separator, True, False, False)


_FAST = _fast_encoder()


def encode_payload(topic: str, payload: Any) -> str:
    """JSON text of ``payload``; raise PayloadNotSerialisable naming the offending path
    (a value JSON cannot hold, a cycle, or nesting too deep for the encoder's stack).
    The text is ``_ENCODE(payload)``'s; the shared C encoder is used while nobody else is
    in it (its markers empty), else a fresh one."""
    global _FAST
    fast = _FAST
    try:
        if fast is None or fast[0]:
            return _ENCODE(payload)
        return "".join(fast[1](payload, 0))
    except (TypeError, ValueError, RecursionError) as exc:
        if fast is not None and fast[0]:
            _FAST = _fast_encoder()  # leftovers of a failed call would look like a cycle next time
        path, detail = find_unserialisable(payload, "payload")
        if path is None:  # no element to blame (keys that do not sort, or another thread in the encoder)
            try:
                return _ENCODE(payload)
            except (TypeError, ValueError, RecursionError) as again:
                detail = str(again)
        raise PayloadNotSerialisable(topic, path or "payload", detail) from None


decode_payload = json.loads
"""The payload of its JSON text (a fresh object on every call)."""


def find_unserialisable(value: Any, path: str, _seen: tuple = ()) -> tuple[str | None, str | None]:
    """The first element of ``value`` that JSON cannot hold: (its path, why), else (None, None).
    Cycles and nesting deeper than ``MAX_PAYLOAD_DEPTH`` count as such elements."""
    if isinstance(value, (dict, list, tuple)):
        if any(v is value for v in _seen):
            return path, "it contains itself (a cycle)"
        if len(_seen) >= MAX_PAYLOAD_DEPTH:
            return path, f"nested deeper than {MAX_PAYLOAD_DEPTH} levels"
        _seen = (*_seen, value)
    if value is None or isinstance(value, (str, bool, int)):
        return None, None
    if isinstance(value, float):
        return (path, f"{value!r} is not a finite number") if not math.isfinite(value) else (None, None)
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, (str, int, float, bool)) and k is not None:
                return f"{path}[{k!r}]", f"key of type {type(k).__name__} is not allowed"
            found = find_unserialisable(v, f"{path}[{k!r}]", _seen)
            if found[0]:
                return found
        return None, None
    if isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            found = find_unserialisable(v, f"{path}[{i}]", _seen)
            if found[0]:
                return found
        return None, None
    return path, f"object of type {type(value).__name__} is not JSON-serialisable"
