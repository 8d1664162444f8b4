"""Delivery semantics, decided by *when* a consumer acknowledges.

* ``AT_MOST_ONCE``: acknowledge (commit) first, then process. A crash while processing
  loses the message: the broker already considers it done.
* ``AT_LEAST_ONCE``: process, then acknowledge. A crash after the effect but before the
  ack makes the broker redeliver: the effect happens twice.
* ``EFFECTIVELY_ONCE``: at-least-once delivery into an ``IdempotentHandler``: the effect
  and the message id are committed in one transaction, so a redelivery is recognised and
  only acknowledged. Nothing lost, nothing applied twice.

``Consumer`` runs one member of a group. The handler (``handle(message, inside)``, see
``workbook.messaging.idempotent``) raises to signal failure: ``PoisonMessage`` means the
message can never succeed (dead-letter it now, with the reason), any other exception is
retried by redelivery until ``max_deliveries``. ``ConsumerCrash`` (raised by an injected
``fault(stage)``) kills the consumer on the spot: no ack, no nack, no leave: the broker
notices only through missed heartbeats and the visibility timeout.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from enum import Enum

from workbook.messaging.broker import Broker
from workbook.messaging.errors import ConsumerCrash
from workbook.messaging.message import Delivery, Message


class DeliveryMode(str, Enum):
    AT_MOST_ONCE = "at-most-once"
    AT_LEAST_ONCE = "at-least-once"
    EFFECTIVELY_ONCE = "effectively-once"

    @classmethod
    def parse(cls, value) -> "DeliveryMode":
        try:
            return cls(value)
        except ValueError:
            raise ValueError(f"delivery mode {value!r} is not one of "
                             f"{', '.join(repr(m.value) for m in cls)}") from None


class PoisonMessage(Exception):
    """Raised by a handler for a message that can never be processed (bad data)."""


CRASH_STAGES = ("received", "applying", "applied")
"""Where an injected crash can strike: on receipt, inside the effect's transaction
(before commit), and after the effect's commit (before the ack for at-least-once)."""


class Consumer:
    """One group member running ``handler`` in a delivery ``mode`` until stopped or crashed."""

    def __init__(self, broker: Broker, topic: str, group: str, name: str, handler, mode,
                 *, batch: int = 10, poll_timeout: float = 1.0,
                 fault: Callable[[str, Message], None] | None = None,
                 service_time: Callable[[], float] | None = None):
        self.broker, self.topic, self.group, self.name = broker, topic, group, name
        self.handler = handler
        self.mode = DeliveryMode.parse(mode)
        self.batch, self.poll_timeout = batch, poll_timeout
        self.fault = fault or (lambda stage, message: None)
        self.service_time = service_time
        self.processed = 0
        self.crashed = False
        self.failures = 0

    async def run(self, stop: asyncio.Event) -> None:
        await self.broker.join(self.topic, self.group, self.name)
        try:
            while not stop.is_set():
                deliveries = await self.broker.poll(self.topic, self.group, self.name,
                                                    max_messages=self.batch, timeout=self.poll_timeout)
                for d in deliveries:
                    await self.process(d)
        except ConsumerCrash:
            self.crashed = True
            return  # a dead process: no ack, no leave
        await self.broker.leave(self.topic, self.group, self.name)

    async def process(self, d: Delivery) -> None:
        msg = d.message
        self.fault("received", msg)
        if self.mode is DeliveryMode.AT_MOST_ONCE and not await self.broker.ack(d):
            return  # no longer ours (redelivered elsewhere after a rebalance): at most once means skip
        if self.service_time is not None:
            await asyncio.sleep(self.service_time())  # the work takes time (virtual under run_virtual)
        try:
            self.handler.handle(msg, inside=lambda: self.fault("applying", msg))
        except ConsumerCrash:
            raise
        except PoisonMessage as exc:
            self.failures += 1
            await self.broker.nack(d, f"poison message: {type(exc).__name__}: {exc}", requeue=False)
            return
        except Exception as exc:  # noqa: BLE001 - any handler failure is retried by redelivery
            self.failures += 1
            await self.broker.nack(d, f"handler failed: {type(exc).__name__}: {exc}")
            return
        self.fault("applied", msg)
        if self.mode is not DeliveryMode.AT_MOST_ONCE:
            await self.broker.ack(d)
        self.processed += 1
