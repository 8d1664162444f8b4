"""Orchestrated sagas with a durable log: retries, timeouts, compensations, recovery.

A saga is a sequence of local transactions in different services; there is no
distributed rollback, so each step has a **compensation** that semantically undoes it.
The orchestrator drives the steps and writes every decision to a **saga log** (SQLite)
*before* acting on it, so a new orchestrator process can read the log and carry on
where a crashed one stopped.

Rules (each one fixes a way the naive saga goes wrong):

* A step's action is retried (``StepRetry``) on transient errors and on timeouts. Actions
  must be idempotent per saga id, so a retry, or a re-run after recovery, does not repeat
  the effect.
* ``StepRejected`` is a definitive business "no" (card declined, out of stock): the action
  did not happen, so it is **not** compensated; the steps before it are.
* A step that exhausted its retries on timeouts or errors has an **unknown** outcome: it
  is compensated too, which is safe because compensations are no-ops for actions that
  never happened (the participant checks its own records and remembers the cancellation,
  so a late action is refused).
* Compensations run in reverse order, each **retried until it succeeds** (exponential
  backoff, capped). Only after every one succeeded is the saga marked ``compensated``.

Log records: ``(saga_id, seq, type, step, detail, at)``, types ``started``,
``step_started``, ``step_succeeded``, ``step_rejected``, ``step_unknown``,
``compensation_started``, ``compensation_succeeded``, ``completed``, ``compensated``.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from workbook.core.clock import Clock, LoopClock
from workbook.core.errors import ParameterError, WorkbookError
from workbook.core.params import check_int, check_number
from workbook.messaging.errors import MessagingError

Action = Callable[[str, dict], Awaitable[Any]]


class StepRejected(MessagingError):
    """A participant's definitive refusal: the action did not and will not happen."""


class OrchestratorCrash(MessagingError, RuntimeError):
    """Injected: the orchestrator process dies right after writing a log record."""


class DuplicateSaga(WorkbookError, ValueError):
    """``start`` was given a saga id the log already holds: saga ids must be unique."""


@dataclass(frozen=True)
class StepRetry:
    """Attempts and exponential backoff (``delay * factor**n``, at most ``max_delay``).

    ``attempts=None`` retries without end (compensations: they must eventually succeed).
    """

    attempts: int | None = 3
    delay: float = 0.1
    factor: float = 2.0
    max_delay: float = 5.0

    def __post_init__(self):
        if self.attempts is not None:
            check_int("StepRetry.attempts", self.attempts, minimum=1)
        check_number("StepRetry.delay", self.delay, minimum=0)
        check_number("StepRetry.factor", self.factor, minimum=1)
        check_number("StepRetry.max_delay", self.max_delay, minimum=self.delay)

    def wait(self, attempt: int) -> float:
        return min(self.max_delay, self.delay * self.factor ** min(attempt - 1, 64))


def _check_action(field_name: str, fn) -> None:
    if not callable(fn):
        raise ParameterError(field_name, fn, "an async callable (saga_id, data) -> result")


@dataclass(frozen=True)
class Step:
    """One local transaction of a saga: its action, its compensation, a timeout per try and
    a retry policy. Checked when built, so a bad step fails before any saga runs."""

    name: str
    action: Action
    compensation: Action
    timeout: float = 1.0
    retry: StepRetry = StepRetry()

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise ParameterError("Step.name", self.name, "a non-empty str")
        _check_action(f"Step({self.name!r}).action", self.action)
        _check_action(f"Step({self.name!r}).compensation", self.compensation)
        check_number(f"Step({self.name!r}).timeout", self.timeout, minimum=0, min_exclusive=True)
        if self.timeout == float("inf"):
            raise ParameterError(f"Step({self.name!r}).timeout", self.timeout,
                                 "a finite number of seconds > 0 (an unanswered step must end as 'unknown')")
        if not isinstance(self.retry, StepRetry):
            raise ParameterError(f"Step({self.name!r}).retry", self.retry, "a StepRetry")
        if self.retry.attempts is None:
            raise ParameterError(f"Step({self.name!r}).retry.attempts", None,
                                 "an int >= 1 (an action retried forever never lets the saga compensate)")


