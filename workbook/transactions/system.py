"""A 2PC system on the simulated network, with crashes, restarts and an atomicity checker.

``TwoPhaseSystem`` puts a coordinator and participants on a ``SimNetwork`` (virtual time),
each process an *incarnation* over a SQLite connection that stands for its disk. A
``Crash`` raised at a planned point kills the incarnation: the node goes down, its tasks
are cancelled, a message it was handling is never answered; after the planned downtime a
new incarnation starts over the same disk and runs ``recover()``.

``run_transactions`` runs business transactions (started ``gap`` seconds apart), then
lets the system settle until ``horizon``. ``check_atomicity`` is the checker: every
transaction committed at all its participants or at none; no decision lost (a logged
commit reached everyone; nobody committed without one); no lock left held. The same
harness runs the article's protocol (``protocol="naive"``) under the same crash plans.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from workbook.core.errors import ParameterError
from workbook.core.params import check_choice, check_number
from workbook.core.simnet import SimNetwork
from workbook.core.verdict import Verdict
from workbook.transactions.crash import CrashPlan
from workbook.transactions.errors import Crash
from workbook.transactions.naive import NaiveCoordinator, NaiveParticipant
from workbook.transactions.two_phase import Coordinator, Participant, check_work

PROTOCOLS = ("2pc", "naive")


@dataclass
class RunResult:
    """What a run produced: outcome per transaction as the client saw it, the trace, the system."""

    outcomes: dict[str, str]
    trace: list[tuple[float, str, str, str]]
    system: TwoPhaseSystem
    crashes: list[tuple[float, str, str]] = field(default_factory=list)


class TwoPhaseSystem:
    def __init__(self, participants: Sequence[str], *, protocol: str = "2pc", plan: CrashPlan | None = None,
                 seed: int = 0, latency: Any = 0.01, initial: dict[str, dict[str, int]] | None = None,
                 vote_timeout: float = 0.5, decision_timeout: float = 1.0, retry: float = 0.5):
        participants = list(participants)
        if not participants:
            raise ParameterError("participants", participants, "at least one participant name")
        self.protocol = check_choice("protocol", protocol, PROTOCOLS)
        self.plan = plan or CrashPlan()
        self.net = SimNetwork(seed, latency=latency)
        self.clock = self.net.clock
        self.names = participants
        self.trace: list[tuple[float, str, str, str]] = []
        self.crashes: list[tuple[float, str, str]] = []
        self.settings = {"vote_timeout": check_number("vote_timeout", vote_timeout, minimum=0, min_exclusive=True),
                         "decision_timeout": check_number("decision_timeout", decision_timeout, minimum=0),
                         "retry": check_number("retry", retry, minimum=0, min_exclusive=True)}
        self.disks = {n: sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
                      for n in ["coordinator", *participants]}
        self.tasks: dict[str, set[asyncio.Task]] = {n: set() for n in self.disks}
        self.nodes: dict[str, Any] = {}
        for name in self.disks:
            self.net.add_service(name, self._handler(name))
            self._start(name)
        for name, values in (initial or {}).items():
            for key, value in values.items():
                self.disks[name].execute("INSERT OR REPLACE INTO data(key, value) VALUES (?, ?)", (key, value))

    # -- processes ------------------------------------------------------------------------
    def _start(self, name: str):
        common = dict(net=self.net, plan=self.plan, spawn=self.spawn, trace=self._trace)
        if name == "coordinator":
            cls = Coordinator if self.protocol == "2pc" else NaiveCoordinator
            node = cls(self.disks[name], vote_timeout=self.settings["vote_timeout"],
                       retry=self.settings["retry"], **common)
        else:
            cls = Participant if self.protocol == "2pc" else NaiveParticipant
            node = cls(name, self.disks[name], decision_timeout=self.settings["decision_timeout"],
                       retry=self.settings["retry"], **common)
        self.nodes[name] = node
        return node

    def _trace(self, actor: str, event: str, tx: str) -> None:
        self.trace.append((round(self.clock.now(), 9), actor, event, tx))

    def spawn(self, owner: str, coro) -> asyncio.Task:
        """Run ``coro`` as a task of process ``owner``: cancelled if it crashes; a ``Crash`` in it crashes it."""
        task = asyncio.ensure_future(coro)
        self.tasks[owner].add(task)

        def done(t: asyncio.Task):
            self.tasks[owner].discard(t)
            if not t.cancelled() and isinstance(t.exception(), Crash):
                self.crash(owner, t.exception().point)
        task.add_done_callback(done)
        return task

    def _handler(self, name: str):
        async def handle(request):
            try:
                return await self.nodes[name].handle(request)
            except Crash as crash:
                self.crash(name, crash.point)
                await asyncio.Event().wait()   # a dead process never answers
        return handle

    def crash(self, name: str, point: str) -> None:
        self.crashes.append((round(self.clock.now(), 9), name, point))
        self._trace(name, f"CRASH at {point}", "")
        self.net.down(name)
        current = asyncio.current_task()
        for task in list(self.tasks[name]):
            if task is not current:
                task.cancel()
        asyncio.get_running_loop().call_later(self.plan.downtime(point), self._restart, name)

    def _restart(self, name: str) -> None:
        node = self._start(name)
        self._trace(name, "restarted", "")
        node.recover()                 # before serving: a recovered coordinator aborts the undecided first
        self.net.up(name)

    # -- running ----------------------------------------------------------------------------
    async def transact(self, tx: str, work: dict[str, dict[str, int]]) -> str:
        """One transaction from the client's side: its outcome; ``"unknown"`` if the coordinator died during it,
        ``"refused"`` if it was down already (then nothing happened)."""
        check_work(work)
        unknown = sorted(set(work) - set(self.names))
        if unknown:
            raise ParameterError("participants", unknown, f"names of this system's participants {self.names}")
        if self.net.services["coordinator"].is_down:
            self._trace("client", "coordinator down: refused", tx)
            return "refused"
        try:
            return await self.nodes["coordinator"].run(tx, work)
        except Crash as crash:
            self.crash("coordinator", crash.point)
            return "unknown"

    def settled(self) -> bool:
        coordinator = self.nodes["coordinator"]
        if self.net.services["coordinator"].is_down or coordinator.unfinished():
            return False
        return not any(self.net.services[n].is_down or self.disks[n].execute(
            "SELECT 1 FROM txns WHERE state = 'prepared' LIMIT 1").fetchone() for n in self.names)

    def states(self, tx: str) -> dict[str, str | None]:
        return {n: self.nodes[n].state(tx) for n in self.names}

    def locks(self) -> dict[str, int]:
        return {n: self.disks[n].execute("SELECT COUNT(*) FROM locks").fetchone()[0] for n in self.names}

    def data(self, name: str) -> dict[str, int]:
        return dict(self.disks[name].execute("SELECT key, value FROM data ORDER BY key").fetchall())

    def lock_hold_times(self) -> dict[str, dict[str, float]]:
        return {n: self.nodes[n].lock_hold_times() for n in self.names}


def run_transactions(participants: Sequence[str], transactions: Iterable[tuple[str, dict[str, dict[str, int]]]], *,
                     protocol: str = "2pc", plan: CrashPlan | dict | None = None, seed: int = 0, gap: float = 0.05,
                     horizon: float = 60.0, **settings) -> RunResult:
    """Run ``transactions`` (``(tx, work)``, started ``gap`` apart) under ``plan``; settle until ``horizon``."""
    from workbook.core.virtual_time import run_virtual
    plan = plan if isinstance(plan, CrashPlan) else CrashPlan(plan)
    transactions = list(transactions)
    for _, work in transactions:
        check_work(work)
    horizon = check_number("horizon", horizon, minimum=0, min_exclusive=True)

    async def main():
        system = TwoPhaseSystem(participants, protocol=protocol, plan=plan, seed=seed, **settings)
        outcomes: dict[str, str] = {}

        async def client(i, tx, work):
            await asyncio.sleep(i * gap)
            outcomes[tx] = await system.transact(tx, work)

        await asyncio.gather(*(client(i, tx, work) for i, (tx, work) in enumerate(transactions)))
        while not system.settled() and system.clock.now() < horizon:
            await asyncio.sleep(0.1)
        return RunResult(outcomes, system.trace, system, system.crashes)

    return run_virtual(main())


def check_atomicity(result: RunResult, transactions: Iterable[str] | None = None) -> Verdict:
    """All-or-nothing per transaction, no decision lost, no lock left, and the client told the truth (a
    transaction it heard "commit" for committed everywhere, one it heard "abort" for nowhere): the verdict on a
    run. ``numbers['misled']`` counts the transactions whose client was told otherwise."""
    system = result.system
    txs = list(transactions) if transactions is not None else list(result.outcomes)
    partial, lost, misled, committed, aborted = [], [], [], 0, 0
    for tx in txs:
        states = system.states(tx)
        done = [n for n, s in states.items() if s == "committed"]
        decision = system.nodes["coordinator"].decision(tx)
        if done and len(done) < len(states):
            partial.append(f"{tx}: committed at {', '.join(done)} only ({states})")
        told = result.outcomes.get(tx)
        if (told == "commit" and len(done) < len(states)) or (told == "abort" and done):
            misled.append(f"{tx}: the client was told {told!r}, participants {states}")
        if system.protocol == "2pc" and ((decision == "commit") != bool(done) or
                                         (decision == "commit" and len(done) < len(states))):
            lost.append(f"{tx}: coordinator decided {decision}, participants {states}")
        committed += len(done) == len(states)
        aborted += not done
    locks = system.locks()
    held = {n: k for n, k in locks.items() if k}
    holds = [t for per in system.lock_hold_times().values() for t in per.values()]
    checks = [("atomic: every transaction committed everywhere or nowhere", not partial,
               f"{len(partial)} partial commit(s)" + (": " + "; ".join(partial[:3]) if partial else "")),
              ("no decision lost", not lost, "; ".join(lost[:3]) or "every logged decision reached every participant"),
              ("no lock left held", not held, f"locks still held: {held}" if held else "all released"),
              ("what the client was told is what happened", not misled,
               "; ".join(misled[:3]) or "every 'commit' committed everywhere, every 'abort' nowhere")]
    numbers = {"transactions": len(txs), "committed": committed, "aborted": aborted, "partial": len(partial),
               "misled": len(misled), "crashes": len(result.crashes), "max_lock_hold": max(holds, default=0.0)}
    return Verdict.of(f"{system.protocol}: {len(txs)} transaction(s) under {len(result.crashes)} crash(es)", checks,
                      numbers=numbers, hint="a participant committed while another did not: the protocol let a "
                                            "failure pass silently")
