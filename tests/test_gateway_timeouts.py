"""``CoarseTimeouts`` (``workbook/gateway/timeouts.py``, ad0d6e5): one periodic sweep cancels
waits past their deadline, at most one ``resolution`` late; ``expired`` tells a timeout from a
cancellation that came from elsewhere, as ``asyncio.timeout`` does. In virtual time
(``run_virtual``), so deadlines are checked exactly without sleeping.

Then ``Forwarder.send`` live on 127.0.0.1: the route's deadline covers the response head and a
small body of known length (504 problem+json when the body is late), while a long body is
streamed with an idle limit per chunk only."""

import asyncio
import json
import random
import time

import aiohttp
import pytest

from workbook.core.errors import ParameterError, WorkbookError
from workbook.core.realtime import AppServers
from workbook.core.virtual_time import run_virtual
from workbook.gateway.app import Gateway
from workbook.gateway.config import parse_config
from workbook.gateway.proxy import SMALL
from workbook.gateway.timeouts import CoarseTimeouts, Watch

EPS = 1e-9  # float slack on sums of resolutions


async def watched(timeouts: CoarseTimeouts, delay, work, log: list):
    """The pattern ``Forwarder.send`` uses around its awaits; ``log`` gets what the except saw."""
    loop = asyncio.get_running_loop()
    watch = timeouts.start(delay)
    try:
        return await work
    except asyncio.CancelledError:
        expired = timeouts.expired(watch)
        log.append({"at": loop.time(), "expired": expired, "cancelling": asyncio.current_task().cancelling()})
        if expired:
            raise TimeoutError from None
        raise
    finally:
        timeouts.finish(watch)


def count_sweeps(timeouts: CoarseTimeouts) -> list[float]:
    """Record the loop time of every sweep (the sweep reschedules ``self._sweep``: the wrapper)."""
    times: list[float] = []
    original = timeouts._sweep

    def sweep():
        times.append(timeouts.loop.time())
        original()

    timeouts._sweep = sweep
    return times


# -- 1. a watched wait past its deadline -------------------------------------------------------

@pytest.mark.parametrize("resolution", [0.005, 0.1, 0.3])
@pytest.mark.parametrize("offset", [0.0, 0.0037])
def test_a_watched_wait_is_cancelled_between_its_deadline_and_one_resolution_later(resolution, offset):
    async def main():
        loop = asyncio.get_running_loop()
        timeouts = CoarseTimeouts(loop, resolution=resolution)
        if offset:  # a sweeper already running, in another phase than the watch's start
            timeouts.start(100.0)
            await asyncio.sleep(offset)
        log = []
        began = loop.time()
        with pytest.raises(TimeoutError):
            await watched(timeouts, 1.0, asyncio.sleep(10), log)
        raised_at = loop.time()
        # the task is not left cancelling: a later asyncio.timeout in it works as usual
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.5):
                await asyncio.sleep(1)
        return began, log, raised_at, asyncio.current_task().cancelling(), timeouts.fired

    began, log, raised_at, cancelling, fired = run_virtual(main)
    assert len(log) == 1 and log[0]["expired"] is True and log[0]["cancelling"] == 0
    assert began + 1.0 <= log[0]["at"] <= began + 1.0 + resolution + EPS
    assert raised_at == log[0]["at"]
    assert cancelling == 0 and fired == 1


# -- 2. a wait that finishes in time ---------------------------------------------------------

def test_a_wait_finished_in_time_is_never_cancelled_and_the_sweeper_then_stops():
    async def main():
        loop = asyncio.get_running_loop()
        timeouts = CoarseTimeouts(loop)
        assert timeouts._handle is None  # nothing waits: no timer
        sweeps = count_sweeps(timeouts)
        log = []
        watch = timeouts.start(1.0)
        assert isinstance(watch, Watch) and len(timeouts) == 1 and timeouts._handle is not None
        result = await watched(timeouts, None, asyncio.sleep(0.5, "answer"), log)  # inner wait, unwatched
        timeouts.finish(watch)
        finished_at = loop.time()
        assert len(timeouts) == 0
        await asyncio.sleep(3.0)  # well past the old deadline: nothing cancels this task
        return result, log, watch, finished_at, sweeps, timeouts

    result, log, watch, finished_at, sweeps, timeouts = run_virtual(main)
    assert result == "answer" and log == []
    assert not watch.fired and timeouts.fired == 0 and len(timeouts) == 0
    assert timeouts._handle is None
    # at most the one sweep already scheduled when the last watch finished, then none
    assert len([t for t in sweeps if t > finished_at]) <= 1
    assert sweeps and max(sweeps) <= finished_at + timeouts.resolution + EPS


