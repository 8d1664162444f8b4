"""The order saga choreographed: no orchestrator, services react to each other's events.

All events of one order go to topic ``order-events`` with the order id as key, so they
stay in order in one partition. Each service is its own consumer group (every service
sees every event) and reacts only to the types it cares about:

    OrderPlaced        -> inventory reserves   -> InventoryReserved | InventoryRejected
    InventoryReserved  -> payment charges      -> PaymentCharged    | PaymentFailed
    PaymentCharged     -> shipping ships       -> ShipmentCreated   | ShipmentFailed
    ShipmentFailed     -> payment refunds      -> PaymentRefunded
    PaymentFailed / PaymentRefunded -> inventory releases -> InventoryReleased
    ShipmentCreated -> order completed;  InventoryRejected / InventoryReleased -> order compensated

Delivery is at-least-once (a transient failure is nacked and redelivered); the
participants' idempotency (``order_saga.SagaParticipant``) makes repeats harmless. The same
checker as for the orchestrated saga judges the outcome. What is lost without an
orchestrator is a single place that knows the saga's state: here it has to be pieced
together from the events (``trace``).
"""

from __future__ import annotations

import asyncio

from workbook.core.params import check_int
from workbook.core.seeds import stream
from workbook.core.virtual_time import run_virtual
from workbook.messaging.broker import BrokerConfig
from workbook.messaging.memory import InMemoryBroker
from workbook.sagas.order_flow import (STEPS, SagaRun, TransientError, check_run_parameters, check_sagas,
                                      make_participants, plan_faults)
from workbook.sagas.orchestrator import StepRejected

TOPIC = "order-events"
REACTIONS = {
    "inventory": {"OrderPlaced": ("act", "InventoryReserved", "InventoryRejected"),
                  "PaymentFailed": ("compensate", "InventoryReleased", None),
                  "PaymentRefunded": ("compensate", "InventoryReleased", None)},
    "payment": {"InventoryReserved": ("act", "PaymentCharged", "PaymentFailed"),
                "ShipmentFailed": ("compensate", "PaymentRefunded", None)},
    "shipping": {"PaymentCharged": ("act", "ShipmentCreated", "ShipmentFailed")},
}
FINAL_EVENTS = {"ShipmentCreated": "completed", "InventoryRejected": "compensated", "InventoryReleased": "compensated"}


def run_choreography(n_sagas: int = 20, *, fail_step: str | None = "payment", fail_rate: float = 0.3,
                     transient_rate: float = 0.1, seed: int = 0, partitions: int = 4) -> SagaRun:
    check_run_parameters(n_sagas, fail_step=fail_step, fail_rate=fail_rate, transient_rate=transient_rate, seed=seed)
    check_int("partitions", partitions, minimum=1)
    parts = make_participants(seed, transient_rate=transient_rate)
    ids = plan_faults(parts, n_sagas, fail_step=fail_step, fail_rate=fail_rate, slow_rate=0.0,
                      rng=stream(seed, "fault-plan"))  # the same plan as run_orchestrated's for one seed
    trace: list = []
    statuses = {sid: "running" for sid in ids}

    async def main():
        loop = asyncio.get_running_loop()
        broker = InMemoryBroker(BrokerConfig(visibility_timeout=2, session_timeout=5, max_deliveries=50))
        await broker.create_topic(TOPIC, partitions)
        for svc in (*STEPS, "orders"):
            await broker.create_group(TOPIC, svc)
        stop = asyncio.Event()

        async def emit(src, type_, sid):
            trace.append((loop.time(), src, TOPIC, f"{type_} ({sid})"))
            await broker.publish(TOPIC, {"type": type_, "order": sid}, key=sid)

        async def service(name):
            await broker.join(TOPIC, name, name)
            while not stop.is_set():
                for d in await broker.poll(TOPIC, name, name, timeout=1.0):
                    type_, sid = d.message.payload["type"], d.message.payload["order"]
                    if name == "orders":
                        if type_ in FINAL_EVENTS:
                            trace.append((loop.time(), TOPIC, name, f"{type_} ({sid})"))
                            statuses[sid] = FINAL_EVENTS[type_]
                        await broker.ack(d)
                        continue
                    reaction = REACTIONS[name].get(type_)
                    if reaction is None:
                        await broker.ack(d)
                        continue
                    trace.append((loop.time(), TOPIC, name, f"{type_} ({sid})"))
                    how, ok_event, no_event = reaction
                    try:
                        await getattr(parts[name], how)(sid, {})
                        await emit(name, ok_event, sid)
                    except StepRejected:
                        await emit(name, no_event, sid)
                    except TransientError as exc:
                        await broker.nack(d, str(exc))
                        continue
                    await broker.ack(d)
            await broker.leave(TOPIC, name, name)

        tasks = [asyncio.ensure_future(service(n)) for n in (*STEPS, "orders")]
        for sid in ids:
            await emit("orders", "OrderPlaced", sid)
        deadline = loop.time() + 600
        while any(s == "running" for s in statuses.values()) and loop.time() < deadline:
            await asyncio.sleep(0.5)
        stop.set()
        await asyncio.gather(*tasks)

    run_virtual(main())
    return SagaRun(dict(statuses), check_sagas(statuses, parts), parts, trace)
