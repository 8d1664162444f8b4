"""One behaviour suite for every broker backend (in-memory in virtual time, Redis Streams in real time).

Waiting for a timeout is ``await asyncio.sleep(...)``: instant under the in-memory
backend's virtual loop, a fraction of a second against the real redis-server (the Redis
configuration uses short timeouts so these tests stay bounded).
"""

import asyncio
import json

import pytest

from workbook.core.virtual_time import run_virtual
from workbook.messaging import (BrokerConfig, ConsumerNameClash, GroupExists, InMemoryBroker, InvalidTopicName,
                                PayloadNotSerialisable, RequestTimeout, UnknownTopic, stable_hash)
from workbook.messaging.request_reply import Requester, serve_requests

CFG = BrokerConfig(visibility_timeout=0.4, session_timeout=0.4, max_deliveries=3, max_in_flight=1)


class Backend:
    def __init__(self, name, make, run):
        self.name, self.make, self.run = name, make, run


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def backend(request):
    if request.param == "memory":
        yield Backend("memory", lambda cfg=CFG: InMemoryBroker(cfg), run_virtual)
        return
    url = request.getfixturevalue("redis_url")
    from workbook.messaging.redis_streams import RedisStreamsBroker

    yield Backend("redis", lambda cfg=CFG: RedisStreamsBroker(url, cfg), lambda coro: asyncio.run(coro))


def run(backend, body):
    async def main():
        broker = backend.make()
        try:
            return await body(broker)
        finally:
            await broker.close()
    return backend.run(main())


async def drain(broker, topic, group, consumer, *, ack=True, rounds=5, timeout=0.05):
    got = []
    for _ in range(rounds):
        ds = await broker.poll(topic, group, consumer, max_messages=100, timeout=timeout)
        for d in ds:
            got.append(d)
            if ack:
                await broker.ack(d)
    return got


def test_same_key_same_partition_in_order(backend):
    async def body(b):
        await b.create_topic("orders", 4)
        sent = [await b.publish("orders", {"i": i}, key=f"order-{i % 3}") for i in range(30)]
        for m in sent:
            assert m.partition == stable_hash(m.key) % 4
        for key in {m.key for m in sent}:
            mine = [m for m in sent if m.key == key]
            assert len({m.partition for m in mine}) == 1
            log = [m for m in await b.read("orders", mine[0].partition) if m.key == key]
            assert [m.payload["i"] for m in log] == [m.payload["i"] for m in mine]
            assert [m.offset for m in log] == sorted(m.offset for m in log)
    run(backend, body)


def test_unkeyed_messages_spread_over_partitions(backend):
    async def body(b):
        await b.create_topic("logs", 3)
        parts = [(await b.publish("logs", i)).partition for i in range(9)]
        assert sorted(parts) == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    run(backend, body)


def test_every_group_gets_every_message_members_share_partitions(backend):
    async def body(b):
        await b.create_topic("events", 4)
        for g in ("billing", "email"):
            await b.create_group("events", g)
        await b.join("events", "billing", "b1")
        await b.join("events", "billing", "b2")
        await b.join("events", "email", "e1")
        ids = [(await b.publish("events", i, key=f"k{i}")).id for i in range(20)]
        assignment = await b.assignment("events", "billing")
        assert sorted(assignment) == ["b1", "b2"]
        assert sorted(p for ps in assignment.values() for p in ps) == [0, 1, 2, 3]
        assert all(len(ps) == 2 for ps in assignment.values())
        got = {}
        for _ in range(12):
            for c in ("b1", "b2"):
                for d in await b.poll("events", "billing", c, max_messages=100, timeout=0.01):
                    assert d.partition in assignment[c]
                    got.setdefault(c, []).append(d.message.id)
                    await b.ack(d)
        billing = got["b1"] + got["b2"]
        assert sorted(billing) == sorted(ids) and got["b1"] and got["b2"]
        email = [d.message.id for d in await drain(b, "events", "email", "e1", rounds=25)]
        assert sorted(email) == sorted(ids)
    run(backend, body)


