"""Replication and synchronisation: change data capture, the article's synchroniser, lag, read-your-writes.

``cdc_pipeline`` writes orders to the orders service's database and lets two consumers
follow its change feed in virtual time: a read replica (a full copy) and the shipping
service's copy (only paid orders, only the fields it needs), then checks both against
the source and shows a redelivery and a gap being handled. ``naive_sync`` runs the
article's synchroniser with two rules (a strong one, then an eventual one whose mapping
fails on some records): the call returns before the strong copy is written, and the
failures are swallowed. ``replication_lag`` measures the lag of every change as a
distribution. ``read_your_writes`` has clients write and read back at once through a
replica, with and without the session version, and counts the stale reads.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from dataclasses import dataclass, field

from workbook.core.clock import LoopClock
from workbook.core.load import open_loop
from workbook.core.seeds import stream
from workbook.core.virtual_time import run_virtual
from workbook.storage import (ChangeFeed, NaiveRepository, NaiveSynchronizer, ReadYourWrites, Replica, Replicator,
                              ReplicationGap, Repository, Session)


def shipping_copy(change):
    """The shipping service keeps only paid orders, and only what it needs to ship them."""
    d = change.data
    if d.get("status") != "paid":
        return None
    return change.record_id, {"customer_id": d["customer_id"], "items": len(d["items"])}


@dataclass
class CdcResult:
    writes: int
    changes: int
    replica_equal: bool
    shipping_expected: int
    shipping_equal: bool
    redelivered: bool
    gap: str
    lags: list[float]


def cdc_pipeline(n_orders: int, seed: int, *, delay=None) -> CdcResult:
    """Orders placed, some paid, some deleted; a replica and the shipping copy follow the feed."""
    delay = delay or {"kind": "exponential", "mean": 0.05}

    async def main():
        clock = LoopClock()
        orders = Repository(service="orders", clock=clock)
        feed = ChangeFeed(orders)
        replica = Replica(name="orders-replica", clock=clock)
        shipping = Replica(name="shipping-copy", mapping=shipping_copy, clock=clock)
        followers = [Replicator(feed, r, delay=delay, rng=stream(seed, "ch04", "cdc", r.name), clock=clock)
                     for r in (replica, shipping)]
        for f in followers:
            f.start()
        rng = stream(seed, "ch04", "cdc-writes")
        writes = 0
        for k in range(n_orders):
            oid = f"o{k:04d}"
            orders.save(oid, {"customer_id": f"c{rng.randrange(10):02d}", "items": [1] * rng.randint(1, 3),
                              "status": "placed"}, expected_version=0)
            writes += 1
            await asyncio.sleep(rng.expovariate(100))
            if rng.random() < 0.6:
                rec = orders.get(oid)
                orders.save(oid, {**rec.data, "status": "paid"}, expected_version=rec.version)
                writes += 1
            elif rng.random() < 0.3:
                orders.delete(oid, expected_version=1)
                writes += 1
        await asyncio.sleep(5)
        for f in followers:
            await f.stop()
        source = {r.id: (r.version, r.data) for r in orders.list()}
        copy = {r.id: (r.version, r.data) for r in replica.list()}
        expected = {r.id: {"customer_id": r.data["customer_id"], "items": len(r.data["items"])}
                    for r in orders.list({"status": "paid"})}
        got = {r.id: r.data for r in shipping.list()}
        last = feed.read(feed.head() - 1)[-1]
        redelivered = replica.apply(last)        # the last change again: recognised, nothing done
        other = Replica(name="fresh-replica", clock=clock)
        try:
            other.apply(feed.read(2, 1)[0])      # seq 3 to a replica that has applied nothing
            gap = "applied"
        except ReplicationGap as e:
            gap = f"{type(e).__name__}: {e}"
        return CdcResult(writes, feed.head(), copy == source, len(expected), got == expected, redelivered, gap,
                         list(replica.lags))

    return run_virtual(main())


@dataclass
class NaiveSyncResult:
    records: int
    strong_copied_on_return: int
    strong_copied_later: int
    eventual_copied: int
    swallowed: int


def naive_sync(n_records: int, *, fail_every: int = 4) -> NaiveSyncResult:
    """The article's synchroniser: rule 1 strong (users -> orders), rule 2 eventual (users -> billing) whose mapping
    fails on every ``fail_every``-th record (a missing field)."""
    logging.getLogger("workbook.storage.naive").disabled = True    # it logs what it swallows; we count instead

    async def main():
        users, orders, billing = (NaiveRepository(n, clock=lambda: 0.0) for n in ("users", "orders", "billing"))
        sync = NaiveSynchronizer()
        for name, repo in (("users", users), ("orders", orders), ("billing", billing)):
            sync.register_repository(name, repo)
        sync.add_sync_rule("users", "orders", "UserCreated", lambda d: {"name": d["name"]}, "strong")
        sync.add_sync_rule("users", "billing", "UserCreated", lambda d: {"address": d["billing_address"]}, "eventual")
        on_return = 0
        for k in range(n_records):
            data = {"name": f"user {k}"}
            if k % fail_every:
                data["billing_address"] = f"{k} Main Street"
            uid = users.save(dict(data))
            await sync.sync_data_change("users", "UserCreated", uid, data)
            on_return += orders.find_by_id(uid) is not None     # "strong": it should be there now
        await asyncio.gather(*sync.background)
        return NaiveSyncResult(n_records, on_return, len(orders.data), len(billing.data), sync.errors)

    return run_virtual(main())


@dataclass
class ReplicationLagResult:
    lags: list[float]
    writes: int


def replication_lag(*, rate: float, duration: float, delay, poll_interval: float, seed: int) -> ReplicationLagResult:
    """Writes at ``rate``/s; a replicator polls every ``poll_interval`` s and ships each batch after ``delay``."""
    async def main():
        clock = LoopClock()
        primary = Repository(service="orders", clock=clock)
        replica = Replica(name="replica", clock=clock)
        rep = Replicator(ChangeFeed(primary), replica, delay=delay, poll_interval=poll_interval,
                         rng=stream(seed, "ch04", "lag-ship"), clock=clock)
        rep.start()
        count = iter(range(10**9))

        async def write(_i):
            primary.save(f"r{next(count):06d}", {"v": 1}, expected_version=0)

        await open_loop(write, rate=rate, duration=duration, rng=stream(seed, "ch04", "lag-writes"))
        await asyncio.sleep(5)
        await rep.stop()
        records = primary.conn.execute("SELECT COUNT(*) FROM records").fetchone()[0]
        return ReplicationLagResult(list(replica.lags), records)

    return run_virtual(main())


@dataclass
class RywResult:
    enabled: bool
    reads: int
    stale: int
    where: Counter = field(default_factory=Counter)


def read_your_writes(enabled: bool, *, clients: int, updates: int, delay, seed: int,
                     read_after: float = 0.05) -> RywResult:
    """Each client updates its profile and reads it back soon after (exponential, mean ``read_after`` s),
    ``updates`` times; a read older than the client's own last write is stale."""
    async def main():
        clock = LoopClock()
        primary = Repository(service="users", clock=clock)
        replica = Replica(name="users-replica", clock=clock)
        rep = Replicator(ChangeFeed(primary), replica, delay=delay, poll_interval=0.02,
                         rng=stream(seed, "ch04", "ryw-ship"), clock=clock)
        rep.start()
        store = ReadYourWrites(primary, replica, enabled=enabled)
        stale = 0
        rng = stream(seed, "ch04", "ryw-think")

        async def client(i):
            nonlocal stale
            session, rid, version = Session(), f"user-{i}", 0
            for n in range(1, updates + 1):
                version = store.save(session, rid, {"nickname": f"name-{n}"}, expected_version=version).version
                await asyncio.sleep(rng.expovariate(1 / read_after))   # the page reloads soon after the save
                got = store.get(session, rid)
                stale += got is None or got.version < version
                await asyncio.sleep(rng.expovariate(2))     # the user thinks

        await asyncio.gather(*(client(i) for i in range(clients)))
        await rep.stop()
        return RywResult(enabled, clients * updates, stale, Counter(store.reads))

    return run_virtual(main())
