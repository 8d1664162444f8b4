"""W3C Trace Context with the OpenTelemetry SDK: across three live aiohttp hops and the broker,
malformed headers ignored as the spec says, status/attributes/events, clock-stamped and seeded spans."""

import asyncio

import aiohttp
import pytest
from aiohttp import web
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

from workbook.core.clock import ManualClock, WallClock
from workbook.core.realtime import serve
from workbook.core.virtual_time import run_virtual
from workbook.messaging import InMemoryBroker
from workbook.observability import (LogStore, SeededIdGenerator, ServiceTracer, TracedHandler, TracedShop, Tracing,
                                    client_trace_config, head_sample, inject_context, parse_traceparent,
                                    process_span, publish_traced, service_logger, span_records,
                                    summarize_traces, tracing_middleware)

TIMEOUT = aiohttp.ClientTimeout(total=5)
VALID = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def _hop_app(tracer: ServiceTracer, downstream: str | None, broker=None, sink=None, logs=None):
    """A demo service: GET /work calls ``downstream`` (or publishes to the broker when last)."""
    app = web.Application(middlewares=[tracing_middleware(tracer)])
    log = service_logger(tracer.service, logs) if logs is not None else None

    async def work(request):
        tracer.event("work started", {"hop": tracer.service})
        if log is not None:
            log.info("work started at %s", tracer.service)
        if downstream is not None:
            async with aiohttp.ClientSession(trace_configs=[client_trace_config(tracer)], timeout=TIMEOUT) as http:
                async with http.get(f"{downstream}/work") as r:
                    await r.read()
                    if r.status >= 500:
                        return web.json_response({"error": "downstream"}, status=502)
        else:
            await publish_traced(broker, tracer, "orders.placed", {"order": 1}, key="o1")
        if sink is not None:
            sink.append(dict(request.headers))
        return web.json_response({"service": tracer.service})

    async def boom(request):
        raise RuntimeError("database on fire")

    async def missing(request):
        raise web.HTTPNotFound(text="no such order")

    app.router.add_get("/work", work)
    app.router.add_get("/boom", boom)
    app.router.add_get("/missing/{id}", missing)
    return app


def _by_name(records, service, name):
    [r] = [r for r in records if r.service == service and r.name == name]
    return r


def test_one_trace_through_three_http_hops_and_the_broker_with_parents_and_the_link():
    tracing = Tracing(seed=7, clock=WallClock())
    logs = LogStore()

    async def main():
        broker = InMemoryBroker(clock=WallClock())
        await broker.create_topic("orders.placed")
        await broker.create_group("orders.placed", "shipping")
        inventory = _hop_app(tracing.tracer("inventory"), None, broker, logs=logs)
        async with serve(inventory) as (inv_url,):
            async with serve(_hop_app(tracing.tracer("orders"), inv_url, logs=logs)) as (orders_url,):
                async with serve(_hop_app(tracing.tracer("gateway"), orders_url, logs=logs)) as (gw_url,):
                    client = tracing.tracer("client")
                    with client.span("checkout"):
                        async with aiohttp.ClientSession(trace_configs=[client_trace_config(client)],
                                                         timeout=TIMEOUT) as http:
                            async with http.get(f"{gw_url}/work") as r:
                                assert r.status == 200
        await broker.join("orders.placed", "shipping", "s1")
        [delivery] = await broker.poll("orders.placed", "shipping", "s1")
        with process_span(tracing.tracer("shipping"), delivery):
            pass
        await broker.ack(delivery)
        return delivery

    delivery = asyncio.run(main())
    rs = span_records(tracing.spans())
    assert len(rs) == 9
    assert len({r.trace_id for r in rs}) == 1, "one trace id across HTTP and the broker"
    root = _by_name(rs, "client", "checkout")
    chain = [root, _by_name(rs, "client", "GET"), _by_name(rs, "gateway", "GET /work"),
             _by_name(rs, "gateway", "GET"), _by_name(rs, "orders", "GET /work"), _by_name(rs, "orders", "GET"),
             _by_name(rs, "inventory", "GET /work"), _by_name(rs, "inventory", "publish orders.placed"),
             _by_name(rs, "shipping", "process orders.placed")]
    assert root.parent_id is None
    for parent, child in zip(chain, chain[1:]):
        assert child.parent_id == parent.span_id, f"{child.service}/{child.name} under {parent.service}/{parent.name}"
    kinds = [r.kind for r in chain]
    assert kinds == ["INTERNAL", "CLIENT", "SERVER", "CLIENT", "SERVER", "CLIENT", "SERVER", "PRODUCER", "CONSUMER"]
    producer, consumer = chain[-2], chain[-1]
    assert consumer.links == ((producer.trace_id, producer.span_id),), "consumer links to the creation context"
    assert producer.attributes["messaging.destination.name"] == "orders.placed"
    assert producer.attributes["messaging.message.id"] == delivery.message.id == consumer.attributes[
        "messaging.message.id"]
    assert consumer.attributes["messaging.operation.type"] == "process"
    assert consumer.attributes["messaging.consumer.group.name"] == "shipping"
    assert delivery.message.headers["traceparent"] == f"00-{producer.trace_id}-{producer.span_id}-01"
    server = chain[2]
    assert server.attributes["http.route"] == "/work" and server.attributes["http.response.status_code"] == 200
    assert [e[0] for e in server.events] == ["work started"]
    assert all(r.status == "UNSET" for r in rs)
    # each service's JSON log line carries the trace and its own SERVER span
    lines = logs.query(trace_id=root.trace_id)
    assert [(line["service"], line["span_id"]) for line in lines] == [
        ("gateway", chain[2].span_id), ("orders", chain[4].span_id), ("inventory", chain[6].span_id)]


