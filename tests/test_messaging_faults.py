"""The Redis Streams backend under real faults: a slow link during a rebalance, a server restart.

Every network test here talks to 127.0.0.1 only and is bounded in time (``asyncio.wait_for``).
"""

import asyncio
import shutil
import subprocess
import tempfile
import time

import pytest

from workbook.messaging import BrokerConfig

pytestmark = pytest.mark.redis


class DelayingProxy:
    """A TCP proxy on 127.0.0.1 that forwards requests at once and delays every reply by
    ``delay`` seconds (order kept): a client with a slow link."""

    def __init__(self, target_port: int, delay: float):
        self.target_port, self.delay = target_port, delay
        self.server = None
        self.tasks: set[asyncio.Task] = set()

    async def __aenter__(self):
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc):
        self.server.close()
        for t in list(self.tasks):
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)

    async def _handle(self, client_r, client_w):
        self.tasks.add(asyncio.current_task())
        loop = asyncio.get_running_loop()
        server_r, server_w = await asyncio.open_connection("127.0.0.1", self.target_port)
        replies: asyncio.Queue = asyncio.Queue()

        async def upstream():
            while data := await client_r.read(65536):
                server_w.write(data)
                await server_w.drain()

        async def read_replies():
            while data := await server_r.read(65536):
                replies.put_nowait((loop.time() + self.delay, data))
            replies.put_nowait((None, b""))

        async def downstream():
            while True:
                due, data = await replies.get()
                if due is None:
                    return
                await asyncio.sleep(max(0.0, due - loop.time()))
                client_w.write(data)
                await client_w.drain()

        try:
            await asyncio.gather(upstream(), read_replies(), downstream())
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            for w in (client_w, server_w):
                w.close()


def test_per_key_order_holds_during_a_rebalance_with_a_slow_consumer_link(redis_url):
    """z (replies delayed 150 ms) polls; a joins and polls while z's poll is under way. Before
    the fix z's poll decided ownership and free room in one round trip and read in another, so
    a read message 0 in between and z then read message 1 of the same key: two messages of one
    key in flight at once (max_in_flight=1), applied out of order."""
    from workbook.messaging.redis_streams import RedisStreamsBroker

    cfg = BrokerConfig(visibility_timeout=5.0, session_timeout=5.0, max_in_flight=1)
    port = int(redis_url.rsplit(":", 1)[1].split("/")[0])

    async def main():
        async with DelayingProxy(port, 0.15) as proxy:
            fast = RedisStreamsBroker(redis_url, cfg)
            slow = RedisStreamsBroker(f"redis://127.0.0.1:{proxy.port}/0", cfg)
            try:
                await fast.create_topic("orders", 1)
                await fast.create_group("orders", "g")
                for i in range(2):
                    await fast.publish("orders", {"i": i}, key="order-1")
                await fast.create_topic("warm", 1)  # a poll elsewhere loads the backend's scripts
                await fast.create_group("warm", "g")
                await fast.join("warm", "g", "w")
                await fast.poll("warm", "g", "w", timeout=0)
                await slow.join("orders", "g", "z")  # slow's connection made, group cached
                z_poll = asyncio.create_task(slow.poll("orders", "g", "z", max_messages=10, timeout=0))
                await asyncio.sleep(0.05)  # z's request is at the server, its reply on the slow link
                await fast.join("orders", "g", "a")
                got_a = await fast.poll("orders", "g", "a", max_messages=10, timeout=0)
                got_z = await z_poll
                in_flight = [(d.consumer, d.offset) for d in got_a + got_z]
                received = list(in_flight)
                # then both keep going (ack what they hold, poll again) until both messages are done
                holders = {"a": (fast, got_a), "z": (slow, got_z)}
                for _ in range(40):
                    if len({o for _, o in received}) == 2:
                        break
                    for name, (b, held) in holders.items():
                        for d in held:
                            await b.ack(d)
                        held = await b.poll("orders", "g", name, max_messages=10, timeout=0)
                        received += [(d.consumer, d.offset) for d in held]
                        holders[name] = (b, held)
                    await asyncio.sleep(0.02)
                return in_flight, received
            finally:
                await fast.close()
                await slow.close()

    in_flight, received = asyncio.run(asyncio.wait_for(main(), 30))
    assert len(in_flight) <= 1, f"two messages of one key in flight at once: {in_flight}"
    assert [o for _, o in received] == [0, 1], received


