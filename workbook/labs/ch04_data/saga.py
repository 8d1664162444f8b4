"""The same business transaction as a saga (chapter 3's orchestrator), on the same faults as 2PC.

``saga_run(fault)`` places one order as an orchestrated saga over three services
(inventory, payments, orders), each step a local transaction of one round trip (the
same 10 ms per message as the 2PC runs): ``fault`` is ``"none"``, ``"payment refuses"``
or ``"coordinator down"`` (the orchestrator dies after its first step and is restarted
``downtime`` s later; it recovers from its log). It measures the client's latency, the
time any lock is held across services (none: each step commits at once), and the
**exposure**: how long other transactions can see the intermediate state.

Two anomalies a saga allows, each with its countermeasure (Richardson, ch. 4;
Garcia-Molina and Salem 1987): ``lost_sale`` (saga B reads the stock that saga A
reserved and later releases: B is refused although the book ends up in stock; a
*semantic lock* marks A's reservation pending and makes B wait for it) and
``lost_update`` (A's compensation restores the balance it read, erasing a deposit made
meanwhile; *commutative updates* add the amount back; *re-reading the value* with a
version check refuses the stale write and recomputes).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from workbook.core.clock import ManualClock
from workbook.core.errors import WorkbookError
from workbook.core.virtual_time import run_virtual
from workbook.sagas import Orchestrator, OrchestratorCrash, SagaDefinition, SagaLog, Step, StepRejected, StepRetry
from workbook.storage import Repository, StaleVersion

ROUND_TRIP = 0.02
FAULTS = ("none", "payment refuses", "coordinator down")


@dataclass
class SagaResult:
    fault: str
    status: str
    latency: float
    lock_time: float
    exposure: float
    stock: int
    balance: int


def saga_run(fault: str = "none", *, downtime: float = 2.0, price: int = 1800) -> SagaResult:
    if fault not in FAULTS:
        raise ValueError(f"fault must be one of {FAULTS}, got {fault!r}")
    store = {"stock": 10, "balance": 10_000, "orders": 0}
    commits: list[float] = []

    async def local(change: dict, *, refuse: str = ""):
        await asyncio.sleep(ROUND_TRIP)
        if refuse:
            raise StepRejected(refuse)
        for key, delta in change.items():
            store[key] += delta
        commits.append(asyncio.get_running_loop().time())
        return {}

    def pair(change):
        return (lambda sid, data: local(change),
                lambda sid, data: local({k: -v for k, v in change.items()}))

    refuse = "card declined" if fault == "payment refuses" else ""
    inv, pay, orders = pair({"stock": -1}), pair({"balance": -price}), pair({"orders": 1})
    steps = (Step("inventory", *inv), Step("payments", lambda sid, data: local({"balance": -price}, refuse=refuse),
                                           pay[1]), Step("orders", *orders))
    definition = SagaDefinition("place-order", steps)
    crashed = []

    def crash(type_, step):
        if fault == "coordinator down" and type_ == "step_succeeded" and step == "inventory" and not crashed:
            crashed.append(step)
            raise OrchestratorCrash("orchestrator died after the inventory step")

    async def main():
        log = SagaLog()
        try:
            status = await Orchestrator(definition, log, crash=crash).start("order-1", {})
        except OrchestratorCrash:
            await asyncio.sleep(downtime)
            status = (await Orchestrator(definition, log, crash=crash).recover())["order-1"]
        return status, asyncio.get_running_loop().time()

    status, end = run_virtual(main())
    exposure = commits[-1] - commits[0] if len(commits) > 1 else 0.0
    return SagaResult(fault, status, round(end, 6), 0.0, round(exposure, 6), store["stock"], store["balance"])


class TryAgain(WorkbookError, RuntimeError):   # a transient error: the orchestrator retries the step
    """The item is held by a pending reservation: try again later."""


@dataclass
class LostSale:
    countermeasure: str
    a_status: str
    b_status: str
    final_stock: int
    lost_sale: bool
    b_attempts: int


def lost_sale(countermeasure: str = "none", *, b_starts: float = 0.03) -> LostSale:
    """One book in stock. Saga A reserves it; A's payment is declined, so A releases it. Saga B (another
    customer) starts ``b_starts`` s after A. ``countermeasure``: ``"none"`` or ``"semantic lock"``."""
    if countermeasure not in ("none", "semantic lock"):
        raise ValueError(f"countermeasure must be 'none' or 'semantic lock', got {countermeasure!r}")
    state = {"stock": 1, "pending": set(), "b_attempts": 0}
    lock = countermeasure == "semantic lock"

    async def reserve(sid, data):
        await asyncio.sleep(ROUND_TRIP)
        if sid == "B":
            state["b_attempts"] += 1
        if state["stock"] < 1:
            if lock and state["pending"] - {sid}:
                raise TryAgain(f"the book is held by the pending saga(s) {sorted(state['pending'] - {sid})}")
            raise StepRejected("out of stock")
        state["stock"] -= 1
        if lock:
            state["pending"].add(sid)             # the semantic lock: a reservation marked pending
        return {}

    async def release(sid, data):
        await asyncio.sleep(ROUND_TRIP)
        state["stock"] += 1
        state["pending"].discard(sid)

    async def pay(sid, data):
        await asyncio.sleep(ROUND_TRIP)
        if sid == "A":
            raise StepRejected("card declined")
        return {}

    async def confirm(sid, data):                 # the last step makes the reservation final
        await asyncio.sleep(ROUND_TRIP)
        state["pending"].discard(sid)
        return {}

    async def nothing(sid, data):
        await asyncio.sleep(ROUND_TRIP)

    retry = StepRetry(attempts=10, delay=0.05, factor=1.0, max_delay=0.05)
    definition = SagaDefinition("place-order", (Step("inventory", reserve, release, retry=retry),
                                                Step("payments", pay, nothing), Step("orders", confirm, nothing)))

    async def main():
        log = SagaLog()

        async def start(sid, delay):
            await asyncio.sleep(delay)
            return await Orchestrator(definition, log).start(sid, {})
        return await asyncio.gather(start("A", 0.0), start("B", b_starts))

    a, b = run_virtual(main())
    return LostSale(countermeasure, a, b, state["stock"], b != "completed" and state["stock"] > 0,
                    state["b_attempts"])


@dataclass
class LostUpdate:
    compensation: str
    final_balance: int
    expected: int
    stale_writes_refused: int


def lost_update(compensation: str = "overwrite", *, price: int = 1800, deposit: int = 500) -> LostUpdate:
    """Saga A debits ``price``; a deposit lands; A's shipping step refuses, so A compensates the debit.

    ``compensation``: ``"overwrite"`` (restore the balance A read before its debit), ``"commutative"`` (add the
    amount back), ``"reread"`` (write with the version it read; on ``StaleVersion`` re-read and recompute).
    """
    if compensation not in ("overwrite", "commutative", "reread"):
        raise ValueError(f"compensation must be 'overwrite', 'commutative' or 'reread', got {compensation!r}")
    payments = Repository(service="payments", clock=ManualClock())
    payments.save("c01", {"balance": 10_000}, expected_version=0)
    refused = 0

    async def debit(sid, data):
        await asyncio.sleep(ROUND_TRIP)
        rec = payments.get("c01")
        new = payments.save("c01", {"balance": rec.data["balance"] - price}, expected_version=rec.version)
        return {"before": rec.data["balance"], "version": new.version}

    async def credit(sid, data):
        nonlocal refused
        await asyncio.sleep(ROUND_TRIP)
        rec = payments.get("c01")
        if compensation == "overwrite":
            payments.save("c01", {"balance": data["before"]}, expected_version=rec.version)
        elif compensation == "commutative":
            payments.save("c01", {"balance": rec.data["balance"] + price}, expected_version=rec.version)
        else:
            try:   # the value A wrote, at the version A wrote it: only if nobody changed it since
                payments.save("c01", {"balance": data["before"]}, expected_version=data["version"])
            except StaleVersion:
                refused += 1
                rec = payments.get("c01")
                payments.save("c01", {"balance": rec.data["balance"] + price}, expected_version=rec.version)

    async def ok(sid, data):
        await asyncio.sleep(ROUND_TRIP)
        return {}

    async def refuse(sid, data):
        await asyncio.sleep(ROUND_TRIP)
        raise StepRejected("address undeliverable")

    definition = SagaDefinition("place-order", (Step("inventory", ok, ok), Step("payments", debit, credit),
                                                Step("shipping", refuse, ok)))

    async def main():
        async def depositor():
            await asyncio.sleep(0.05)            # between A's debit (0.04) and its compensation (0.08)
            rec = payments.get("c01")
            payments.save("c01", {"balance": rec.data["balance"] + deposit}, expected_version=rec.version)
        await asyncio.gather(Orchestrator(definition, SagaLog()).start("A", {}), depositor())

    run_virtual(main())
    return LostUpdate(compensation, payments.get("c01").data["balance"], 10_000 + deposit, refused)
