"""Errors of the messaging package: each says what was wrong and where."""

from __future__ import annotations

from workbook.core.errors import WorkbookError


class MessagingError(WorkbookError):
    """Base class of broker, consumer and saga errors."""


class InvalidTopicName(MessagingError, ValueError):
    """A topic name that a broker would refuse (Kafka's rule: 1-249 of ``[A-Za-z0-9._-]``)."""


class PayloadNotSerialisable(MessagingError, TypeError):
    """A payload that cannot be written as JSON; ``path`` points at the offending element."""

    def __init__(self, topic: str, path: str, detail: str):
        self.topic, self.path = topic, path
        super().__init__(f"publish to topic {topic!r}: payload is not JSON-serialisable at {path}: {detail}")


class UnknownTopic(MessagingError, LookupError):
    """A topic that was never created."""


class GroupExists(MessagingError, ValueError):
    """A consumer group name that is already taken on that topic (Redis says BUSYGROUP)."""


class UnknownGroup(MessagingError, LookupError):
    """A consumer group that was never created on that topic."""


class ConsumerNameClash(MessagingError, ValueError):
    """Two live members of one group with the same consumer name."""


class RequestTimeout(MessagingError, TimeoutError):
    """No reply arrived for a request within its timeout."""


class ConsumerCrash(MessagingError, RuntimeError):
    """Injected by experiments: the consumer process dies at this point (no ack, no cleanup)."""


class InvalidMessage(MessagingError, TypeError):
    """A header, key, correlation id or message id that is not a string."""


class BrokerUnavailable(MessagingError, ConnectionError):
    """The broker could not be reached (connection refused or lost, server restarting).

    Nothing is known about the command that failed: a publish may or may not have been
    written, an ack may or may not have been applied. Retrying an ack is safe (acking an
    acked message does nothing); retrying a publish may write the message twice, which an
    idempotent consumer recognises only if the retry passes the same ``message_id``."""
