"""Head-based against tail-based trace sampling, at the same storage budget.

* **Head-based** (``head_sample``): the decision is taken when the root span starts,
  before anything is known about the request. ``TraceIdRatioBased(ratio)`` (the SDK's
  sampler) keeps a trace when the lower 64 bits of its trace id fall under
  ``ratio * 2**64``: every service reaches the same decision from the id alone, and an
  error trace is kept with the same probability ``ratio`` as any other. ``head_sample``
  asks the SDK's sampler itself for each trace's root, which is exactly what a
  ``TracerProvider(sampler=ParentBased(TraceIdRatioBased(ratio)))`` would have recorded.
* **Tail-based** (``tail_sample``): spans are buffered until the trace is complete
  (the OpenTelemetry Collector's ``tail_sampling`` processor waits ``decision_wait``),
  then policies decide, in priority order: traces with an ERROR span, then traces slower
  than ``slow_threshold``, then, while the budget lasts, a seeded random share of the
  rest (a baseline of normal traffic to compare against). ``budget`` caps the number of
  traces kept, so the comparison is fair: both keep the same number of traces.

``compare_sampling(summaries, ratio=..., slow_threshold=..., seed=...)`` runs both with the
tail's budget set to what the head kept, and reports per strategy the traces kept, the
error traces kept, their share of what is stored and the share of all error traces kept
(recall), and the same for slow traces. ``simulate_workload(seed, ...)`` makes the seeded
workload in virtual time (``TracedShop`` with every span recorded), so the numbers are a
pure function of the seed.

``TailSamplingProcessor`` is the same policy as a live SDK ``SpanProcessor`` (what the
Collector's ``tail_sampling`` processor does, in process): it buffers each trace's ended
spans for ``decision_wait`` seconds of the injected clock after the trace's first span
ended, then exports them all if the trace has an ERROR span or lasted more than
``slow_threshold``, or with probability ``baseline`` otherwise (seeded), and drops them
else. ``max_buffered`` records the most spans it held at once: the memory tail sampling
costs. A span ending after its trace was decided starts a new buffer and is judged alone
(``late_spans`` counts them): keep ``decision_wait`` above the longest trace.

Costs the numbers do not show: tail sampling must buffer every span of every trace for
the decision window and route all spans of a trace to one decider; head sampling costs
nothing and also spares the services the work of recording unsampled spans.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from opentelemetry.sdk.trace import SpanProcessor
from opentelemetry.sdk.trace.sampling import TraceIdRatioBased
from opentelemetry.trace import StatusCode

from workbook.core.clock import Clock, LoopClock
from workbook.core.params import check_int, check_number
from workbook.core.seeds import stream
from workbook.core.virtual_time import run_virtual
from workbook.observability.trace_analysis import traces_by_id
from workbook.observability.traced_shop import ShopConfig, TracedShop

__all__ = ["TraceSummary", "summarize_traces", "head_sample", "tail_sample", "compare_sampling",
           "simulate_workload", "TailSamplingProcessor"]


@dataclass(frozen=True)
class TraceSummary:
    trace_id: str
    root: str
    start: float
    """Seconds (the root span's start on the tracing clock, epoch 0)."""
    duration: float
    """Seconds from the first span's start to the last span's end."""
    error: bool
    """Some span of the trace has status ERROR."""
    spans: int


def summarize_traces(spans) -> list[TraceSummary]:
    """One summary per trace, in order of start."""
    out = []
    for trace_id, rs in traces_by_id(spans).items():
        start, end = min(r.start_ns for r in rs), max(r.end_ns for r in rs)
        ids = {r.span_id for r in rs}
        root = next((r for r in rs if r.parent_id not in ids), rs[0])
        out.append(TraceSummary(trace_id, root.name, start / 1e9, (end - start) / 1e9,
                                any(r.error for r in rs), len(rs)))
    return sorted(out, key=lambda s: (s.start, s.trace_id))


def head_sample(summaries, ratio: float) -> list[str]:
    """Trace ids the SDK's ``TraceIdRatioBased(ratio)`` keeps (module doc)."""
    ratio = check_number("ratio", ratio, minimum=0, maximum=1)
    sampler = TraceIdRatioBased(ratio)
    return [s.trace_id for s in summaries
            if sampler.should_sample(None, int(s.trace_id, 16), s.root).decision.is_sampled()]


def tail_sample(summaries, budget: int, *, slow_threshold: float, seed: int) -> list[str]:
    """At most ``budget`` trace ids: errors first, then slow traces, then a random share of the rest."""
    budget = check_int("budget", budget, minimum=0)
    slow_threshold = check_number("slow_threshold", slow_threshold, minimum=0)
    summaries = list(summaries)
    errors = [s for s in summaries if s.error]
    slow = [s for s in summaries if not s.error and s.duration > slow_threshold]
    rest = [s for s in summaries if not s.error and s.duration <= slow_threshold]
    kept = (errors + slow)[:budget]
    if len(kept) < budget:
        kept += stream(seed, "tail-sampling", "baseline").sample(rest, min(budget - len(kept), len(rest)))
    return [s.trace_id for s in sorted(kept, key=lambda s: (s.start, s.trace_id))]


def _row(strategy, kept_ids, summaries, slow_threshold):
    kept = set(kept_ids)
    errors = [s for s in summaries if s.error]
    slow = [s for s in summaries if s.duration > slow_threshold]
    e_kept = sum(1 for s in errors if s.trace_id in kept)
    s_kept = sum(1 for s in slow if s.trace_id in kept)
    n = len(kept)
    return {"strategy": strategy, "traces": len(summaries), "kept": n,
            "error_traces": len(errors), "errors_kept": e_kept,
            "error_share_of_kept": round(e_kept / n, 4) if n else 0.0,
            "error_recall": round(e_kept / len(errors), 4) if errors else float("nan"),
            "slow_traces": len(slow), "slow_kept": s_kept,
            "slow_recall": round(s_kept / len(slow), 4) if slow else float("nan")}


def compare_sampling(summaries, *, ratio: float = 0.1, slow_threshold: float = 0.25, seed: int = 0) -> list[dict]:
    """Head (``TraceIdRatioBased(ratio)``) and tail sampling keeping the same number of traces (module doc)."""
    summaries = list(summaries)
    head = head_sample(summaries, ratio)
    tail = tail_sample(summaries, len(head), slow_threshold=slow_threshold, seed=seed)
    return [_row(f"head: TraceIdRatioBased({ratio:g})", head, summaries, slow_threshold),
            _row(f"tail: errors, then > {slow_threshold * 1000:g} ms, then random", tail, summaries,
                 slow_threshold)]


def simulate_workload(seed: int, *, rate: float = 20.0, duration: float = 60.0,
                      config: ShopConfig | None = None) -> list[TraceSummary]:
    """Every trace of ``TracedShop`` under Poisson load in virtual time, summarized (module doc)."""
    shop = TracedShop(seed, config)
    run_virtual(shop.run(rate=rate, duration=duration))
    return summarize_traces(shop.tracing.spans())


class TailSamplingProcessor(SpanProcessor):
    """Tail sampling as a live ``SpanProcessor`` (module doc)."""

    def __init__(self, exporter, *, slow_threshold: float, decision_wait: float = 5.0, baseline: float = 0.0,
                 seed: int = 0, clock: Clock | None = None):
        self.exporter = exporter
        self.slow_threshold = check_number("slow_threshold", slow_threshold, minimum=0)
        self.decision_wait = check_number("decision_wait", decision_wait, minimum=0)
        self.baseline = check_number("baseline", baseline, minimum=0, maximum=1)
        self.clock = clock or LoopClock()
        self._rng = stream(seed, "tail-sampling-processor")
        self._buffer: OrderedDict[int, tuple[float, list]] = OrderedDict()  # first-seen order = decision order
        self._decided: set[int] = set()
        self.buffered = self.max_buffered = 0
        self.kept = self.dropped = self.late_spans = 0

    def on_start(self, span, parent_context=None) -> None:
        pass

    def on_end(self, span) -> None:
        now = self.clock.now()
        trace_id = span.context.trace_id
        if trace_id in self._decided:
            self.late_spans += 1
        entry = self._buffer.get(trace_id)
        if entry is None:
            entry = self._buffer[trace_id] = (now, [])
        entry[1].append(span)
        self.buffered += 1
        self.max_buffered = max(self.max_buffered, self.buffered)
        self._decide_due(now)

    def _decide_due(self, now: float) -> None:
        while self._buffer:
            trace_id, (first, _) = next(iter(self._buffer.items()))
            if now - first < self.decision_wait:
                return
            self._decide(trace_id)

    def _decide(self, trace_id: int) -> None:
        _, spans = self._buffer.pop(trace_id)
        self.buffered -= len(spans)
        self._decided.add(trace_id)
        duration = (max(s.end_time for s in spans) - min(s.start_time for s in spans)) / 1e9
        error = any(s.status.status_code is StatusCode.ERROR for s in spans)
        if error or duration > self.slow_threshold or (self.baseline and self._rng.random() < self.baseline):
            self.kept += 1
            self.exporter.export(spans)
        else:
            self.dropped += 1

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Decide every buffered trace now (the end of a run)."""
        while self._buffer:
            self._decide(next(iter(self._buffer)))
        return True

    def shutdown(self) -> None:
        self.force_flush()
