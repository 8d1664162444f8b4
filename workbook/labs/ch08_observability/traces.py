"""Chapter 8's trace and log experiments: plain data for the notebook (no plotting here).

* ``traceparent_table()``: the W3C spec's invalid ``traceparent`` examples next to valid
  ones, and what a server does with each (continue the trace, or start a new one).
* ``live_trace()`` (a coroutine): three demo aiohttp services on 127.0.0.1 calling each
  other, the last publishing to the in-memory broker, a consumer processing the message;
  returns the spans' structure (service, name, kind, parent, links) and whether they
  share one trace id. Real time, so no durations are returned.
* ``one_request(seed)``: one request of the traced shop in virtual time (five services
  and the broker): its waterfall rows, critical path and log records; reproducible for a
  seed. ``shop_logs(seed)`` is that run's ``LogStore`` (every service's JSON logs), to search.
* ``error_span(seed)``: where the first failed request of a short run failed (a payment
  refused): that span's attributes, status and events, what a span records beyond its
  timing, and the failed spans of its trace.
* ``dependency_edges(seed)``: the service graph derived from the spans of a run, as edge
  rows (calls, errors, error rate) and the ``networkx`` graph.
* ``sampling_table(seed)``: head-based ``TraceIdRatioBased`` against tail-based sampling
  at the same budget, on the same seeded workload; ``sampling_sweep(seed, ratios)`` the
  same for several budgets (a figure's points); ``tail_buffer_cost(seed)`` what the live
  ``TailSamplingProcessor`` holds in memory to decide.
* ``drill_down_demo(seed)``: an incident (slow stock lookups for a few minutes), scraped
  every 15 s in virtual time, a p90 latency alert with ``for: 2m``; when it fires, the
  exemplar trace of a slow checkout and the logs of that trace.
"""

from __future__ import annotations

import aiohttp
from aiohttp import web
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from workbook.core.clock import WallClock
from workbook.core.realtime import serve
from workbook.core.virtual_time import run_virtual
from workbook.messaging import InMemoryBroker
from workbook.observability import (Engine, RuleEvaluator, Scraper, SeriesStore, ShopConfig, TailSamplingProcessor,
                                    TracedShop, Tracing, client_trace_config, compare_sampling, critical_path,
                                    dependency_graph, drill_down, load_rules, parse_traceparent, process_span,
                                    publish_traced, read_exemplars, simulate_workload, span_records, traces_by_id,
                                    tracing_middleware, waterfall)

__all__ = ["TRACEPARENT_CASES", "traceparent_table", "live_trace", "one_request", "shop_logs", "error_span", "dependency_edges",
           "sampling_table", "sampling_sweep", "tail_buffer_cost", "drill_down_demo", "SLOW_CHECKOUT_RULES"]

TRACEPARENT_CASES = {
    "valid, sampled": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    "valid, not sampled": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00",
    "future version with an extra field": "cc-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-what",
    "version ff (forbidden)": "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    "all-zero trace id": "00-00000000000000000000000000000000-b7ad6b7169203331-01",
    "all-zero parent id": "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
    "upper-case hex": "00-0AF7651916CD43DD8448EB211C80319C-B7AD6B7169203331-01",
    "trace id 31 digits": "00-0af7651916cd43dd8448eb211c80319-b7ad6b7169203331-01",
    "version 00 with an extra field": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-what",
    "garbage": "hello",
}


def traceparent_table() -> list[dict]:
    """Rows: case, value, accepted, what the server does."""
    rows = []
    for case, value in TRACEPARENT_CASES.items():
        ctx = parse_traceparent(value)
        rows.append({"case": case, "traceparent": value, "accepted": ctx is not None,
                     "server": (f"continues trace {ctx.trace_id:032x}" if ctx is not None
                                else "ignores it, starts a new trace")})
    return rows


