"""The crash experiment: what each delivery guarantee loses or duplicates when consumers die.

A stream of payments flows into a ledger (SQLite) through a consumer group whose members
crash at random points. A supervisor restarts a crashed member **as a new process
would**: a new consumer name, a **fresh handler object** (whatever it kept in memory is
gone) and a fresh connection handle to the **same database** (what it committed stays;
what it had not committed was rolled back). Counted at the end: payments whose effect
never happened (**lost**, not counting dead letters) and extra applications of one
payment (**duplicated**).

Crash points: on receipt, inside the handler's transaction (``inside()``), after the
handler returned (before the ack under at-least-once) and, with ``statement_crashes``,
just before any one database statement of the handler: so a handler that commits its
effect and its bookkeeping separately meets a crash between the two. With
``apply_failure_rate`` the ledger write itself sometimes fails (``LedgerUnavailable``,
before writing anything): a handler must let that error through so the message is
nacked and redelivered; swallowing it acknowledges a payment that was never booked.

Payments are ``{"account": ..., "amount": 5}``: many payments have equal payloads and are
still different payments (different message ids).
"""

from __future__ import annotations

import asyncio
import sqlite3
from dataclasses import asdict, dataclass, field

from workbook.core.errors import WorkbookError
from workbook.core.params import check_int, check_number
from workbook.core.seeds import stream
from workbook.core.virtual_time import run_virtual
from workbook.messaging.broker import Broker, BrokerConfig
from workbook.messaging.consumer import CRASH_STAGES, Consumer, DeliveryMode
from workbook.messaging.errors import ConsumerCrash
from workbook.messaging.idempotent import IdempotentHandler, PlainHandler, connect
from workbook.messaging.memory import InMemoryBroker

EXPERIMENT_CONFIG = BrokerConfig(visibility_timeout=5.0, session_timeout=2.0, max_deliveries=10, max_in_flight=1)
STATEMENT_CRASH = "statement"
MAX_STATEMENT = 6
"""With ``statement_crashes``, an armed crash strikes before statement 1..MAX_STATEMENT of one
``handle`` call (no crash if the handler runs fewer)."""


class LedgerUnavailable(WorkbookError, ConnectionError):
    """Injected: the ledger write failed before writing anything; a retry may succeed."""


class ProcessConnection:
    """One consumer process's handle on the shared ledger database.

    ``kill()`` is the process dying: an open transaction is rolled back (as SQLite does
    when the process holding it dies) and every later call raises ``ConsumerCrash``, so
    nothing a dead process does reaches the database, even if its code swallowed the
    crash. ``crash_before`` (set per delivery) kills it just before that statement
    (counted from 1 since ``reset()``). Everything else is delegated to the connection.
    """

    def __init__(self, conn: sqlite3.Connection, name: str, on_crash=None):
        self._conn, self.name, self.on_crash = conn, name, on_crash
        self.dead = False
        self.statements = 0
        self.crash_before: int | None = None
        self.crashed_at: str | None = None

    def reset(self, crash_before: int | None = None) -> None:
        self.statements, self.crash_before = 0, crash_before

    def kill(self) -> None:
        if not self.dead:
            self.dead = True
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")

    def _step(self, what: str) -> None:
        if self.dead:
            raise ConsumerCrash(f"{self.name} is dead: its {what} never reaches the database")
        self.statements += 1
        if self.crash_before is not None and self.statements == self.crash_before:
            self.crash_before = None
            self.crashed_at = f"before statement {self.statements} ({what})"
            self.kill()
            if self.on_crash is not None:
                self.on_crash()
            raise ConsumerCrash(f"{self.name} died {self.crashed_at}")

    @staticmethod
    def _verb(sql) -> str:
        return str(sql).split(None, 1)[0].upper() if str(sql).strip() else "statement"

    def execute(self, sql, parameters=()):
        self._step(self._verb(sql))
        return self._conn.execute(sql, parameters)

    def executemany(self, sql, seq):
        self._step(self._verb(sql))
        return self._conn.executemany(sql, seq)

    def executescript(self, script):
        self._step("script")
        return self._conn.executescript(script)

    def commit(self):
        self._step("COMMIT")
        return self._conn.commit()

    def rollback(self):
        if self.dead:
            return None
        return self._conn.rollback()

    def cursor(self):
        return _ProcessCursor(self)

    def close(self):
        """A process closing its handle leaves the shared database open for the others."""

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.commit()
        else:
            self.rollback()
        return False

    def __getattr__(self, name):
        return getattr(self._conn, name)