def test_rebalance_on_join_leave_and_missed_heartbeat(backend):
    async def body(b):
        await b.create_topic("t", 2)
        await b.create_group("t", "g")
        await b.join("t", "g", "a")
        assert await b.assignment("t", "g") == {"a": [0, 1]}
        await b.join("t", "g", "b")
        assert await b.assignment("t", "g") == {"a": [0], "b": [1]}
        await b.leave("t", "g", "b")
        assert await b.assignment("t", "g") == {"a": [0, 1]}
        await b.join("t", "g", "b")
        # b goes silent; a keeps polling (which heart-beats) until b's session expires
        for _ in range(6):
            await b.poll("t", "g", "a", timeout=0.1)
        assert await b.assignment("t", "g") == {"a": [0, 1]}
    run(backend, body)


def test_unacked_message_of_dead_consumer_is_redelivered_to_survivor(backend):
    async def body(b):
        await b.create_topic("t", 1)
        await b.create_group("t", "g")
        await b.join("t", "g", "dies")
        await b.join("t", "g", "lives")
        owner = (await b.assignment("t", "g"))
        assert owner == {"dies": [0], "lives": []}
        await b.publish("t", "job")
        [d] = await b.poll("t", "g", "dies")
        assert d.attempt == 1
        # "dies" crashes: no ack, no more polls
        got = []
        for _ in range(10):
            got += await b.poll("t", "g", "lives", timeout=0.1)
            if got:
                break
        assert [(x.message.payload, x.attempt) for x in got] == [("job", 2)]
        assert await b.ack(got[0])
        assert await b.lag("t", "g") == 0
    run(backend, body)


def test_ack_advances_committed_offset_and_lag(backend):
    async def body(b):
        await b.create_topic("t", 1)
        await b.create_group("t", "g")
        await b.join("t", "g", "c")
        for i in range(3):
            await b.publish("t", i)
        assert await b.lag("t", "g") == 3
        [d0] = await b.poll("t", "g", "c")
        assert await b.committed("t", "g") == {0: 0}
        await b.ack(d0)
        assert await b.committed("t", "g") == {0: 1}
        assert await b.lag("t", "g") == 2
        assert not await b.ack(d0)  # a second ack changes nothing
        await drain(b, "t", "g", "c")
        assert await b.committed("t", "g") == {0: 3} and await b.lag("t", "g") == 0
        assert await b.end_offsets("t") == {0: 3}
    run(backend, body)


def test_nack_redelivers_then_dead_letters_with_reason_and_partition_moves_on(backend):
    async def body(b):
        await b.create_topic("t", 1)
        await b.create_group("t", "g")
        await b.join("t", "g", "c")
        await b.publish("t", {"bad": True}, key="k")
        await b.publish("t", {"bad": False}, key="k")
        attempts = []
        good = []
        for _ in range(10):
            for d in await b.poll("t", "g", "c", timeout=0.05):
                if d.message.payload["bad"]:
                    attempts.append(d.attempt)
                    await b.nack(d, "cannot parse amount")
                else:
                    good.append(d)
                    await b.ack(d)
            if good:
                break
        assert attempts == [1, 2, 3]  # max_deliveries = 3
        assert len(good) == 1  # the partition was not blocked
        [dead] = await b.dead_letters("t")
        assert dead.payload == {"bad": True}
        assert "cannot parse amount" in dead.headers["x-dead-letter-reason"]
        assert dead.headers["x-deliveries"] == "3" and dead.headers["x-group"] == "g"
        assert await b.lag("t", "g") == 0
    run(backend, body)


def test_poison_message_rejected_goes_to_dlq_at_once(backend):
    async def body(b):
        await b.create_topic("t", 1)
        await b.create_group("t", "g")
        await b.join("t", "g", "c")
        await b.publish("t", "poison")
        await b.publish("t", "fine")
        [d] = await b.poll("t", "g", "c")
        await b.nack(d, "schema violation: no 'amount'", requeue=False)
        [d2] = await b.poll("t", "g", "c", timeout=0.1)
        assert d2.message.payload == "fine"
        [dead] = await b.dead_letters("t")
        assert "schema violation" in dead.headers["x-dead-letter-reason"]
        assert dead.headers["x-deliveries"] == "1"
    run(backend, body)


