"""Clocks, distributions, parameter checks, real-time servers and the redis-server helper."""

import asyncio
import math
import random
import socket

import aiohttp
import pytest
from aiohttp import web

from workbook.core import ConfigError, LoopClock, ManualClock, ParameterError, WallClock, run_virtual
from workbook.core.distributions import Bimodal, Constant, Exponential, LogNormal, Uniform, make_distribution
from workbook.core.params import check_choice, check_int, check_number
from workbook.core.realtime import AppServers, serve


def test_manual_clock_records_sleeps_and_advances():
    clock = ManualClock(10)

    async def main():
        for d in (0.5, 1, 2):
            await clock.sleep(d)

    asyncio.run(main())
    assert clock.sleeps == [0.5, 1, 2]
    assert clock.now() == 13.5
    with pytest.raises(ParameterError, match="delay"):
        clock.advance(-1)


def test_loop_clock_is_virtual_under_run_virtual_and_real_outside():
    clock = LoopClock()

    async def main():
        await clock.sleep(3600)
        return clock.now()

    assert run_virtual(main) == 3600.0
    assert abs(clock.now() - WallClock().now()) < 1.0


def test_distribution_means_and_specs():
    rng = random.Random(1)
    assert LogNormal(0.01, 0.5).mean == pytest.approx(0.01 * math.exp(0.125))
    assert Bimodal(Constant(1), Constant(11), 0.1).mean == pytest.approx(2.0)
    samples = [Exponential(2.0).sample(rng) for _ in range(20000)]
    assert sum(samples) / len(samples) == pytest.approx(2.0, rel=0.05)
    assert make_distribution(0.25) == Constant(0.25)
    assert make_distribution({"kind": "uniform", "low": 1, "high": 2}) == Uniform(1.0, 2.0)
    spec = {"kind": "bimodal", "fast": 0.01, "slow": {"kind": "exponential", "mean": 1}, "p_slow": 0.01}
    assert make_distribution(spec) == Bimodal(Constant(0.01), Exponential(1.0), 0.01)


@pytest.mark.parametrize(
    "spec, match",
    [
        ({"kind": "zipf"}, r"'latency.kind' = 'zipf'.*one of"),
        ({"kind": "lognormal", "median": 0.1}, r"'latency.sigma'.*needs median, sigma"),
        ({"kind": "uniform", "low": 3, "high": 1}, r"'latency.low' = 3.0.*<= high"),
        ({"kind": "exponential", "mean": -1}, r"'latency.mean' = -1"),
        ({"kind": "constant", "value": 1, "extra": 2}, r"'latency.extra'"),
        (-0.5, r"'latency' = -0.5"),
        ("fast", r"'latency' = 'fast'"),
    ],
)
def test_bad_distribution_specs_name_the_parameter(spec, match):
    with pytest.raises(ParameterError, match=match):
        make_distribution(spec, name="latency")


def test_parameter_checks():
    assert check_int("k", 3, minimum=1) == 3
    with pytest.raises(ParameterError, match=r"parameter 'k' = -2 is not allowed: expected an integer >= 1"):
        check_int("k", -2, minimum=1)
    with pytest.raises(ParameterError, match="an integer"):
        check_int("k", 2.5)
    with pytest.raises(ParameterError, match="an integer"):
        check_int("k", True)
    with pytest.raises(ParameterError, match=r"a number in \(0, 1\]"):
        check_number("p", 0, minimum=0, maximum=1, min_exclusive=True)
    with pytest.raises(ParameterError, match="a number"):
        check_number("p", float("nan"))
    with pytest.raises(ParameterError, match="one of 'a', 'b'"):
        check_choice("mode", "c", ["a", "b"])
    err = ConfigError("data/x.yaml", "edges[2]", "a known node", "nowhere")
    assert str(err) == "data/x.yaml: edges[2]: expected a known node, got 'nowhere'"


def make_app(name):
    async def hello(request):
        return web.json_response({"service": name, "trace": request.headers.get("x-trace", "")})

    app = web.Application()
    app.router.add_get("/hello", hello)
    return app


def test_serve_starts_apps_on_ephemeral_ports_and_stops_them():
    async def main():
        async with serve(make_app("users"), make_app("orders")) as urls:
            async with aiohttp.ClientSession() as session:
                bodies = []
                for url in urls:
                    async with session.get(f"{url}/hello", headers={"x-trace": "t1"}) as resp:
                        bodies.append(await resp.json())
        return urls, bodies

    urls, bodies = asyncio.run(main())
    assert [b["service"] for b in bodies] == ["users", "orders"]
    assert all(b["trace"] == "t1" for b in bodies)
    assert len(set(urls)) == 2 and all(u.startswith("http://127.0.0.1:") for u in urls)
    for url in urls:  # the ports are closed again
        port = int(url.rsplit(":", 1)[1])
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()


def test_app_servers_across_separate_steps_like_notebook_cells():
    async def main():
        servers = await AppServers.start(make_app("a"))
        async with aiohttp.ClientSession() as s, s.get(servers.urls[0] + "/hello") as resp:
            status = resp.status
        await servers.stop()
        return status, repr(servers)

    assert asyncio.run(main()) == (200, "AppServers(0 running)")


@pytest.mark.redis
def test_redis_server_fixture_serves_a_real_redis(redis_url):
    import redis

    client = redis.Redis.from_url(redis_url)
    client.set("k", "v")
    assert client.get("k") == b"v"
    client.close()
