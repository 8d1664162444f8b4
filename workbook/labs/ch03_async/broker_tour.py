"""Short runs of the broker that the notebook narrates step by step.

Each function runs in virtual time and returns plain data (or printable lines), so a
notebook cell is a call and a print, and a test can check the same numbers.

* ``redelivery_delays``: when is an unacknowledged message delivered again? A **live**
  member that holds it without acking gets it back after the visibility timeout; a member
  that **died** (no ack, no leave, no heartbeat) keeps it until its session timeout has
  expired and the group is rebalanced.
* ``poison_and_dead_letters``, ``replay_from_offset``, ``request_reply``: dead-letter
  topic, replay by seek, and request/reply with ``reply_to`` and ``correlation_id``.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from workbook.core.params import check_number
from workbook.core.virtual_time import run_virtual
from workbook.messaging.broker import BrokerConfig
from workbook.messaging.memory import InMemoryBroker
from workbook.messaging.request_reply import Requester, serve_requests


@dataclass(frozen=True)
class RedeliveryDelays:
    visibility_timeout: float
    session_timeout: float
    live_holder: float
    """Seconds until a message held (not acked) by a live, polling member is delivered again."""
    dead_holder: float
    """Seconds until a message held by a member that died is delivered to another member."""


def redelivery_delays(*, visibility_timeout: float = 1.0, session_timeout: float = 10.0,
                      step: float = 0.25) -> RedeliveryDelays:
    """Measure both redelivery delays on one-partition topics, polling every ``step`` seconds."""
    check_number("visibility_timeout", visibility_timeout, minimum=0, min_exclusive=True)
    check_number("session_timeout", session_timeout, minimum=0, min_exclusive=True)
    check_number("step", step, minimum=0, min_exclusive=True)

    async def main():
        loop = asyncio.get_running_loop()
        b = InMemoryBroker(BrokerConfig(visibility_timeout=visibility_timeout, session_timeout=session_timeout))
        delays = {}
        for case in ("live", "dead"):
            topic = f"jobs-{case}"
            await b.create_topic(topic, 1)
            await b.create_group(topic, "workers")
            await b.publish(topic, {"job": case}, key="k")
            await b.join(topic, "workers", "w1")
            await b.join(topic, "workers", "w2")
            owner = next(c for c, ps in (await b.assignment(topic, "workers")).items() if ps)
            other = "w2" if owner == "w1" else "w1"
            first = await b.poll(topic, "workers", owner, max_messages=1, timeout=0)
            assert len(first) == 1
            start = loop.time()
            while True:
                await asyncio.sleep(step)
                if case == "live":  # the owner keeps polling (heart-beating) but never acks
                    again = await b.poll(topic, "workers", owner, max_messages=1, timeout=0)
                else:  # the owner died: only the other member polls
                    again = await b.poll(topic, "workers", other, max_messages=1, timeout=0)
                if again:
                    delays[case] = round(loop.time() - start, 6)
                    break
        return RedeliveryDelays(visibility_timeout, session_timeout, delays["live"], delays["dead"])

    return run_virtual(main())


def poison_and_dead_letters() -> list[str]:
    """One payment without an amount (rejected for good) and one the ledger refuses (retried,
    then dead-lettered), between good payments of the same key."""

    async def main():
        b = InMemoryBroker(BrokerConfig(visibility_timeout=5, session_timeout=2, max_deliveries=3))
        await b.create_topic("payments", 1)
        await b.create_group("payments", "ledger")
        await b.join("payments", "ledger", "ledger-1")
        for payload in ({"amount": 5}, {"note": "no amount"}, {"amount": 7}, {"amount": -1}):
            await b.publish("payments", payload, key="acct-1")
        handled, out = [], []
        for _ in range(8):
            for d in await b.poll("payments", "ledger", "ledger-1", timeout=1):
                if "amount" not in d.message.payload:
                    await b.nack(d, "schema: 'amount' missing", requeue=False)  # never retried
                elif d.message.payload["amount"] < 0:
                    await b.nack(d, "negative amount: ledger refused")  # retried, then dead-lettered
                else:
                    handled.append(d.message.payload["amount"])
                    await b.ack(d)
        out.append(f"handled: {handled} | committed offsets: {await b.committed('payments', 'ledger')}")
        for m in await b.dead_letters("payments"):
            out.append(f"dead letter {m.payload}: {m.headers['x-dead-letter-reason']} "
                       f"(offset {m.headers['x-original-offset']}, {m.headers['x-deliveries']} deliveries)")
        return out

    return run_virtual(main())


def replay_from_offset() -> list[tuple[int, dict]]:
    """A group that handled four payments seeks back to offset 0 and reads them again."""

    async def main():
        b = InMemoryBroker(BrokerConfig(visibility_timeout=5, session_timeout=2))
        await b.create_topic("payments", 1)
        await b.create_group("payments", "ledger")
        await b.join("payments", "ledger", "ledger-1")
        for amount in (5, 7, 9, 11):
            await b.publish("payments", {"amount": amount}, key="acct-1")
        async def drain():  # one message in flight per partition: poll until four were acked
            got = []
            for _ in range(8):
                for d in await b.poll("payments", "ledger", "ledger-1", max_messages=10, timeout=1):
                    got.append((d.message.offset, d.message.payload))
                    await b.ack(d)
            return got

        first = await drain()
        assert len(first) == 4 and await b.committed("payments", "ledger") == {0: 4}
        await b.seek("payments", "ledger", 0, 0)
        return await drain()

    return run_virtual(main())


def request_reply() -> list[str]:
    """A price request answered on ``prices.replies``, then one with nobody serving: a timeout."""

    async def main():
        b = InMemoryBroker(BrokerConfig(visibility_timeout=5, session_timeout=2))
        await b.create_topic("prices", 2)
        await b.create_group("prices", "pricing")
        stop = asyncio.Event()

        async def price(msg):
            return {"sku": msg.payload["sku"], "price": 10 * len(msg.payload["sku"])}

        server = asyncio.ensure_future(serve_requests(b, "prices", "pricing", "pricing-1", price, stop))
        req = await Requester(b, "prices.replies", name="shop").start()
        reply = await req.request("prices", {"sku": "ABC"}, key="ABC", timeout=2)
        out = [f"reply {reply.payload} kind={reply.kind} correlation_id={reply.correlation_id}"]
        stop.set()
        await server
        try:
            await req.request("prices", {"sku": "X"}, timeout=0.5)
        except Exception as e:  # noqa: BLE001 - shown, not raised
            out.append(f"{type(e).__name__}: {e}")
        await req.close()
        return out

    return run_virtual(main())
