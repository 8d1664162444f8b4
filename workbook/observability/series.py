"""Time series as Prometheus stores them: a metric name, labels, and samples in milliseconds.

``SeriesStore`` holds float samples per label set (``{"__name__": "http_requests_total",
"route": "/stock"}``), sorted by time, with timestamps kept as integer milliseconds as
Prometheus's TSDB does (so the range boundaries ``[t - range, t]`` are exact, with no float
rounding). Names are checked against Prometheus's data model
(https://prometheus.io/docs/concepts/data_model/): metric names match
``[a-zA-Z_:][a-zA-Z0-9_:]*``, label names ``[a-zA-Z_][a-zA-Z0-9_]*``, and label names
starting with ``__`` are reserved. ``parse_duration`` reads Prometheus's durations
(``1h30m``, ``5m``, ``250ms``; ``model.ParseDuration``).

The store can be written as OpenMetrics text (``to_openmetrics``, what
``promtool tsdb create-blocks-from openmetrics`` imports) and as the ``input_series`` of a
``promtool test rules`` file (``promtool_values``).
"""

from __future__ import annotations

import bisect
import math
import re
from collections.abc import Iterable, Mapping

from workbook.observability.errors import DurationError, InvalidNameError

__all__ = ["SeriesStore", "Labels", "check_metric_name", "check_label_name", "labels_of", "parse_duration",
           "format_duration", "format_labels", "format_value"]

METRIC_NAME_RE = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
LABEL_NAME_RE = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_DURATION_RE = re.compile(r"^(?:(\d+)y)?(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?(?:(\d+)ms)?$")
_UNIT_MS = (365 * 86_400_000, 7 * 86_400_000, 86_400_000, 3_600_000, 60_000, 1000, 1)

Labels = tuple[tuple[str, str], ...]
"""A label set as a sorted tuple of ``(name, value)`` pairs (hashable); ``__name__`` included."""


def check_metric_name(name) -> str:
    """``name`` if Prometheus accepts it as a metric name, else ``InvalidNameError``."""
    if not isinstance(name, str) or not METRIC_NAME_RE.match(name):
        raise InvalidNameError(f"metric name {name!r} is invalid: expected [a-zA-Z_:][a-zA-Z0-9_:]* "
                               "(letters, digits, '_' and ':', not starting with a digit)")
    return name


def check_label_name(name, *, allow_reserved: bool = False) -> str:
    """``name`` if Prometheus accepts it as a label name, else ``InvalidNameError``."""
    if not isinstance(name, str) or not LABEL_NAME_RE.match(name):
        raise InvalidNameError(f"label name {name!r} is invalid: expected [a-zA-Z_][a-zA-Z0-9_]* "
                               "(letters, digits and '_', not starting with a digit)")
    if name.startswith("__") and not allow_reserved:
        raise InvalidNameError(f"label name {name!r} is reserved: names starting with '__' are for Prometheus's "
                               "internal use")
    return name


def labels_of(name: str | None = None, labels: Mapping[str, str] | None = None) -> Labels:
    """The sorted label tuple of a series, names checked (``__name__`` from ``name``)."""
    out = {}
    if name is not None:
        out["__name__"] = check_metric_name(name)
    for key, value in (labels or {}).items():
        if key == "__name__":
            out[key] = check_metric_name(value)
            continue
        check_label_name(key)
        if not isinstance(value, str):
            raise InvalidNameError(f"label {key!r} has value {value!r}: expected a string")
        out[key] = value
    return tuple(sorted(out.items()))


def parse_duration(text, *, field: str = "duration") -> int:
    """Milliseconds in a Prometheus duration (``5m``, ``1h30m``, ``0s``); ``DurationError`` otherwise.

    Units must come in decreasing order and each at most once, as in Prometheus's
    ``model.ParseDuration``; a bare number (``300``) is refused, as Prometheus refuses it.
    """
    if isinstance(text, bool) or not isinstance(text, str) or text == "":
        raise DurationError(f"{field}: {text!r} is not a duration: expected e.g. '30s', '5m', '1h30m'")
    if text == "0":
        return 0
    match = _DURATION_RE.match(text)
    if not match:
        raise DurationError(f"{field}: {text!r} is not a duration: expected digits followed by a unit "
                            "(ms, s, m, h, d, w, y), largest unit first, e.g. '1h30m'")
    return sum(int(g) * unit for g, unit in zip(match.groups(), _UNIT_MS) if g)


def format_duration(ms: int) -> str:
    """The shortest Prometheus duration for ``ms`` milliseconds (``90000`` -> ``1m30s``)."""
    if ms == 0:
        return "0s"
    out = []
    for unit, name in zip((86_400_000, 3_600_000, 60_000, 1000, 1), ("d", "h", "m", "s", "ms")):
        if ms >= unit:
            out.append(f"{ms // unit}{name}")
            ms %= unit
    return "".join(out)


