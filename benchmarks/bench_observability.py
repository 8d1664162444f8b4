"""What observability costs per request (chapter 8): metrics, tracing and logging on a demo service.

Real time, everything on 127.0.0.1 in one process and one event loop (client and service
share it, so a figure is the CPU a request costs end to end on an idle machine): sequential
``GET /stock/apple`` (a closed loop, one request at a time) against chapter 2's demo
inventory service, four ways, each its own server started side by side in the same run:

* ``uninstrumented``: the demo service as it is;
* ``metrics``: ``instrument_app`` (the RED counter, latency histogram and in-flight gauge
  of ``prometheus_client``);
* ``metrics + tracing``: also ``tracing_middleware`` (an OpenTelemetry SDK SERVER span per
  request, exported to memory by a ``SimpleSpanProcessor``; the exporter is cleared
  between rounds so memory stays flat);
* ``metrics + tracing + logging``: also one JSON log line per request, carrying the trace
  and span ids, written into a ``LogStore`` (SQLite in memory with its FTS5 index).

Each candidate takes ``REQUESTS`` requests per round, the candidates taking turns, best of
``ROUNDS`` rounds for each figure (p50, p99, requests/s) separately: load from other
processes inflates a figure rarely and only upwards.
"""

from __future__ import annotations

import asyncio
import os
import time

import aiohttp
from aiohttp import web

from workbook.core.clock import WallClock
from workbook.core.realtime import serve
from workbook.core.stats import quantiles
from workbook.observability import LogStore, ServiceMetrics, Tracing, instrument_app, service_logger, tracing_middleware
from workbook.transport.demo_service import make_demo_app

REQUESTS = 1000
ROUNDS = 5


def _logging_middleware(logger):
    @web.middleware
    async def middleware(request, handler):
        response = await handler(request)
        logger.info("served %s %s", request.method, request.path, extra={"status": response.status})
        return response
    return middleware


def _apps(tracing: Tracing, logs: LogStore) -> dict[str, web.Application]:
    plain = make_demo_app("inventory", seed=0)
    metrics = instrument_app(make_demo_app("inventory", seed=0), ServiceMetrics("inventory"))
    traced = make_demo_app("inventory", seed=0)
    traced.middlewares.append(tracing_middleware(tracing.tracer("inventory-traced")))
    instrument_app(traced, ServiceMetrics("inventory"))
    logged = make_demo_app("inventory", seed=0)
    logged.middlewares.append(tracing_middleware(tracing.tracer("inventory-logged")))
    logged.middlewares.append(_logging_middleware(service_logger("inventory", logs, clock=WallClock())))
    instrument_app(logged, ServiceMetrics("inventory"))
    return {"uninstrumented": plain, "metrics": metrics, "metrics + tracing": traced,
            "metrics + tracing + logging": logged}


async def _measure() -> tuple[list[dict], int]:
    tracing = Tracing(clock=WallClock())
    logs = LogStore()
    apps = _apps(tracing, logs)
    best: dict[str, list[float]] = {}
    async with serve(*apps.values()) as urls:
        candidates = dict(zip(apps, urls))
        async with aiohttp.ClientSession() as session:
            for url in candidates.values():  # warm up connections and code paths
                for _ in range(100):
                    async with session.get(url + "/stock/apple") as r:
                        await r.read()
            for _ in range(ROUNDS):
                for name, url in candidates.items():
                    tracing.exporter.clear()
                    times = []
                    began = time.perf_counter()
                    for _ in range(REQUESTS):
                        t0 = time.perf_counter()
                        async with session.get(url + "/stock/apple") as r:
                            await r.read()
                            assert r.status == 200, (name, r.status)
                        times.append(time.perf_counter() - t0)
                    total = time.perf_counter() - began
                    p50, p99 = quantiles(times, (0.5, 0.99))
                    old = best.get(name, [float("inf"), float("inf"), 0.0])
                    best[name] = [min(old[0], p50), min(old[1], p99), max(old[2], REQUESTS / total)]
    log_lines = len(logs)
    base = best["uninstrumented"]
    rows = [{"service": name, "p50_us": 1e6 * b[0], "p99_us": 1e6 * b[1], "rps": b[2],
             "added_p50_us": 1e6 * (b[0] - base[0]), "added_p99_us": 1e6 * (b[1] - base[1])}
            for name, b in best.items()]
    return rows, log_lines


def run() -> str:
    load_before = os.getloadavg()[0]
    rows, log_lines = asyncio.run(_measure())
    load_after = os.getloadavg()[0]
    out = ["### Instrumentation overhead per request (real time, 127.0.0.1, one process, sequential requests, "
           f"{REQUESTS} per round, each figure the best of {ROUNDS} rounds)", "",
           "| service | p50 us | p99 us | requests/s | added p50 us | added p99 us |",
           "|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        out.append(f"| {r['service']} | {r['p50_us']:.0f} | {r['p99_us']:.0f} | {r['rps']:,.0f} | "
                   f"{r['added_p50_us']:.0f} | {r['added_p99_us']:.0f} |")
    by = {r["service"]: r for r in rows}
    full = by["metrics + tracing + logging"]
    out += ["", f"Metrics add {by['metrics']['added_p50_us']:.0f} us at p50, tracing "
                f"{by['metrics + tracing']['added_p50_us'] - by['metrics']['added_p50_us']:.0f} us more, a "
                f"JSON log line into SQLite/FTS5 "
                f"{full['added_p50_us'] - by['metrics + tracing']['added_p50_us']:.0f} us more: all three "
                f"{full['added_p50_us']:.0f} us per request "
                f"({100 * full['added_p50_us'] / by['uninstrumented']['p50_us']:.0f}% of the uninstrumented "
                f"request's {by['uninstrumented']['p50_us']:.0f} us, client and server together). "
                f"{log_lines:,} log lines were stored. Load average (1 min) {load_before:.2f} before, "
                f"{load_after:.2f} after: differences of a few us are within the noise of a shared machine."]
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    print(run())
