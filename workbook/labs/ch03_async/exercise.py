"""The chapter's exercise checker: is the learner's ledger handler effectively-once?

``check_effectively_once(MyHandler)`` returns a ``workbook.core.verdict.Verdict``. The
handler is built as ``MyHandler(conn, apply, name=...)``, one object per consumer
*process*, and called as ``handle(message, inside=...)``. It is judged by what ends up in
the ledger, never by how it is written, in five targeted probes and one random run:

1. **restart**: a payment is applied, the process dies before the ack, a *new* process
   (fresh handler object, same database) receives it again: it must not be applied twice.
   Fails: no deduplication; seen ids kept in the handler object.
2. **equal payloads**: two payments with identical payloads and different message ids are
   two payments. Fails: deduplication by payload (or by key) instead of message id.
3. **a crash at every point**: for each database statement the handler runs, the process
   dies just before it (its open transaction rolled back), then a new process gets the
   redelivery; also a crash at ``inside()``. The payment must end applied exactly once.
   Fails: the message id recorded in its own commit, before the effect (a crash between
   loses the payment) or after it (a crash between applies it twice).
4. **a failed write**: the ledger write raises; the handler must let the error through
   (the consumer nacks and the broker redelivers). Fails: swallowing errors (the consumer
   acknowledges a payment that was never booked).
5. **no ids in memory**: no set, dict or list reachable from the handler, its class or
   the module globals its methods use holds message ids, and it opens no database of its
   own. Fails: class-level or global "seen" sets, which survive the probes' fresh objects
   only because the probes run in one Python process; a real restart empties them.
6. **the crash experiment**: ``crash_experiment`` at-least-once with the handler, crashes
   at random points (statements included), failed ledger writes, restarts as new
   processes: nothing lost, nothing duplicated.
"""

from __future__ import annotations

import itertools
import sqlite3
from collections import deque

from workbook.core.verdict import Check, Verdict
from workbook.labs.ch03_async.delivery import (LEDGER_SCHEMA, LedgerUnavailable, ProcessConnection, crash_experiment,
                                               ledger_apply, payment)
from workbook.messaging.errors import ConsumerCrash
from workbook.messaging.idempotent import connect
from workbook.messaging.message import Message

SUBJECT = "effectively-once ledger consumer"
PROBE_PREFIX = "probe-"
HINTS = {
    "restart": "a redelivery can reach a new process: the handler object (and anything in it) is new, only the "
               "database remains; record the message id in the database",
    "payloads": "two payments can carry the same payload; deduplicate by message id",
    "crash": "record the message id in the same transaction as the effect (one commit for both), and skip the "
             "effect when the id is already recorded",
    "failure": "do not catch the ledger's errors: a handler that raises makes the consumer nack, so the broker "
               "redelivers; a handler that returns makes it ack",
    "memory": "keep no seen ids in memory, not even as a cache: a restarted process starts empty",
    "experiment": "record the message id in the same transaction as the effect, and skip the effect when the id is "
                  "already there",
}


_CALLS = itertools.count(1)


class _Bench:
    """A ledger database and the processes that share it, for the probes.

    Message ids are unique across probes and across calls of the checker, so state a
    handler keeps outside its objects (a class attribute, a global) cannot make one probe
    pass or fail because of another.
    """

    def __init__(self, factory, ids):
        self.factory, self._ids = factory, ids
        self.conn = connect()
        self.conn.execute(LEDGER_SCHEMA)
        self.processes = 0
        self.ids: list[str] = []
        self.handlers: list = []
        self.connections: list = [self.conn]

    def message(self, payload=None) -> Message:
        n = len(self.ids) + 1
        m = Message("payments", payload if payload is not None else payment(n), id=next(self._ids),
                    key=f"acct-{n % 97}", partition=0, offset=n - 1)
        self.ids.append(m.id)
        return m

    def process(self, apply=ledger_apply):
        self.processes += 1
        proc = ProcessConnection(self.conn, f"process-{self.processes}")
        self.connections.append(proc)
        handler = self.factory(proc, apply, name="ledger")
        self.handlers.append(handler)
        return proc, handler

    def rows(self, message_id: str) -> int:
        return self.conn.execute("SELECT COUNT(*) FROM ledger WHERE message_id = ?", (message_id,)).fetchone()[0]