def format_labels(labels: Labels) -> str:
    """``name{a="b"}`` as PromQL and the exposition format print a series."""
    d = dict(labels)
    name = d.pop("__name__", "")
    inner = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(d.items()))
    return f"{name}{{{inner}}}" if inner or not name else name


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def format_value(v: float) -> str:
    """A float as Go's ``strconv.FormatFloat(v, 'g', -1, 64)`` would spell it, roughly (``+Inf``, ``NaN``)."""
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    if v == int(v) and abs(v) < 1e15:
        return str(int(v))
    return repr(v)


class SeriesStore:
    """Float samples by series; timestamps in integer milliseconds, sorted per series.

    ``add(name, labels, t_seconds, value)`` appends one sample (``t`` in seconds, as every
    clock of the workbook reads; kept as milliseconds); samples of one series must come in
    increasing time order, as a TSDB appender requires.
    """

    def __init__(self):
        self._series: dict[Labels, tuple[list[int], list[float]]] = {}

    def add(self, name: str, labels: Mapping[str, str] | None, t: float, value: float) -> None:
        self.add_labels(labels_of(name, labels), t, value)

    def add_labels(self, key: Labels, t: float, value: float) -> None:
        ms = round(t * 1000)
        times, values = self._series.setdefault(key, ([], []))
        if times and ms <= times[-1]:
            raise ValueError(f"{format_labels(key)}: sample at {t}s is not after the last one ({times[-1] / 1000}s)")
        times.append(ms)
        values.append(float(value))

    def series(self) -> list[Labels]:
        return sorted(self._series)

    def samples(self, key: Labels) -> tuple[list[int], list[float]]:
        return self._series.get(key, ([], []))

    def select(self, matchers) -> list[Labels]:
        """The series whose labels satisfy every ``(name, op, value)`` matcher."""
        return [k for k in self.series() if all(_match(dict(k).get(n, ""), op, v) for n, op, v in matchers)]

    def range(self, key: Labels, start_ms: int, end_ms: int) -> tuple[list[int], list[float]]:
        """Samples with ``start_ms <= t <= end_ms`` (Prometheus 2.x: both ends included)."""
        times, values = self._series.get(key, ([], []))
        lo = bisect.bisect_left(times, start_ms)
        hi = bisect.bisect_right(times, end_ms)
        return times[lo:hi], values[lo:hi]

    def last_before(self, key: Labels, t_ms: int, lookback_ms: int) -> tuple[int, float] | None:
        """The newest sample in ``[t - lookback, t]`` (an instant selector's lookback), or None."""
        times, values = self._series.get(key, ([], []))
        i = bisect.bisect_right(times, t_ms) - 1
        if i < 0 or times[i] < t_ms - lookback_ms:
            return None
        return times[i], values[i]

    def extend(self, name: str, labels: Mapping[str, str] | None, points: Iterable[tuple[float, float]]) -> None:
        key = labels_of(name, labels)
        for t, v in points:
            self.add_labels(key, t, v)

    def to_openmetrics(self, types: Mapping[str, str] | None = None) -> str:
        """OpenMetrics text with timestamps in seconds, one family per metric name, ``# EOF`` last.

        ``types`` maps a metric name to ``counter``/``gauge``/... (default ``unknown``, which
        promtool imports as it is; the counter ``_total`` suffix rules then do not apply).
        """
        by_name: dict[str, list[Labels]] = {}
        for key in self.series():
            by_name.setdefault(dict(key).get("__name__", ""), []).append(key)
        lines = []
        for name, keys in sorted(by_name.items()):
            lines.append(f"# TYPE {name} {(types or {}).get(name, 'unknown')}")
            for key in keys:
                times, values = self._series[key]
                text = format_labels(key)
                for t, v in zip(times, values):
                    lines.append(f"{text} {format_value(v)} {t / 1000:.3f}")
        lines.append("# EOF")
        return "\n".join(lines) + "\n"

    def promtool_values(self, key: Labels, interval_ms: int, end_ms: int) -> str:
        """The series as promtool's ``values`` notation on the grid ``0, interval, ... end``.

        ``_`` marks a grid point with no sample; every sample must lie on the grid.
        """
        times, values = self._series.get(key, ([], []))
        on_grid = dict(zip(times, values))
        if any(t % interval_ms for t in times):
            raise ValueError(f"{format_labels(key)}: samples off the {interval_ms} ms grid")
        return " ".join(format_value(on_grid[t]) if t in on_grid else "_" for t in range(0, end_ms + 1, interval_ms))


def _match(actual: str, op: str, expected: str) -> bool:
    if op == "=":
        return actual == expected
    if op == "!=":
        return actual != expected
    if op == "=~":
        return re.fullmatch(expected, actual) is not None
    if op == "!~":
        return re.fullmatch(expected, actual) is None
    raise ValueError(f"unknown matcher operator {op!r}")
