"""A demo inventory service over aiohttp whose faults change while it runs.

Routes (JSON in and out):

* ``GET /health``: ``{"status": "ok", "service": name}`` (faults do not apply).
* ``GET /stock/{sku}``: ``{"sku", "available", "service", "correlation_id", "deadline_ms",
  "downstream"}``; an unknown sku is a 404 ``{"error": "not_found", ...}`` (never retried).
  With a ``downstream`` URL the service asks it too, through a ``ServiceClient`` that
  propagates the caller's headers and the remaining deadline (to show propagation).
* ``GET /admin/faults`` / ``POST /admin/faults``: read or change the faults, e.g.
  ``{"error_rate": 0.5, "latency": 0.2, "hang": false, "error_status": 503,
  "retry_after": null}``; a bad field is a 400 naming it.

A caller's deadline (``DEADLINE_HEADER``) is honoured: a request whose deadline has passed
by the time its work would start gets a 504 ``deadline_exceeded`` (counted in
``counts["expired"]``), and the downstream call gets only the time that is left.

Faults apply to ``/stock`` only: ``latency`` seconds are added, ``hang`` holds the request
until the server stops (or the client gives up), and ``error_rate`` of the requests get
``error_status`` with a JSON error body (and ``Retry-After`` if set). The draws come from
``random.Random(seed)``, so a given sequence of requests meets the same errors.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import asdict, dataclass

from aiohttp import web

from workbook.transport.context import RequestContext, context_scope
from workbook.resilience.deadline import DEADLINE_HEADER, deadline_from_headers, deadline_scope

FAULTS = web.AppKey("faults", object)
COUNTS = web.AppKey("counts", dict)
STATE = web.AppKey("state", dict)

STOCK = {"apple": 12, "pear": 0, "plum": 7, "fig": 3}


@dataclass
class Faults:
    error_rate: float = 0.0
    latency: float = 0.0
    hang: bool = False
    error_status: int = 503
    retry_after: float | None = None

    def update(self, data) -> None:
        """Apply a partial update; raise ``ValueError`` naming the first bad field (nothing applied)."""
        if not isinstance(data, dict):
            raise ValueError("body: expected a JSON object of fault settings")
        new = asdict(self)
        for key, value in data.items():
            if key not in new:
                raise ValueError(f"{key}: unknown fault setting (known: {', '.join(new)})")
            if key == "hang":
                if not isinstance(value, bool):
                    raise ValueError(f"hang: expected true or false, got {value!r}")
            elif key == "error_status":
                if isinstance(value, bool) or not isinstance(value, int) or not 400 <= value <= 599:
                    raise ValueError(f"error_status: expected an integer in [400, 599], got {value!r}")
            elif key == "retry_after" and value is None:
                pass
            else:
                if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                    raise ValueError(f"{key}: expected a number >= 0, got {value!r}")
                if key == "error_rate" and value > 1:
                    raise ValueError(f"error_rate: expected a number in [0, 1], got {value!r}")
            new[key] = value
        for key, value in new.items():
            setattr(self, key, value)


def make_demo_app(name: str = "inventory", *, seed: int = 0, downstream: str | None = None) -> web.Application:
    app = web.Application()
    faults = Faults()
    rng = random.Random(seed)
    stopping = asyncio.Event()
    counts = {"stock": 0, "errors": 0, "hung": 0, "expired": 0}
    state: dict = {}
    app[FAULTS] = faults
    app[COUNTS] = counts
    app[STATE] = state

    async def on_shutdown(_app):
        stopping.set()
        if "session" in state:
            await state["session"].close()

    app.on_shutdown.append(on_shutdown)

    async def health(request):
        return web.json_response({"status": "ok", "service": name})

    async def stock(request):
        counts["stock"] += 1
        ctx = RequestContext.from_headers(request.headers)
        deadline = deadline_from_headers(request.headers)
        if faults.latency:
            await asyncio.sleep(faults.latency)
        if deadline is not None and deadline.expired:  # the caller has given up: do no more work
            counts["expired"] += 1
            return web.json_response({"error": "deadline_exceeded", "service": name,
                                      "message": f"{name}: the caller's deadline passed before the work started"},
                                     status=504)
        if faults.hang:
            counts["hung"] += 1
            await stopping.wait()
            return web.json_response({"error": "shutting_down", "message": f"{name} is stopping"}, status=503)
        if faults.error_rate and rng.random() < faults.error_rate:
            counts["errors"] += 1
            headers = {} if faults.retry_after is None else {"Retry-After": f"{faults.retry_after:g}"}
            return web.json_response({"error": "injected_fault", "service": name,
                                      "message": f"{name} failed on purpose (error_rate={faults.error_rate:g})"},
                                     status=faults.error_status, headers=headers)
        sku = request.match_info["sku"]
        if sku not in STOCK:
            return web.json_response({"error": "not_found", "service": name,
                                      "message": f"sku {sku!r} does not exist (known: {', '.join(sorted(STOCK))})"},
                                     status=404)
        body = {"sku": sku, "available": STOCK[sku], "service": name, "correlation_id": ctx.correlation_id,
                "user_id": ctx.user_id, "tenant_id": ctx.tenant_id,
                "deadline_ms": request.headers.get(DEADLINE_HEADER), "downstream": None}
        if downstream:
            from workbook.transport.client import ServiceClient
            if "session" not in state:
                import aiohttp
                state["session"] = aiohttp.ClientSession()
            client = ServiceClient(state["session"], {"downstream": downstream})
            with context_scope(ctx), deadline_scope(deadline):
                # the downstream call gets only what is left of the caller's deadline
                try:
                    async with asyncio.timeout(None if deadline is None else deadline.remaining()):
                        body["downstream"] = await client.get("downstream", f"/stock/{sku}")
                except TimeoutError:
                    return web.json_response({"error": "deadline_exceeded", "service": name,
                                              "message": f"{name}: no answer from downstream within the deadline"},
                                             status=504)
        return web.json_response(body)

    async def get_faults(request):
        return web.json_response(asdict(faults))

    async def set_faults(request):
        try:
            data = await request.json()
        except ValueError:
            return web.json_response({"error": "bad_request", "message": "body: expected JSON"}, status=400)
        try:
            faults.update(data)
        except ValueError as exc:
            return web.json_response({"error": "bad_request", "message": str(exc)}, status=400)
        return web.json_response(asdict(faults))

    app.add_routes([web.get("/health", health), web.get("/stock/{sku}", stock),
                    web.get("/admin/faults", get_faults), web.post("/admin/faults", set_faults)])
    return app
