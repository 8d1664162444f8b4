"""Two-phase commit done right: votes after locks, durable logs, presumed abort, recovery.

**Coordinator** (log in SQLite: ``begin``, ``commit`` / ``abort``, ``end``):

1. log ``begin`` with the participants; send ``prepare`` to all and wait for the votes,
   each with ``vote_timeout`` (a participant that does not answer votes *no*);
2. decide ``commit`` only if every vote is yes, and **log the decision before telling
   anyone** (the commit point);
3. tell every participant, retrying each until it acknowledges (a crashed participant
   will come back and must learn the decision); then log ``end``.

**Presumed abort**: a transaction with no decision in the log was aborted. A recovering
coordinator logs ``abort`` for every transaction it had begun but not decided, resends
the logged decision of every transaction not ended, and answers a participant's
``status`` question from its log: ``commit`` if logged, ``pending`` while this very
incarnation is still collecting votes, otherwise ``abort``.

**Participant** (SQLite: ``data``, ``locks``, ``txns``): on ``prepare`` it takes its locks
(no waiting: a key locked by another transaction means vote no), checks its invariant
(no value below zero), and **persists the prepared state and the locks before voting
yes**. From then on it may neither commit nor abort on its own: it is *in doubt* and
holds its locks until it learns the decision, from the coordinator or, after
``decision_timeout``, by asking the coordinator every ``retry`` seconds. This is the
blocking problem: if the coordinator is down, the locks stay held until it returns.
Commit applies the writes, releases the locks and records ``committed`` in one local
transaction; every message is idempotent (a repeated prepare returns the same vote, a
repeated commit or abort is acknowledged again). An ``abort`` for a transaction never
seen is remembered, so a late ``prepare`` votes no.

Crash points (``workbook.transactions.crash``) are reached at each step; what a crash
loses is exactly what a process loses: its memory, never a committed SQLite transaction.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Callable

from workbook.core.errors import ParameterError
from workbook.core.simnet import Request, SimNetwork
from workbook.transactions.crash import CrashPlan
from workbook.transactions.errors import TransactionError, UnknownTransaction

PARTICIPANT_SCHEMA = """
CREATE TABLE IF NOT EXISTS data  (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS locks (key TEXT PRIMARY KEY, tx TEXT NOT NULL, since REAL NOT NULL);
CREATE TABLE IF NOT EXISTS txns  (tx TEXT PRIMARY KEY, state TEXT NOT NULL, writes TEXT NOT NULL,
                                  prepared_at REAL, ended_at REAL);
"""

COORDINATOR_SCHEMA = """
CREATE TABLE IF NOT EXISTS log (seq INTEGER PRIMARY KEY AUTOINCREMENT, tx TEXT NOT NULL, record TEXT NOT NULL,
                                participants TEXT NOT NULL, at REAL NOT NULL);
"""

Trace = Callable[[str, str, str], None]   # (actor, event, tx)


def check_work(work) -> dict[str, dict[str, int]]:
    """``{participant: {key: delta}}``, with at least one participant."""
    if not isinstance(work, dict):
        raise ParameterError("participants", work, "a dict {participant: {key: integer delta}}")
    if not work:
        raise ParameterError("participants", work, "at least one participant")
    for name, writes in work.items():
        if not isinstance(name, str) or not name:
            raise ParameterError("participants", name, "participant names that are non-empty strings")
        if not isinstance(writes, dict) or not all(isinstance(k, str) and isinstance(d, int) and not isinstance(d, bool)
                                                   for k, d in writes.items()):
            raise ParameterError(f"participants[{name!r}]", writes, "a dict {key: integer delta}")
    return work


def _sql(conn, script: str) -> sqlite3.Connection:
    if isinstance(conn, str):
        conn = sqlite3.connect(conn, isolation_level=None, check_same_thread=False)
    conn.executescript(script)
    return conn


class Participant:
    """One incarnation of a participant; ``db`` (its disk) outlives it."""

    def __init__(self, name: str, db: sqlite3.Connection | str, *, net: SimNetwork, plan: CrashPlan,
                 spawn: Callable, coordinator: str = "coordinator", decision_timeout: float = 1.0,
                 retry: float = 0.5, trace: Trace | None = None):
        self.name, self.net, self.plan, self.spawn = name, net, plan, spawn
        self.db = _sql(db, PARTICIPANT_SCHEMA)
        self.coordinator = coordinator
        self.decision_timeout, self.retry = decision_timeout, retry
        self.clock = net.clock
        self.trace = trace or (lambda *a: None)

    # -- messages -----------------------------------------------------------------------
    async def handle(self, request: Request) -> dict:
        body = request.body
        op, tx = body["op"], body["tx"]
        if op == "prepare":
            return {"vote": self.prepare(tx, body["writes"])}
        if op == "commit":
            self.plan.hit(f"{self.name}.before_commit")
            self.commit(tx)
            self.plan.hit(f"{self.name}.after_commit")
            return {"ack": True}
        if op == "abort":
            self.plan.hit(f"{self.name}.before_abort")
            self.abort(tx)
            return {"ack": True}
        raise TransactionError(f"{self.name}: unknown message op {op!r}")

    def state(self, tx: str) -> str | None:
        row = self.db.execute("SELECT state FROM txns WHERE tx = ?", (tx,)).fetchone()
        return None if row is None else row[0]

    def prepare(self, tx: str, writes: dict[str, int]) -> bool:
        self.plan.hit(f"{self.name}.before_prepare")
        known = self.state(tx)
        if known is not None:
            return known in ("prepared", "committed")
        reason = self._refusal(tx, writes)
        now = self.clock.now()
        c = self.db
        c.execute("BEGIN IMMEDIATE")
        try:
            if reason:
                c.execute("INSERT INTO txns(tx, state, writes, ended_at) VALUES (?, 'aborted', ?, ?)",
                          (tx, json.dumps(writes), now))
            else:
                c.executemany("INSERT INTO locks(key, tx, since) VALUES (?,?,?)", [(k, tx, now) for k in writes])
                c.execute("INSERT INTO txns(tx, state, writes, prepared_at) VALUES (?, 'prepared', ?, ?)",
                          (tx, json.dumps(writes), now))
        except BaseException:
            c.execute("ROLLBACK")
            raise
        c.execute("COMMIT")
        if reason:
            self.trace(self.name, f"vote no ({reason})", tx)
            return False
        self.trace(self.name, "prepared, locks held", tx)
        self.spawn(self.name, self._await_decision(tx))
        self.plan.hit(f"{self.name}.after_prepare")
        self.trace(self.name, "vote yes", tx)
        return True

    def _refusal(self, tx: str, writes: dict[str, int]) -> str:
        for key, delta in writes.items():
            holder = self.db.execute("SELECT tx FROM locks WHERE key = ?", (key,)).fetchone()
            if holder is not None and holder[0] != tx:
                return f"{key} locked by {holder[0]}"
            row = self.db.execute("SELECT value FROM data WHERE key = ?", (key,)).fetchone()
            if (0 if row is None else row[0]) + delta < 0:
                return f"{key} would go below zero"
        return ""

    def commit(self, tx: str) -> None:
        state = self.state(tx)
        if state == "committed":
            return
        if state != "prepared":
            raise UnknownTransaction(f"{self.name}: commit of {tx!r}, which is {state or 'unknown'} here, not prepared")
        writes = json.loads(self.db.execute("SELECT writes FROM txns WHERE tx = ?", (tx,)).fetchone()[0])
        c = self.db
        c.execute("BEGIN IMMEDIATE")
        try:
            for key, delta in writes.items():
                c.execute("INSERT INTO data(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET "
                          "value = value + excluded.value", (key, delta))
            c.execute("DELETE FROM locks WHERE tx = ?", (tx,))
            c.execute("UPDATE txns SET state = 'committed', ended_at = ? WHERE tx = ?", (self.clock.now(), tx))
        except BaseException:
            c.execute("ROLLBACK")
            raise
        c.execute("COMMIT")
        self.trace(self.name, "committed, locks released", tx)

    def abort(self, tx: str) -> None:
        state = self.state(tx)
        if state == "committed":
            raise TransactionError(f"{self.name}: abort of {tx!r}, which is already committed here")
        if state == "aborted":
            return
        c = self.db
        c.execute("BEGIN IMMEDIATE")
        if state is None:
            c.execute("INSERT INTO txns(tx, state, writes, ended_at) VALUES (?, 'aborted', '{}', ?)",
                      (tx, self.clock.now()))
        else:
            c.execute("DELETE FROM locks WHERE tx = ?", (tx,))
            c.execute("UPDATE txns SET state = 'aborted', ended_at = ? WHERE tx = ?", (self.clock.now(), tx))
        c.execute("COMMIT")
        self.trace(self.name, "aborted" + (", locks released" if state else ""), tx)

    # -- in doubt -------------------------------------------------------------------------
    async def _await_decision(self, tx: str) -> None:
        await self.clock.sleep(self.decision_timeout)
        while self.state(tx) == "prepared":
            self.trace(self.name, "in doubt: asks the coordinator", tx)
            try:
                resp = await self.net.call(self.name, self.coordinator, Request("POST", "/status", body={"tx": tx}),
                                           timeout=self.retry)
                answer = resp.body.get("outcome") if resp.ok else None
            except (TimeoutError, ConnectionError):
                answer = None
            if answer == "commit":
                self.commit(tx)
            elif answer == "abort":
                self.abort(tx)
            else:
                await self.clock.sleep(self.retry)

    def recover(self) -> None:
        """After a restart: every prepared transaction is in doubt again."""
        for (tx,) in self.db.execute("SELECT tx FROM txns WHERE state = 'prepared' ORDER BY tx").fetchall():
            self.trace(self.name, "recovered in doubt", tx)
            self.spawn(self.name, self._await_decision(tx))

    def lock_hold_times(self) -> dict[str, float]:
        """Seconds each prepared transaction held its locks (until now if it still does)."""
        now = self.clock.now()
        rows = self.db.execute("SELECT tx, prepared_at, ended_at FROM txns WHERE prepared_at IS NOT NULL").fetchall()
        return {tx: (now if end is None else end) - start for tx, start, end in rows}


class Coordinator:
    """One incarnation of the coordinator; ``db`` (its log) outlives it."""

    def __init__(self, db: sqlite3.Connection | str, *, net: SimNetwork, plan: CrashPlan, spawn: Callable,
                 name: str = "coordinator", vote_timeout: float = 0.5, ack_timeout: float = 0.5,
                 retry: float = 0.5, trace: Trace | None = None):
        self.name, self.net, self.plan, self.spawn = name, net, plan, spawn
        self.db = _sql(db, COORDINATOR_SCHEMA)
        self.vote_timeout, self.ack_timeout, self.retry = vote_timeout, ack_timeout, retry
        self.clock = net.clock
        self.trace = trace or (lambda *a: None)
        self.active: set[str] = set()

    def _log(self, tx: str, record: str, participants: list[str]) -> None:
        self.db.execute("INSERT INTO log(tx, record, participants, at) VALUES (?,?,?,?)",
                        (tx, record, json.dumps(participants), self.clock.now()))
        self.trace(self.name, f"log {record}", tx)

    def records(self, tx: str) -> list[str]:
        return [r for (r,) in self.db.execute("SELECT record FROM log WHERE tx = ? ORDER BY seq", (tx,))]

    def decision(self, tx: str) -> str | None:
        got = [r for r in self.records(tx) if r in ("commit", "abort")]
        return got[0] if got else None

    async def run(self, tx: str, work: dict[str, dict[str, int]]) -> str:
        """Run one transaction; ``"commit"`` or ``"abort"``."""
        work = check_work(work)
        if not isinstance(tx, str) or not tx or self.records(tx):
            raise ParameterError("tx", tx, "a non-empty transaction id not used before")
        participants = list(work)
        self._log(tx, "begin", participants)
        self.active.add(tx)
        self.plan.hit(f"{self.name}.before_prepare")
        votes = await asyncio.gather(*(self._prepare(tx, p, work[p]) for p in participants))
        self.plan.hit(f"{self.name}.after_votes")
        decision = "commit" if all(votes) else "abort"
        self._log(tx, decision, participants)      # the commit point
        self.active.discard(tx)
        self.plan.hit(f"{self.name}.after_decision")
        await self._finish(tx, participants, decision)
        return decision

    async def _prepare(self, tx: str, participant: str, writes: dict[str, int]) -> bool:
        try:
            resp = await self.net.call(self.name, participant,
                                       Request("POST", "/prepare", body={"op": "prepare", "tx": tx, "writes": writes}),
                                       timeout=self.vote_timeout)
        except (TimeoutError, ConnectionError):
            self.trace(self.name, f"no vote from {participant}: counts as no", tx)
            return False
        return bool(resp.ok and resp.body.get("vote"))

    async def _finish(self, tx: str, participants: list[str], decision: str) -> None:
        for i, p in enumerate(participants):
            await self._deliver(tx, p, decision)
            if i == 0:
                self.plan.hit(f"{self.name}.after_first_send")
        self.plan.hit(f"{self.name}.before_end")
        self._log(tx, "end", participants)

    async def _deliver(self, tx: str, participant: str, decision: str) -> None:
        while True:
            try:
                resp = await self.net.call(self.name, participant,
                                           Request("POST", f"/{decision}", body={"op": decision, "tx": tx}),
                                           timeout=self.ack_timeout)
            except (TimeoutError, ConnectionError):
                resp = None
            if resp is not None and resp.ok:
                return
            if resp is not None and resp.status == 500:
                raise TransactionError(f"{participant} refused {decision} of {tx!r}: {resp.body}")
            await self.clock.sleep(self.retry)

    async def handle(self, request: Request) -> dict:
        """A participant in doubt asks for the outcome."""
        tx = request.body["tx"]
        if tx in self.active:
            return {"outcome": "pending"}
        return {"outcome": "commit" if self.decision(tx) == "commit" else "abort"}   # presumed abort

    def recover(self) -> None:
        """After a restart: abort what was undecided, then finish every transaction not ended."""
        rows = self.db.execute("SELECT tx, participants FROM log WHERE record = 'begin' ORDER BY seq").fetchall()
        for tx, parts in rows:
            records = self.records(tx)
            if "end" in records:
                continue
            participants = json.loads(parts)
            decision = self.decision(tx)
            if decision is None:
                decision = "abort"
                self._log(tx, "abort", participants)
            self.spawn(self.name, self._finish(tx, participants, decision))

    def unfinished(self) -> list[str]:
        rows = self.db.execute("SELECT tx FROM log WHERE record = 'begin' AND tx NOT IN "
                               "(SELECT tx FROM log WHERE record = 'end') ORDER BY seq").fetchall()
        return [tx for (tx,) in rows]
