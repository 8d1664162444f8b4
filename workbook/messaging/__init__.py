"""Chapter 3: asynchronous communication, delivery guarantees you can count, and sagas.

Modules (one concept each):

* ``message``: commands, events, requests and replies; topic and payload validation.
* ``partitioner``: stable key -> partition (CRC-32), and the seed's unstable ``hash``.
* ``broker``: the interface and its settings; ``memory``: the in-memory backend (virtual
  time); ``redis_streams``: the Redis Streams backend (real time).
* ``consumer``: delivery modes (at-most-once, at-least-once, effectively-once);
  ``idempotent``: deduplication in the consumer's own SQLite transaction;
  ``outbox``: the transactional outbox and its relay; ``request_reply``.
* ``event_store``: append with expected version, read, snapshots (in-memory, SQLite).
* ``saga``: orchestrated sagas with a durable log; ``choreography``: the same business
  flow as services reacting to events; ``order_saga``: the shop's order saga and its
  checker; ``naive``: the seed's broker and saga, kept to show their defects.
* ``experiments``: crash, ordering and lag experiments that count the outcome.
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