@dataclass(frozen=True)
class SagaDefinition:
    name: str
    steps: tuple[Step, ...]
    compensation_retry: StepRetry = StepRetry(attempts=None, delay=0.1, max_delay=2.0)

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise ParameterError("SagaDefinition.name", self.name, "a non-empty str")
        object.__setattr__(self, "steps", tuple(self.steps))
        bad = [i for i, s in enumerate(self.steps) if not isinstance(s, Step)]
        if bad:
            raise ParameterError(f"SagaDefinition.steps[{bad[0]}]", self.steps[bad[0]], "a Step")
        names = [s.name for s in self.steps]
        if len(set(names)) != len(names) or not names:
            raise ParameterError("SagaDefinition.steps", names, "at least one step, with unique names")
        if not isinstance(self.compensation_retry, StepRetry):
            raise ParameterError("SagaDefinition.compensation_retry", self.compensation_retry, "a StepRetry")


LOG_SCHEMA = """
CREATE TABLE IF NOT EXISTS saga_log (
    saga_id TEXT NOT NULL,
    seq     INTEGER NOT NULL,
    type    TEXT NOT NULL,
    step    TEXT,
    detail  TEXT NOT NULL,
    at      REAL NOT NULL,
    PRIMARY KEY (saga_id, seq)
)
"""

FINAL = ("completed", "compensated")


class SagaLog:
    """Append-only records per saga, committed one by one (each write is durable before acting)."""

    def __init__(self, path: str = ":memory:"):
        self.path = path
        self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.conn.execute(LOG_SCHEMA)

    def append(self, saga_id: str, type_: str, step: str | None, detail: Any, at: float) -> None:
        seq = self.conn.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM saga_log WHERE saga_id = ?",
                                (saga_id,)).fetchone()[0]
        self.conn.execute("INSERT INTO saga_log VALUES (?,?,?,?,?,?)",
                          (saga_id, seq, type_, step, json.dumps(detail), at))

    def records(self, saga_id: str) -> list[tuple[str, str | None, Any, float]]:
        rows = self.conn.execute("SELECT type, step, detail, at FROM saga_log WHERE saga_id = ? ORDER BY seq",
                                 (saga_id,)).fetchall()
        return [(t, s, json.loads(d), at) for t, s, d, at in rows]

    def saga_ids(self) -> list[str]:
        return [r[0] for r in self.conn.execute("SELECT DISTINCT saga_id FROM saga_log ORDER BY saga_id")]

    def status(self, saga_id: str) -> str:
        recs = self.records(saga_id)
        if not recs:
            return "unknown"
        for t, *_ in reversed(recs):
            if t in FINAL:
                return t
        return "compensating" if any(t in ("step_rejected", "step_unknown") for t, *_ in recs) else "running"

    def unfinished(self) -> list[str]:
        return [s for s in self.saga_ids() if self.status(s) not in FINAL]

    def close(self) -> None:
        self.conn.close()


@dataclass
class SagaState:
    """What the log says about one saga (rebuilt by ``replay_saga``)."""

    data: dict = field(default_factory=dict)
    succeeded: list[str] = field(default_factory=list)
    failed: str | None = None
    failed_type: str | None = None
    compensated: set[str] = field(default_factory=set)
    final: str | None = None


def replay_saga(records) -> SagaState:
    st = SagaState()
    for t, step, detail, _ in records:
        if t == "started":
            st.data = detail
        elif t == "step_succeeded":
            st.succeeded.append(step)
            st.data = {**st.data, **(detail or {})}
        elif t in ("step_rejected", "step_unknown"):
            st.failed, st.failed_type = step, t
        elif t == "compensation_succeeded":
            st.compensated.add(step)
        elif t in FINAL:
            st.final = t
    return st


