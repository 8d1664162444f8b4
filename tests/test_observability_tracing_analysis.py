"""Trace analysis for the figures: waterfall, dependency graph, critical path; head vs tail sampling."""

import pytest
from hypothesis import given, settings, strategies as st
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from workbook.core.clock import ManualClock
from workbook.core.virtual_time import run_virtual
from workbook.observability import (BROKER, ShopConfig, SpanRecord, TracedShop, TraceNotFound, TraceSummary,
                                    Tracing, compare_sampling, critical_path, dependency_graph, head_sample,
                                    simulate_workload, summarize_traces, tail_sample, traces_by_id,
                                    waterfall)


def _handmade(n_traces=4, error_in=(0,)):
    """Traces with exact times (ms): gateway 0-100 > inventory 10-50 (concurrent with) payments 10-80 >
    bank 20-70; then orders 85-95. ``inventory`` fails in the traces listed in ``error_in``."""
    clock = ManualClock()
    tracing = Tracing(seed=1, clock=clock)
    t = {s: tracing.tracer(s) for s in ("gateway", "inventory", "payments", "bank", "orders")}
    for i in range(n_traces):
        base = clock.now()

        def at(ms):
            clock._now = base + ms / 1000

        at(0)
        root = t["gateway"].start("GET /checkout", kind=SpanKind.SERVER)
        ctx = trace.set_span_in_context(root)
        at(10)
        a = t["inventory"].start("GET /stock", kind=SpanKind.SERVER, context=ctx)
        b = t["payments"].start("POST /pay", kind=SpanKind.SERVER, context=ctx)
        at(20)
        b1 = t["bank"].start("authorize", kind=SpanKind.SERVER, context=trace.set_span_in_context(b))
        at(50)
        if i in error_in:
            a.set_status(Status(StatusCode.ERROR, "HTTP 503"))
        t["inventory"].end(a)
        at(70)
        t["bank"].end(b1)
        at(80)
        t["payments"].end(b)
        at(85)
        c = t["orders"].start("POST /orders", kind=SpanKind.SERVER, context=ctx)
        at(95)
        t["orders"].end(c)
        at(100)
        t["gateway"].end(root)
        at(1000)
    return tracing


def test_critical_path_follows_the_last_finishing_child_and_skips_concurrent_faster_ones():
    tracing = _handmade(1)
    path = critical_path(tracing.spans())
    assert [(r["service"], r["start_ms"], r["duration_ms"]) for r in path] == [
        ("gateway", 0.0, 10.0), ("payments", 10.0, 10.0), ("bank", 20.0, 50.0), ("payments", 70.0, 10.0),
        ("gateway", 80.0, 5.0), ("orders", 85.0, 10.0), ("gateway", 95.0, 5.0)]
    assert sum(r["duration_ms"] for r in path) == 100.0, "the segments tile the root exactly"
    assert "inventory" not in {r["service"] for r in path}, "the faster concurrent call is off the path"


def test_critical_path_clamps_a_child_that_outlives_its_parent():
    clock = ManualClock()
    tracing = Tracing(seed=2, clock=clock)
    a, b = tracing.tracer("a"), tracing.tracer("b")
    root = a.start("root")
    clock.advance(0.010)
    child = b.start("async child", context=trace.set_span_in_context(root))
    clock.advance(0.020)
    a.end(root)  # root ends at 30 ms, child goes on to 60 ms
    clock.advance(0.030)
    b.end(child)
    path = critical_path(tracing.spans())
    assert [(r["service"], r["start_ms"], r["duration_ms"]) for r in path] == [("a", 0.0, 10.0), ("b", 10.0, 20.0)]


def test_waterfall_rows_are_in_tree_order_with_offsets_durations_and_depths():
    tracing = _handmade(1)
    rows = waterfall(tracing.spans())
    assert [(r["service"], r["start_ms"], r["duration_ms"], r["depth"]) for r in rows] == [
        ("gateway", 0.0, 100.0, 0), ("inventory", 10.0, 40.0, 1), ("payments", 10.0, 70.0, 1),
        ("bank", 20.0, 50.0, 2), ("orders", 85.0, 10.0, 1)]
    assert rows[1]["status"] == "ERROR"