async def live_trace(timeout: float = 5.0) -> dict:
    """Three hops over real HTTP on 127.0.0.1 and the broker (module doc)."""
    tracing = Tracing(clock=WallClock())
    client_timeout = aiohttp.ClientTimeout(total=timeout)
    broker = InMemoryBroker(clock=WallClock())
    await broker.create_topic("orders.placed")
    await broker.create_group("orders.placed", "shipping")

    def app(service, downstream):
        tracer = tracing.tracer(service)
        application = web.Application(middlewares=[tracing_middleware(tracer)])

        async def handle(request):
            if downstream:
                async with aiohttp.ClientSession(trace_configs=[client_trace_config(tracer)],
                                                 timeout=client_timeout) as http:
                    async with http.get(f"{downstream}/checkout") as r:
                        await r.read()
            else:
                await publish_traced(broker, tracer, "orders.placed", {"order": 1})
            return web.json_response({"service": service})

        application.router.add_get("/checkout", handle)
        return application

    async with serve(app("orders", None)) as (orders,):
        async with serve(app("checkout", orders)) as (checkout,):
            async with serve(app("gateway", checkout)) as (gateway,):
                client = tracing.tracer("browser")
                async with aiohttp.ClientSession(trace_configs=[client_trace_config(client)],
                                                 timeout=client_timeout) as http:
                    async with http.get(f"{gateway}/checkout") as r:
                        await r.read()
    await broker.join("orders.placed", "shipping", "shipping-1")
    for d in await broker.poll("orders.placed", "shipping", "shipping-1"):
        with process_span(tracing.tracer("shipping"), d):
            pass
        await broker.ack(d)
    rs = sorted(span_records(tracing.spans()), key=lambda r: r.start_ns)
    names = {r.span_id: f"{r.service}: {r.name}" for r in rs}
    return {"one_trace": len({r.trace_id for r in rs}) == 1,
            "spans": [{"span": f"{r.service}: {r.name}", "kind": r.kind, "parent": names.get(r.parent_id, "-"),
                       "links": [names.get(s, s) for _, s in r.links]} for r in rs]}


def _run_shop(seed: int, *, rate: float, duration: float, config: ShopConfig | None = None) -> TracedShop:
    shop = TracedShop(seed, config)
    run_virtual(shop.run(rate=rate, duration=duration))
    return shop


def one_request(seed: int = 0, *, rate: float = 5.0, duration: float = 20.0) -> dict:
    """The slowest successful request of a short run that went through the broker (module doc)."""
    shop = _run_shop(seed, rate=rate, duration=duration)
    spans = shop.tracing.spans()
    candidates = [(max(r.end_ns for r in rs if r.kind != "CONSUMER") - min(r.start_ns for r in rs), t)
                  for t, rs in traces_by_id(spans).items() if any(r.kind == "CONSUMER" for r in rs)]
    _, trace_id = max(candidates)
    return {"trace_id": trace_id, "waterfall": waterfall(spans, trace_id),
            "critical_path": critical_path(spans, trace_id), "logs": shop.logs.query(trace_id=trace_id)}


def shop_logs(seed: int = 0, *, rate: float = 5.0, duration: float = 20.0):
    """The ``LogStore`` of the run ``one_request`` takes its request from (same seed and load), to search."""
    return _run_shop(seed, rate=rate, duration=duration).logs


def error_span(seed: int = 0, *, rate: float = 5.0, duration: float = 60.0) -> dict | None:
    """Where the first failed request of a short run failed (module doc); None when nothing failed.

    ``failed_spans`` lists that trace's spans with status ERROR (the failure travelling up);
    the span described is the one where it began (no failed child).
    """
    shop = _run_shop(seed, rate=rate, duration=duration)
    records = span_records(shop.tracing.spans())
    failed = sorted((r for r in records if r.error), key=lambda r: r.start_ns)
    if not failed:
        return None
    trace = [r for r in failed if r.trace_id == failed[0].trace_id]
    parents = {r.parent_id for r in trace}
    r = next(x for x in trace if x.span_id not in parents)  # where the failure began: no failed child
    return {"service": r.service, "name": r.name, "kind": r.kind, "status": r.status, "trace_id": r.trace_id,
            "failed_spans": [f"{x.service}: {x.name} ({x.kind})" for x in trace],
            "attributes": dict(r.attributes),
            "events": [{"name": name, "at_ms": round((t - r.start_ns) / 1e6, 3), "attributes": dict(attrs)}
                       for name, t, attrs in r.events]}


def dependency_edges(seed: int = 0, *, rate: float = 10.0, duration: float = 60.0,
                     error_rate: float = 0.05) -> dict:
    """``{"edges": [...rows], "graph": DiGraph}`` of a run's spans."""
    shop = _run_shop(seed, rate=rate, duration=duration, config=ShopConfig(error_rate=error_rate))
    graph = dependency_graph(shop.tracing.spans())
    edges = [{"from": a, "to": b, "calls": d["calls"], "errors": d["errors"], "error_rate": d["error_rate"],
              "topics": ", ".join(d["topics"])} for a, b, d in sorted(graph.edges(data=True))]
    return {"edges": edges, "graph": graph}