def test_consumer_of_a_batch_starts_its_own_trace_and_keeps_only_the_link():
    tracing = Tracing(seed=1, clock=ManualClock())

    async def main():
        broker = InMemoryBroker(clock=ManualClock())
        await broker.create_topic("t")
        await broker.create_group("t", "g")
        await broker.join("t", "g", "c")
        message = await publish_traced(broker, tracing.tracer("p"), "t", {"x": 1})
        [d] = await broker.poll("t", "g", "c")
        with process_span(tracing.tracer("c"), d, parent=False):
            pass
        return message

    asyncio.run(main())
    producer, consumer = span_records(tracing.spans())
    assert consumer.trace_id != producer.trace_id and consumer.parent_id is None
    assert consumer.links == ((producer.trace_id, producer.span_id),)


def test_traced_handler_wraps_a_consumer_handler():
    tracing = Tracing(seed=2, clock=ManualClock())
    seen = []

    class Handler:
        def handle(self, message, inside=None):
            seen.append(trace.get_current_span().get_span_context().trace_id)

    async def main():
        broker = InMemoryBroker(clock=ManualClock())
        await broker.create_topic("t")
        await broker.create_group("t", "g")
        await broker.join("t", "g", "c")
        await publish_traced(broker, tracing.tracer("p"), "t", {"x": 1})
        [d] = await broker.poll("t", "g", "c")
        TracedHandler(tracing.tracer("c"), Handler()).handle(d.message, inside=lambda: None)

    asyncio.run(main())
    producer, consumer = span_records(tracing.spans())
    assert consumer.parent_id == producer.span_id and seen == [int(producer.trace_id, 16)]


# Invalid traceparent values, from the W3C Trace Context spec (section 3.2 and its test suite):
MALFORMED = {
    "version ff is forbidden": "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    "all-zero trace id": "00-00000000000000000000000000000000-b7ad6b7169203331-01",
    "all-zero parent id": "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
    "upper-case hex": "00-0AF7651916CD43DD8448EB211C80319C-B7AD6B7169203331-01",
    "trace id too short": "00-0af7651916cd43dd8448eb211c80319-b7ad6b7169203331-01",
    "parent id not hex": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b716920333g-01",
    "flags one digit": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-1",
    "version 00 with extra field": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-what",
    "wrong separator": "00_0af7651916cd43dd8448eb211c80319c_b7ad6b7169203331_01",
    "empty": "",
    "garbage": "not a traceparent",
}


