"""Traces with the OpenTelemetry SDK, timed by an injected clock and reproducible for a seed.

``Tracing(seed=..., clock=...)`` owns what one experiment records: an
``InMemorySpanExporter`` (``tracing.spans()``: the finished spans, in the order they
ended), one SDK ``TracerProvider`` per service (``tracing.tracer("orders")``; the
provider's resource carries ``service.name``, as each process of a real system would),
and the id generator and sampler they share.

* **Time comes from the clock, not the SDK.** The SDK stamps spans with
  ``time.time_ns()`` unless given ``start_time``/``end_time``; every span and event made
  through a ``ServiceTracer`` is stamped ``(epoch + clock.now()) * 1e9`` ns instead. Under
  ``run_virtual`` with the default ``LoopClock`` a span lasts exactly its virtual time,
  and with ``epoch=0`` (the default) a span's start in seconds is the clock reading that a
  ``Scraper`` or a log record of the same run also uses, so alerts, traces and logs line
  up without conversion.
* **Ids come from a seeded stream.** ``SeededIdGenerator(seed)`` draws trace and span ids
  from ``workbook.core.seeds.stream(seed, "otel-ids")``: the same run with the same seed
  produces the same ids (and, with a ratio sampler, the same sampling decisions, which
  the SDK bases on the trace id). ``seed=None`` uses the SDK's random generator.
* **Errors.** ``with tracer.span(name) as span:`` ends the span on exit; an exception
  leaving the block is recorded as an ``exception`` event and sets the status to ERROR
  with ``"<Type>: <message>"``, then propagates. ``tracer.event(name, attributes)``
  adds an event to the current span at the clock's time.

Context travels in ``contextvars`` (the SDK's default), so each asyncio task carries its
own current span; across process boundaries it travels as W3C ``traceparent`` and
``tracestate`` headers (``workbook.observability.propagation``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.id_generator import IdGenerator, RandomIdGenerator
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, Sampler
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

from workbook.core.clock import Clock, LoopClock
from workbook.core.errors import ParameterError
from workbook.core.params import check_int, check_number
from workbook.core.seeds import stream

__all__ = ["Tracing", "ServiceTracer", "SeededIdGenerator", "current_ids",
           "exemplar_of_current_span"]


class SeededIdGenerator(IdGenerator):
    """Trace and span ids drawn from a seeded stream: the same seed, the same ids in the same order.

    Ids are never zero (the W3C spec makes all-zero ids invalid)."""

    def __init__(self, seed: int):
        self.seed = check_int("seed", seed, minimum=0)
        self._rng = stream(seed, "otel-ids")

    def generate_span_id(self) -> int:
        while True:
            value = self._rng.getrandbits(64)
            if value:
                return value

    def generate_trace_id(self) -> int:
        while True:
            value = self._rng.getrandbits(128)
            if value:
                return value


class Tracing:
    """Tracer providers per service sharing one in-memory exporter, clock, ids and sampler (module doc)."""

    def __init__(self, *, seed: int | None = None, clock: Clock | None = None, sampler: Sampler | None = None,
                 epoch: float = 0.0, exporter=None, processor=None):
        self.clock = clock or LoopClock()
        self.epoch = check_number("epoch", epoch, minimum=0)
        self.seed = seed
        self.id_generator = SeededIdGenerator(seed) if seed is not None else RandomIdGenerator()
        self.sampler = sampler or ALWAYS_ON
        self.exporter = exporter if exporter is not None else InMemorySpanExporter()
        # ``processor`` replaces the default SimpleSpanProcessor(exporter): e.g. a
        # TailSamplingProcessor that exports to ``exporter`` only the traces it keeps
        self._processor = processor if processor is not None else SimpleSpanProcessor(self.exporter)
        self._tracers: dict[str, ServiceTracer] = {}

    def now_ns(self) -> int:
        """The clock's time as OpenTelemetry nanoseconds (``epoch`` + clock seconds)."""
        return int(round((self.epoch + self.clock.now()) * 1e9))

    def seconds(self, ns: int) -> float:
        """A span timestamp back on the clock's scale (the inverse of ``now_ns``)."""
        return ns / 1e9 - self.epoch

    def tracer(self, service: str) -> "ServiceTracer":
        """The tracer of ``service`` (created on first use, with its own provider and resource)."""
        if not isinstance(service, str) or not service:
            raise ParameterError("service", service, "a non-empty string (the service.name resource attribute)")
        if service not in self._tracers:
            # shutdown_on_exit=False: the SDK's default registers an atexit hook per provider, which
            # would keep every experiment's spans alive until the interpreter exits
            provider = TracerProvider(sampler=self.sampler, resource=Resource.create({"service.name": service}),
                                      id_generator=self.id_generator, shutdown_on_exit=False)
            provider.add_span_processor(self._processor)
            self._tracers[service] = ServiceTracer(self, service, provider.get_tracer("workbook.observability"))
        return self._tracers[service]

    def spans(self) -> list[ReadableSpan]:
        """The finished spans so far, in the order they ended."""
        return list(self.exporter.get_finished_spans())

    def clear(self) -> None:
        self.exporter.clear()

    def __repr__(self):
        return f"Tracing(seed={self.seed}, services={sorted(self._tracers)}, spans={len(self.spans())})"