def _deliver(proc: ProcessConnection, handler, message, *, crash_before=None, inside=None) -> str:
    """Hand ``message`` to ``handler``: 'returned', 'crashed' (the process died) or 'raised'."""
    proc.reset(crash_before)
    try:
        handler.handle(message, inside=inside or (lambda: None))
    except ConsumerCrash:
        proc.kill()
        return "crashed"
    except Exception:  # noqa: BLE001 - a handler error: the consumer would nack
        return "crashed" if proc.dead else "raised"
    return "crashed" if proc.dead else "returned"


def _times(n: int) -> str:
    return {0: "lost (applied 0 times)", 1: "applied once"}.get(n, f"applied {n} times")


def probe_restart(factory, ids) -> Check:
    bench = _Bench(factory, ids)
    m = bench.message()
    proc, handler = bench.process()
    first = _deliver(proc, handler, m)
    if first != "returned":
        return Check("restart: a redelivery to a new process is skipped", False,
                     f"the first delivery of a payment did not return ({first})")
    proc.kill()  # the process dies after the commit, before the ack
    proc2, handler2 = bench.process()
    again = _deliver(proc2, handler2, m)
    n = bench.rows(m.id)
    return Check("restart: a redelivery to a new process is skipped", n == 1 and again == "returned",
                 f"payment delivered, process died before the ack, redelivered to a new process: {_times(n)}"
                 + ("" if again == "returned" else f" (the redelivery {again})"))


def probe_equal_payloads(factory, ids) -> Check:
    bench = _Bench(factory, ids)
    proc, handler = bench.process()
    same = {"account": "acct-7", "amount": 5}
    a, b = bench.message(dict(same)), bench.message(dict(same))
    outcomes = [_deliver(proc, handler, m) for m in (a, b)]
    counts = [bench.rows(a.id), bench.rows(b.id)]
    return Check("equal payloads: two payments, two effects", counts == [1, 1],
                 f"two payments of 5 from acct-7 (two message ids): {counts[0]} and {counts[1]} ledger rows"
                 + ("" if outcomes == ["returned", "returned"] else f" ({'/'.join(outcomes)})"))


def probe_crash_everywhere(factory, ids) -> Check:
    bench = _Bench(factory, ids)
    proc, handler = bench.process()
    clean = bench.message()
    _deliver(proc, handler, clean)
    statements = proc.statements
    points = [("before statement", k) for k in range(1, statements + 1)] + [("at inside()", None)]
    bad = []
    for what, k in points:
        m = bench.message()
        proc, handler = bench.process()

        def crash():
            raise ConsumerCrash("the process died inside the transaction")

        _deliver(proc, handler, m, crash_before=k, inside=crash if k is None else None)
        proc.kill()
        proc2, handler2 = bench.process()
        _deliver(proc2, handler2, m)
        n = bench.rows(m.id)
        if n != 1:
            verb = proc.crashed_at.split("(")[-1].rstrip(")") if proc.crashed_at else ""
            bad.append(f"crash {what}{f' {k} ({verb})' if k else ''}: {_times(n)}")
    return Check("a crash at every point, then a redelivery: applied exactly once", not bad and statements > 0,
                 f"{len(points)} crash points ({statements} statements per payment + inside()): "
                 + ("all applied once" if not bad else "; ".join(bad)))


def probe_failed_write(factory, ids) -> Check:
    bench = _Bench(factory, ids)
    failed = []

    def flaky(conn, message):
        if message.id not in failed:
            failed.append(message.id)
            raise LedgerUnavailable(f"ledger briefly unavailable (payment {message.id} not booked)")
        ledger_apply(conn, message)

    proc, handler = bench.process(flaky)
    m = bench.message()
    first = _deliver(proc, handler, m)
    if first == "returned":
        return Check("a failed ledger write is not acknowledged", False,
                     "the ledger write raised LedgerUnavailable and handle() returned normally: the consumer acks "
                     f"and the payment is {_times(bench.rows(m.id))}")
    if first == "crashed":  # the handler killed its own connection somehow: still a redelivery
        proc, handler = bench.process(flaky)
    second = _deliver(proc, handler, m)
    n = bench.rows(m.id)
    return Check("a failed ledger write is not acknowledged", n == 1 and second == "returned",
                 f"the write failed, handle() raised, the redelivery: {_times(n)}")


_CONTAINERS = (set, frozenset, list, tuple, deque, dict)


def _holds_ids(value, depth: int = 0) -> bool:
    """Whether ``value`` is, or (nested up to 3 levels) contains, a probe's message id."""
    if isinstance(value, str):
        return value.startswith(PROBE_PREFIX)
    if isinstance(value, Message):
        return value.id.startswith(PROBE_PREFIX)
    if depth >= 3 or not isinstance(value, _CONTAINERS):
        return False
    items = list(value.keys()) + list(value.values()) if isinstance(value, dict) else list(value)
    return any(_holds_ids(v, depth + 1) for v in items[:10_000])


