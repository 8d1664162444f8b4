"""The shop's order saga: reserve inventory, charge payment, create shipment.

Three participants (``SagaParticipant``) keep their own records, per saga id:

* ``applied[saga]``: times the action's effect happened (reservation made, card charged,
  shipment created); ``undone[saga]``: times its compensation's effect happened.
* Actions and compensations are **idempotent**: a repeated action or compensation is
  recognised and does nothing. A compensation that arrives for an action that never
  happened records a **cancellation** and does nothing else; a late action for a
  cancelled saga is refused. (Set ``careful=False`` to get the naive participant that
  undoes blindly and repeats effects, for comparison.)

Faults are injected per participant: ``reject`` (saga ids whose action is refused, a
business "no"), ``transient_rate`` (an action or compensation fails with an error,
before doing anything), ``slow`` (saga ids whose action takes ``slow_time``: longer than
the orchestrator's timeout, so the outcome is unknown to it; the action still completes
in the participant, as a remote service does when the caller gives up).

``check_sagas`` is the checker (it returns a ``workbook.core.verdict.Verdict``): every saga
must end ``completed`` (every action applied once, nothing undone) or ``compensated``
(every applied action undone once), and no compensation effect may exist for an action
that never happened.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from dataclasses import dataclass, field

from workbook.core.params import check_choice, check_int, check_number
from workbook.core.virtual_time import run_virtual
from workbook.sagas.orchestrator import (Orchestrator, OrchestratorCrash, SagaDefinition, SagaLog, Step, StepRejected,
                                         StepRetry)
from workbook.core.errors import WorkbookError
from workbook.core.seeds import stream
from workbook.core.verdict import Verdict

STEPS = ("inventory", "payment", "shipping")
ACTIONS = {"inventory": ("reserve", "release"), "payment": ("charge", "refund"), "shipping": ("ship", "cancel")}


class TransientError(WorkbookError, ConnectionError):
    """A participant was briefly unavailable; nothing happened; a retry may succeed."""


@dataclass
class SagaParticipant:
    name: str
    rng: random.Random
    latency: float = 0.01
    transient_rate: float = 0.0
    reject: set[str] = field(default_factory=set)
    slow: set[str] = field(default_factory=set)
    slow_time: float = 3.0
    careful: bool = True
    applied: Counter = field(default_factory=Counter)
    undone: Counter = field(default_factory=Counter)
    cancelled: set[str] = field(default_factory=set)
    calls: int = 0

    async def act(self, saga_id: str, data: dict) -> dict:
        self.calls += 1
        work = asyncio.ensure_future(self._act(saga_id))
        work.add_done_callback(lambda t: t.cancelled() or t.exception())  # outcome seen even if nobody waits
        return await asyncio.shield(work)  # the caller may give up; the participant carries on

    async def _act(self, saga_id: str) -> dict:
        await asyncio.sleep(self.slow_time if saga_id in self.slow else self.latency)
        if self.rng.random() < self.transient_rate:
            raise TransientError(f"{self.name} unavailable")
        if saga_id in self.reject:
            raise StepRejected(f"{self.name} refused {ACTIONS[self.name][0]} for {saga_id}")
        if self.careful and saga_id in self.cancelled:
            raise StepRejected(f"{self.name}: {saga_id} was already cancelled")
        if not self.careful or not self.applied[saga_id]:
            self.applied[saga_id] += 1
        return {f"{self.name}_ref": f"{self.name}-{saga_id}"}

    async def compensate(self, saga_id: str, data: dict) -> None:
        self.calls += 1
        await asyncio.sleep(self.latency)
        if self.rng.random() < self.transient_rate:
            raise TransientError(f"{self.name} unavailable")
        if not self.careful:
            self.undone[saga_id] += 1  # undoes blindly: even what never happened, and again on repeats
            return
        if self.applied[saga_id] and not self.undone[saga_id]:
            self.undone[saga_id] += 1
        elif not self.applied[saga_id]:
            self.cancelled.add(saga_id)  # nothing to undo: remember, so a late action is refused


def make_participants(seed: int = 0, *, transient_rate: float = 0.0, careful: bool = True,
                      latency: float = 0.01) -> dict[str, SagaParticipant]:
    return {n: SagaParticipant(n, stream(seed, "participant", n), latency=latency, transient_rate=transient_rate,
                           careful=careful) for n in STEPS}


STEP_RETRY = StepRetry(attempts=3, delay=0.1)


def order_saga_definition(participants: dict[str, SagaParticipant], *, timeout: float = 1.0,
                          retry: StepRetry = STEP_RETRY) -> SagaDefinition:
    return SagaDefinition("order", tuple(Step(n, participants[n].act, participants[n].compensate, timeout, retry)
                                         for n in STEPS))


def _examples(items: list[str], limit: int = 3) -> str:
    if not items:
        return ""
    return "; ".join(items[:limit]) + (f"; ... and {len(items) - limit} more" if len(items) > limit else "")


def check_sagas(statuses: dict[str, str], participants: dict[str, SagaParticipant]) -> Verdict:
    """Judge sagas by what the participants recorded, not by what the sagas claim.

    Checks: every saga ended ``completed`` or ``compensated``; no action happened twice; a
    completed saga has every action once and nothing undone; a compensated saga has every
    action that happened undone; no compensation ran for an action that never happened.
    ``numbers``: sagas, completed, compensated, unfinished, violations (the list).
    """
    count = Counter(statuses.values())
    unfinished, repeated, bad_completed, not_undone, phantom = [], [], [], [], []
    for sid, status in sorted(statuses.items()):
        if status not in ("completed", "compensated"):
            unfinished.append(f"{sid}: ended {status!r}, neither completed nor compensated")
        for name in STEPS:
            p = participants[name]
            done, undone = p.applied[sid], p.undone[sid]
            act, comp = ACTIONS[name]
            if done > 1:
                repeated.append(f"{sid}: {name} {act} happened {done} times")
            if undone > done:
                phantom.append(f"{sid}: {name} {comp} ran {undone} time(s) for {done} {act}(s): "
                               "compensation for an action that never happened")
            elif status == "completed" and (done != 1 or undone):
                bad_completed.append(f"{sid}: says completed but {name} {act}={done}, {comp}={undone}")
            elif status == "compensated" and done > undone:
                not_undone.append(f"{sid}: says compensated but {name} {act} was never undone")
    other = sum(n for s, n in count.items() if s not in ("completed", "compensated"))
    violations = unfinished + repeated + bad_completed + not_undone + phantom
    return Verdict.of(
        f"{len(statuses)} sagas: {count['completed']} completed, {count['compensated']} compensated, "
        f"{other} unfinished",
        [("every saga ended completed or compensated", not unfinished, _examples(unfinished)),
         ("no action happened twice", not repeated, _examples(repeated)),
         ("completed: every action once, nothing undone", not bad_completed, _examples(bad_completed)),
         ("compensated: every action that happened was undone", not not_undone, _examples(not_undone)),
         ("no compensation without its action", not phantom, _examples(phantom))],
        numbers={"sagas": len(statuses), "completed": count["completed"], "compensated": count["compensated"],
                 "unfinished": other, "violations": violations},
        hint="a saga may say 'compensated' only after every compensation has succeeded; compensations must be "
             "idempotent and retried until they do")


@dataclass
class SagaRun:
    statuses: dict[str, str]
    verdict: Verdict
    participants: dict[str, SagaParticipant]
    trace: list[tuple[float, str, str, str]]
    log: list[tuple] = field(default_factory=list)
    restarts: int = 0


def check_run_parameters(n_sagas, *, fail_step, fail_rate, transient_rate, seed, slow_rate=0.0,
                         crash_rate=0.0) -> None:
    """Refuse bad parameters of a saga run, naming the parameter, before anything runs."""
    check_int("n_sagas", n_sagas, minimum=1)
    check_int("seed", seed, minimum=0)
    if fail_step is not None:
        check_choice("fail_step", fail_step, STEPS)
    for name, v in (("fail_rate", fail_rate), ("slow_rate", slow_rate), ("crash_rate", crash_rate)):
        check_number(name, v, minimum=0, maximum=1)
    check_number("transient_rate", transient_rate, minimum=0, maximum=0.9)  # 1.0 would never finish


def plan_faults(participants, n_sagas: int, *, fail_step: str | None, fail_rate: float, slow_rate: float,
                rng: random.Random) -> list[str]:
    ids = [f"order-{i:03d}" for i in range(n_sagas)]
    for sid in ids:
        if fail_step and rng.random() < fail_rate:
            participants[fail_step].reject.add(sid)
        if rng.random() < slow_rate:
            participants[rng.choice(STEPS)].slow.add(sid)
    return ids


def run_orchestrated(n_sagas: int = 20, *, fail_step: str | None = "payment", fail_rate: float = 0.3,
                     transient_rate: float = 0.1, slow_rate: float = 0.0, crash_rate: float = 0.0,
                     seed: int = 0, db_path: str = ":memory:") -> SagaRun:
    """Run ``n_sagas`` order sagas (one after another) through the durable orchestrator.

    ``crash_rate``: probability that the orchestrator dies after any log write; a new one
    is started on the same log and ``recover()``-s, until every saga is finished.
    """
    check_run_parameters(n_sagas, fail_step=fail_step, fail_rate=fail_rate, transient_rate=transient_rate,
                         slow_rate=slow_rate, crash_rate=crash_rate, seed=seed)
    parts = make_participants(seed, transient_rate=transient_rate)
    ids = plan_faults(parts, n_sagas, fail_step=fail_step, fail_rate=fail_rate, slow_rate=slow_rate,
                      rng=stream(seed, "fault-plan"))
    definition = order_saga_definition(parts)
    log = SagaLog(db_path)
    trace: list = []
    crash_rng = stream(seed, "orchestrator-crashes")

    def crash(type_, step):
        if crash_rng.random() < crash_rate:
            raise OrchestratorCrash(f"orchestrator died after writing {type_} {step or ''}")

    async def main():
        restarts = 0
        for sid in ids:
            try:
                await Orchestrator(definition, log, crash=crash, trace=trace).start(sid, {"order": sid})
            except OrchestratorCrash:
                while True:  # a supervisor restarts the orchestrator, which recovers from the log
                    restarts += 1
                    await asyncio.sleep(0.5)
                    trace.append((asyncio.get_running_loop().time(), "orchestrator", "orchestrator", "restart"))
                    try:
                        await Orchestrator(definition, log, crash=crash, trace=trace).recover()
                        break
                    except OrchestratorCrash:
                        continue
        await asyncio.sleep(max(p.slow_time for p in parts.values()))  # let late actions land
        return restarts

    restarts = run_virtual(main())
    statuses = {sid: log.status(sid) for sid in ids}
    records = [(sid, *r) for sid in ids for r in log.records(sid)]
    log.close()
    return SagaRun(statuses, check_sagas(statuses, parts), parts, trace, records, restarts)


def naive_orchestrated(n_sagas: int = 20, *, fail_step: str | None = "payment", fail_rate: float = 0.3,
                       transient_rate: float = 0.1, seed: int = 0) -> SagaRun:
    """The article's saga: on failure it fires the compensations without waiting, marks itself
    ``compensated`` at once, and never retries (a transient error is a failure, a failed
    compensation is forgotten)."""
    from workbook.sagas.naive import NaiveSaga

    check_run_parameters(n_sagas, fail_step=fail_step, fail_rate=fail_rate, transient_rate=transient_rate, seed=seed)
    parts = make_participants(seed, transient_rate=transient_rate)
    ids = plan_faults(parts, n_sagas, fail_step=fail_step, fail_rate=fail_rate, slow_rate=0.0,
                      rng=stream(seed, "fault-plan"))
    trace: list = []

    async def main():
        statuses = {}
        for sid in ids:
            statuses[sid] = await NaiveSaga([(n, parts[n].act, parts[n].compensate) for n in STEPS], trace).run(sid)
        await asyncio.sleep(1.0)
        return statuses

    statuses = run_virtual(main())
    return SagaRun(statuses, check_sagas(statuses, parts), parts, trace)


def single_saga_trace(fail_step: str | None = "shipping", *, transient_rate: float = 0.0, seed: int = 0,
                      naive: bool = False) -> SagaRun:
    """One saga with its action refused at ``fail_step`` (None: succeeds): for sequence diagrams."""
    runner = naive_orchestrated if naive else run_orchestrated
    return runner(1, fail_step=fail_step, fail_rate=1.0 if fail_step else 0.0, transient_rate=transient_rate,
                  seed=seed)
