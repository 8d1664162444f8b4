"""Request/reply over a broker: a command carries ``reply_to`` and ``correlation_id``.

The requester owns a reply topic and a consumer group on it; each request gets a fresh
correlation id, and the reply (published by the responder to ``reply_to`` with the same
correlation id) resolves the matching future. A reply that arrives after its request
timed out is counted in ``late_replies`` and dropped; the requester never blocks forever.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable
from typing import Any

from workbook.messaging.broker import Broker
from workbook.messaging.errors import RequestTimeout
from workbook.messaging.message import Message


class Requester:
    def __init__(self, broker: Broker, reply_topic: str, *, name: str = "requester"):
        self.broker, self.reply_topic, self.name = broker, reply_topic, name
        self._waiting: dict[str, asyncio.Future] = {}
        self._ids = itertools.count(1)
        self._task: asyncio.Task | None = None
        self._closed = False
        self.late_replies = 0

    async def start(self) -> "Requester":
        await self.broker.create_topic(self.reply_topic, 1)
        await self.broker.create_group(self.reply_topic, self.name, start="latest", exist_ok=True)
        await self.broker.join(self.reply_topic, self.name, self.name)
        self._task = asyncio.ensure_future(self._listen())
        return self

    async def _listen(self) -> None:
        # a flag as well as cancel(): a cancellation lost inside a client library (seen with
        # redis-py, about one close in four) must not keep the listener polling for ever
        while not self._closed:
            for d in await self.broker.poll(self.reply_topic, self.name, self.name, timeout=1.0):
                fut = self._waiting.pop(d.message.correlation_id or "", None)
                if fut is not None and not fut.done():
                    fut.set_result(d.message)
                else:
                    self.late_replies += 1
                await self.broker.ack(d)

    async def request(self, topic: str, payload: Any, *, key: str | None = None, timeout: float = 5.0) -> Message:
        correlation_id = f"{self.name}-{next(self._ids)}"
        fut = asyncio.get_running_loop().create_future()
        self._waiting[correlation_id] = fut
        await self.broker.publish(topic, payload, key=key, kind="request", reply_to=self.reply_topic,
                                  correlation_id=correlation_id)
        try:
            return await asyncio.wait_for(fut, timeout)
        except asyncio.TimeoutError:
            self._waiting.pop(correlation_id, None)
            raise RequestTimeout(f"request {correlation_id} to topic {topic!r}: no reply on "
                                 f"{self.reply_topic!r} within {timeout:g}s") from None

    async def close(self) -> None:
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                if asyncio.current_task().cancelling():
                    raise  # close() itself was cancelled: do not swallow that
        await self.broker.leave(self.reply_topic, self.name, self.name)


async def serve_requests(broker: Broker, topic: str, group: str, name: str,
                         handler: Callable[[Message], Awaitable[Any]], stop: asyncio.Event) -> int:
    """Answer requests on ``topic`` until ``stop``: reply to ``reply_to`` with the same correlation id."""
    await broker.join(topic, group, name)
    served = 0
    while not stop.is_set():
        for d in await broker.poll(topic, group, name, timeout=0.5):
            result = await handler(d.message)
            if d.message.reply_to:
                await broker.publish(d.message.reply_to, result, kind="reply", key=d.message.key,
                                     correlation_id=d.message.correlation_id)
            await broker.ack(d)
            served += 1
    await broker.leave(topic, group, name)
    return served