@pytest.mark.parametrize("value", list(MALFORMED.values()), ids=list(MALFORMED))
def test_a_malformed_traceparent_is_ignored_and_a_new_trace_started(value):
    assert parse_traceparent(value) is None
    tracing = Tracing(seed=3, clock=WallClock())

    async def main():
        async with serve(_hop_app(tracing.tracer("svc"), None, sink=[])) as (url,):
            async with aiohttp.ClientSession(timeout=TIMEOUT) as http:
                headers = {"traceparent": value, "tracestate": "congo=t61rcWkgMzE"}
                async with http.get(f"{url}/missing/1", headers=headers) as r:
                    return r.status

    assert asyncio.run(main()) == 404
    [server] = tracing.spans()
    assert server.parent is None, "no remote parent: a new trace"
    assert trace.format_trace_id(server.context.trace_id) != "0af7651916cd43dd8448eb211c80319c"
    assert len(server.context.trace_state) == 0, "tracestate is dropped with an invalid traceparent"


def test_a_valid_traceparent_is_continued_with_its_tracestate_and_a_future_version_is_accepted():
    assert parse_traceparent(VALID).span_id == 0xB7AD6B7169203331
    # a higher version may append fields: parse the first four, as the spec says
    assert parse_traceparent("01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-what") is not None
    tracing = Tracing(seed=3, clock=WallClock())

    async def main():
        async with serve(_hop_app(tracing.tracer("svc"), None, sink=[])) as (url,):
            async with aiohttp.ClientSession(timeout=TIMEOUT) as http:
                async with http.get(f"{url}/missing/1",
                                    headers={"traceparent": VALID, "tracestate": "congo=t61rcWkgMzE"}) as r:
                    return r.status

    asyncio.run(main())
    [server] = tracing.spans()
    assert trace.format_trace_id(server.context.trace_id) == "0af7651916cd43dd8448eb211c80319c"
    assert server.parent.span_id == 0xB7AD6B7169203331 and server.parent.is_remote
    assert dict(server.context.trace_state) == {"congo": "t61rcWkgMzE"}


def test_status_codes_errors_and_attributes_on_server_and_client_spans():
    tracing = Tracing(seed=4, clock=WallClock())
    client = tracing.tracer("client")

    async def main():
        async with serve(_hop_app(tracing.tracer("svc"), None)) as (url,):
            async with aiohttp.ClientSession(trace_configs=[client_trace_config(client)], timeout=TIMEOUT) as http:
                for path in ("/boom", "/missing/42"):
                    async with http.get(f"{url}{path}?q=1") as r:
                        await r.read()
            async with aiohttp.ClientSession(trace_configs=[client_trace_config(client)], timeout=TIMEOUT) as http:
                with pytest.raises(aiohttp.ClientConnectionError):
                    await http.get("http://127.0.0.1:9/nothing")  # port 9 (discard): refused

    asyncio.run(main())
    rs = span_records(tracing.spans())
    boom = _by_name(rs, "svc", "GET /boom")
    assert boom.status == "ERROR" and boom.attributes["http.response.status_code"] == 500
    assert [e[0] for e in boom.events] == ["exception"]
    assert boom.events[0][2]["exception.type"] == "RuntimeError"
    assert tracing.spans()[0].status.description == "RuntimeError: database on fire", "the cause, not just 500"
    missing = _by_name(rs, "svc", "GET /missing/{id}")
    assert missing.status == "UNSET", "a 4xx is not a server error"
    assert missing.attributes["http.route"] == "/missing/{id}" and missing.attributes["url.path"] == "/missing/42"
    clients = [r for r in rs if r.service == "client"]
    assert [(r.attributes.get("http.response.status_code"), r.status) for r in clients] == [
        (500, "ERROR"), (404, "ERROR"), (None, "ERROR")]
    assert clients[0].attributes["url.full"].endswith("/boom"), "no query string in url.full"
    assert clients[2].attributes["error.type"].startswith("Client")


