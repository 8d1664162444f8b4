"""W3C Trace Context across aiohttp calls and broker messages.

**HTTP.** ``tracing_middleware(tracer)`` is an aiohttp server middleware: it extracts the
caller's context from the ``traceparent``/``tracestate`` headers with the SDK's
``TraceContextTextMapPropagator`` and serves the request inside a SERVER span named
``"{method} {route}"`` (the route template, never the raw path), with the HTTP semantic
convention attributes (``http.request.method``, ``http.route``, ``url.path``,
``http.response.status_code``). A 5xx answer is an ERROR span; a 4xx is not (the server
did its job; the semantic conventions leave 4xx unset on servers). ``client_trace_config(tracer)``
is an ``aiohttp.TraceConfig`` for ``ClientSession(trace_configs=[...])``: every request
gets a CLIENT span (named ``"{method}"``, with ``url.full``, ``server.address``,
``server.port``, ``http.response.status_code``; 4xx and 5xx and connection errors are
ERROR) whose context is injected into the outgoing headers, so the callee's SERVER span
is its child.

**A malformed ``traceparent`` is ignored**, as the W3C spec requires: the propagator
returns no parent (and drops ``tracestate`` with it), so the server starts a new trace.
``parse_traceparent(value)`` says whether a value would be accepted (the notebook's
table of the spec's invalid examples).

**Messages** (chapter 3's ``workbook.messaging`` brokers), following the OpenTelemetry
messaging semantic conventions: ``publish_traced(broker, tracer, topic, payload, ...)`` wraps the
broker's ``publish`` in a PRODUCER span ``"publish {topic}"`` and injects that span's
context into the message headers (the *creation context*); ``process_span(tracer,
delivery)`` opens the CONSUMER span ``"process {topic}"`` that **links** to the creation
context (the convention's requirement, which also works for batches) and, for a single
message (``parent=True``, the default), is its **child** too, so producer and consumer
share one trace. ``TracedHandler`` wraps a ``Consumer`` handler so each message is
processed inside such a span.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, MutableMapping

from aiohttp import TraceConfig, web
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Link, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from workbook.core.errors import ParameterError
from workbook.observability.tracing import ServiceTracer

__all__ = ["PROPAGATOR", "inject_context", "extract_context", "parse_traceparent", "tracing_middleware",
           "client_trace_config",
           "publish_traced", "process_span", "TracedHandler"]

PROPAGATOR = TraceContextTextMapPropagator()
"""The W3C Trace Context propagator (``traceparent`` and ``tracestate``; no baggage)."""


def inject_context(headers: MutableMapping[str, str],
                   context: Context | None = None) -> MutableMapping[str, str]:
    """Write ``traceparent`` (and ``tracestate`` if any) of ``context`` (default: current) into ``headers``."""
    PROPAGATOR.inject(headers, context=context)
    return headers


def extract_context(headers) -> Context:
    """The context carried by ``headers``; without a valid ``traceparent`` an empty context (a new trace)."""
    return PROPAGATOR.extract(headers or {}, context=Context())


def parse_traceparent(value: str) -> trace.SpanContext | None:
    """The remote span context of a ``traceparent`` value, or ``None`` if the spec says ignore it."""
    if not isinstance(value, str):
        raise ParameterError("traceparent", value, "a header value (str)")
    ctx = trace.get_current_span(extract_context({"traceparent": value})).get_span_context()
    return ctx if ctx.is_valid else None


def _route_of(request: web.Request) -> str:
    info = request.match_info
    resource = info.route.resource if info is not None else None
    return resource.canonical if resource is not None else "unmatched"


def tracing_middleware(tracer: ServiceTracer, *, skip=("/metrics", "/health")):
    """Server middleware: a SERVER span per request, child of the caller's ``traceparent`` (module doc)."""

    @web.middleware
    async def middleware(request: web.Request, handler):
        if request.path in skip:
            return await handler(request)
        route = _route_of(request)
        host, _, port = (request.host or "").partition(":")
        attributes = {"http.request.method": request.method, "http.route": route, "url.path": request.path,
                      "url.scheme": request.scheme, "server.address": host}
        if port.isdigit():
            attributes["server.port"] = int(port)
        span = tracer.start(f"{request.method} {route}", kind=SpanKind.SERVER,
                            context=extract_context(request.headers), attributes=attributes)
        status, recorded = 500, False
        try:
            with trace.use_span(span, end_on_exit=False, record_exception=False, set_status_on_exception=False):
                try:
                    response = await handler(request)
                    status = response.status
                    return response
                except web.HTTPException as exc:
                    status = exc.status
                    raise
                except BaseException as exc:
                    tracer.record_error(span, exc)  # the status names the exception, not just "HTTP 500"
                    recorded = True
                    raise
        finally:
            span.set_attribute("http.response.status_code", status)
            if status >= 500 and not recorded:
                span.set_status(Status(StatusCode.ERROR, f"HTTP {status}"))
            tracer.end(span)

    return middleware


