"""Database per service, for real: one SQLite file per service, reached only through its repository.

``open_shop(directory)`` opens the order flow's four services (users, orders, payments,
inventory), each a ``workbook.storage.Repository`` over its own file, and fills them
from a seed. ``aliasing()`` runs the same three steps against the article's repository
and ours: save an order, mutate the caller's dict, read it back. ``stale_writer()`` shows
the optimistic version refusing a second writer.

The price of the split is that a query across services has no JOIN. ``api_composition``
answers "amount paid per customer, with the customer's name" by calling each owner (one
call per service and per order, counted); ``SpendReadModel`` answers the same question
with one query over a read model it keeps from the services' change feeds (CQRS), with
a checkpoint per feed stored in the same transaction as the effect.
"""

from __future__ import annotations

import os
import sqlite3
from collections import Counter
from dataclasses import dataclass

from workbook.core.clock import ManualClock
from workbook.core.seeds import stream
from workbook.storage import ChangeFeed, NaiveRepository, Repository, StaleVersion

SERVICES = ("users", "orders", "payments", "inventory")
SKUS = ("book", "lamp", "mug", "pen", "tea")
PRICES = {"book": 1800, "lamp": 4500, "mug": 900, "pen": 250, "tea": 600}


def open_shop(directory: str, *, clock=None) -> dict[str, Repository]:
    """The four services, each with its own SQLite file ``<directory>/<service>.sqlite``."""
    clock = clock or ManualClock()
    return {name: Repository(os.path.join(directory, f"{name}.sqlite"), service=name, clock=clock)
            for name in SERVICES}


def fill_shop(shop: dict[str, Repository], *, customers: int, orders: int, seed: int) -> None:
    """Customers, stock, orders and payments (about 70 % of the orders are paid), from ``seed``."""
    rng = stream(seed, "ch04", "shop")
    for i in range(customers):
        shop["users"].save(f"c{i:03d}", {"name": f"customer {i}", "email": f"c{i}@example.org"}, expected_version=0)
    for sku in SKUS:
        shop["inventory"].save(sku, {"stock": 1000, "reserved": 0}, expected_version=0)
    for k in range(orders):
        items = [{"sku": s, "qty": rng.randint(1, 3)} for s in rng.sample(SKUS, rng.randint(1, 3))]
        total = sum(PRICES[i["sku"]] * i["qty"] for i in items)
        oid = f"o{k:04d}"
        shop["orders"].save(oid, {"customer_id": f"c{rng.randrange(customers):03d}", "items": items,
                                  "total_cents": total}, expected_version=0)
        if rng.random() < 0.7:
            shop["payments"].save(f"pay-{oid}", {"order_id": oid, "amount_cents": total, "status": "captured"},
                                  expected_version=0)


def files(shop: dict[str, Repository]) -> dict[str, str]:
    return {name: os.path.basename(repo.path) for name, repo in shop.items()}


def tables_visible(repo: Repository) -> list[str]:
    return [t for (t,) in repo.conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' "
                                            "AND name NOT LIKE 'sqlite_%' ORDER BY name")]


def aliasing() -> dict[str, dict]:
    """Save an order, then mutate the caller's dict (and what a reader got): what is stored?"""
    out = {}
    naive = NaiveRepository("orders")
    order = {"customer_id": "c001", "items": [{"sku": "book", "qty": 1}]}
    oid = naive.save(order)
    order["items"].append({"sku": "lamp", "qty": 5})        # the caller keeps editing its own object
    got = naive.find_by_id(oid)
    got["status"] = "shipped"                               # a reader edits what it read; no save
    out["naive"] = {"caller_dict_gained": sorted(k for k in order if k not in ("customer_id", "items")),
                    "stored_items": len(naive.find_by_id(oid)["items"]),
                    "stored_status": naive.find_by_id(oid).get("status")}
    repo = Repository(service="orders", clock=ManualClock())
    order = {"customer_id": "c001", "items": [{"sku": "book", "qty": 1}]}
    repo.save("o1", order, expected_version=0)
    order["items"].append({"sku": "lamp", "qty": 5})
    got = repo.get("o1")
    got.data["status"] = "shipped"
    stored = repo.get("o1")
    out["repository"] = {"caller_dict_gained": sorted(k for k in order if k not in ("customer_id", "items")),
                         "stored_items": len(stored.data["items"]), "stored_status": stored.data.get("status")}
    return out


def stale_writer() -> tuple[int, str]:
    """Two writers read version 1; the first saves (version 2); the second is refused by name."""
    repo = Repository(service="orders", clock=ManualClock())
    repo.save("o1", {"status": "placed"}, expected_version=0)
    a, b = repo.get("o1"), repo.get("o1")
    repo.save("o1", {**a.data, "status": "paid"}, expected_version=a.version)
    try:
        repo.save("o1", {**b.data, "status": "cancelled"}, expected_version=b.version)
    except StaleVersion as e:
        return repo.get("o1").version, f"{type(e).__name__}: {e}"
    return repo.get("o1").version, "no error"