def sampling_table(seed: int = 0, *, ratio: float = 0.1, rate: float = 20.0, duration: float = 60.0,
                   error_rate: float = 0.02, slow_threshold: float = 0.25) -> list[dict]:
    """Head against tail sampling at the same budget on one seeded workload."""
    summaries = simulate_workload(seed, rate=rate, duration=duration, config=ShopConfig(error_rate=error_rate))
    return compare_sampling(summaries, ratio=ratio, slow_threshold=slow_threshold, seed=seed)


def sampling_sweep(seed: int = 0, ratios=(0.01, 0.02, 0.05, 0.1, 0.2, 0.5), *, rate: float = 20.0,
                   duration: float = 60.0, error_rate: float = 0.02, slow_threshold: float = 0.25) -> list[dict]:
    """Rows per ratio: traces kept, and error traces kept by head and by tail at that budget."""
    summaries = simulate_workload(seed, rate=rate, duration=duration, config=ShopConfig(error_rate=error_rate))
    rows = []
    for ratio in ratios:
        head, tail = compare_sampling(summaries, ratio=ratio, slow_threshold=slow_threshold, seed=seed)
        rows.append({"ratio": ratio, "kept": head["kept"], "error_traces": head["error_traces"],
                     "head_errors_kept": head["errors_kept"], "tail_errors_kept": tail["errors_kept"],
                     "head_error_recall": head["error_recall"], "tail_error_recall": tail["error_recall"]})
    return rows


def tail_buffer_cost(seed: int = 0, *, rate: float = 20.0, duration: float = 60.0, decision_wait: float = 5.0,
                     slow_threshold: float = 0.25, error_rate: float = 0.02) -> dict:
    """Spans recorded, traces kept and dropped, and the most spans buffered at once by a live tail sampler."""
    kept = InMemorySpanExporter()
    tail = TailSamplingProcessor(kept, slow_threshold=slow_threshold, decision_wait=decision_wait, seed=seed)
    shop = TracedShop(seed, ShopConfig(error_rate=error_rate), tracing=Tracing(seed=seed, exporter=kept,
                                                                              processor=tail))
    run_virtual(shop.run(rate=rate, duration=duration))
    tail.force_flush()
    spans = len(kept.get_finished_spans())
    return {"decision_wait_s": decision_wait, "traces_kept": tail.kept, "traces_dropped": tail.dropped,
            "spans_exported": spans, "max_spans_buffered": tail.max_buffered, "late_spans": tail.late_spans}


SLOW_CHECKOUT_RULES = """
groups:
  - name: checkout-latency
    rules:
      - alert: CheckoutSlow
        expr: >-
          histogram_quantile(0.9, sum by (le) (rate(http_request_duration_seconds_bucket{route="/checkout"}[1m])))
          > 0.25
        for: 2m
        labels:
          severity: page
        annotations:
          summary: "p90 checkout latency is {{ $value }} s"
"""


def drill_down_demo(seed: int = 0, *, rate: float = 2.0, duration: float = 600.0, incident=(240.0, 420.0),
                    slow_rate: float = 0.5) -> dict:
    """Alert -> exemplar trace -> logs, on a seeded incident in virtual time (module doc)."""
    config = ShopConfig(slow_rate=slow_rate, slow_from=incident[0], slow_until=incident[1])
    shop = TracedShop(seed, config)
    store = SeriesStore()
    scraper = Scraper(shop.metrics.registry, store, clock=shop.clock)
    evaluator = RuleEvaluator(load_rules(SLOW_CHECKOUT_RULES, name="checkout-latency"), store)
    exemplars: list[dict] = []
    fired: list = []
    timeline: list[dict] = []

    def tick(t):
        scraper.scrape()
        exemplars.extend(read_exemplars(shop.metrics.registry, t=t))
        alerts = evaluator.evaluate(t)
        timeline.append({"t": t, "state": alerts[0].state if alerts else "inactive"})
        if not fired:
            fired.extend(a for a in alerts if a.state == "firing")

    run_virtual(shop.run(rate=rate, duration=duration, on_tick=tick, tick=15.0))
    if not fired:
        return {"fired": False, "timeline": timeline}
    result = drill_down(fired[0], shop.tracing.spans(), shop.logs, exemplars=exemplars, window=180.0)
    p90 = Engine(store).query('histogram_quantile(0.9, sum by (le) (rate(http_request_duration_seconds_bucket'
                              '{route="/checkout"}[1m])))', fired[0].fired_at)
    if isinstance(p90, dict):
        p90 = next(iter(p90.values()), float("nan"))
    return {"fired": True, "timeline": timeline, "p90_at_fire": round(p90, 4), **result}
