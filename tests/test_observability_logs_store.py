"""JSON logs carrying trace and span ids, stored in SQLite FTS5 and queried; bad queries named; drill-down."""

import json
import logging

import pytest
from opentelemetry import trace
from prometheus_client import CollectorRegistry, Histogram

from workbook.core.clock import ManualClock
from workbook.core.errors import WorkbookError
from workbook.observability import (Alert, DrillDownError, JsonFormatter, LogQueryError, LogStore, Tracing,
                                    drill_down, fts5_available, parse_log_query, read_exemplars, service_logger)
from workbook.observability.tracing import exemplar_of_current_span


def test_this_sqlite_has_fts5():
    assert fts5_available(), "the store falls back to LIKE without FTS5; this machine's SQLite should have it"


def _setup(use_fts5=None):
    clock = ManualClock(start=100.0)
    tracing = Tracing(seed=1, clock=clock)
    store = LogStore(use_fts5=use_fts5)
    logs = {s: service_logger(s, store, clock=clock) for s in ("orders", "payments")}
    ids = {}
    with tracing.tracer("orders").span("POST /orders") as span:
        logs["orders"].info("order %d received", 7, extra={"order": 7, "sku": "apple"})
        clock.advance(1)
        with tracing.tracer("payments").span("POST /payments") as inner:
            logs["payments"].error("card processor unavailable: timeout after 2 s", extra={"order": 7})
            ids["payments_span"] = trace.format_span_id(inner.get_span_context().span_id)
        clock.advance(1)
        logs["orders"].warning("order 7 failed, compensating")
    ids["trace"] = trace.format_trace_id(span.get_span_context().trace_id)
    ids["orders_span"] = trace.format_span_id(span.get_span_context().span_id)
    clock.advance(10)
    logs["orders"].info("health check ok")  # outside any span
    logs["orders"].debug("cache warmed")
    return store, ids


def test_json_lines_carry_the_current_trace_and_span_and_extra_fields():
    clock = ManualClock(start=3.5)
    tracing = Tracing(seed=2, clock=clock)
    record = logging.LogRecord("orders", logging.WARNING, __file__, 1, "stock low for %s", ("apple",), None)
    record.sku = "apple"
    formatter = JsonFormatter(service="orders", clock=clock)
    with tracing.tracer("orders").span("s") as span:
        line = formatter.format(record)
    entry = json.loads(line)
    ctx = span.get_span_context()
    assert entry == {"ts": 3.5, "level": "WARNING", "service": "orders", "logger": "orders",
                     "message": "stock low for apple", "trace_id": f"{ctx.trace_id:032x}",
                     "span_id": f"{ctx.span_id:016x}", "sku": "apple"}
    outside = json.loads(formatter.format(logging.LogRecord("orders", logging.INFO, __file__, 1, "x", (), None)))
    assert outside["trace_id"] is None and outside["span_id"] is None


def test_query_by_trace_service_level_time_and_text():
    store, ids = _setup()
    assert len(store) == 5 and store.fts5
    by_trace = store.query(trace_id=ids["trace"])
    assert [(r["service"], r["level"], r["ts"]) for r in by_trace] == [
        ("orders", "INFO", 100.0), ("payments", "ERROR", 101.0), ("orders", "WARNING", 102.0)]
    assert by_trace[0]["order"] == 7 and by_trace[0]["sku"] == "apple" and by_trace[0]["span_id"] == ids["orders_span"]
    assert [r["message"] for r in store.query(span_id=ids["payments_span"])] == [
        "card processor unavailable: timeout after 2 s"]
    assert [r["level"] for r in store.query(service="orders")] == ["INFO", "WARNING", "INFO", "DEBUG"]
    assert [r["level"] for r in store.query(level="warning")] == ["ERROR", "WARNING"]
    assert [r["ts"] for r in store.query(since=101, until=102)] == [101.0], "since <= ts < until"
    assert [r["service"] for r in store.query(text="processor")] == ["payments"]
    assert [r["message"] for r in store.query(text="compensat*")] == ["order 7 failed, compensating"]
    assert len(store.query(text="compensating OR health")) == 2
    assert len(store.query(text="order")) == 3, "the payments line matches by its extra field 'order'"
    assert store.query(text='"compensating failed"') == [], "a phrase needs its words in order"
    assert [r["message"] for r in store.query(text="apple")] == ["order 7 received"], "extra fields are indexed"
    assert store.query(service="orders", level="INFO", text="health", since=105)[0]["message"] == "health check ok"


def test_search_strings_combine_fields_and_text():
    store, ids = _setup()
    assert parse_log_query(f'service:orders level:warning trace_id:{ids["trace"]} "order 7" failed') == {
        "service": "orders", "level": "WARNING", "trace_id": ids["trace"], "text": '"order 7" "failed"'}
    assert [r["message"] for r in store.search(f"trace_id:{ids['trace']} level:error")] == [
        "card processor unavailable: timeout after 2 s"]
    assert [r["message"] for r in store.search('since:100 until:101.5 "unavailable: timeout"')] == [
        "card processor unavailable: timeout after 2 s"]
    assert len(store.search("")) == 5
    assert store.search('OR') == [], "operators in a search string are words, never syntax"


