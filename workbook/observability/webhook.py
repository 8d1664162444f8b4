"""Deliver Alertmanager-format notifications over HTTP, and a receiver that records what it got.

``webhook_receiver_app(clock)`` is an aiohttp app: ``POST /alerts`` stores the JSON body
with the clock's time in ``app[RECEIVED]`` (``GET /alerts`` lists them; a body that is
not a JSON object is a 400 naming what was expected). ``WebhookSender(url)`` is an async
callable posting a payload there with a bounded timeout; a non-2xx answer raises
``WebhookError`` (so ``Alertmanager`` records the failure and tries again next
``group_interval``).
"""

from __future__ import annotations

import aiohttp
from aiohttp import web

from workbook.core.clock import DEFAULT_CLOCK, Clock
from workbook.observability.errors import ObservabilityError

__all__ = ["webhook_receiver_app", "WebhookSender", "WebhookError", "RECEIVED"]

RECEIVED = web.AppKey("received", list)


class WebhookError(ObservabilityError):
    """The webhook receiver did not accept a notification."""


def webhook_receiver_app(clock: Clock | None = None) -> web.Application:
    clock = clock or DEFAULT_CLOCK
    app = web.Application()
    app[RECEIVED] = []

    async def post(request: web.Request):
        try:
            body = await request.json()
        except ValueError:
            return web.json_response({"error": "body: expected a JSON object (Alertmanager webhook payload)"},
                                     status=400)
        if not isinstance(body, dict) or "alerts" not in body:
            return web.json_response({"error": "body: expected an object with an 'alerts' list"}, status=400)
        request.app[RECEIVED].append({"time": clock.now(), "payload": body})
        return web.json_response({"status": "ok"})

    async def get(request: web.Request):
        return web.json_response(request.app[RECEIVED])

    app.router.add_post("/alerts", post)
    app.router.add_get("/alerts", get)
    return app


class WebhookSender:
    """POST the payload as JSON to ``url`` within ``timeout`` seconds; ``WebhookError`` on a non-2xx answer."""

    def __init__(self, url: str, *, timeout: float = 5.0, session: aiohttp.ClientSession | None = None):
        self.url = url
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self._session = session

    async def __call__(self, payload: dict) -> None:
        session = self._session or aiohttp.ClientSession()
        try:
            async with session.post(self.url, json=payload, timeout=self.timeout) as resp:
                if resp.status // 100 != 2:
                    raise WebhookError(f"webhook {self.url} answered {resp.status}: {await resp.text()}")
        finally:
            if self._session is None:
                await session.close()
