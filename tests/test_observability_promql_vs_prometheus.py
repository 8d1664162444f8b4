"""The workbook's rate/increase/histogram_quantile/*_over_time against the real Prometheus 2.42.

Samples are imported into a throw-away prometheus with ``promtool tsdb create-blocks-from
openmetrics`` and queried through ``/api/v1/query`` at fixed evaluation times; and a live
instrumented service is scraped every second by a real prometheus, whose raw samples the
workbook then evaluates at the instant Prometheus was asked. Tolerance:
relative 1e-9 (both sides compute in float64 with the same formulas: promql/functions.go
``extrapolatedRate`` and promql/quantile.go ``bucketQuantile`` at v2.42.0).
"""

import math
import random

import pytest

from workbook.observability import Engine, SeriesStore

pytestmark = pytest.mark.prometheus

T0 = 1_700_000_000  # epoch seconds: imported blocks must lie where retention keeps them
REL_TOL = 1e-9

BUCKETS = ("0.05", "0.1", "0.25", "0.5", "1", "+Inf")


def _store():
    s = SeriesStore()
    rng = random.Random(8)
    # a steady counter scraped every 15 s
    total = 0
    for i in range(120):
        total += rng.randint(0, 9)
        s.add("http_requests_total", {"route": "/stock", "status": "200"}, T0 + 15 * i, total)
    # a counter that restarts twice (process restarts: counter resets)
    value = 0
    for i in range(120):
        value = 0 if i in (40, 81) else value + rng.randint(1, 5)
        s.add("http_requests_total", {"route": "/orders", "status": "200"}, T0 + 15 * i, value)
    # a series that starts late (inside the ranges queried) at a non-zero value, and one with a scrape gap
    for i in range(50, 120):
        s.add("http_requests_total", {"route": "/orders", "status": "503"}, T0 + 15 * i, 7 + (i - 50) * 2)
    for i in list(range(0, 60)) + list(range(75, 120)):
        s.add("retries_total", {"route": "/stock"}, T0 + 15 * i + 3, 2 * i)
    # latency histogram: cumulative buckets growing with random observations
    counts = dict.fromkeys(BUCKETS, 0)
    for i in range(120):
        for _ in range(rng.randint(0, 12)):
            x = rng.expovariate(8.0)
            for le in BUCKETS:
                if le == "+Inf" or x <= float(le):
                    counts[le] += 1
        for le in BUCKETS:
            s.add("http_request_duration_seconds_bucket", {"route": "/stock", "le": le}, T0 + 15 * i, counts[le])
    # a gauge
    for i in range(120):
        s.add("requests_in_flight", {"route": "/stock"}, T0 + 15 * i, rng.randint(0, 20))
    return s


QUERIES = [
    "rate(http_requests_total[5m])",
    "increase(http_requests_total[1m])",
    "increase(http_requests_total[10m])",
    "rate(retries_total[2m])",
    "sum by (route) (rate(http_requests_total[5m]))",
    "sum(rate(http_requests_total{status=~\"5..\"}[5m])) / sum(rate(http_requests_total[5m]))",
    "histogram_quantile(0.9, rate(http_request_duration_seconds_bucket[5m]))",
    "histogram_quantile(0.5, sum by (le) (rate(http_request_duration_seconds_bucket[2m])))",
    "histogram_quantile(0.99, rate(http_request_duration_seconds_bucket[5m]))",
    "avg_over_time(requests_in_flight[5m])",
    "max_over_time(requests_in_flight[3m])",
    "rate(http_requests_total[5m]) > 0.3",
]
# evaluation times: on scrape instants, between them, right after a reset (600 s, 1215 s),
# while the late series starts (750-1050 s) and across the gap in retries_total (900-1125 s)
TIMES = [300, 607.5, 615, 760, 900, 1000, 1130, 1215, 1500, 1785]


def _close(a, b):
    return (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=REL_TOL, abs_tol=1e-12)


def test_workbook_promql_agrees_with_prometheus(prometheus_with):
    store = _store()
    server = prometheus_with(store.to_openmetrics())
    engine = Engine(store)
    compared = 0
    for expr in QUERIES:
        for t in TIMES:
            theirs = server.query_values(expr, T0 + t)
            ours = engine.query_vector(expr, T0 + t)
            ours = {tuple(sorted(k)): v for k, v in ours.items()}
            assert set(ours) == set(theirs), (expr, t, ours, theirs)
            for key, value in theirs.items():
                assert _close(ours[key], value), (expr, t, key, ours[key], value)
                compared += 1
    assert compared > 150


