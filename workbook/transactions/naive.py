"""The source article's two-phase commit, kept to count its partial commits.

``NaiveCoordinator.run`` does what the article's ``DistributedTransactionManager`` does:

* "prepare" is a sleep per participant: no message, no vote, no lock, so nothing can say
  no and nothing is held;
* the commit phase sends every participant its writes (the first one, then the others
  concurrently, so that the crash point "after the first send" exists) and **logs and
  ignores** a failure (``gather(..., return_exceptions=True)``): a participant that is
  down or crashes simply does not commit while the others do;
* abort does nothing, and there is no log: a coordinator that dies half-way through the
  commit phase leaves the participants it had not reached uncommitted forever.

``NaiveParticipant`` applies the writes it is sent (no invariant check, no idempotence);
it records each transaction it applied so the atomicity checker can count partial commits.
Crash points are the same names as the correct protocol's; the prepare-side points of
participants are never reached, because the naive protocol never asks them anything.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
from collections.abc import Callable

from workbook.core.simnet import Request, SimNetwork
from workbook.transactions.crash import CrashPlan
from workbook.transactions.two_phase import PARTICIPANT_SCHEMA, Trace, _sql, check_work

log = logging.getLogger(__name__)


class NaiveParticipant:
    def __init__(self, name: str, db: sqlite3.Connection | str, *, net: SimNetwork, plan: CrashPlan,
                 spawn: Callable, trace: Trace | None = None, **_ignored):
        self.name, self.net, self.plan = name, net, plan
        self.db = _sql(db, PARTICIPANT_SCHEMA)
        self.clock = net.clock
        self.trace = trace or (lambda *a: None)

    async def handle(self, request: Request) -> dict:
        body = request.body
        self.plan.hit(f"{self.name}.before_commit")
        c = self.db
        c.execute("BEGIN IMMEDIATE")
        for key, delta in body["writes"].items():
            c.execute("INSERT INTO data(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET "
                      "value = value + excluded.value", (key, delta))
        c.execute("INSERT OR REPLACE INTO txns(tx, state, writes, ended_at) VALUES (?, 'committed', ?, ?)",
                  (body["tx"], json.dumps(body["writes"]), self.clock.now()))
        c.execute("COMMIT")
        self.trace(self.name, "applied", body["tx"])
        self.plan.hit(f"{self.name}.after_commit")
        return {"ok": True}

    def state(self, tx: str) -> str | None:
        row = self.db.execute("SELECT state FROM txns WHERE tx = ?", (tx,)).fetchone()
        return None if row is None else row[0]

    def recover(self) -> None:
        """Nothing to recover: the naive participant keeps no prepared state."""

    def lock_hold_times(self) -> dict[str, float]:
        return {}


class NaiveCoordinator:
    def __init__(self, db=None, *, net: SimNetwork, plan: CrashPlan, spawn: Callable, name: str = "coordinator",
                 ack_timeout: float = 0.5, trace: Trace | None = None, **_ignored):
        self.name, self.net, self.plan = name, net, plan
        self.ack_timeout = ack_timeout
        self.clock = net.clock
        self.trace = trace or (lambda *a: None)
        self.transactions: dict[str, str] = {}     # in memory only: lost in a crash
        self.errors = 0

    async def run(self, tx: str, work: dict[str, dict[str, int]]) -> str:
        work = check_work(work)
        self.transactions[tx] = "pending"
        self.plan.hit(f"{self.name}.before_prepare")
        for _ in work:
            await self.clock.sleep(0.1)                    # the article's "prepare": a sleep
        self.plan.hit(f"{self.name}.after_votes")
        self.plan.hit(f"{self.name}.after_decision")
        items = list(work.items())
        first = asyncio.ensure_future(self._commit(tx, *items[0]))
        await asyncio.wait({first})                        # (so that "after the first send" means delivered)
        self.plan.hit(f"{self.name}.after_first_send")
        tasks = [first] + [asyncio.ensure_future(self._commit(tx, p, writes)) for p, writes in items[1:]]
        await asyncio.gather(*tasks, return_exceptions=True)
        self.plan.hit(f"{self.name}.before_end")
        self.transactions[tx] = "committed"
        return "commit"

    async def _commit(self, tx: str, participant: str, writes: dict[str, int]) -> None:
        try:
            await self.net.call(self.name, participant, Request("POST", "/commit", body={"tx": tx, "writes": writes}),
                                timeout=self.ack_timeout)
        except Exception as exc:                           # the article: logged and ignored
            self.errors += 1
            log.error("participant %s failed to commit %s: %s", participant, tx, exc)

    async def handle(self, request: Request) -> dict:
        return {"outcome": "unknown"}

    def recover(self) -> None:
        """Nothing to recover from: the naive coordinator keeps no log."""

    def decision(self, tx: str) -> str | None:
        return "commit" if self.transactions.get(tx) == "committed" else None

    def unfinished(self) -> list[str]:
        return []
