"""Observability: metrics, PromQL, alert rules, notification routing and SLO burn-rate alerts.

Chapter 8's library, one concept per module: ``series`` (samples by label set, Prometheus's
name rules and durations), ``promql`` (``rate``/``increase``/``histogram_quantile``/
``*_over_time`` as Prometheus 2.42 computes them, and an evaluator for a PromQL subset),
``errors``. No plotting imports; time comes from the caller or an injected ``Clock``.
"""

from workbook.observability.errors import (DurationError, InvalidNameError, ObservabilityError, PromQLError,
                                           RuleFileError, TemplateError)
from workbook.observability.promql import (Engine, check_expression, delta, extrapolated_rate, histogram_quantile,
                                           increase, over_time, parse_promql, rate)
from workbook.observability.series import (SeriesStore, check_label_name, check_metric_name, format_duration,
                                           format_labels, labels_of, parse_duration)

__all__ = [
    "DurationError", "Engine", "InvalidNameError", "ObservabilityError", "PromQLError", "RuleFileError",
    "SeriesStore", "TemplateError", "check_expression", "check_label_name", "check_metric_name", "delta",
    "extrapolated_rate", "format_duration", "format_labels", "histogram_quantile", "increase", "labels_of",
    "over_time", "parse_duration", "parse_promql", "rate",
]