def test_visibility_timeout_redelivers_and_in_flight_blocks_partition(backend):
    async def body(b):
        await b.create_topic("t", 1)
        await b.create_group("t", "g")
        await b.join("t", "g", "c")
        await b.publish("t", "first", key="k")
        await b.publish("t", "second", key="k")
        [d] = await b.poll("t", "g", "c")
        assert await b.poll("t", "g", "c") == []  # max_in_flight=1: "second" waits behind "first"
        await asyncio.sleep(CFG.visibility_timeout + 0.1)
        [again] = await b.poll("t", "g", "c")
        assert (again.message.payload, again.attempt) == ("first", 2)
        await b.ack(again)
        [nxt] = await b.poll("t", "g", "c", timeout=0.1)
        assert nxt.message.payload == "second"
    run(backend, body)


def test_replay_from_offset(backend):
    async def body(b):
        await b.create_topic("t", 1)
        await b.create_group("t", "g")
        await b.join("t", "g", "c")
        for i in range(5):
            await b.publish("t", i)
        assert [d.message.payload for d in await drain(b, "t", "g", "c", rounds=8)] == [0, 1, 2, 3, 4]
        assert [m.payload for m in await b.read("t", 0, 3)] == [3, 4]
        assert [m.payload for m in await b.read("t", 0, 1, limit=2)] == [1, 2]
        await b.seek("t", "g", 0, 2)
        assert await b.committed("t", "g") == {0: 2}
        assert [d.message.payload for d in await drain(b, "t", "g", "c", rounds=6)] == [2, 3, 4]
    run(backend, body)


def test_group_created_at_latest_skips_history(backend):
    async def body(b):
        await b.create_topic("t", 1)
        await b.publish("t", "old")
        await b.create_group("t", "late", start="latest")
        await b.join("t", "late", "c")
        await b.publish("t", "new")
        assert [d.message.payload for d in await drain(b, "t", "late", "c")] == ["new"]
    run(backend, body)


def test_message_fields_round_trip(backend):
    async def body(b):
        await b.create_topic("cmd", 1)
        await b.create_group("cmd", "svc")
        await b.join("cmd", "svc", "s")
        sent = await b.publish("cmd", {"sku": "A-1", "qty": [1, 2]}, key="A-1", kind="command",
                               headers={"trace": "t-1"}, reply_to="replies", correlation_id="c-9", message_id="m-1")
        [d] = await b.poll("cmd", "svc", "s")
        m = d.message
        assert (m.id, m.key, m.kind, m.headers, m.reply_to, m.correlation_id, m.payload) == (
            "m-1", "A-1", "command", {"trace": "t-1"}, "replies", "c-9", {"sku": "A-1", "qty": [1, 2]})
        assert (m.partition, m.offset) == (sent.partition, sent.offset) == (0, 0)
    run(backend, body)


def test_request_reply_matches_correlation_ids(backend):
    async def body(b):
        await b.create_topic("prices", 2)
        await b.create_group("prices", "pricing")
        stop = asyncio.Event()

        async def price(msg):
            return {"sku": msg.payload["sku"], "price": len(msg.payload["sku"]) * 10}

        server = asyncio.ensure_future(serve_requests(b, "prices", "pricing", "p1", price, stop))
        req = await Requester(b, "prices.replies").start()
        r1, r2 = await asyncio.gather(req.request("prices", {"sku": "AB"}, key="AB", timeout=5),
                                      req.request("prices", {"sku": "ABCD"}, key="ABCD", timeout=5))
        assert (r1.payload, r2.payload) == ({"sku": "AB", "price": 20}, {"sku": "ABCD", "price": 40})
        assert r1.kind == "reply" and r1.correlation_id != r2.correlation_id
        stop.set()
        await server
        with pytest.raises(RequestTimeout, match="no reply on 'prices.replies' within 0.2s"):
            await req.request("prices", {"sku": "X"}, timeout=0.2)
        await req.close()
    run(backend, body)


# -- bad input ------------------------------------------------------------------------------------
def test_invalid_topic_name_says_what_and_where(backend):
    async def body(b):
        with pytest.raises(InvalidTopicName, match=r"publish: invalid topic name 'orders/eu': it contains '/'"):
            await b.publish("orders/eu", {})
        with pytest.raises(InvalidTopicName, match="it is empty"):
            await b.create_topic("")
        with pytest.raises(UnknownTopic, match="topic 'nope' does not exist"):
            await b.publish("nope", {})
    run(backend, body)


