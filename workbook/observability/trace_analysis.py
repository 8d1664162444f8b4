"""What the notebook's trace figures are drawn from: plain rows and a graph, no plotting.

* ``span_records(spans)``: the SDK's ``ReadableSpan`` objects as plain ``SpanRecord`` rows
  (hex ids, service, kind, start/end in ns, status, attributes, links, events);
  ``traces_by_id(spans)`` groups them by trace id.
* ``waterfall(spans, trace_id)``: one row per span of a trace in tree order (a span is
  followed by its children, earliest first): name, service, kind, start offset and
  duration in ms from the trace's first span, depth in the tree, status. The consumer
  span of a message is placed under the producer span it is the child of, so the gap
  between them is the time the message spent in the broker.
* ``dependency_graph(spans)``: a ``networkx.DiGraph`` of services. An edge ``a -> b``
  for every span of service ``b`` whose parent span belongs to service ``a`` (a SERVER
  span under a CLIENT span: an HTTP call), with ``calls``, ``errors`` (the callee's span
  has status ERROR) and ``error_rate``. Messages go through a ``broker`` node:
  ``producer -> broker -> consumer``, counting PRODUCER and CONSUMER spans, each edge
  also naming its ``topics``.
* ``critical_path(spans, trace_id)``: the segments of the spans that determine the root
  span's duration. Walking back from the root's end, the child that finished last
  (clamped to the current point) is on the path; the parent's own time is the gap after
  it; then continue from that child's start. Concurrent children that finish earlier are
  off the path: making them faster would not make the request faster. The segments are
  disjoint and tile the root exactly (``sum(duration) == root duration``). Work that
  outlives the root (a message consumed after the HTTP response) is not on the path: it
  does not delay the response.

Durations are reported in milliseconds rounded to 3 decimals (microseconds): spans timed
by a virtual clock have exact durations, and rounding keeps the printed numbers stable.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import networkx as nx
from opentelemetry import trace

from workbook.observability.errors import ObservabilityError

__all__ = ["SpanRecord", "span_records", "traces_by_id", "waterfall", "dependency_graph", "critical_path",
           "TraceNotFound",
           "BROKER"]


class TraceNotFound(ObservabilityError):
    """No span of the trace id asked for (or a trace without a root span)."""


@dataclass(frozen=True)
class SpanRecord:
    trace_id: str
    span_id: str
    parent_id: str | None
    name: str
    service: str
    kind: str
    start_ns: int
    end_ns: int
    status: str
    attributes: dict = field(default_factory=dict)
    links: tuple = ()
    events: tuple = ()

    @property
    def duration_ms(self) -> float:
        return round((self.end_ns - self.start_ns) / 1e6, 3)

    @property
    def error(self) -> bool:
        return self.status == "ERROR"


def _record(span) -> SpanRecord:
    ctx = span.context
    return SpanRecord(
        trace_id=trace.format_trace_id(ctx.trace_id), span_id=trace.format_span_id(ctx.span_id),
        parent_id=trace.format_span_id(span.parent.span_id) if span.parent is not None else None,
        name=span.name, service=str(span.resource.attributes.get("service.name", "unknown")),
        kind=span.kind.name, start_ns=span.start_time, end_ns=span.end_time, status=span.status.status_code.name,
        attributes=dict(span.attributes or {}),
        links=tuple((trace.format_trace_id(link.context.trace_id), trace.format_span_id(link.context.span_id))
                    for link in span.links),
        events=tuple((e.name, e.timestamp, dict(e.attributes or {})) for e in span.events))


def span_records(spans) -> list[SpanRecord]:
    """``SpanRecord``s of SDK spans (records given are passed through), in the order given."""
    return [s if isinstance(s, SpanRecord) else _record(s) for s in spans]


def traces_by_id(spans) -> dict[str, list[SpanRecord]]:
    """Records grouped by trace id, each list in start order."""
    out: dict[str, list[SpanRecord]] = defaultdict(list)
    for r in span_records(spans):
        out[r.trace_id].append(r)
    return {t: sorted(rs, key=lambda r: (r.start_ns, r.end_ns)) for t, rs in out.items()}


def _trace(spans, trace_id: str | None) -> list[SpanRecord]:
    grouped = traces_by_id(spans)
    if trace_id is None:
        if len(grouped) != 1:
            raise TraceNotFound(f"trace_id: {len(grouped)} traces given, name the one wanted")
        trace_id = next(iter(grouped))
    if trace_id not in grouped:
        raise TraceNotFound(f"trace_id: no span of trace {trace_id!r} among {len(grouped)} traces")
    return grouped[trace_id]


def _tree(rs: list[SpanRecord]):
    ids = {r.span_id for r in rs}
    children = defaultdict(list)
    roots = []
    for r in rs:
        if r.parent_id in ids:
            children[r.parent_id].append(r)
        else:
            roots.append(r)
    return roots, children


def waterfall(spans, trace_id: str | None = None) -> list[dict]:
    """Rows of one trace in tree order (module doc)."""
    rs = _trace(spans, trace_id)
    t0 = min(r.start_ns for r in rs)
    roots, children = _tree(rs)
    rows = []

    def visit(r: SpanRecord, depth: int):
        rows.append({"name": r.name, "service": r.service, "kind": r.kind,
                     "start_ms": round((r.start_ns - t0) / 1e6, 3), "duration_ms": r.duration_ms,
                     "depth": depth, "status": r.status, "span_id": r.span_id, "parent_id": r.parent_id})
        for c in sorted(children[r.span_id], key=lambda c: (c.start_ns, c.end_ns)):
            visit(c, depth + 1)

    for root in sorted(roots, key=lambda r: r.start_ns):
        visit(root, 0)
    return rows


BROKER = "broker"


def dependency_graph(spans) -> nx.DiGraph:
    """Services and the calls between them, with counts and error rates (module doc)."""
    rs = span_records(spans)
    by_id = {(r.trace_id, r.span_id): r for r in rs}
    graph = nx.DiGraph()
    counts: dict[tuple[str, str], list] = defaultdict(lambda: [0, 0, set()])

    def count(a, b, error, topic=None):
        c = counts[(a, b)]
        c[0] += 1
        c[1] += int(error)
        if topic:
            c[2].add(topic)

    for r in rs:
        graph.add_node(r.service, kind="service")
        topic = r.attributes.get("messaging.destination.name")
        if r.kind == "PRODUCER":
            count(r.service, BROKER, r.error, topic)
        elif r.kind == "CONSUMER":
            count(BROKER, r.service, r.error, topic)
        else:
            parent = by_id.get((r.trace_id, r.parent_id))
            if parent is not None and parent.service != r.service:
                count(parent.service, r.service, r.error)
    for (a, b), (calls, errors, topics) in sorted(counts.items()):
        for node in (a, b):
            if node == BROKER:
                graph.add_node(BROKER, kind="broker")
        graph.add_edge(a, b, calls=calls, errors=errors, error_rate=round(errors / calls, 4),
                       topics=sorted(topics))
    return graph


def critical_path(spans, trace_id: str | None = None) -> list[dict]:
    """The segments that make up the root span's duration, in time order (module doc)."""
    rs = _trace(spans, trace_id)
    roots, children = _tree(rs)
    root = min(roots, key=lambda r: (r.start_ns, -r.end_ns))
    t0 = root.start_ns
    segments: list[tuple[SpanRecord, int, int]] = []

    def walk(span: SpanRecord, until: int) -> None:
        cursor = until
        for child in sorted(children[span.span_id], key=lambda c: (c.end_ns, c.start_ns), reverse=True):
            if cursor <= span.start_ns:
                break
            if child.start_ns >= cursor:
                continue  # started after the point we are explaining: not blocking it
            child_end = min(child.end_ns, cursor)
            if child_end < cursor:
                segments.append((span, child_end, cursor))
            walk(child, child_end)
            cursor = max(child.start_ns, span.start_ns)
        if cursor > span.start_ns:
            segments.append((span, span.start_ns, cursor))

    walk(root, root.end_ns)
    segments.sort(key=lambda s: s[1])
    return [{"name": s.name, "service": s.service, "span_id": s.span_id,
             "start_ms": round((a - t0) / 1e6, 3), "duration_ms": round((b - a) / 1e6, 3)}
            for s, a, b in segments if b > a]