class _ProcessCursor:
    def __init__(self, process: ProcessConnection):
        self._process, self._cursor = process, process._conn.cursor()

    def execute(self, sql, parameters=()):
        self._process._step(ProcessConnection._verb(sql))
        self._cursor.execute(sql, parameters)
        return self

    def executemany(self, sql, seq):
        self._process._step(ProcessConnection._verb(sql))
        self._cursor.executemany(sql, seq)
        return self

    def __iter__(self):
        return iter(self._cursor)

    def __getattr__(self, name):
        return getattr(self._cursor, name)


@dataclass
class CrashResult:
    mode: str
    messages: int
    consumers: int
    crash_rate: float
    lost: int
    duplicated: int
    applied: int
    crashes: int
    crashes_by_stage: dict[str, int] = field(default_factory=dict)
    dead_lettered: int = 0
    deliveries: int = 0
    duration: float = 0.0
    ledger_failures: int = 0
    restarts: int = 0

    def as_dict(self) -> dict:
        return asdict(self)


LEDGER_SCHEMA = "CREATE TABLE IF NOT EXISTS ledger (message_id TEXT NOT NULL, amount INTEGER NOT NULL)"


def ledger_apply(conn, message) -> None:
    """The effect: one ledger row per application of a payment."""
    conn.execute("INSERT INTO ledger(message_id, amount) VALUES (?, ?)", (message.id, message.payload["amount"]))


def payment(i: int) -> dict:
    """Payment ``i``: equal payloads recur (every payment is 5 from one of 97 accounts)."""
    return {"account": f"acct-{i % 97}", "amount": 5}