def test_unserialisable_payload_names_the_path(backend):
    async def body(b):
        await b.create_topic("t", 1)
        with pytest.raises(PayloadNotSerialisable, match=r"topic 't'.*payload\['items'\]\[1\].*set"):
            await b.publish("t", {"items": [1, {2, 3}]})
        with pytest.raises(PayloadNotSerialisable, match=r"payload\['x'\]: nan is not a finite number"):
            await b.publish("t", {"x": float("nan")})
        assert await b.end_offsets("t") == {0: 0}  # nothing half-published
    run(backend, body)


def test_group_and_consumer_name_clash(backend):
    async def body(b):
        await b.create_topic("t", 1)
        await b.create_group("t", "billing")
        with pytest.raises(GroupExists, match="topic 't': consumer group 'billing' already exists"):
            await b.create_group("t", "billing")
        await b.create_group("t", "billing", exist_ok=True)
        await b.join("t", "billing", "c1")
        with pytest.raises(ConsumerNameClash, match="a live consumer named 'c1'"):
            await b.join("t", "billing", "c1")
    run(backend, body)


def test_payload_is_copied_not_shared(backend):
    async def body(b):
        await b.create_topic("t", 1)
        await b.create_group("t", "g")
        await b.join("t", "g", "c")
        payload = {"items": [1]}
        await b.publish("t", payload)
        payload["items"].append(2)
        [d] = await b.poll("t", "g", "c")
        assert d.message.payload == {"items": [1]}
        assert json.dumps(d.message.payload)
    run(backend, body)


def test_unknown_group_and_bad_names(backend):
    from workbook.messaging import UnknownGroup

    async def body(b):
        await b.create_topic("t", 2)
        await b.create_group("t", "real")
        with pytest.raises(UnknownGroup, match=r"topic 't' has no consumer group 'typo' \(known: \['real'\]\)"):
            await b.join("t", "typo", "c1")
        with pytest.raises(ValueError, match="consumer name must be a non-empty string"):
            await b.join("t", "real", "")
        with pytest.raises(ValueError, match="group name must be a non-empty string"):
            await b.create_group("t", "")
        with pytest.raises(ValueError, match="partition of topic 't' \\(2 partitions\\)"):
            await b.read("t", 5)
        with pytest.raises(ValueError, match="already exists with 2 partition"):
            await b.create_topic("t", 3)
    run(backend, body)


# -- review fixes -----------------------------------------------------------------------------------
def test_pending_of_a_departed_member_is_due_at_once_even_if_its_partition_moved_earlier(backend):
    """b holds a delivery of p0; a joins and takes p0 over (b keeps its in-flight message, as in a
    cooperative rebalance); then b leaves. Its unacknowledged message must go to a at once, not
    after the visibility timeout, and both backends must agree."""
    async def body(b):
        await b.create_topic("t", 1)
        await b.create_group("t", "g")
        await b.join("t", "g", "b")
        await b.publish("t", "job")
        [d] = await b.poll("t", "g", "b")
        await b.join("t", "g", "a")
        assert await b.assignment("t", "g") == {"a": [0], "b": []}
        await b.leave("t", "g", "b")
        got = await b.poll("t", "g", "a")  # no waiting: well inside the 0.4 s visibility timeout
        assert [(x.message.payload, x.attempt) for x in got] == [("job", 2)]
    run(backend, body)


def test_longest_topic_name_still_dead_letters(backend):
    """A 249-character topic (the longest allowed) has a dead-letter topic too; a poison message
    there must not make every poll fail (which would block the partition for ever)."""
    from workbook.messaging import dlq_topic
    from workbook.messaging.message import check_topic

    async def body(b):
        name = "t" * 249
        await b.create_topic(name, 1)
        await b.create_group(name, "g")
        await b.join(name, "g", "c")
        await b.publish(name, "poison")
        await b.publish(name, "fine")
        [d] = await b.poll(name, "g", "c")
        await b.nack(d, "bad", requeue=False)
        [d2] = await b.poll(name, "g", "c", timeout=0.1)
        assert d2.message.payload == "fine"
        [dead] = await b.dead_letters(name)
        assert dead.payload == "poison" and dead.headers["x-original-topic"] == name
        assert check_topic(dlq_topic(name)) and dlq_topic(name) != dlq_topic("t" * 248 + "u")
    run(backend, body)