class RestartableRedis:
    """A redis-server this test starts itself on a fixed 127.0.0.1 port, with an append-only
    file (fsync always) so that a restart keeps the data; stopped by its own PID only."""

    def __init__(self, directory: str, *, persistent: bool = True):
        from workbook.core.external import find_executable, free_port

        self.binary, self.port, self.dir, self.persistent = find_executable("redis-server"), free_port(), directory, persistent
        self.process = None

    @property
    def url(self):
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self):
        persistence = ["--appendonly", "yes", "--appendfsync", "always"] if self.persistent else ["--appendonly", "no"]
        self.process = subprocess.Popen([self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                         *persistence, "--dir", self.dir, "--daemonize", "no"],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        import redis

        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if redis.Redis(port=self.port, socket_timeout=0.5).ping():
                    return self
            except redis.ConnectionError:
                time.sleep(0.02)
        raise RuntimeError("redis-server did not start")

    def stop(self):
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.process = None


@pytest.fixture
def restartable_redis(request):
    from workbook.core.external import ServiceUnavailable

    directory = tempfile.mkdtemp(prefix="workbook-redis-restart-")
    try:
        server = RestartableRedis(directory, persistent=getattr(request, "param", True)).start()
    except ServiceUnavailable as exc:
        from tests.fixtures import missing_service  # noqa: F401 - only reached without redis-server
        pytest.skip(str(exc))
    yield server
    server.stop()
    shutil.rmtree(directory, ignore_errors=True)


class Recorder:
    """A consumer handler that records what it applied."""

    def __init__(self):
        self.applied = []

    def handle(self, message, inside):
        inside()
        self.applied.append(message.payload)


def test_consumer_and_requester_survive_a_redis_restart(restartable_redis):
    """Before: the Requester's listener died of a raw redis ConnectionError at the restart,
    never answered again, and close() re-raised that old error instead of leaving its group."""
    from workbook.messaging import BrokerUnavailable, Consumer
    from workbook.messaging.redis_streams import RedisStreamsBroker
    from workbook.messaging.request_reply import Requester, serve_requests

    cfg = BrokerConfig(visibility_timeout=1.0, session_timeout=5.0)
    server = restartable_redis

    async def main():
        brokers = [RedisStreamsBroker(server.url, cfg) for _ in range(3)]
        admin, responder_b, consumer_b = brokers
        stop = asyncio.Event()
        try:
            await admin.create_topic("requests", 1)
            await admin.create_group("requests", "svc")
            await admin.create_topic("events", 2)
            await admin.create_group("events", "worker")

            async def answer(m):
                return {"echo": m.payload}

            responder = asyncio.create_task(serve_requests(responder_b, "requests", "svc", "r1", answer, stop))
            recorder = Recorder()
            consumer = Consumer(consumer_b, "events", "worker", "c1", recorder, "at-least-once", poll_timeout=0.2)
            consuming = asyncio.create_task(consumer.run(stop))
            req = await Requester(admin, "replies", name="client").start()
            before = await req.request("requests", 1, timeout=5)
            await admin.publish("events", "before", key="k")

            await asyncio.to_thread(server.stop)
            with pytest.raises(BrokerUnavailable):
                await admin.publish("events", "lost", key="k")
            with pytest.raises(BrokerUnavailable):
                await req.request("requests", 2, timeout=5)
            await asyncio.sleep(0.5)  # everyone meets the outage and backs off
            await asyncio.to_thread(server.start)

            after = await req.request("requests", 3, timeout=10)
            await admin.publish("events", "after", key="k")
            for _ in range(200):
                if "after" in recorder.applied:
                    break
                await asyncio.sleep(0.05)
            stop.set()
            await req.close()  # leaves its group: no old error re-raised
            members = await admin.assignment("replies", "client")
            served = await asyncio.wait_for(responder, 10)
            await asyncio.wait_for(consuming, 10)
            return (before.payload, after.payload, recorder.applied, members, served, len(req.outages),
                    len(consumer.outages), consumer.crashed)
        finally:
            stop.set()
            for b in brokers:
                await b.close()

    before, after, applied, members, served, req_outages, consumer_outages, crashed = asyncio.run(
        asyncio.wait_for(main(), 60))
    assert before == {"echo": 1} and after == {"echo": 3}
    assert applied[0] == "before" and applied[-1] == "after" and "lost" not in applied
    assert members == {} and served >= 2 and not crashed
    assert req_outages >= 1 and consumer_outages >= 1
