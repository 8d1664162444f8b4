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

Guarantees and their limits:

* A **live** member's unacknowledged delivery is redelivered after ``visibility_timeout``
  (or at once when nacked). A **dead** member (crashed, never left) keeps its partitions
  and its pending deliveries until its ``session_timeout`` expires: only then is the group
  rebalanced and its deliveries due again. So a crash delays that member's messages by
  the session timeout, not the (possibly shorter) visibility timeout.
* **Broker outage** (``BrokerUnavailable``, e.g. a Redis restart): ``run`` waits with
  exponential backoff (``ReconnectBackoff``, slept through the injected ``clock``) and
  polls again; it never dies of it. The delivery whose ack failed may or may not have
  been acknowledged: if not, it is redelivered (after ``visibility_timeout``), so its
  effect may be applied twice under at-least-once and is deduplicated under
  effectively-once. The rest of the batch in hand is abandoned unprocessed: it stays
  pending and is redelivered after ``visibility_timeout``. A server that restarted
  without persistence lost the group: ``run`` raises ``UnknownGroup``.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import Enum
from typing import TypeVar

from workbook.core.clock import Clock, LoopClock
from workbook.core.params import check_int, check_number
from workbook.messaging.broker import Broker
from workbook.messaging.errors import BrokerUnavailable, ConsumerCrash, MessagingError
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


class PoisonMessage(MessagingError):
    """Raised by a handler for a message that can never be processed (bad data): the
    consumer dead-letters it at once instead of retrying it."""


@dataclass(frozen=True)
class ReconnectBackoff:
    """Waits between attempts while the broker is unavailable: ``initial`` seconds, times
    ``factor`` after each failure, at most ``cap``."""

    initial: float = 0.05
    factor: float = 2.0
    cap: float = 2.0

    def __post_init__(self):
        check_number("initial", self.initial, minimum=0, min_exclusive=True)
        check_number("factor", self.factor, minimum=1)
        check_number("cap", self.cap, minimum=self.initial)

    def delay(self, failures: int) -> float:
        """The wait after the ``failures``-th failure in a row (counted from 1)."""
        return min(self.cap, self.initial * self.factor ** min(failures - 1, 64))


T = TypeVar("T")


async def retry_unavailable(call: Callable[[], Awaitable[T]], *, clock: Clock, backoff: ReconnectBackoff,
                            stop: Callable[[], bool], on_wait: Callable[[float, BrokerUnavailable], None]
                            ) -> T | None:
    """``await call()`` until it does not raise ``BrokerUnavailable``, sleeping ``backoff``
    through ``clock`` in between; ``None`` if ``stop()`` turns true first."""
    failures = 0
    while not stop():
        try:
            return await call()
        except BrokerUnavailable as exc:
            failures += 1
            delay = backoff.delay(failures)
            on_wait(delay, exc)
            await clock.sleep(delay)
    return None


CRASH_STAGES = ("received", "applying", "applied")
"""Where an injected crash can strike: on receipt, inside the effect's transaction
(before commit), and after the effect's commit (before the ack for at-least-once)."""


class Consumer:
    """One group member running ``handler`` in a delivery ``mode`` until stopped or crashed."""

    def __init__(self, broker: Broker, topic: str, group: str, name: str, handler, mode,
                 *, batch: int = 10, poll_timeout: float = 1.0,
                 fault: Callable[[str, Message], None] | None = None,
                 service_time: Callable[[], float] | None = None,
                 clock: Clock | None = None, backoff: ReconnectBackoff | None = None):
        self.broker, self.topic, self.group, self.name = broker, topic, group, name
        self.handler = handler
        self.mode = DeliveryMode.parse(mode)
        self.batch = check_int("batch", batch, minimum=1)
        self.poll_timeout = check_number("poll_timeout", poll_timeout, minimum=0)
        self.clock = clock or LoopClock()
        self.backoff = backoff or ReconnectBackoff()
        self.outages: list[tuple[float, float, str]] = []  # (time, wait, error) per failed broker call
        self.fault = fault or (lambda stage, message: None)
        self.service_time = service_time
        self.processed = 0
        self.crashed = False
        self.failures = 0

    def _waited(self, delay: float, exc: BrokerUnavailable) -> None:
        self.outages.append((self.clock.now(), delay, str(exc)))

    async def run(self, stop: asyncio.Event) -> None:
        """Join, then poll and process until ``stop`` is set, then leave. Survives broker
        outages (see the module docstring for what happens to work in flight)."""
        retry = functools.partial(retry_unavailable, clock=self.clock, backoff=self.backoff, stop=stop.is_set,
                                  on_wait=self._waited)
        await retry(lambda: self.broker.join(self.topic, self.group, self.name))
        try:
            while not stop.is_set():
                deliveries = await retry(lambda: self.broker.poll(self.topic, self.group, self.name,
                                                                  max_messages=self.batch, timeout=self.poll_timeout))
                try:
                    for d in deliveries or ():
                        await self.process(d)
                except BrokerUnavailable as exc:  # the rest of the batch is redelivered later
                    self._waited(0.0, exc)
        except ConsumerCrash:
            self.crashed = True
            return  # a dead process: no ack, no leave
        try:
            await self.broker.leave(self.topic, self.group, self.name)
        except BrokerUnavailable as exc:  # the session timeout removes us instead
            self._waited(0.0, exc)

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
