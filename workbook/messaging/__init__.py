"""Messaging: a broker with partitions and consumer groups, and delivery guarantees you can count.

Modules (one concept each):

* ``message``: commands, events, requests and replies; topic and payload validation.
* ``partitioner``: stable key -> partition (CRC-32), and the article's unstable ``hash``.
* ``broker``: the interface and its settings; ``memory``: the in-memory backend (virtual
  time); ``redis_streams``: the Redis Streams backend (real time).
* ``consumer``: delivery modes (at-most-once, at-least-once, effectively-once);
  ``idempotent``: deduplication in the consumer's own SQLite transaction;
  ``outbox``: the transactional outbox and its relay; ``request_reply``.
* ``naive``: the article's broker, kept to show its defects.

The event store lives in ``workbook.event_sourcing`` and sagas in ``workbook.sagas``;
chapter 3's experiments are in its lab, ``workbook.labs.ch03_async``.
"""

from workbook.messaging.broker import Broker, BrokerConfig, dlq_topic
from workbook.messaging.consumer import Consumer, DeliveryMode, PoisonMessage, ReconnectBackoff
from workbook.messaging.errors import (BrokerUnavailable, ConsumerCrash, ConsumerNameClash, GroupExists,
                                       InvalidMessage, InvalidTopicName, MessagingError, PayloadNotSerialisable,
                                       RequestTimeout, UnknownGroup, UnknownTopic)
from workbook.messaging.memory import InMemoryBroker
from workbook.messaging.message import Delivery, Message
from workbook.messaging.partitioner import KeyPartitioner, stable_hash

__all__ = [
    "BrokerUnavailable", "InvalidMessage", "ReconnectBackoff",
    "Broker", "BrokerConfig", "Consumer", "ConsumerCrash", "ConsumerNameClash", "Delivery", "DeliveryMode",
    "GroupExists", "InMemoryBroker", "InvalidTopicName", "KeyPartitioner", "Message", "MessagingError",
    "PayloadNotSerialisable", "PoisonMessage", "RequestTimeout", "UnknownGroup", "UnknownTopic", "dlq_topic",
    "stable_hash",
]