def client_trace_config(tracer: ServiceTracer) -> TraceConfig:
    """A ``TraceConfig``: a CLIENT span per request, its context injected into the request's headers."""
    config = TraceConfig()

    async def on_start(session, ctx, params):
        url = params.url
        attributes = {"http.request.method": params.method, "url.full": str(url.with_query(None)),
                      "server.address": url.host or ""}
        if url.port is not None:
            attributes["server.port"] = url.port
        ctx.span = tracer.start(params.method, kind=SpanKind.CLIENT, attributes=attributes)
        inject_context(params.headers, trace.set_span_in_context(ctx.span))

    async def on_end(session, ctx, params):
        status = params.response.status
        ctx.span.set_attribute("http.response.status_code", status)
        if status >= 400:
            ctx.span.set_status(Status(StatusCode.ERROR, f"HTTP {status}"))
        tracer.end(ctx.span)

    async def on_exception(session, ctx, params):
        if getattr(ctx, "span", None) is None:
            return
        ctx.span.set_attribute("error.type", type(params.exception).__name__)
        tracer.record_error(ctx.span, params.exception)
        tracer.end(ctx.span)

    config.on_request_start.append(on_start)
    config.on_request_end.append(on_end)
    config.on_request_exception.append(on_exception)
    return config


async def publish_traced(broker, tracer: ServiceTracer, topic: str, payload, *, headers: dict | None = None,
                  system: str = "workbook", **kwargs):
    """``broker.publish`` inside a PRODUCER span whose context travels in the message headers."""
    attributes = {"messaging.system": system, "messaging.destination.name": topic,
                  "messaging.operation.type": "send", "messaging.operation.name": "publish"}
    with tracer.span(f"publish {topic}", kind=SpanKind.PRODUCER, attributes=attributes) as span:
        carried = inject_context(dict(headers or {}))
        message = await broker.publish(topic, payload, headers=carried, **kwargs)
        span.set_attribute("messaging.message.id", message.id)
        if message.partition >= 0:
            span.set_attribute("messaging.destination.partition.id", str(message.partition))
        return message


@contextlib.contextmanager
def process_span(tracer: ServiceTracer, delivery, *, parent: bool = True,
                 system: str = "workbook") -> Iterator[trace.Span]:
    """A CONSUMER span ``"process {topic}"`` for a ``Delivery`` (or ``Message``): linked to the
    message's creation context, and its child when ``parent`` (module doc)."""
    message = getattr(delivery, "message", delivery)
    creation = extract_context(message.headers)
    created = trace.get_current_span(creation).get_span_context()
    links = [Link(created)] if created.is_valid else []
    attributes = {"messaging.system": system, "messaging.destination.name": message.topic,
                  "messaging.operation.type": "process", "messaging.operation.name": "process",
                  "messaging.message.id": message.id}
    if message.partition >= 0:
        attributes["messaging.destination.partition.id"] = str(message.partition)
    if getattr(delivery, "group", None):
        attributes["messaging.consumer.group.name"] = delivery.group
        attributes["messaging.delivery.attempt"] = delivery.attempt  # not a convention: the redelivery count
    context = creation if parent and created.is_valid else Context()
    with tracer.span(f"process {message.topic}", kind=SpanKind.CONSUMER, context=context, links=links,
                     attributes=attributes) as span:
        yield span


class TracedHandler:
    """A ``Consumer`` handler (``handle(message, inside=...)``) run inside ``process_span``."""

    def __init__(self, tracer: ServiceTracer, handler, *, parent: bool = True):
        self.tracer, self.handler, self.parent = tracer, handler, parent

    def handle(self, message, inside=None):
        with process_span(self.tracer, message, parent=self.parent):
            if inside is None:
                return self.handler.handle(message)
            return self.handler.handle(message, inside=inside)