@pytest.mark.redis
def test_redis_group_creation_interrupted_half_way_is_completed_by_a_retry(redis_url):
    """A service that dies while creating its group (some partitions' Redis groups made, some
    not) restarts and calls ``create_group(..., exist_ok=True)`` again: afterwards every
    partition must deliver, not fail with NOGROUP for ever."""
    from workbook.messaging.redis_streams import RedisStreamsBroker

    async def main():
        b = RedisStreamsBroker(redis_url, CFG)
        try:
            await b.create_topic("t", 3)
            real, made = b.redis.xgroup_create, []

            async def dies_on_the_second(*a, **kw):
                if len(made) == 1:
                    raise ConnectionError("process killed")
                made.append(a)
                return await real(*a, **kw)

            b.redis.xgroup_create = dies_on_the_second
            with pytest.raises(ConnectionError):
                await b.create_group("t", "g")
            del b.redis.xgroup_create
            restarted = RedisStreamsBroker(redis_url, CFG)
            try:
                await restarted.create_group("t", "g", exist_ok=True)
                await restarted.join("t", "g", "c")
                sent = {(await restarted.publish("t", i)).partition for i in range(3)}
                assert sent == {0, 1, 2}
                got = await drain(restarted, "t", "g", "c")
                return sorted(d.message.payload for d in got)
            finally:
                await restarted.close()
        finally:
            await b.close()

    assert asyncio.run(main()) == [0, 1, 2]


def test_requester_close_does_not_hang_when_a_poll_swallows_the_cancellation():
    """Against Redis the listener's cancellation is sometimes lost inside the client library
    (the request/reply test hung about one run in four): close() must not depend on it."""
    class SwallowsOneCancel(InMemoryBroker):
        swallowed = 0

        async def poll(self, *a, **kw):
            try:
                return await super().poll(*a, **kw)
            except asyncio.CancelledError:
                if self.swallowed:
                    raise
                self.swallowed += 1
                return []

    async def main():
        loop = asyncio.get_running_loop()
        b = SwallowsOneCancel(CFG)
        req = await Requester(b, "q.replies").start()
        await asyncio.sleep(0.1)
        t0 = loop.time()
        await asyncio.wait_for(req.close(), 30)
        return b.swallowed, loop.time() - t0, req._task.done()

    swallowed, took, done = run_virtual(main())
    assert swallowed == 1 and done
    assert took <= 1.0  # the listener stops at its next poll (timeout 1 s), not when close gives up


def test_bad_input_is_refused_before_anything_is_sent(backend):
    """Each is a clear MessagingError/ParameterError naming the field, and nothing is published."""
    from workbook.core.errors import ParameterError, WorkbookError
    from workbook.messaging import InvalidMessage, UnknownGroup
    from workbook.messaging.message import Delivery

    async def body(b):
        await b.create_topic("t", 1)
        await b.create_group("t", "g")
        cyclic = {"a": []}
        cyclic["a"].append(cyclic)
        deep = []
        for _ in range(5000):
            deep = [deep]
        errors = {}
        for name, call in [
            ("cyclic", lambda: b.publish("t", cyclic)),
            ("deep", lambda: b.publish("t", deep)),
            ("header", lambda: b.publish("t", 1, headers={"n": 1})),
            ("header name", lambda: b.publish("t", 1, headers={2: "x"})),
            ("key", lambda: b.publish("t", 1, key=7)),
            ("newline topic", lambda: b.publish("abc\n", 1)),
            ("newline create", lambda: b.create_topic("abc\n", 1)),
            ("poll timeout", lambda: b.poll("t", "g", "c", timeout=-1)),
            ("poll max", lambda: b.poll("t", "g", "c", max_messages=0)),
        ]:
            try:
                await call()
            except WorkbookError as exc:
                errors[name] = exc
        msg = await b.publish("t", "fine")
        ghost = Delivery(msg, "no-such-group", "c", 1)
        for name, call in [("ack", lambda: b.ack(ghost)), ("nack", lambda: b.nack(ghost))]:
            try:
                await call()
            except WorkbookError as exc:
                errors[name] = exc
        return errors, await b.end_offsets("t"), await b.partitions("t")

    errors, ends, _ = run(backend, body)
    assert isinstance(errors["cyclic"], PayloadNotSerialisable) and "cycle" in str(errors["cyclic"])
    assert isinstance(errors["deep"], PayloadNotSerialisable) and "payload[0][0]" in str(errors["deep"])
    assert isinstance(errors["header"], InvalidMessage) and "'n'" in str(errors["header"])
    assert isinstance(errors["header name"], InvalidMessage)
    assert isinstance(errors["key"], InvalidMessage) and "key" in str(errors["key"])
    assert isinstance(errors["newline topic"], InvalidTopicName) and "'\\n'" in str(errors["newline topic"])
    assert isinstance(errors["newline create"], InvalidTopicName)
    assert isinstance(errors["poll timeout"], ParameterError) and "timeout" in str(errors["poll timeout"])
    assert isinstance(errors["poll max"], ParameterError) and "max_messages" in str(errors["poll max"])
    assert isinstance(errors["ack"], UnknownGroup) and "no-such-group" in str(errors["ack"])
    assert isinstance(errors["nack"], UnknownGroup)
    assert ends == {0: 1}  # only the one good message was published