def test_the_sweeper_restarts_for_a_watch_started_after_it_stopped():
    async def main():
        loop = asyncio.get_running_loop()
        timeouts = CoarseTimeouts(loop, resolution=0.01)
        timeouts.finish(timeouts.start(0.5))
        await asyncio.sleep(1.0)
        assert timeouts._handle is None
        log = []
        began = loop.time()
        with pytest.raises(TimeoutError):
            await watched(timeouts, 0.25, asyncio.sleep(10), log)
        return began, log

    began, log = run_virtual(main)
    assert began + 0.25 <= log[0]["at"] <= began + 0.25 + 0.01 + EPS


# -- 3. cancellations from elsewhere -----------------------------------------------------------

def test_an_external_cancel_before_the_deadline_is_not_expired_and_propagates():
    async def main():
        loop = asyncio.get_running_loop()
        timeouts = CoarseTimeouts(loop)
        log = []
        task = asyncio.create_task(watched(timeouts, 1.0, asyncio.sleep(10), log))
        await asyncio.sleep(0.3)
        task.cancel("client went away")
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.sleep(2.0)  # past the deadline: the finished watch never fires
        return log, task, timeouts

    log, task, timeouts = run_virtual(main)
    assert task.cancelled()
    assert log == [{"at": pytest.approx(0.3), "expired": False, "cancelling": 1}]
    assert timeouts.fired == 0 and len(timeouts) == 0


def test_an_external_cancel_after_the_timeout_fired_but_before_the_waiter_resumed_wins():
    async def main():
        loop = asyncio.get_running_loop()
        timeouts = CoarseTimeouts(loop)
        log = []
        task = asyncio.create_task(watched(timeouts, 1.0, asyncio.sleep(10), log))
        original = timeouts._sweep

        def sweep_then_cancel():  # the client goes away in the same instant, after the sweep
            original()
            if timeouts.fired and not task.done():
                task.cancel("client went away")

        timeouts._sweep = sweep_then_cancel
        with pytest.raises(asyncio.CancelledError):
            await task
        return log, task, timeouts

    log, task, timeouts = run_virtual(main)
    assert task.cancelled() and timeouts.fired == 1
    assert len(log) == 1 and log[0]["expired"] is False and log[0]["cancelling"] == 1  # uncancel() left 1
    assert 1.0 <= log[0]["at"] <= 1.0 + timeouts.resolution + EPS


def test_asyncio_timeout_decides_the_same_way_when_a_cancel_follows_its_timer():
    """The reference behaviour the previous test matches."""
    async def main():
        loop = asyncio.get_running_loop()
        seen = []

        async def waiter():
            try:
                async with asyncio.timeout(1.0):
                    loop.call_at(loop.time() + 1.0, task.cancel)  # same instant, scheduled after the timer
                    await asyncio.sleep(10)
            except TimeoutError:
                seen.append("timeout")
                raise
            except asyncio.CancelledError:
                seen.append(("cancelled", asyncio.current_task().cancelling()))
                raise

        task = asyncio.create_task(waiter())
        with pytest.raises(asyncio.CancelledError):
            await task
        return seen

    assert run_virtual(main) == [("cancelled", 1)]


# -- 4. many watches ---------------------------------------------------------------------------

def test_a_hundred_watches_fire_in_deadline_order_each_within_one_resolution():
    delays = [round(0.01 * k, 2) for k in range(1, 101)]
    order = delays[:]
    random.Random(0).shuffle(order)  # started in an order unrelated to their deadlines

    async def main():
        loop = asyncio.get_running_loop()
        timeouts = CoarseTimeouts(loop)
        logs = {d: [] for d in delays}
        resumed = []

        async def one(delay):
            try:
                await watched(timeouts, delay, asyncio.sleep(10), logs[delay])
            except TimeoutError:
                resumed.append(delay)
                return True
            return False

        outcomes = await asyncio.gather(*(one(d) for d in order))
        return logs, resumed, outcomes, timeouts

    logs, resumed, outcomes, timeouts = run_virtual(main)
    assert all(outcomes) and resumed == delays
    for d in delays:
        assert d <= logs[d][0]["at"] <= d + timeouts.resolution + EPS, d
    assert timeouts.fired == 100 and len(timeouts) == 0 and timeouts._handle is None


