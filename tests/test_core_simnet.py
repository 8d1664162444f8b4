"""The simulated network: latency, faults, error rates, queueing, determinism, speed."""

import asyncio
import math
import statistics
import sys
import time

import pytest

from workbook.core import ParameterError, run_virtual
from workbook.core.load import open_loop
from workbook.core.simnet import Request, Response, SimNetwork


def hour_of_traffic(seed, *, rate=100, duration=3600):
    async def main():
        net = SimNetwork(seed, latency={"kind": "lognormal", "median": 0.002, "sigma": 0.5})
        net.add_service("client")
        net.add_service("api", service_time={"kind": "exponential", "mean": 0.004})

        async def send(i):
            return (await net.call("client", "api", Request(path=f"/orders/{i}"), timeout=1.0)).status

        statuses = await open_loop(send, rate=rate, duration=duration, rng=net.rng)
        return statuses, asyncio.get_running_loop().time(), net.log

    return run_virtual(main)


def test_one_simulated_hour_at_100_rps_through_one_hop():
    start = time.perf_counter()
    statuses, now, log = hour_of_traffic(seed=1)
    wall = time.perf_counter() - start
    # A Poisson process at 100/s for 3600 s: 360,000 arrivals, give or take a few sd (600).
    assert abs(len(statuses) - 360_000) < 3_000
    assert statuses.count(200) == len(statuses)
    assert 3599 < now < 3601
    assert sum(1 for e in log if e[1] == "send") == len(statuses)
    sys.__stdout__.write(f"\n[virtual time] 1 simulated hour at 100 req/s: {wall:.1f} s wall, "
                         f"speed-up {now / wall:.0f}x simulated seconds per wall second\n")


def test_same_seed_same_event_log_and_different_seeds_differ():
    _, _, log_a = hour_of_traffic(seed=7, duration=30)
    _, _, log_b = hour_of_traffic(seed=7, duration=30)
    _, _, log_c = hour_of_traffic(seed=8, duration=30)
    assert len(log_a) > 5000
    assert log_a == log_b
    assert log_a != log_c


def two_node_net(**kw):
    net = SimNetwork(0, latency=0.010)
    net.add_service("a")
    net.add_service("b", **kw)
    return net


def test_round_trip_is_two_latencies_plus_service_time():
    async def main():
        net = two_node_net(service_time=0.005)
        r = await net.call("a", "b")
        return r, asyncio.get_running_loop().time()

    r, t = run_virtual(main)
    assert r.status == 200 and r.body == {"service": "b"}
    assert t == pytest.approx(0.025)


def test_node_down_refuses_and_up_recovers():
    async def main():
        net = two_node_net()
        net.down("b")
        with pytest.raises(ConnectionRefusedError, match="b refused"):
            await net.call("a", "b")
        t_refused = asyncio.get_running_loop().time()
        net.up("b")
        return (await net.call("a", "b")).status, t_refused

    status, t_refused = run_virtual(main)
    assert status == 200
    assert t_refused == pytest.approx(0.010)  # refused after one link latency


def test_partition_loses_messages_until_healed():
    async def main():
        net = two_node_net()
        net.partition("a", "b")
        with pytest.raises(TimeoutError):
            await net.call("a", "b", timeout=0.5)
        net.heal()
        ok = await net.call("a", "b", timeout=0.5)
        return ok.status, [e[1] for e in net.log]

    status, events = run_virtual(main)
    assert status == 200
    assert events[:4] == ["fault", "send", "drop", "timeout"]


def test_slow_multiplies_latency_and_error_rate_gives_503s():
    async def main():
        net = two_node_net(error_rate=0.3)
        net.slow(4.0, "a", "b")
        loop = asyncio.get_running_loop()
        start = loop.time()
        statuses = [(await net.call("a", "b")).status for _ in range(2000)]
        return statuses, (loop.time() - start) / 2000

    statuses, per_call = run_virtual(main)
    assert per_call == pytest.approx(0.080)
    share = statuses.count(503) / len(statuses)
    assert 0.26 < share < 0.34
    assert set(statuses) == {200, 503}


def test_concurrency_limit_queues_requests_fifo():
    async def main():
        net = two_node_net(service_time=1.0, concurrency=1)
        loop = asyncio.get_running_loop()
        done = []

        async def one(i):
            await net.call("a", "b")
            done.append((i, round(loop.time(), 3)))

        await asyncio.gather(*(one(i) for i in range(3)))
        return done

    assert run_virtual(main) == [(0, 1.02), (1, 2.02), (2, 3.02)]


def test_handler_result_and_handler_errors():
    async def handler(req):
        if req.path == "/boom":
            raise RuntimeError("bad state")
        if req.path == "/teapot":
            return Response(418, {"error": "teapot"})
        return {"echo": req.path, "from": req.source}

    async def main():
        net = SimNetwork(0)
        net.add_service("a")
        net.add_service("b", handler)
        return [await net.call("a", "b", Request(path=p)) for p in ("/x", "/boom", "/teapot")]

    ok, boom, teapot = run_virtual(main)
    assert ok.body == {"echo": "/x", "from": "a"}
    assert boom.status == 500 and "RuntimeError: bad state" in boom.body["error"]
    assert teapot.status == 418 and not teapot.ok


def test_lognormal_latency_has_the_configured_median():
    async def main():
        net = SimNetwork(3, latency={"kind": "lognormal", "median": 0.010, "sigma": 0.8})
        return [net.latency("a", "b") for _ in range(20000)]

    samples = run_virtual(main)
    assert statistics.median(samples) == pytest.approx(0.010, rel=0.05)


def test_bad_configuration_names_the_field():
    net = SimNetwork(0)
    net.add_service("a")
    with pytest.raises(ValueError, match="already on the network"):
        net.add_service("a")
    with pytest.raises(ParameterError, match=r"'b.error_rate' = 1.5"):
        net.add_service("b", error_rate=1.5)
    with pytest.raises(ParameterError, match=r"'c.service_time.kind' = 'gaussian'"):
        net.add_service("c", service_time={"kind": "gaussian", "mean": 1})
    with pytest.raises(KeyError, match="no service 'zzz'"):
        net.service("zzz")
    with pytest.raises(ParameterError, match="rate"):
        run_virtual(open_loop(lambda i: asyncio.sleep(0), rate=0, duration=1))


@pytest.mark.parametrize("rate, duration", [(10, 1), (10, 3), (3, 1), (20, 30), (7, 0.5)])
def test_open_loop_without_rng_sends_rate_times_duration_on_schedule(rate, duration):
    sent = []

    async def main():
        loop = asyncio.get_running_loop()

        async def send(i):
            sent.append((i, loop.time()))

        await open_loop(send, rate=rate, duration=duration)

    run_virtual(main())
    expected = math.ceil(rate * duration - 1e-9)  # arrivals at 0, 1/rate, ... strictly before duration
    assert len(sent) == expected
    assert all(abs(t - i / rate) < 1e-9 for i, t in sent)