def test_counter_reset_and_late_start_are_among_the_compared_cases():
    """The differential cases include what the extrapolation rules are about (guards the fixture data)."""
    store = _store()
    engine = Engine(store)
    # a reset inside [600-300, 600]: rate stays positive (the drop is added back)
    reset = engine.query_vector('rate(http_requests_total{route="/orders",status="200"}[5m])', T0 + 615)
    assert list(reset.values())[0] > 0
    # the late series (first sample at 750 s) is extrapolated to its zero point, not to the window start
    late = engine.query_vector('increase(http_requests_total{status="503"}[10m])', T0 + 1000)
    (value,) = late.values()
    assert value < (7 + 2 * 16) * 1.5


@pytest.mark.slow
def test_live_scrape_of_an_instrumented_service(prometheus_scraping):
    """Prometheus scrapes a live instrumented demo service; its raw samples, fed to the workbook,
    give the same rate and histogram_quantile as Prometheus's own answers at the same instant."""
    import asyncio
    import time

    import aiohttp

    from workbook.core.realtime import AppServers
    from workbook.observability.instrument import ServiceMetrics, instrument_app
    from workbook.transport.demo_service import make_demo_app

    async def main():
        metrics = ServiceMetrics("inventory")
        servers = await AppServers.start(instrument_app(make_demo_app("inventory", seed=2), metrics))
        try:
            server = await asyncio.to_thread(prometheus_scraping, servers.urls[0].removeprefix("http://"))
            timeout = aiohttp.ClientTimeout(total=5)
            async with aiohttp.ClientSession(timeout=timeout) as http:
                deadline = time.monotonic() + 8
                n = 0
                while time.monotonic() < deadline:
                    async with http.get(f"{servers.urls[0]}/stock/{('apple', 'plum', 'nope')[n % 3]}") as r:
                        await r.read()
                    n += 1
                    await asyncio.sleep(0.01)
            await asyncio.sleep(1.5)  # one more scrape after the last request
            t = time.time()
            ours, theirs = {}, {}
            for expr in ('rate(http_requests_total{status="200"}[5s])',
                         "histogram_quantile(0.9, rate(http_request_duration_seconds_bucket[5s]))"):
                theirs[expr] = await asyncio.to_thread(server.query_values, expr, t)
            raw = await asyncio.to_thread(server.query, '{__name__=~"http_request.*",job="demo"}[30s]', t)
            return raw, theirs, t, n
        finally:
            await servers.stop()

    raw, theirs, t, n = asyncio.run(main())
    store = SeriesStore()
    for series in raw["result"]:
        labels = dict(series["metric"])
        name = labels.pop("__name__")
        for ts, value in series["values"]:
            store.add(name, labels, float(ts), float(value))
    engine = Engine(store)
    assert n > 50
    for expr, answer in theirs.items():
        assert answer, expr
        mine = {tuple(sorted(k)): v for k, v in engine.query_vector(expr, t).items()}
        assert set(mine) == set(answer), expr
        for key, value in answer.items():
            assert _close(mine[key], value), (expr, key, mine[key], value)


def _random_store(seed):
    """Counters and gauges with jittered scrapes, missed scrapes, resets, late starts and early ends."""
    rng = random.Random(seed)
    s = SeriesStore()
    for k in range(24):
        interval = rng.choice([5, 10, 15, 30, 60])
        start = rng.choice([0, 0, rng.uniform(0, 1200)])
        end = rng.choice([1800, 1800, rng.uniform(start + 100, 1800)])
        value, t, last = rng.uniform(0, 50), start, -1.0
        while t <= end:
            ts = round(T0 + t + rng.uniform(0, 0.9), 3)
            if rng.random() > 0.1 and ts > last:  # 10% of scrapes missed
                s.add("random_total", {"k": str(k)}, ts, round(value, 3))
                s.add("random_gauge", {"k": str(k)}, ts, round(rng.uniform(-5, 5), 3))
                last = ts
            value = 0.0 if rng.random() < 0.03 else value + rng.expovariate(0.2)
            t += interval
    return s


def test_random_series_agree_with_prometheus(prometheus_with):
    store = _random_store(14)
    server = prometheus_with(store.to_openmetrics())
    engine = Engine(store)
    rng = random.Random(5)
    compared = 0
    for _ in range(40):
        t = T0 + rng.uniform(60, 1900)
        window = rng.choice(["30s", "1m", "2m", "5m", "10m"])
        for expr in (f"rate(random_total[{window}])", f"increase(random_total[{window}])",
                     f"delta(random_gauge[{window}])", f"avg_over_time(random_gauge[{window}])",
                     f"min_over_time(random_gauge[{window}])", f"count_over_time(random_total[{window}])"):
            theirs = server.query_values(expr, t)
            ours = {tuple(sorted(k)): v for k, v in engine.query_vector(expr, t).items()}
            assert set(ours) == set(theirs), (expr, t - T0)
            for key, value in theirs.items():
                assert _close(ours[key], value), (expr, t - T0, key, ours[key], value)
                compared += 1
    assert compared > 1000