def test_many_watches_some_answered_in_time_fired_counts_exactly_the_expired():
    rng = random.Random(7)
    jobs = [(rng.uniform(0.0, 0.5), rng.uniform(0.01, 1.0), rng.uniform(0.0, 1.2)) for _ in range(300)]

    async def main():
        loop = asyncio.get_running_loop()
        timeouts = CoarseTimeouts(loop)

        async def one(start, delay, work):
            await asyncio.sleep(start)
            log = []
            deadline = loop.time() + delay
            try:
                await watched(timeouts, delay, asyncio.sleep(work), log)
            except TimeoutError:
                return "expired", deadline, log[0]["at"]
            return "answered", deadline, loop.time()

        results = await asyncio.gather(*(one(*job) for job in jobs))
        return results, timeouts

    results, timeouts = run_virtual(main)
    res = timeouts.resolution
    expired = [r for r in results if r[0] == "expired"]
    assert timeouts.fired == len(expired) and len(timeouts) == 0
    for (kind, deadline, at), (_, delay, work) in zip(results, jobs):
        if work < delay:
            assert kind == "answered"
        if work > delay + res + EPS:
            assert kind == "expired"
        if kind == "expired":
            assert deadline <= at <= deadline + res + EPS
    # fire times never go backwards in deadline order
    fire_times = [at for _, at in sorted((deadline, at) for _, deadline, at in expired)]
    assert fire_times == sorted(fire_times)
    assert 50 < len(expired) < 250  # both kinds are exercised


# -- 5. no limit, bad parameters ----------------------------------------------------------------

def test_no_delay_means_no_watch_and_none_is_harmless():
    async def main():
        timeouts = CoarseTimeouts(asyncio.get_running_loop())
        watch = timeouts.start(None)
        timeouts.finish(None)
        return watch, timeouts.expired(None), len(timeouts), timeouts._handle, timeouts.fired

    assert run_virtual(main) == (None, False, 0, None, 0)


@pytest.mark.parametrize("resolution", [0, 0.0, -0.005, float("nan"), "5ms", None, True])
def test_a_resolution_that_is_not_a_positive_number_is_refused_by_name(resolution):
    async def main():
        with pytest.raises(ParameterError) as info:
            CoarseTimeouts(asyncio.get_running_loop(), resolution=resolution)
        return info.value

    error = run_virtual(main)
    assert isinstance(error, WorkbookError) and error.name == "resolution" and "resolution" in str(error)


def test_a_nan_delay_is_refused_by_name():
    async def main():
        timeouts = CoarseTimeouts(asyncio.get_running_loop())
        try:
            with pytest.raises(ParameterError, match="delay"):
                timeouts.start(float("nan"))
        finally:
            timeouts.close()

    run_virtual(main)


def test_a_watch_started_outside_a_task_does_not_stop_the_sweeper_for_everyone_else():
    async def main():
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(lambda _loop, _context: None)  # the sweep's crash, if any, is the subject
        timeouts = CoarseTimeouts(loop)

        def from_a_callback():
            try:
                timeouts.start(0.1)
            except WorkbookError:  # refusing it at once is a fine answer too
                pass

        loop.call_soon(from_a_callback)
        await asyncio.sleep(0.2)
        log = []
        began = loop.time()
        async with asyncio.timeout(5.0):  # a bound, should the watch never fire
            with pytest.raises(TimeoutError):
                await watched(timeouts, 0.5, asyncio.sleep(10), log)
        assert log and began + 0.5 <= log[0]["at"] <= began + 0.5 + timeouts.resolution + EPS

    run_virtual(main)


# -- 6. live: Forwarder.send's deadline on 127.0.0.1 -------------------------------------------

ROUTE_TIMEOUT = 0.4
LATE = 3.0  # how late the slow small body is: far past the route's timeout
STREAMED = 100 * 1024  # over SMALL: streamed, with an idle limit per chunk only