class Orchestrator:
    """Runs sagas of one definition, logging to ``log``; ``recover()`` resumes unfinished ones.

    ``trace`` receives ``(time, source, target, label)`` for every request and response,
    for sequence diagrams. ``crash`` (optional) is called after each log write with the
    record type and step; raising ``OrchestratorCrash`` there simulates a process death.
    """

    def __init__(self, definition: SagaDefinition, log: SagaLog, *, clock: Clock | None = None,
                 name: str = "orchestrator", crash: Callable[[str, str | None], None] | None = None,
                 trace: list | None = None):
        self.definition, self.log, self.name = definition, log, name
        self.clock = clock or LoopClock()
        self.crash = crash or (lambda type_, step: None)
        self.trace = trace if trace is not None else []
        self._steps = {s.name: s for s in definition.steps}

    def _write(self, saga_id: str, type_: str, step: str | None = None, detail: Any = None) -> None:
        self.log.append(saga_id, type_, step, detail, self.clock.now())
        self.crash(type_, step)

    async def start(self, saga_id: str, data: dict) -> str:
        if not isinstance(saga_id, str) or not saga_id:
            raise ParameterError("saga_id", saga_id, "a non-empty str")
        if not isinstance(data, dict):
            raise ParameterError("data", data, "a dict (the saga's input, stored in the log as JSON)")
        if self.log.records(saga_id):
            raise DuplicateSaga(f"saga {saga_id!r} already exists in the log (status {self.log.status(saga_id)!r}); "
                             "saga ids must be unique")
        self._write(saga_id, "started", None, data)
        return await self._drive(saga_id)

    async def recover(self) -> dict[str, str]:
        """Resume every unfinished saga in the log; return their final statuses."""
        return {sid: await self._drive(sid) for sid in self.log.unfinished()}

    async def _drive(self, saga_id: str) -> str:
        st = replay_saga(self.log.records(saga_id))
        if st.final:
            return st.final
        if st.failed is None:
            for step in self.definition.steps:
                if step.name in st.succeeded:
                    continue
                outcome, detail = await self._attempt(saga_id, step, st.data)
                if outcome == "step_succeeded":
                    st.succeeded.append(step.name)
                    st.data = {**st.data, **(detail or {})}
                    continue
                st.failed, st.failed_type = step.name, outcome
                break
            else:
                self._write(saga_id, "completed")
                return "completed"
        await self._compensate(saga_id, st)
        self._write(saga_id, "compensated")
        return "compensated"

    async def _attempt(self, saga_id: str, step: Step, data: dict) -> tuple[str, Any]:
        self._write(saga_id, "step_started", step.name)
        attempt, reason = 0, ""
        while step.retry.attempts is None or attempt < step.retry.attempts:
            attempt += 1
            try:
                result = await self._call(step.name, step.action, saga_id, data, step.timeout, step.name)
            except StepRejected as exc:
                self._write(saga_id, "step_rejected", step.name, {"reason": str(exc), "attempts": attempt})
                return "step_rejected", None
            except asyncio.TimeoutError:
                reason = f"no answer within {step.timeout:g}s"
            except Exception as exc:  # noqa: BLE001 - transient: retried
                reason = f"{type(exc).__name__}: {exc}"
            else:
                self._write(saga_id, "step_succeeded", step.name, result if isinstance(result, dict) else {})
                return "step_succeeded", result
            await self.clock.sleep(step.retry.wait(attempt))
        self._write(saga_id, "step_unknown", step.name, {"reason": reason, "attempts": attempt})
        return "step_unknown", None

    async def _compensate(self, saga_id: str, st: SagaState) -> None:
        todo = list(st.succeeded)
        if st.failed_type == "step_unknown":
            todo.append(st.failed)  # it may have happened: undo it (a no-op if it did not)
        retry = self.definition.compensation_retry
        for name in reversed(todo):
            if name in st.compensated:
                continue
            step = self._steps[name]
            self._write(saga_id, "compensation_started", name)
            attempt = 0
            while True:
                attempt += 1
                try:
                    await self._call(name, step.compensation, saga_id, st.data, step.timeout, f"undo {name}")
                    break
                except Exception:  # noqa: BLE001 - compensations are retried until they succeed
                    if retry.attempts is not None and attempt >= retry.attempts:
                        raise
                    await self.clock.sleep(retry.wait(attempt))
            self._write(saga_id, "compensation_succeeded", name, {"attempts": attempt})
            st.compensated.add(name)

    async def _call(self, target: str, fn: Action, saga_id: str, data: dict, timeout: float, label: str):
        self.trace.append((self.clock.now(), self.name, target, f"{label} ({saga_id})"))
        try:
            result = await asyncio.wait_for(fn(saga_id, data), timeout)
        except asyncio.TimeoutError:
            self.trace.append((self.clock.now(), target, self.name, f"timeout ({saga_id})"))
            raise
        except Exception as exc:
            self.trace.append((self.clock.now(), target, self.name, f"{type(exc).__name__} ({saga_id})"))
            raise
        self.trace.append((self.clock.now(), target, self.name, f"ok ({saga_id})"))
        return result
