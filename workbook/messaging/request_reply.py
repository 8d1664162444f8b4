"""Request/reply over a broker: a command carries ``reply_to`` and ``correlation_id``.

The requester owns a reply topic and a consumer group on it; each request gets a fresh
correlation id, and the reply (published by the responder to ``reply_to`` with the same
correlation id) resolves the matching future. A reply that arrives after its request
timed out is counted in ``late_replies`` and dropped; the requester never blocks forever.

Broker outages (``BrokerUnavailable``, e.g. a Redis restart): the requester's listener and
``serve_requests`` wait with exponential backoff (slept through the injected clock) and go
on; they never die of it. A ``request`` whose publish meets the outage raises
``BrokerUnavailable`` at once (the request may or may not have been written). A request
already sent waits for its reply as usual: a reply written before or after the outage
still arrives; one lost with a server that restarted without persistence never does, and
the request ends in ``RequestTimeout``. After such a data loss the requester re-creates
its own reply topic and group (it owns them); ``serve_requests`` raises ``UnknownGroup``.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
from collections.abc import Awaitable, Callable
from typing import Any

from workbook.core.clock import Clock, LoopClock
from workbook.core.params import check_number
from workbook.core.tasks import stop_task
from workbook.messaging.broker import Broker
from workbook.messaging.consumer import ReconnectBackoff, retry_unavailable
from workbook.messaging.errors import BrokerUnavailable, MessagingError, RequestTimeout, UnknownGroup, UnknownTopic
from workbook.messaging.message import Message


class RequesterStopped(MessagingError, RuntimeError):
    """A request to a requester that is closed or whose listener failed (the cause is chained)."""


class Requester:
    def __init__(self, broker: Broker, reply_topic: str, *, name: str = "requester", clock: Clock | None = None,
                 backoff: ReconnectBackoff | None = None):
        self.broker, self.reply_topic, self.name = broker, reply_topic, name
        self.clock = clock or LoopClock()
        self.backoff = backoff or ReconnectBackoff()
        self._waiting: dict[str, asyncio.Future] = {}
        self._ids = itertools.count(1)
        self._task: asyncio.Task | None = None
        self._closed = False
        self._failed: BaseException | None = None
        self.late_replies = 0
        self.outages: list[tuple[float, float, str]] = []  # (time, wait, error) per failed broker call
        self.recreated = 0  # times the reply topic and group were re-created after a data loss

    async def _setup(self) -> None:
        await self.broker.create_topic(self.reply_topic, 1)
        await self.broker.create_group(self.reply_topic, self.name, start="latest", exist_ok=True)
        await self.broker.join(self.reply_topic, self.name, self.name)

    async def start(self) -> "Requester":
        await self._setup()
        self._task = asyncio.ensure_future(self._listen())
        return self

    def _waited(self, delay: float, exc: BrokerUnavailable) -> None:
        self.outages.append((self.clock.now(), delay, str(exc)))

    async def _listen(self) -> None:
        # a flag as well as cancel(): a cancellation lost inside a client library (seen with
        # redis-py, about one close in four) must not keep the listener polling for ever
        retry = functools.partial(retry_unavailable, clock=self.clock, backoff=self.backoff,
                                  stop=lambda: self._closed, on_wait=self._waited)
        try:
            while not self._closed:
                try:
                    got = await retry(lambda: self.broker.poll(self.reply_topic, self.name, self.name, timeout=1.0))
                except (UnknownGroup, UnknownTopic):  # the server lost its data: the reply topic is ours
                    await retry(self._setup)
                    self.recreated += 1
                    continue
                for d in got or ():
                    fut = self._waiting.pop(d.message.correlation_id or "", None)
                    if fut is not None and not fut.done():
                        fut.set_result(d.message)
                    else:
                        self.late_replies += 1
                    try:
                        await self.broker.ack(d)
                    except BrokerUnavailable as exc:  # redelivered later: then counted as a late reply
                        self._waited(0.0, exc)
        except Exception as exc:  # noqa: BLE001 - not a broker outage: fail every waiting request with it
            self._failed = exc
            for fut in self._waiting.values():
                if not fut.done():
                    fut.set_exception(RequesterStopped(f"requester {self.name!r}: its listener on "
                                                       f"{self.reply_topic!r} failed: {type(exc).__name__}: {exc}"))
            self._waiting.clear()

    async def request(self, topic: str, payload: Any, *, key: str | None = None, timeout: float = 5.0) -> Message:
        """Publish a request and wait up to ``timeout`` seconds (> 0) for its reply."""
        check_number("timeout", timeout, minimum=0, min_exclusive=True)
        if self._closed or self._failed is not None:
            why = "it is closed" if self._closed else f"its listener failed ({type(self._failed).__name__})"
            raise RequesterStopped(f"requester {self.name!r}: cannot send a request: {why}") from self._failed
        correlation_id = f"{self.name}-{next(self._ids)}"
        fut = asyncio.get_running_loop().create_future()
        self._waiting[correlation_id] = fut
        try:
            await self.broker.publish(topic, payload, key=key, kind="request", reply_to=self.reply_topic,
                                      correlation_id=correlation_id)
        except BaseException:
            self._waiting.pop(correlation_id, None)
            raise
        try:
            return await asyncio.wait_for(fut, timeout)
        except asyncio.TimeoutError:
            self._waiting.pop(correlation_id, None)
            raise RequestTimeout(f"request {correlation_id} to topic {topic!r}: no reply on "
                                 f"{self.reply_topic!r} within {timeout:g}s") from None

    async def close(self) -> None:
        """Stop the listener and leave the reply group. A listener that failed does not make
        ``close`` fail; a broker that is unreachable now leaves the membership to expire after
        the session timeout."""
        self._closed = True
        await stop_task(self._task)  # re-raises if close() itself was cancelled
        try:
            await self.broker.leave(self.reply_topic, self.name, self.name)
        except BrokerUnavailable as exc:
            self._waited(0.0, exc)


async def serve_requests(broker: Broker, topic: str, group: str, name: str,
                         handler: Callable[[Message], Awaitable[Any]], stop: asyncio.Event, *,
                         clock: Clock | None = None, backoff: ReconnectBackoff | None = None) -> int:
    """Answer requests on ``topic`` until ``stop``: reply to ``reply_to`` with the same correlation id.

    Survives broker outages (backoff through ``clock``). A request whose reply or ack failed
    in an outage stays pending and is handled again after the visibility timeout: the
    requester then gets a second reply, counted in its ``late_replies``."""
    clock = clock or LoopClock()
    retry = functools.partial(retry_unavailable, clock=clock, backoff=backoff or ReconnectBackoff(),
                              stop=stop.is_set, on_wait=lambda delay, exc: None)
    await retry(lambda: broker.join(topic, group, name))
    served = 0
    while not stop.is_set():
        got = await retry(lambda: broker.poll(topic, group, name, timeout=0.5))
        try:
            for d in got or ():
                result = await handler(d.message)
                if d.message.reply_to:
                    await broker.publish(d.message.reply_to, result, kind="reply", key=d.message.key,
                                         correlation_id=d.message.correlation_id)
                await broker.ack(d)
                served += 1
        except BrokerUnavailable:
            continue  # the rest of the batch is redelivered after the visibility timeout
    try:
        await broker.leave(topic, group, name)
    except BrokerUnavailable:
        pass
    return served