class RawUpstream:
    """An HTTP/1.1 upstream written by hand, so that the head and the body go out when a test
    says: ``/raw/late-body`` sends its head at once and a 10-byte body ``LATE`` s later;
    ``/raw/quick-body`` a 10-byte body after 0.1 s; ``/raw/trickle-small`` a 10 KiB body in
    ten pieces, one every 0.1 s; ``/raw/trickle`` a 100 KiB body likewise."""

    def __init__(self):
        self.server = None
        self.tasks: set[asyncio.Task] = set()
        self.url = ""

    async def start(self):
        self.server = await asyncio.start_server(self._connection, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"
        return self

    async def stop(self):
        self.server.close()
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.server.wait_closed()

    async def _connection(self, reader, writer):
        self.tasks.add(asyncio.current_task())
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                path = head.split(b" ", 2)[1].decode()
                if path == "/raw/late-body":
                    await self._answer(writer, 10, [(LATE, b"0123456789")])
                elif path == "/raw/quick-body":
                    await self._answer(writer, 10, [(0.1, b"0123456789")])
                elif path == "/raw/trickle-small":
                    await self._answer(writer, 10 * 1024, [(0.1, b"s" * 1024)] * 10)
                elif path == "/raw/trickle":
                    await self._answer(writer, STREAMED, [(0.1, b"t" * (STREAMED // 10))] * 10)
                else:
                    await self._answer(writer, 0, [], status=b"404 Not Found")
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()
            self.tasks.discard(asyncio.current_task())

    @staticmethod
    async def _answer(writer, length, pieces, status=b"200 OK"):
        writer.write(b"HTTP/1.1 " + status + b"\r\nContent-Type: text/plain\r\nContent-Length: "
                     + str(length).encode() + b"\r\n\r\n")
        await writer.drain()  # the head is out at once
        for pause, piece in pieces:
            await asyncio.sleep(pause)
            writer.write(piece)
            await writer.drain()


def live(scenario):
    async def main():
        upstream = await RawUpstream().start()
        front = None
        try:
            settings = parse_config({
                "services": {"raw": {"instances": [{"id": "raw-1", "url": upstream.url}]}},
                "routes": [{"name": "raw", "path": "/raw", "upstream": "raw", "auth": {"required": False},
                            "timeout_seconds": ROUTE_TIMEOUT}],
            }, "test_gateway_timeouts")
            gateway = Gateway(settings, source="test_gateway_timeouts")
            front = await AppServers.start(await gateway.application())
            async with aiohttp.ClientSession() as client:
                return await scenario(gateway, front.urls[0], client)
        finally:
            if front is not None:
                await front.stop()
            await upstream.stop()
    return asyncio.run(asyncio.wait_for(main(), 10))


async def fetch(client, url):
    began = time.monotonic()
    async with client.get(url) as r:
        body = await r.read()
        return r.status, r.headers, body, time.monotonic() - began


def test_live_a_small_body_later_than_the_routes_deadline_is_a_504_problem():
    async def scenario(gateway, base, client):
        status, headers, body, elapsed = await fetch(client, base + "/raw/late-body")
        return status, headers, body, elapsed, gateway.access_log.records()

    status, headers, body, elapsed, log = live(scenario)
    assert status == 504
    assert headers["Content-Type"].startswith("application/problem+json")
    doc = json.loads(body)
    assert doc["status"] == 504 and "body" in doc["detail"]
    assert ROUTE_TIMEOUT - 0.05 <= elapsed < LATE - 0.5  # the deadline answered, not the upstream
    entry = log[-1]
    assert entry["route"] == "raw" and entry["status"] == 504 and entry["error"] == "UpstreamTimeout"
    assert entry["attempts"] == 1


def test_live_a_small_body_trickled_past_the_deadline_is_a_504_though_no_piece_is_idle_long():
    """The deadline covers the whole small body, not the gap between its pieces (ad0d6e5)."""
    async def scenario(gateway, base, client):
        status, headers, _, _ = await fetch(client, base + "/raw/trickle-small")
        return status, headers, gateway.access_log.records()[-1]

    status, headers, entry = live(scenario)
    assert status == 504 and headers["Content-Type"].startswith("application/problem+json")
    assert entry["status"] == 504 and entry["error"] == "UpstreamTimeout"


def test_live_a_small_body_in_time_is_answered():
    async def scenario(gateway, base, client):
        status, _, body, _ = await fetch(client, base + "/raw/quick-body")
        return status, body, gateway.access_log.records()[-1]

    status, body, entry = live(scenario)
    assert (status, body) == (200, b"0123456789")
    assert entry["status"] == 200 and entry["error"] is None and entry["bytes_out"] == 10


def test_live_a_long_body_streams_past_the_deadline_while_its_chunks_keep_coming():
    assert STREAMED > SMALL

    async def scenario(gateway, base, client):
        status, headers, body, elapsed = await fetch(client, base + "/raw/trickle")
        return status, headers, body, elapsed, gateway.access_log.records()[-1]

    status, headers, body, elapsed, entry = live(scenario)
    assert status == 200 and int(headers["Content-Length"]) == STREAMED
    assert body == b"t" * STREAMED
    assert elapsed > ROUTE_TIMEOUT  # it did outlast the route's deadline
    assert entry["status"] == 200 and entry["error"] is None and entry["bytes_out"] == STREAMED