def test_consumer_and_requester_refuse_bad_settings_before_sending(backend):
    from workbook.core.errors import ParameterError
    from workbook.messaging import Consumer

    async def body(b):
        await b.create_topic("q", 1)
        with pytest.raises(ParameterError, match="batch"):
            Consumer(b, "q", "g", "c", None, "at-least-once", batch=0)
        with pytest.raises(ParameterError, match="poll_timeout"):
            Consumer(b, "q", "g", "c", None, "at-least-once", poll_timeout=-1)
        req = await Requester(b, "q.replies").start()
        try:
            with pytest.raises(ParameterError, match="timeout"):
                await req.request("q", "hello", timeout=-1)
        finally:
            await req.close()
        return await b.end_offsets("q")

    assert run(backend, body) == {0: 0}  # the refused request was never published


def test_poison_message_is_a_workbook_error_users_can_raise():
    from workbook.core.errors import WorkbookError
    from workbook.messaging import MessagingError, PoisonMessage

    with pytest.raises(PoisonMessage, match="bad amount"):
        raise PoisonMessage("bad amount")
    assert issubclass(PoisonMessage, MessagingError) and issubclass(PoisonMessage, WorkbookError)


def test_dead_members_messages_wait_for_the_session_timeout_not_the_visibility_timeout(backend):
    """A crashed member keeps its partition until its session expires: after the visibility
    timeout its unacked message is due, but only the partition's (dead) owner would get it."""
    cfg = BrokerConfig(visibility_timeout=0.1, session_timeout=0.6, max_deliveries=5)

    async def body(b):
        await b.create_topic("t", 1)
        await b.create_group("t", "g")
        for c in ("a", "b"):
            await b.join("t", "g", c)
        await b.publish("t", "job")
        [d] = await b.poll("t", "g", "a")  # a owns partition 0, takes the job, then crashes
        await asyncio.sleep(0.3)  # visibility timeout long past, session of a not yet
        early = await b.poll("t", "g", "b")
        await asyncio.sleep(0.45)  # a silent for 0.75 s > session timeout
        late = await b.poll("t", "g", "b", timeout=0.1)
        return early, [(x.message.payload, x.attempt) for x in late], d.attempt

    early, late, first = run(Backend(backend.name, lambda: backend.make(cfg), backend.run), body)
    assert first == 1 and early == [] and late == [("job", 2)]


@pytest.mark.parametrize("fields", [
    ("r0123456789ab-0000001", "event", None, {}, None, None, 1764250000.123456),
    ('id "quoted"\\ é\u2028\n', "request", "k\t\u00e9", {"a": "b", "é": '"x"\n'}, "replies", "c\u20ac", 0.1),
    ("x", "reply", "", {"": ""}, "t.dlq", "", 1e-07),
])
def test_redis_entry_text_is_what_the_json_encoder_writes(fields):
    """The hand-written entry encoder stores exactly the JSON encoder's text for the metadata,
    then the payload's own text, and one json.loads gives back every field and the payload."""
    from workbook.messaging.message import encode_payload
    from workbook.messaging.redis_streams import _ENCODE_META, _encode_entry

    payload = {"b": [1, 2.5, None, "é\n"], "a": {"x": True}}
    text = encode_payload("t", payload)
    assert _encode_entry(*fields, text) == _ENCODE_META(list(fields))[:-1] + "," + text + "]"
    assert json.loads(_encode_entry(*fields, text)) == [*fields, payload]


