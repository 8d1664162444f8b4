"""Event sourcing with projections: the order aggregate, crashes, rebuilds and schema evolution.

``order_history(repo, n_orders, seed)`` drives orders through commands (place, add item,
pay, ship, cancel; a refused command is counted, never stored). ``rebuild_check``
loads every order from snapshot + later events and from the first event and compares.
``projection_crashes`` runs the read model with crashes between applying an event and
storing the checkpoint, both ways (``atomic``: one transaction; ``separate``: the naive
way), against the truth rebuilt from zero. ``old_events`` writes ``OrderPlaced`` in its
v1 shape and loads it through the upcaster. ``projection_lag`` follows a store written
by an open-loop process in virtual time and records how far the read model trails.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from workbook.core.clock import LoopClock, ManualClock
from workbook.core.load import open_loop
from workbook.core.seeds import stream
from workbook.core.virtual_time import run_virtual
from workbook.event_sourcing import (InvariantViolation, NewEvent, OrderRepository, OrderSummaryProjection,
                                     ProjectionCrash, ProjectionRunner, SQLiteEventStore, UnknownEventType,
                                     UnknownEventVersion)

SKUS = {"book": 1800, "lamp": 4500, "mug": 900, "pen": 250, "tea": 600}


def _item(rng) -> dict:
    sku = rng.choice(sorted(SKUS))
    return {"sku": sku, "qty": rng.randint(1, 3), "unit_price_cents": SKUS[sku]}


def order_history(repo: OrderRepository, n_orders: int, seed: int, *, customers: int = 10) -> dict[str, int]:
    """Commands against ``n_orders`` orders, some of them refused by an invariant; counts by outcome."""
    rng = stream(seed, "ch04", "orders")
    counts = {"commands": 0, "refused": 0}
    for k in range(n_orders):
        order = repo.create(f"{k:04d}")
        order.place(f"c{rng.randrange(customers):02d}", [_item(rng)])
        repo.save(order)
        for _ in range(rng.randint(1, 8)):
            order = repo.load(order.id)
            counts["commands"] += 1
            what = rng.random()
            try:
                if what < 0.45:
                    order.add_item(**_item(rng))
                elif what < 0.65:
                    order.pay(order.state["total_cents"] + (0 if rng.random() < 0.9 else 100))
                elif what < 0.85:
                    order.ship()
                else:
                    order.cancel("changed mind")
            except InvariantViolation:
                counts["refused"] += 1
                continue
            repo.save(order)
    return counts


def refusals() -> list[str]:
    """Commands the order refuses, each naming its rule."""
    repo = OrderRepository(SQLiteEventStore(clock=ManualClock()))
    order = repo.create("demo")
    order.place("c01", [{"sku": "book", "qty": 1, "unit_price_cents": 1800}])
    out = []
    for label, command in (("pay 1700 for a total of 1800", lambda: order.pay(1700)),
                           ("ship before payment", order.ship),
                           ("place it again", lambda: order.place("c01", [{"sku": "pen", "qty": 1,
                                                                             "unit_price_cents": 250}]))):
        try:
            command()
            out.append(f"{label}: accepted")
        except InvariantViolation as e:
            out.append(f"{label}: {type(e).__name__}: {e}")
    return out


@dataclass
class RebuildCheck:
    orders: int
    events: int
    snapshots: int
    equal: int
    by_status: dict[str, int]
    events_read_from_scratch: int
    events_read_after_snapshot: int


def rebuild_check(n_orders: int, seed: int, *, snapshot_every: int = 3) -> tuple[RebuildCheck, SQLiteEventStore]:
    store = SQLiteEventStore(clock=ManualClock())
    repo = OrderRepository(store, snapshot_every=snapshot_every)
    order_history(repo, n_orders, seed)
    equal, after, status = 0, 0, {}
    for name in store.streams():
        oid = name.removeprefix("order-")
        a, b = repo.load(oid), repo.load_from_scratch(oid)
        equal += a.state == b.state and a.version == b.version
        snap = store.load_snapshot(name)
        after += b.version - (snap.version if snap else 0)
        status[a.status] = status.get(a.status, 0) + 1
    snaps = store.conn.execute("SELECT COUNT(*) FROM snapshots").fetchone()[0]
    events = len(store.read_all())
    return RebuildCheck(len(store.streams()), events, snaps, equal, dict(sorted(status.items())), events, after), store


@dataclass
class CrashRun:
    mode: str
    crashes: int
    restarts: int
    applied: int
    customers: dict[str, tuple[int, int, int]]
    truth: dict[str, tuple[int, int, int]]
    rebuilt: dict[str, tuple[int, int, int]]     # the same file after ``rebuild()``

    @property
    def wrong(self) -> list[str]:
        return [c for c in self.truth if self.customers.get(c) != self.truth[c]]

    @property
    def orders_counted(self) -> int:
        return sum(v[0] for v in self.customers.values())


def truth(store) -> dict[str, tuple[int, int, int]]:
    """The read model rebuilt from zero, with no crash."""
    runner = ProjectionRunner(OrderSummaryProjection(), store)
    runner.rebuild()
    got = OrderSummaryProjection.customers(runner.conn)
    runner.close()
    return got


def projection_crashes(store, mode: str, crash_positions) -> CrashRun:
    """Catch up, crashing after each position in ``crash_positions``; restart (a new runner, same file) each time.
    Then rebuild that file's read model from zero (``rebuilt``)."""
    import os
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "read_model.sqlite")
        pending, restarts, applied = sorted(crash_positions), 0, 0
        while True:
            runner = ProjectionRunner(OrderSummaryProjection(), store, path, checkpoint=mode,
                                      batch=50, crash_after=pending)
            try:
                runner.catch_up()
                applied += runner.applied
                break
            except ProjectionCrash as crash:
                applied += runner.applied
                pending = [p for p in pending if p != crash.position]
                restarts += 1
            finally:
                got = OrderSummaryProjection.customers(runner.conn)
                runner.close()
        again = ProjectionRunner(OrderSummaryProjection(), store, path)   # thrown away and replayed from zero
        again.rebuild()
        rebuilt = OrderSummaryProjection.customers(again.conn)
        again.close()
    return CrashRun(mode, len(crash_positions), restarts, applied, got, truth(store), rebuilt)