def test_dependency_graph_counts_calls_and_errors_per_edge():
    tracing = _handmade(4, error_in=(0,))
    g = dependency_graph(tracing.spans())
    edges = {(a, b): (d["calls"], d["errors"], d["error_rate"]) for a, b, d in g.edges(data=True)}
    assert edges == {("gateway", "inventory"): (4, 1, 0.25), ("gateway", "payments"): (4, 0, 0.0),
                     ("payments", "bank"): (4, 0, 0.0), ("gateway", "orders"): (4, 0, 0.0)}
    assert set(g.nodes) == {"gateway", "inventory", "payments", "bank", "orders"}


def test_unknown_or_ambiguous_trace_ids_are_refused_with_a_reason():
    tracing = _handmade(2)
    with pytest.raises(TraceNotFound, match="2 traces given"):
        waterfall(tracing.spans())
    with pytest.raises(TraceNotFound, match="no span of trace 'f00'"):
        critical_path(tracing.spans(), "f00")


@pytest.fixture(scope="module")
def shop():
    shop = TracedShop(5, ShopConfig(error_rate=0.05))
    run_virtual(shop.run(rate=10, duration=20))
    return shop


def test_shop_waterfall_runs_through_five_services_and_the_broker(shop):
    grouped = traces_by_id(shop.tracing.spans())
    trace_id = next(t for t, rs in grouped.items() if any(r.kind == "CONSUMER" for r in rs))
    rows = waterfall(shop.tracing.spans(), trace_id)
    assert {r["service"] for r in rows} == {"gateway", "orders", "inventory", "payments", "shipping"}
    assert rows[0]["depth"] == 0 and rows[0]["start_ms"] == 0.0 and rows[0]["name"] == "POST /checkout"
    kinds = [r["kind"] for r in rows]
    producer, consumer = kinds.index("PRODUCER"), kinds.index("CONSUMER")
    assert consumer == producer + 1 and rows[consumer]["depth"] == rows[producer]["depth"] + 1
    assert rows[consumer]["start_ms"] > rows[producer]["start_ms"], "time spent in the broker"
    # every row's parent precedes it
    seen = set()
    for r in rows:
        assert r["parent_id"] is None or r["parent_id"] in seen
        seen.add(r["span_id"])


def test_shop_dependency_graph_goes_through_the_broker_with_error_rates(shop):
    g = dependency_graph(shop.tracing.spans())
    assert g.nodes[BROKER]["kind"] == "broker"
    assert {("orders", BROKER), (BROKER, "shipping"), ("gateway", "orders"), ("orders", "payments"),
            ("orders", "inventory")} == set(g.edges)
    pay = g.edges["orders", "payments"]
    checkouts = len(traces_by_id(shop.tracing.spans()))
    assert pay["calls"] == checkouts and pay["errors"] > 0
    assert g.edges["gateway", "orders"]["errors"] == pay["errors"], "a failed payment fails the order"
    assert g.edges["orders", BROKER]["calls"] == checkouts - pay["errors"] == g.edges[BROKER, "shipping"]["calls"]
    assert g.edges["orders", BROKER]["topics"] == ["orders.placed"]


def _summary(i, error=False, duration=0.05):
    return TraceSummary(f"{i:032x}", "root", float(i), duration, error, 3)


def test_tail_sampling_keeps_errors_then_slow_then_random_within_the_budget():
    summaries = [_summary(i, error=i in (3, 7), duration=0.5 if i in (5, 9) else 0.05) for i in range(1, 21)]
    kept = tail_sample(summaries, 5, slow_threshold=0.25, seed=1)
    assert len(kept) == 5 and {f"{i:032x}" for i in (3, 7, 5, 9)} <= set(kept)
    assert tail_sample(summaries, 3, slow_threshold=0.25, seed=1) == [f"{i:032x}" for i in (3, 5, 7)]
    assert kept == tail_sample(summaries, 5, slow_threshold=0.25, seed=1)
    assert head_sample(summaries, 0.0) == [] and len(head_sample(summaries, 1.0)) == 20


