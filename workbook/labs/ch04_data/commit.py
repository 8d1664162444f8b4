"""Two-phase commit done right and shown blocking, beside the article's.

The business transaction is placing an order across three services: inventory takes
one book out of stock, payments debits the customer, orders counts the order. ``run``
runs it (or several) under a crash plan with either protocol; ``crash_table`` crashes
each of the 20 crash points once, for both protocols, and judges each run with the
atomicity checker; ``blocking`` crashes the coordinator after it has collected the
votes and measures how long the participants hold their locks as its downtime grows.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from workbook.transactions import CrashPlan, check_atomicity, crash_points, run_transactions

PARTICIPANTS = ("inventory", "payments", "orders")
INITIAL = {"inventory": {"stock:book": 10}, "payments": {"balance:c01": 10_000}, "orders": {"orders:c01": 0}}


# the article's coordinator logs each failure it ignores; the notebook counts them instead
logging.getLogger("workbook.transactions.naive").disabled = True


def order_work(price: int = 1800) -> dict[str, dict[str, int]]:
    return {"inventory": {"stock:book": -1}, "payments": {"balance:c01": -price}, "orders": {"orders:c01": 1}}


def run(plan: dict | None = None, *, protocol: str = "2pc", transactions: int = 1, price: int = 1800, seed: int = 0,
        horizon: float = 60.0):
    txs = [(f"t{i + 1}", order_work(price)) for i in range(transactions)]
    return run_transactions(PARTICIPANTS, txs, protocol=protocol, plan=plan or {}, seed=seed, gap=0.05,
                            horizon=horizon, initial=INITIAL)


@dataclass
class CrashRow:
    point: str
    protocol: str
    fired: bool
    outcomes: str
    partial: int
    lost: bool
    max_lock_hold: float
    passed: bool
    misled: int    # transactions whose client heard "commit" but not every participant committed (or the reverse)


def crash_table(*, downtime: float = 2.0, transactions: int = 3, seed: int = 0) -> list[CrashRow]:
    """Every crash point, once, for each protocol: who committed what, judged by ``check_atomicity``."""
    rows = []
    for protocol in ("2pc", "naive"):
        for point in crash_points(PARTICIPANTS):
            result = run({point: downtime}, protocol=protocol, transactions=transactions, seed=seed)
            v = check_atomicity(result)
            lost = not next(c for c in v.checks if c.name == "no decision lost").passed
            outcomes = ",".join(result.outcomes[t] for t in sorted(result.outcomes))
            rows.append(CrashRow(point, protocol, bool(result.crashes), outcomes, v.numbers["partial"], lost,
                                 round(v.numbers["max_lock_hold"], 3), v.passed, v.numbers["misled"]))
    return rows


@dataclass
class BlockingRow:
    downtime: float
    max_lock_hold: float
    client_outcome: str
    final: dict


def blocking(downtimes, *, seed: int = 0) -> list[BlockingRow]:
    """The coordinator dies after collecting the (yes) votes, before logging a decision, for ``downtime`` s."""
    rows = []
    for d in downtimes:
        result = run({"coordinator.after_votes": d}, seed=seed, horizon=max(60.0, 3 * d))
        holds = result.system.lock_hold_times()
        rows.append(BlockingRow(d, round(max(t for per in holds.values() for t in per.values()), 3),
                                result.outcomes["t1"], result.system.states("t1")))
    return rows


def timeline_rows(result) -> list[tuple[float, str, str]]:
    """(time, actor, event) of a run's trace, for the timeline figure and its printout."""
    return [(t, actor, event + (f" {tx}" if tx and tx != "t1" else "")) for t, actor, event, tx in result.trace]


def lock_intervals(result) -> dict[str, tuple[float, float]]:
    """Per participant, when it held t1's locks (prepared at -> ended at, or now)."""
    out = {}
    now = result.system.clock.now()
    for name in PARTICIPANTS:
        row = result.system.disks[name].execute("SELECT prepared_at, ended_at FROM txns WHERE tx = 't1'").fetchone()
        if row and row[0] is not None:
            out[name] = (row[0], now if row[1] is None else row[1])
    return out


def plan_of(point: str, downtime: float) -> CrashPlan:
    return CrashPlan({point: downtime})