@dataclass
class Composition:
    rows: dict[str, tuple[str, int]]     # customer_id -> (name, paid cents)
    calls: Counter


def api_composition(shop: dict[str, Repository]) -> Composition:
    """Amount paid per customer, with the name: ask each owner, join in the caller.

    Each ``get``/``list`` stands for one request to the owning service's API (counted
    per service): list the payments, fetch each paid order for its customer, fetch each
    customer for the name.
    """
    calls: Counter = Counter()
    calls["payments"] += 1
    paid: Counter = Counter()
    for pay in shop["payments"].list({"status": "captured"}):
        calls["orders"] += 1
        order = shop["orders"].get(pay.data["order_id"])
        paid[order.data["customer_id"]] += pay.data["amount_cents"]
    rows = {}
    for cid in sorted(paid):
        calls["users"] += 1
        rows[cid] = (shop["users"].get(cid).data["name"], paid[cid])
    return Composition(rows, calls)


class SpendReadModel:
    """A CQRS read model of "paid per customer", in its own SQLite file, fed by the three change feeds.

    Each feed's checkpoint moves in the same transaction as the rows it changed, so a
    crash between the two cannot count a payment twice. A payment may arrive before its
    order (the feeds are independent): it waits in ``payments`` until the order is known.
    """

    SCHEMA = """
    CREATE TABLE IF NOT EXISTS checkpoints (feed TEXT PRIMARY KEY, seq INTEGER NOT NULL);
    CREATE TABLE IF NOT EXISTS customers (customer_id TEXT PRIMARY KEY, name TEXT NOT NULL);
    CREATE TABLE IF NOT EXISTS orders (order_id TEXT PRIMARY KEY, customer_id TEXT NOT NULL);
    CREATE TABLE IF NOT EXISTS payments (payment_id TEXT PRIMARY KEY, order_id TEXT NOT NULL,
                                         amount_cents INTEGER NOT NULL, status TEXT NOT NULL);
    """

    def __init__(self, shop: dict[str, Repository], path: str = ":memory:"):
        self.feeds = {name: ChangeFeed(shop[name]) for name in ("users", "orders", "payments")}
        self.conn = sqlite3.connect(path, isolation_level=None)
        self.conn.executescript(self.SCHEMA)

    def checkpoint(self, feed: str) -> int:
        row = self.conn.execute("SELECT seq FROM checkpoints WHERE feed = ?", (feed,)).fetchone()
        return 0 if row is None else row[0]

    def catch_up(self) -> int:
        done = 0
        for name, feed in self.feeds.items():
            changes = feed.read(self.checkpoint(name))
            if not changes:
                continue
            c = self.conn
            c.execute("BEGIN IMMEDIATE")
            for ch in changes:
                d = ch.data
                if name == "users" and d is not None:
                    c.execute("INSERT OR REPLACE INTO customers VALUES (?, ?)", (ch.record_id, d["name"]))
                elif name == "orders" and d is not None:
                    c.execute("INSERT OR REPLACE INTO orders VALUES (?, ?)", (ch.record_id, d["customer_id"]))
                elif name == "payments" and d is not None:
                    c.execute("INSERT OR REPLACE INTO payments VALUES (?, ?, ?, ?)",
                              (ch.record_id, d["order_id"], d["amount_cents"], d["status"]))
                elif d is None:
                    table, key = {"users": ("customers", "customer_id"), "orders": ("orders", "order_id"),
                                  "payments": ("payments", "payment_id")}[name]
                    c.execute(f"DELETE FROM {table} WHERE {key} = ?", (ch.record_id,))
            c.execute("INSERT OR REPLACE INTO checkpoints VALUES (?, ?)", (name, changes[-1].seq))
            c.execute("COMMIT")
            done += len(changes)
        return done

    def query(self) -> dict[str, tuple[str, int]]:
        """The same question as ``api_composition``: one SQL query, no call to any service."""
        rows = self.conn.execute(
            "SELECT o.customer_id, c.name, SUM(p.amount_cents) FROM payments p JOIN orders o USING (order_id) "
            "JOIN customers c ON c.customer_id = o.customer_id WHERE p.status = 'captured' "
            "GROUP BY o.customer_id ORDER BY o.customer_id").fetchall()
        return {cid: (name, total) for cid, name, total in rows}


def foreign_write(shop: dict[str, Repository]) -> str:
    """Another service opens the orders file and writes a record behind the owner's back: refused."""
    conn = sqlite3.connect(shop["orders"].path, isolation_level=None)
    try:
        conn.execute("INSERT INTO records(id, version, data) VALUES ('hack', 1, '{}')")
    except sqlite3.OperationalError as e:
        return f"{type(e).__name__}: {e}"
    finally:
        conn.close()
    return "written"