def test_trusted_message_equals_a_validated_one_and_stays_frozen():
    import dataclasses

    from workbook.messaging.message import Message, trusted_message

    fields = ("t", {"a": [1]}, "id1", "k", "command", {"h": "v"}, "r", "c", 2, 7, 1.5)
    fast, slow = trusted_message(*fields), Message(*fields)
    assert fast == slow and repr(fast) == repr(slow) and dataclasses.astuple(fast) == dataclasses.astuple(slow)
    assert dataclasses.replace(fast, offset=8).offset == 8
    with pytest.raises(dataclasses.FrozenInstanceError):
        fast.payload = {}


@pytest.mark.redis
def test_redis_reads_entries_of_the_earlier_two_field_layout(redis_url):
    """Entries written as ``payload`` + ``meta`` (before the one-field layout) still poll and read."""
    from workbook.messaging.redis_streams import RedisStreamsBroker

    async def main():
        b = RedisStreamsBroker(redis_url, CFG, prefix="oldlayout")
        try:
            await b.create_topic("t", 1)
            await b.create_group("t", "g")
            await b.join("t", "g", "c")
            await b.redis.execute_command("XADD", "oldlayout:s:t:0", "0-*", "payload", '{"a":[1]}', "meta",
                                          '["m-1","command","k",{"h":"v"},"r","c",1.5]')
            new = await b.publish("t", {"b": 2}, key="k")
            [d] = await b.poll("t", "g", "c")
            assert d.message == b.__class__._message("t", 0, "0-1", ["message",
                                                                     '["m-1","command","k",{"h":"v"},"r","c",1.5,{"a":[1]}]'])
            assert (d.message.id, d.message.payload, d.message.headers, d.message.offset) == ("m-1", {"a": [1]},
                                                                                              {"h": "v"}, 0)
            old, again = await b.read("t", 0)
            assert old == d.message and again == new
        finally:
            await b.close()
    asyncio.run(main())


@pytest.mark.parametrize("field", ["key", "correlation_id", "message_id"])
def test_non_string_ids_are_refused_naming_the_field(backend, field):
    from workbook.messaging import InvalidMessage

    async def body(b):
        await b.create_topic("t", 1)
        with pytest.raises(InvalidMessage, match=rf"publish to topic 't': {field} must be a string or None, got int 7"):
            await b.publish("t", {}, **{field: 7})
        assert await b.end_offsets("t") == {0: 0}
    run(backend, body)


def test_payload_text_is_the_json_encoders_and_a_failure_leaves_no_stale_cycle_marks():
    """encode_payload's shared C encoder writes what JSONEncoder.encode writes; a failed call
    (which leaves its containers marked) neither makes the next payload with those
    containers look like a cycle nor leaves the shared encoder unusable."""
    import workbook.messaging.message as message
    from workbook.messaging.message import _ENCODE, encode_payload

    for payload in ({"b": 1, "a": [1.5, None, True, "é\n\u2028"], "c": {"z": [], "y": {}}}, [], "x", -3, 1e300):
        assert encode_payload("t", payload) == _ENCODE(payload)
    inner = [1, {"k": "v"}]
    with pytest.raises(PayloadNotSerialisable, match=r"payload\[1\]: object of type set"):
        encode_payload("t", [inner, {1}])
    with pytest.raises(PayloadNotSerialisable, match=r"payload\['x'\]\[1\]: object of type set"):
        encode_payload("t", {"x": [inner, {2}]})
    assert encode_payload("t", {"again": inner}) == '{"again":[1,{"k":"v"}]}'
    assert message._FAST is None or message._FAST[0] == {}  # the shared encoder is in use again
    with pytest.raises(PayloadNotSerialisable, match=r"at payload: '<' not supported"):
        encode_payload("t", {1: "int key", "a": "str key"})  # nothing to blame but the keys' order