def old_events() -> dict[str, object]:
    """An OrderPlaced in its v1 shape (customer name, float prices) loads through the upcaster; bad ones are refused."""
    store = SQLiteEventStore(clock=ManualClock())
    repo = OrderRepository(store)
    v1 = {"customer": "c07", "items": [{"sku": "lamp", "qty": 2, "price": 45.0}]}
    store.append("order-old", [NewEvent("OrderPlaced", v1, {"schema_version": 1})], expected_version=0)
    order = repo.load("old")
    order.pay(9000)
    repo.save(order)
    out = {"stored v1": v1, "loaded state": {k: order.state[k] for k in ("customer_id", "items", "total_cents")},
           "status after pay": repo.load("old").status}
    for label, event in (("v3 (newer than this code)", NewEvent("OrderPlaced", v1, {"schema_version": 3})),
                         ("unknown type", NewEvent("OrderRefunded", {}, {}))):
        store.append(f"order-{label[:2]}", [event], expected_version=0)
        try:
            repo.load(label[:2])
            out[label] = "loaded"
        except (UnknownEventVersion, UnknownEventType) as e:
            out[label] = f"{type(e).__name__}: {e}"
    return out


@dataclass
class LagRun:
    poll_interval: float
    batch: int
    times: list[float] = field(default_factory=list)
    behind: list[int] = field(default_factory=list)       # events in the store not yet projected
    delays: list[float] = field(default_factory=list)     # projected at - recorded at, per event


def projection_lag(*, rate: float, duration: float, poll_interval: float, batch: int, per_event: float,
                   seed: int) -> LagRun:
    """Orders placed at ``rate``/s for ``duration`` s; a projection polls every ``poll_interval`` s, applies up to
    ``batch`` events per poll, each taking ``per_event`` s of (virtual) work. Samples the lag every 0.1 s."""
    run = LagRun(poll_interval, batch)

    async def main():
        clock = LoopClock()
        store = SQLiteEventStore(clock=clock)
        repo = OrderRepository(store)
        runner = ProjectionRunner(OrderSummaryProjection(), store, batch=batch)
        rng = stream(seed, "ch04", "lag-items")
        count = iter(range(10**9))

        async def place(_i=None):
            order = repo.create(f"{next(count):06d}")
            order.place("c01", [_item(rng)])
            repo.save(order)

        async def project():
            while True:
                events = runner.step()
                if events:
                    await clock.sleep(per_event * len(events))   # the work of applying them, before they show
                    now = clock.now()
                    run.delays.extend(now - e.recorded_at for e in events)
                else:
                    await clock.sleep(poll_interval)

        async def sample():
            while clock.now() < duration:
                run.times.append(round(clock.now(), 6))
                run.behind.append(len(store.read_all(runner.position + 1)))
                await clock.sleep(0.1)

        task = asyncio.ensure_future(project())
        load = asyncio.ensure_future(open_loop(place, rate=rate, duration=duration, rng=stream(seed, "ch04", "lag")))
        await sample()
        await load
        task.cancel()

    run_virtual(main())
    return run