def test_span_times_and_events_come_from_the_injected_clock():
    clock = ManualClock(start=5.0)
    tracing = Tracing(seed=5, clock=clock)
    tracer = tracing.tracer("svc")
    with pytest.raises(ValueError):
        with tracer.span("work", attributes={"n": 3}):
            clock.advance(0.25)
            tracer.event("halfway", {"done": 1})
            clock.advance(0.25)
            raise ValueError("bad input")
    [span] = tracing.spans()
    assert (span.start_time, span.end_time) == (5_000_000_000, 5_500_000_000)
    assert [(e.name, e.timestamp) for e in span.events] == [("halfway", 5_250_000_000),
                                                             ("exception", 5_500_000_000)]
    assert span.status.description == "ValueError: bad input" and span.attributes["n"] == 3
    assert tracing.seconds(span.end_time) == 5.5


def test_ids_are_seeded_and_virtual_time_runs_are_reproducible():
    def run(seed):
        shop = TracedShop(seed)
        run_virtual(shop.run(rate=10, duration=5))
        return [(r.trace_id, r.span_id, r.parent_id, r.name, r.start_ns, r.end_ns, r.status)
                for r in span_records(shop.tracing.spans())]

    first, again, other = run(11), run(11), run(12)
    assert first == again and len(first) > 100
    assert first != other
    gen = SeededIdGenerator(11)
    assert gen.generate_trace_id() == SeededIdGenerator(11).generate_trace_id()


def test_head_sample_agrees_with_a_provider_using_the_sdk_sampler():
    shop = TracedShop(21)
    run_virtual(shop.run(rate=20, duration=10))
    summaries = summarize_traces(shop.tracing.spans())
    kept = head_sample(summaries, 0.3)
    # a provider with the SDK's head sampler, fed the same trace ids through the same generator
    ids = SeededIdGenerator(99)
    ids.generate_trace_id = iter([int(s.trace_id, 16) for s in summaries]).__next__
    provider = TracerProvider(sampler=ParentBased(TraceIdRatioBased(0.3)), id_generator=ids)
    tracer = provider.get_tracer("t")
    recorded = []
    for s in summaries:
        span = tracer.start_span("root")
        if span.is_recording():
            recorded.append(trace.format_trace_id(span.get_span_context().trace_id))
        span.end()
    assert kept == recorded and 0 < len(kept) < len(summaries)


def test_inject_context_writes_the_current_span():
    tracing = Tracing(seed=6, clock=ManualClock())
    with tracing.tracer("a").span("s") as span:
        headers = inject_context({})
    ctx = span.get_span_context()
    assert headers == {"traceparent": f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-01"}


def test_under_run_virtual_span_times_are_the_virtual_clock():
    tracing = Tracing(seed=8)  # default clock: the running loop's, virtual under run_virtual

    async def main():
        tracer = tracing.tracer("svc")
        await asyncio.sleep(1000)
        with tracer.span("outer"):
            await asyncio.sleep(2.5)
            with tracer.span("inner"):
                await asyncio.sleep(0.125)

    run_virtual(main())
    inner, outer = tracing.spans()
    assert (outer.start_time, outer.end_time) == (1000_000_000_000, 1002_625_000_000)
    assert (inner.start_time, inner.end_time) == (1002_500_000_000, 1002_625_000_000)
    assert inner.parent.span_id == outer.context.span_id


@pytest.mark.parametrize("call,name", [
    (lambda: Tracing(clock=ManualClock()).tracer(""), "'service'"),
    (lambda: SeededIdGenerator(-1), "'seed'"),
    (lambda: parse_traceparent(None), "'traceparent'"),
    (lambda: Tracing(epoch=-1.0), "'epoch'"),
])
def test_bad_arguments_are_named(call, name):
    from workbook.core.errors import ParameterError

    with pytest.raises(ParameterError, match=name):
        call()


def test_a_finished_experiments_spans_are_freed():
    import gc
    import weakref

    tracing = Tracing(seed=9, clock=ManualClock())
    with tracing.tracer("a").span("s"):
        pass
    exporter = weakref.ref(tracing.exporter)
    del tracing
    gc.collect()
    assert exporter() is None, "no atexit hook (or anything else) keeps the spans alive"
