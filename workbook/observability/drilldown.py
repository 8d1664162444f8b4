"""From an alert to the trace of a slow request to that request's logs, in one call.

The drill-down an on-call engineer does by hand: the latency alert fires; the latency
histogram's **exemplars** (``prometheus_client`` stores, per bucket, the last observation
with its labels, here ``{"trace_id": ...}``: see ``exemplar_of_current_span``) name
traces of requests that were that slow; the trace shows where the time went; its
``trace_id`` finds every log line the request wrote, in every service.

* ``read_exemplars(registry, metric, t)`` reads the exemplars of a histogram as plain
  rows (``t`` is the time of reading: exemplars carry prometheus_client's wall-clock
  timestamp, which means nothing in virtual time, so the caller stamps its own reading,
  as a scrape does).
* ``drill_down(alert, spans, logs, exemplars=..., window=...)`` picks the trace: the
  slowest exemplar read in ``[fired_at - window, fired_at]`` whose trace was recorded
  (``how = "exemplar"``), else the slowest trace whose root started in that window
  (``how = "slowest in window"``), and returns the alert, the trace's waterfall and
  critical path, and its logs (all services, oldest first).
"""

from __future__ import annotations

from workbook.core.params import check_number
from workbook.observability.errors import ObservabilityError
from workbook.observability.logs import LogStore
from workbook.observability.trace_analysis import critical_path, traces_by_id, waterfall

__all__ = ["read_exemplars", "drill_down", "DrillDownError"]


class DrillDownError(ObservabilityError):
    """Nothing to drill into: the alert never fired, or no trace falls in the window."""


def read_exemplars(registry, metric: str = "http_request_duration_seconds", t: float | None = None) -> list[dict]:
    """Rows ``{t, le, value, trace_id, labels}`` of the exemplars on ``metric``'s buckets."""
    rows = []
    for family in registry.collect():
        if family.name != metric:
            continue
        for sample in family.samples:
            ex = getattr(sample, "exemplar", None)
            if ex is None or "trace_id" not in ex.labels:
                continue
            labels = {k: v for k, v in sample.labels.items() if k != "le"}
            rows.append({"t": t, "le": float(sample.labels.get("le", "nan")), "value": ex.value,
                         "trace_id": ex.labels["trace_id"], "labels": labels})
    return rows


def drill_down(alert, spans, logs: LogStore, *, exemplars=(), window: float = 300.0) -> dict:
    """Alert -> exemplar trace of a slow request -> its waterfall, critical path and logs (module doc)."""
    window = check_number("window", window, minimum=0, min_exclusive=True)
    fired = getattr(alert, "fired_at", None)
    if fired is None:
        raise DrillDownError(f"alert {getattr(alert, 'rule', alert)!r} has not fired: nothing to drill into")
    grouped = traces_by_id(spans)
    lo, hi = fired - window, fired
    candidates = [e for e in exemplars if e.get("t") is not None and lo <= e["t"] <= hi and e["trace_id"] in grouped]
    if candidates:
        best = max(candidates, key=lambda e: (e["value"], e["t"]))
        trace_id, how, value = best["trace_id"], "exemplar", best["value"]
    else:
        in_window = [(max(r.end_ns for r in rs) - min(r.start_ns for r in rs), t) for t, rs in grouped.items()
                     if lo <= min(r.start_ns for r in rs) / 1e9 <= hi]
        if not in_window:
            raise DrillDownError(f"no trace started in the window [{lo:g}, {hi:g}] s before the alert fired")
        ns, trace_id = max(in_window)
        how, value = "slowest in window", ns / 1e9
    return {"alert": {"rule": alert.rule, "labels": dict(alert.labels), "fired_at": fired, "value": alert.value},
            "trace_id": trace_id, "how": how, "latency_s": round(value, 6),
            "waterfall": waterfall(spans, trace_id), "critical_path": critical_path(spans, trace_id),
            "logs": logs.query(trace_id=trace_id)}