def _reachable(handler):
    """(where, value) pairs: the handler's attributes, its classes' attributes, the globals and
    closure cells its methods use."""
    yield from ((f"self.{k}", v) for k, v in vars(handler).items()) if hasattr(handler, "__dict__") else ()
    for cls in type(handler).__mro__:
        if cls is object:
            continue
        for k, v in vars(cls).items():
            if k.startswith("__") and k.endswith("__"):
                continue
            yield f"{cls.__name__}.{k}", v
            fn = getattr(v, "__func__", v)
            code = getattr(fn, "__code__", None)
            if code is None:
                continue
            g = getattr(fn, "__globals__", {})
            for name in code.co_names:
                if name in g:
                    yield f"global {name}", g[name]
            for name, cell in zip(code.co_freevars, getattr(fn, "__closure__", None) or ()):
                try:
                    yield f"closure {name}", cell.cell_contents
                except ValueError:
                    continue


def probe_memory(handlers: list, given: list) -> Check:
    """Inspect the handlers the other probes built (after they ran) for ids kept in memory."""
    found = []
    for handler in handlers:
        for where, value in _reachable(handler):
            if isinstance(value, sqlite3.Connection) and not any(value is c for c in given):
                found.append(f"{where} is a database connection of its own")
            elif _holds_ids(value):
                found.append(f"{where} holds message ids")
    found = list(dict.fromkeys(found))
    return Check("no message ids kept in memory", not found,
                 "nothing found" if not found else "; ".join(found[:3]) + ": a restarted process starts with it empty")


def check_effectively_once(handler_factory, *, messages: int = 400, crash_rate: float = 0.05,
                           apply_failure_rate: float = 0.05, seed: int = 0) -> Verdict:
    """Judge ``handler_factory`` (a class or function ``(conn, apply, name=...) -> handler``)."""
    if not callable(handler_factory):
        return Verdict.rejected(SUBJECT, f"expected a handler class, got {type(handler_factory).__name__}")
    handlers: list = []
    connections: list = []

    def recording(conn, apply, name="handler"):
        h = handler_factory(conn, apply, name=name)
        if not callable(getattr(h, "handle", None)):
            raise TypeError(f"{type(h).__name__} has no handle(message, inside=None) method")
        handlers.append(h)
        connections.append(conn)
        return h

    checks = []
    call = next(_CALLS)
    ids = (f"{PROBE_PREFIX}{call}-{n}" for n in itertools.count(1))
    keys = ["restart", "payloads", "crash", "failure"]
    for probe in (probe_restart, probe_equal_payloads, probe_crash_everywhere, probe_failed_write):
        try:
            checks.append(probe(recording, ids))
        except Exception as exc:  # noqa: BLE001 - the learner's code: report, do not raise
            return Verdict.rejected(SUBJECT, f"the handler raised {type(exc).__name__}: {exc}",
                                    hint="handle(message, inside=None) must apply the payment with apply(conn, "
                                         "message) and call inside() before committing")
    checks.append(probe_memory(handlers, [*connections, *(getattr(c, "_conn", c) for c in connections)]))
    keys.append("memory")
    try:
        r = crash_experiment("at-least-once", messages=messages, crash_rate=crash_rate, seed=seed,
                             handler_factory=handler_factory, statement_crashes=True,
                             apply_failure_rate=apply_failure_rate)
    except Exception as exc:  # noqa: BLE001
        return Verdict.rejected(SUBJECT, f"the crash experiment raised {type(exc).__name__}: {exc}")
    checks.append(Check("crash experiment: nothing lost, nothing duplicated", r.lost == 0 and r.duplicated == 0,
                        f"{r.messages} payments, {r.crashes} crashes ({r.crashes_by_stage.get('statement', 0)} "
                        f"before a statement), {r.ledger_failures} failed writes, {r.restarts} restarts -> "
                        f"{r.lost} lost, {r.duplicated} duplicated"))
    keys.append("experiment")
    first_bad = next((k for k, c in zip(keys, checks) if not c.passed), None)
    return Verdict(SUBJECT, tuple(checks),
                   {"messages": r.messages, "crashes": r.crashes, "lost": r.lost, "duplicated": r.duplicated,
                    "ledger_failures": r.ledger_failures, "restarts": r.restarts},
                   HINTS[first_bad] if first_bad else "")
