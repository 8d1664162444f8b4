"""RED and resilience metrics with prometheus_client, live over HTTP and in virtual time."""

import asyncio
import random

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from workbook.core.clock import ManualClock
from workbook.core.realtime import serve
from workbook.core.virtual_time import run_virtual
from workbook.observability import Engine
from workbook.observability.instrument import (LATENCY_BUCKETS, ResilienceMetrics, Scraper, ServiceMetrics,
                                               instrument_app)
from workbook.resilience import CircuitBreaker, Retry
from workbook.transport.demo_service import make_demo_app


def _samples(text):
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples}


def test_demo_service_exposes_red_metrics_by_route_template_method_and_status():
    async def main():
        metrics = ServiceMetrics("inventory")
        app = instrument_app(make_demo_app("inventory", seed=1), metrics)
        timeout = aiohttp.ClientTimeout(total=10)
        async with serve(app) as urls, aiohttp.ClientSession(timeout=timeout) as http:
            for sku in ("apple", "plum", "fig", "nope"):
                async with http.get(f"{urls[0]}/stock/{sku}") as r:
                    await r.read()
            async with http.get(f"{urls[0]}/metrics") as r:
                return await r.text()

    samples = _samples(asyncio.run(main()))
    key = ("http_requests_total", (("method", "GET"), ("route", "/stock/{sku}"), ("service", "inventory"),
                                   ("status", "200")))
    assert samples[key] == 3
    assert samples[(key[0], key[1][:3] + (("status", "404"),))] == 1
    assert samples[("http_requests_in_flight", (("service", "inventory"),))] == 0
    buckets = sorted(float(dict(k[1])["le"]) for k in samples if k[0] == "http_request_duration_seconds_bucket")
    assert buckets == sorted(LATENCY_BUCKETS + (float("inf"),))


def test_latency_is_measured_on_the_virtual_clock_and_scraped_in_virtual_time():
    async def main():
        metrics = ServiceMetrics("inventory")
        scraper = Scraper(metrics.registry)
        rng = random.Random(3)

        async def request(i):
            async with metrics.track("/stock/{sku}") as t:
                await asyncio.sleep(0.02 if i % 10 else 0.4)   # virtual seconds
                t.status = 503 if i % 25 == 0 else 200

        async def load():
            for i in range(600):
                asyncio.ensure_future(request(i))
                await asyncio.sleep(rng.expovariate(2.0))

        scraping = asyncio.ensure_future(scraper.run(15, until=300))
        await load()
        await scraping
        return scraper.store

    store = run_virtual(main())
    engine = Engine(store)
    p50 = engine.query_vector("histogram_quantile(0.5, rate(http_request_duration_seconds_bucket[5m]))", 300)
    p99 = engine.query_vector("histogram_quantile(0.99, rate(http_request_duration_seconds_bucket[5m]))", 300)
    # 90% of requests take 20 ms (bucket 10-25 ms), 10% take 400 ms (bucket 250-500 ms)
    assert 0.01 < list(p50.values())[0] <= 0.025
    assert 0.25 < list(p99.values())[0] <= 0.5
    ratio = engine.query_vector('sum(rate(http_requests_total{status="503"}[5m])) / '
                                'sum(rate(http_requests_total[5m]))', 300)
    assert list(ratio.values())[0] == pytest.approx(0.04, abs=0.01)


def test_breaker_and_retry_metrics_come_from_their_events():
    clock = ManualClock()
    rm = ResilienceMetrics()
    breaker = CircuitBreaker("inventory", failure_rate_threshold=50, sliding_window_size=4, minimum_number_of_calls=4,
                             wait_duration_in_open_state=30, clock=clock)
    rm.attach_breaker(breaker)
    retry = Retry(max_attempts=3, clock=clock)
    rm.attach_retry(retry, "inventory")

    def boom():
        raise ConnectionError("down")

    for _ in range(6):
        try:
            breaker.call(boom)
        except Exception:
            pass

    async def flaky_twice(state={"n": 0}):
        state["n"] += 1
        if state["n"] < 3:
            raise ConnectionError("blip")
        return "ok"

    assert asyncio.run(retry.call_async(flaky_twice)) == "ok"
    samples = _samples(generate(rm))
    assert samples[("circuit_breaker_calls_total", (("breaker", "inventory"), ("outcome", "error")))] == 4
    assert samples[("circuit_breaker_calls_total", (("breaker", "inventory"), ("outcome", "not_permitted")))] == 2
    assert samples[("circuit_breaker_state", (("breaker", "inventory"), ("state", "OPEN")))] == 1
    assert samples[("circuit_breaker_transitions_total", (("breaker", "inventory"), ("from_state", "CLOSED"),
                                                          ("to_state", "OPEN")))] == 1
    assert samples[("retries_total", (("name", "inventory"),))] == 2


def generate(rm):
    from prometheus_client import generate_latest
    return generate_latest(rm.registry).decode()