BAD_QUERIES = {
    "unknown field": ("servce:orders", "unknown field 'servce'"),
    "unclosed quote": ('"timeout after', "unclosed quote at char 0"),
    "bad level": ("level:loud", "level: expected one of DEBUG, INFO, WARNING, ERROR, CRITICAL"),
    "bad time": ("since:yesterday", "since: expected a time in seconds"),
    "empty value": ("service: timeout", "field 'service' at char 0 has no value"),
    "twice": ("level:info level:error", "field 'level' given twice"),
    "bad trace id": ("trace_id:xyz", "trace_id: expected 32 lower-case hex digits"),
    "reversed range": ("since:10 until:5", "since (10.0) is after until (5.0)"),
}


@pytest.mark.parametrize("query,message", list(BAD_QUERIES.values()), ids=list(BAD_QUERIES))
def test_a_bad_search_string_names_what_is_wrong(query, message):
    store, _ = _setup()
    with pytest.raises(LogQueryError) as info:
        store.search(query)
    assert message in str(info.value)
    assert isinstance(info.value, WorkbookError)


@pytest.mark.parametrize("text", ['"unclosed', "AND", "order NEAR(", "(health"])
def test_bad_fts5_syntax_is_reported_with_sqlites_reason(text):
    store, _ = _setup()
    reason = r"text: search syntax .* rejected by SQLite FTS5: (fts5: syntax error|unterminated string)"
    with pytest.raises(LogQueryError, match=reason):
        store.query(text=text)


@pytest.mark.parametrize("kwargs,message", [
    ({"level": 30}, "level: expected one of"), ({"since": "1h"}, "since: expected a time"),
    ({"span_id": "ABC"}, "span_id: expected 16"), ({"service": ""}, "service: expected a non-empty"),
    ({"text": "  "}, "text: expected a non-empty"), ({"limit": 0}, "limit: expected a positive integer"),
])
def test_bad_query_arguments_are_named(kwargs, message):
    with pytest.raises(LogQueryError, match=message):
        LogStore().query(**kwargs)


def test_without_fts5_text_falls_back_to_like_on_the_message():
    store, ids = _setup(use_fts5=False)
    assert not store.fts5 and "LIKE fallback" in repr(store)
    assert [r["service"] for r in store.query(text="processor")] == ["payments"]
    assert [r["message"] for r in store.search("order failed")] == ["order 7 failed, compensating"]
    assert store.query(text="100%") == [], "LIKE wildcards in the text are literal"


def test_a_malformed_log_line_is_refused():
    with pytest.raises(LogQueryError, match="not JSON"):
        LogStore().add("{nope")
    with pytest.raises(LogQueryError, match="level: expected one of"):
        LogStore().add({"message": "x", "level": "LOUD"})


def _alert(fired_at):
    return Alert(rule="SlowCheckout", labels=(("severity", "page"),), annotations={}, state="firing",
                 active_at=fired_at - 60, value=0.4, fired_at=fired_at)


def test_drill_down_from_alert_to_exemplar_trace_to_its_logs():
    clock = ManualClock()
    tracing = Tracing(seed=3, clock=clock)
    store = LogStore()
    log = service_logger("gateway", store, clock=clock)
    registry = CollectorRegistry()
    latency = Histogram("http_request_duration_seconds", "latency", buckets=(0.1, 0.5, 1.0), registry=registry)
    exemplars = []
    for i, seconds in enumerate([0.05, 0.7, 0.08, 0.3]):
        with tracing.tracer("gateway").span(f"request {i}"):
            log.info("request %d", i)
            clock.advance(seconds)
            latency.observe(seconds, exemplar=exemplar_of_current_span())
        exemplars += read_exemplars(registry, t=clock.now())
        clock.advance(10)
    result = drill_down(_alert(clock.now()), tracing.spans(), store, exemplars=exemplars, window=300)
    assert result["how"] == "exemplar" and result["latency_s"] == 0.7
    assert [r["message"] for r in result["logs"]] == ["request 1"]
    assert result["waterfall"][0]["name"] == "request 1" and result["critical_path"][0]["duration_ms"] == 700.0
    # without exemplars: the slowest trace that started in the window
    fallback = drill_down(_alert(clock.now()), tracing.spans(), store, window=300)
    assert fallback["how"] == "slowest in window" and fallback["trace_id"] == result["trace_id"]
    with pytest.raises(DrillDownError, match="no trace started in the window"):
        drill_down(_alert(clock.now() + 1000), tracing.spans(), store, window=5)
    with pytest.raises(DrillDownError, match="has not fired"):
        drill_down(Alert("SlowCheckout", (), {}, "pending", 0.0, 1.0), tracing.spans(), store)