class ServiceTracer:
    """One service's tracer: spans and events stamped by the ``Tracing``'s clock."""

    def __init__(self, tracing: Tracing, service: str, sdk_tracer: trace.Tracer):
        self.tracing, self.service, self.sdk_tracer = tracing, service, sdk_tracer

    def start(self, name: str, *, kind: SpanKind = SpanKind.INTERNAL, context: Context | None = None,
              attributes: dict | None = None, links: Sequence[Link] = ()) -> trace.Span:
        """Start a span at the clock's time (not current; end it with ``end``). ``context``:
        the parent context (``None``: the current one; an empty ``Context()``: a new trace)."""
        return self.sdk_tracer.start_span(name, context=context, kind=kind, attributes=attributes,
                                          links=list(links), start_time=self.tracing.now_ns(),
                                          record_exception=False, set_status_on_exception=False)

    def end(self, span: trace.Span) -> None:
        span.end(end_time=self.tracing.now_ns())

    def record_error(self, span: trace.Span, exc: BaseException, description: str | None = None) -> None:
        """An ``exception`` event at the clock's time and status ERROR."""
        span.record_exception(exc, timestamp=self.tracing.now_ns())
        span.set_status(Status(StatusCode.ERROR, description or f"{type(exc).__name__}: {exc}"))

    @contextlib.contextmanager
    def span(self, name: str, *, kind: SpanKind = SpanKind.INTERNAL, context: Context | None = None,
             attributes: dict | None = None, links: Sequence[Link] = ()) -> Iterator[trace.Span]:
        """A span made current for the block, ended on exit; an escaping exception marks it ERROR."""
        span = self.start(name, kind=kind, context=context, attributes=attributes, links=links)
        try:
            with trace.use_span(span, end_on_exit=False, record_exception=False, set_status_on_exception=False):
                yield span
        except BaseException as exc:
            self.record_error(span, exc)
            raise
        finally:
            self.end(span)

    def event(self, name: str, attributes: dict | None = None, span: trace.Span | None = None) -> None:
        """Add an event to ``span`` (default: the current span) at the clock's time."""
        (span or trace.get_current_span()).add_event(name, attributes or {}, timestamp=self.tracing.now_ns())

    def __repr__(self):
        return f"ServiceTracer({self.service!r})"


def current_ids() -> tuple[str | None, str | None]:
    """``(trace_id, span_id)`` of the current span as W3C lower-case hex, or ``(None, None)``."""
    ctx = trace.get_current_span().get_span_context()
    if not ctx.is_valid:
        return None, None
    return trace.format_trace_id(ctx.trace_id), trace.format_span_id(ctx.span_id)


def exemplar_of_current_span() -> dict[str, str] | None:
    """``{"trace_id": ...}`` for ``Histogram.observe(value, exemplar=...)`` when the current
    span is sampled (an exemplar should point at a trace that was kept), else ``None``."""
    ctx = trace.get_current_span().get_span_context()
    if not ctx.is_valid or not ctx.trace_flags.sampled:
        return None
    return {"trace_id": trace.format_trace_id(ctx.trace_id)}