async def crash_run(broker: Broker, mode, *, messages: int = 1000, consumers: int = 3, crash_rate: float = 0.02,
                    partitions: int = 4, seed: int = 0, service_time: float = 0.001, restart_delay: float = 0.5,
                    topic: str = "payments", group: str = "ledger", check_every: float = 0.5,
                    db_path: str = ":memory:", max_duration: float = 1e6, handler_factory=None,
                    statement_crashes: bool = False, apply_failure_rate: float = 0.0) -> CrashResult:
    """Publish ``messages`` payments and consume them while consumers crash; count the damage.

    ``handler_factory(conn, apply, name=group)`` builds one process's handler (default:
    ``IdempotentHandler`` for effectively-once, ``PlainHandler`` otherwise); it is called
    again for every restarted process. See the module docstring for the crash points.
    """
    mode = DeliveryMode.parse(mode)
    check_int("messages", messages, minimum=1)
    check_int("consumers", consumers, minimum=1)
    check_number("crash_rate", crash_rate, minimum=0, maximum=0.5)
    check_number("apply_failure_rate", apply_failure_rate, minimum=0, maximum=0.5)
    check_int("seed", seed, minimum=0)
    crash_rng, failure_rng = stream(seed, "consumer-crashes"), stream(seed, "ledger-failures")
    stages = CRASH_STAGES + ((STATEMENT_CRASH,) if statement_crashes else ())
    loop = asyncio.get_running_loop()
    start = loop.time()
    conn = connect(db_path)
    conn.execute(LEDGER_SCHEMA)
    factory = handler_factory or (IdempotentHandler if mode is DeliveryMode.EFFECTIVELY_ONCE else PlainHandler)
    ledger_failures = [0]

    def apply(c, message):
        if apply_failure_rate and failure_rng.random() < apply_failure_rate:
            ledger_failures[0] += 1
            raise LedgerUnavailable(f"ledger briefly unavailable (payment {message.id} not booked)")
        ledger_apply(c, message)

    await broker.create_topic(topic, partitions)
    await broker.create_group(topic, group, exist_ok=True)
    ids = []
    for i in range(messages):
        m = await broker.publish(topic, payment(i), key=f"acct-{i % 97}")
        ids.append(m.id)

    crashes = dict.fromkeys(stages, 0)
    deliveries = [0]

    def fault_for(process: ProcessConnection):
        armed = [None]

        def fault(stage, message):
            if process.dead:  # the handler swallowed its own death: the process is gone all the same
                raise ConsumerCrash(f"{process.name} died {process.crashed_at or 'earlier'}")
            if stage == "received":
                deliveries[0] += 1
                armed[0] = crash_rng.choice(stages) if crash_rng.random() < crash_rate else None
                before = crash_rng.randint(1, MAX_STATEMENT) if armed[0] == STATEMENT_CRASH else None
                process.reset(before)
            if armed[0] == stage:
                armed[0] = None
                crashes[stage] += 1
                process.crashed_at = f"at {stage} of message {message.id}"
                process.kill()
                raise ConsumerCrash(f"consumer crashed at {stage} of message {message.id}")

        return fault

    def count_statement_crash():
        crashes[STATEMENT_CRASH] += 1

    stop = asyncio.Event()
    generation = [0]
    tasks: set[asyncio.Task] = set()

    def spawn(slot: int):
        generation[0] += 1
        name = f"c{slot}.{generation[0]}"
        process = ProcessConnection(conn, name, on_crash=count_statement_crash)  # fresh handler, same database
        handler = factory(process, apply, name=group)
        c = Consumer(broker, topic, group, name, handler, mode, batch=10, poll_timeout=0.5,
                     fault=fault_for(process), service_time=lambda: service_time)

        async def life():
            await c.run(stop)
            if (c.crashed or process.dead) and not stop.is_set():
                await asyncio.sleep(restart_delay)
                if not stop.is_set():
                    spawn(slot)

        t = asyncio.ensure_future(life())
        tasks.add(t)
        t.add_done_callback(tasks.discard)

    for slot in range(consumers):
        spawn(slot)
    while loop.time() - start < max_duration:
        await asyncio.sleep(check_every)
        if await broker.lag(topic, group) == 0 and await broker.pending_count(topic, group) == 0:
            break
    stop.set()
    while tasks:
        await asyncio.gather(*list(tasks), return_exceptions=True)
    counts = dict(conn.execute("SELECT message_id, COUNT(*) FROM ledger GROUP BY message_id").fetchall())
    dead = {m.headers.get("x-original-id") for m in await broker.dead_letters(topic)}
    lost = sum(1 for i in ids if counts.get(i, 0) == 0 and i not in dead)
    duplicated = sum(n - 1 for n in counts.values() if n > 1)
    conn.close()
    return CrashResult(mode.value, messages, consumers, crash_rate, lost, duplicated, sum(counts.values()),
                       sum(crashes.values()), crashes, len(dead), deliveries[0], round(loop.time() - start, 6),
                       ledger_failures[0], generation[0] - consumers)


def crash_experiment(mode, *, messages: int = 1000, consumers: int = 3, crash_rate: float = 0.02,
                     partitions: int = 4, seed: int = 0, config: BrokerConfig | None = None,
                     handler_factory=None, statement_crashes: bool = False,
                     apply_failure_rate: float = 0.0) -> CrashResult:
    """``crash_run`` on a fresh in-memory broker in virtual time."""
    return run_virtual(crash_run(InMemoryBroker(config or EXPERIMENT_CONFIG), mode, messages=messages,
                                 consumers=consumers, crash_rate=crash_rate, partitions=partitions, seed=seed,
                                 handler_factory=handler_factory, statement_crashes=statement_crashes,
                                 apply_failure_rate=apply_failure_rate))


def compare_modes(**kwargs) -> list[CrashResult]:
    """The crash experiment once per delivery mode, with the same seed and crash rate."""
    return [crash_experiment(m, **kwargs) for m in DeliveryMode]
