"""A demo inventory service over aiohttp whose faults change while it runs.

Routes (JSON in and out):

* ``GET /health``: ``{"status": "ok", "service": name}`` (faults do not apply).
* ``GET /stock/{sku}``: ``{"sku", "available", "service", "correlation_id", "deadline_ms",
  "downstream"}``; an unknown sku is a 404 ``{"error": "not_found", ...}`` (never retried).
  With a ``downstream`` URL the service asks it too, through a ``ServiceClient`` that
  propagates the caller's headers and the remaining deadline (to show propagation).
* ``POST /orders`` with ``{"sku", "quantity"}``: places an order (201 with ``{"order_id",
  "sku", "quantity"}``). With an ``Idempotency-Key`` header (IETF draft
  draft-ietf-httpapi-idempotency-key-header) the key is stored *with* the order, in the same
  SQLite transaction: a repeat of the key gets the stored response again (header
  ``Idempotent-Replayed: true``) and places nothing; the same key with a different body is
  a 422. ``GET /orders`` lists the orders placed (what the idempotency demo counts).
* ``GET /admin/faults`` / ``POST /admin/faults``: read or change the faults, e.g.
  ``{"error_rate": 0.5, "latency": 0.2, "hang": false, "error_status": 503,
  "retry_after": null, "delayed_replies": 1, "reply_delay": 1.5}``; a bad field is a 400
  naming it. ``delayed_replies`` = n: the next n orders are committed, then answered only
  after ``reply_delay`` s (a reply lost in a slow network: the caller times out although
  the work was done).

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
import hashlib
import json
import random
import sqlite3
from dataclasses import asdict, dataclass

from aiohttp import web

from workbook.transport.context import RequestContext, context_scope
from workbook.resilience.deadline import DEADLINE_HEADER, deadline_from_headers, deadline_scope

FAULTS = web.AppKey("faults", object)
COUNTS = web.AppKey("counts", dict)
STATE = web.AppKey("state", dict)
ORDERS = web.AppKey("orders", object)

STOCK = {"apple": 12, "pear": 0, "plum": 7, "fig": 3}

IDEMPOTENCY_HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"


class OrderStore:
    """Orders and idempotency keys in one SQLite database (in memory by default).

    ``place(key, body)`` inserts the order and, when a key is given, the key with the
    response it produced, in ONE transaction: either both exist or neither, so a crash or
    a concurrent repeat can never leave an order without its key (a duplicate later) or a
    key without its order (a lost order). Returns ``(status, response, replayed)``.
    """

    def __init__(self, path: str = ":memory:"):
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.db.executescript("""
            CREATE TABLE IF NOT EXISTS orders (id INTEGER PRIMARY KEY AUTOINCREMENT, sku TEXT NOT NULL,
                                               quantity INTEGER NOT NULL);
            CREATE TABLE IF NOT EXISTS idempotency_keys (key TEXT PRIMARY KEY, fingerprint TEXT NOT NULL,
                                                         status INTEGER NOT NULL, response TEXT NOT NULL);
        """)

    def place(self, key: str | None, body: dict) -> tuple[int, dict, bool]:
        fingerprint = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
        with _transaction(self.db):
            if key is not None:
                row = self.db.execute("SELECT fingerprint, status, response FROM idempotency_keys WHERE key = ?",
                                      (key,)).fetchone()
                if row is not None:
                    if row[0] != fingerprint:
                        return 422, {"error": "idempotency_key_reused",
                                     "message": f"key {key!r} was used for a different request"}, False
                    return row[1], json.loads(row[2]), True
            cursor = self.db.execute("INSERT INTO orders (sku, quantity) VALUES (?, ?)",
                                     (body["sku"], body["quantity"]))
            response = {"order_id": cursor.lastrowid, "sku": body["sku"], "quantity": body["quantity"]}
            if key is not None:
                self.db.execute("INSERT INTO idempotency_keys VALUES (?, ?, ?, ?)",
                                (key, fingerprint, 201, json.dumps(response)))
        return 201, response, False

    def orders(self) -> list[dict]:
        return [{"order_id": i, "sku": s, "quantity": q}
                for i, s, q in self.db.execute("SELECT id, sku, quantity FROM orders ORDER BY id")]


class _transaction:
    """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on an exception."""

    def __init__(self, db):
        self.db = db

    def __enter__(self):
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type, exc, tb):
        self.db.execute("ROLLBACK" if exc_type else "COMMIT")
        return False


@dataclass
class Faults:
    error_rate: float = 0.0
    latency: float = 0.0
    hang: bool = False
    error_status: int = 503
    retry_after: float | None = None
    delayed_replies: int = 0
    reply_delay: float = 1.0

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
            elif key == "delayed_replies":
                if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                    raise ValueError(f"delayed_replies: expected an integer >= 0, got {value!r}")
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
    store = OrderStore()
    app[ORDERS] = store

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

    async def place_order(request):
        try:
            body = await request.json()
        except ValueError:
            return web.json_response({"error": "bad_request", "message": "body: expected JSON"}, status=400)
        if not isinstance(body, dict) or body.get("sku") not in STOCK:
            return web.json_response({"error": "bad_request", "message": "sku: expected one of "
                                      + ", ".join(sorted(STOCK))}, status=400)
        quantity = body.get("quantity", 1)
        if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 1:
            return web.json_response({"error": "bad_request", "message": "quantity: expected an integer >= 1"},
                                     status=400)
        counts["orders"] = counts.get("orders", 0) + 1
        status, response, replayed = store.place(request.headers.get(IDEMPOTENCY_HEADER),
                                                 {"sku": body["sku"], "quantity": quantity})
        if faults.delayed_replies > 0:  # committed; now the reply is slow
            faults.delayed_replies -= 1
            await asyncio.sleep(faults.reply_delay)
        headers = {REPLAYED_HEADER: "true"} if replayed else {}
        return web.json_response(response, status=status, headers=headers)

    async def list_orders(request):
        return web.json_response(store.orders())

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
                    web.post("/orders", place_order), web.get("/orders", list_orders),
                    web.get("/admin/faults", get_faults), web.post("/admin/faults", set_faults)])
    return app