def test_head_and_tail_sampling_compared_at_the_same_budget_reproducibly():
    config = ShopConfig(error_rate=0.03)
    summaries = simulate_workload(3, rate=20, duration=30, config=config)
    rows = compare_sampling(summaries, ratio=0.1, slow_threshold=0.25, seed=3)
    again = compare_sampling(simulate_workload(3, rate=20, duration=30, config=config), ratio=0.1,
                             slow_threshold=0.25, seed=3)
    assert rows == again, "a pure function of the seed"
    head, tail = rows
    assert head["traces"] == tail["traces"] == len(summaries)
    assert head["kept"] == tail["kept"] > 0, "same storage budget"
    assert head["error_traces"] == tail["error_traces"] > 10
    assert tail["errors_kept"] > head["errors_kept"]
    assert tail["error_recall"] == 1.0 and head["error_recall"] < 0.5
    assert tail["slow_kept"] >= head["slow_kept"]


def test_tail_sampling_processor_exports_exactly_the_error_and_slow_traces_of_a_live_run():
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from workbook.observability import TailSamplingProcessor

    config = ShopConfig(error_rate=0.05)
    everything = TracedShop(9, config)
    run_virtual(everything.run(rate=10, duration=30))
    summaries = {s.trace_id: s for s in summarize_traces(everything.tracing.spans())}
    wanted = {t for t, s in summaries.items() if s.error or s.duration > 0.25}

    kept = InMemorySpanExporter()
    tail = TailSamplingProcessor(kept, slow_threshold=0.25, decision_wait=10.0)  # LoopClock: virtual here
    shop = TracedShop(9, config, tracing=Tracing(seed=9, exporter=kept, processor=tail))
    run_virtual(shop.run(rate=10, duration=30))
    tail.force_flush()
    exported = {t for t in traces_by_id(kept.get_finished_spans())}
    assert exported == wanted and 0 < len(wanted) < len(summaries)
    assert tail.kept == len(wanted) and tail.kept + tail.dropped == len(summaries) and tail.late_spans == 0
    assert len(kept.get_finished_spans()) == sum(summaries[t].spans for t in wanted), "whole traces kept"
    assert 0 < tail.max_buffered < len(everything.tracing.spans()), "the buffer holds a window, not the run"


@st.composite
def span_trees(draw):
    """Random span trees (ms): children start inside their parent and may end after it."""
    spans = []
    counter = iter(range(1, 10_000))

    def grow(parent_id, start, end, depth):
        for _ in range(draw(st.integers(0, 3 if depth < 3 else 0))):
            s = draw(st.integers(start, end))
            e = draw(st.integers(s, end + (end - start) // 4))
            sid = f"{next(counter):016x}"
            spans.append(SpanRecord("a" * 32, sid, parent_id, f"s{sid[-3:]}", f"svc{depth}", "INTERNAL",
                                    s * 1_000_000, e * 1_000_000, "UNSET"))
            grow(sid, s, e, depth + 1)

    end = draw(st.integers(1, 1000))
    spans.append(SpanRecord("a" * 32, f"{0:016x}", None, "root", "root", "SERVER", 0, end * 1_000_000, "UNSET"))
    grow(f"{0:016x}", 0, end, 1)
    return spans


@settings(max_examples=200, deadline=None, derandomize=True)
@given(span_trees())
def test_critical_path_segments_tile_the_root_and_lie_inside_their_spans(spans):
    by_id = {s.span_id: s for s in spans}
    root = by_id[f"{0:016x}"]
    path = critical_path(spans)
    cursor = 0.0
    for seg in path:
        assert seg["start_ms"] == pytest.approx(cursor), "contiguous, no overlap, no gap"
        span = by_id[seg["span_id"]]
        assert span.start_ns / 1e6 <= seg["start_ms"] + 1e-9
        assert seg["start_ms"] + seg["duration_ms"] <= span.end_ns / 1e6 + 1e-9
        cursor = seg["start_ms"] + seg["duration_ms"]
    assert cursor == pytest.approx(root.duration_ms)
