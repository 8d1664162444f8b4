"""Observability: metrics, PromQL, alert rules, notification routing and SLO burn-rate alerts.

Chapter 8's library, one concept per module: ``series`` (samples by label set, Prometheus's
name rules and durations), ``promql`` (``rate``/``increase``/``histogram_quantile``/
``*_over_time`` as Prometheus 2.42 computes them, and an evaluator for a PromQL subset),
``templating`` (Go-template alert labels and annotations), ``rules`` (rule files and the
alert evaluator: pending, firing, ``keep_firing_for``), ``alertmanager`` (routing,
grouping, inhibition, silences), ``webhook`` (delivery and a recording receiver),
``instrument`` (RED and breaker/retry metrics with ``prometheus_client``, a scraper into a
``SeriesStore`` in virtual time), ``slo`` (error budgets and the SRE Workbook's six ways of alerting on an SLO, compared on
simulated incidents), ``naive`` (the source article's alert manager, for comparison), ``errors``. No plotting imports; time comes from the caller or an injected ``Clock``.
"""

from workbook.observability.alertmanager import (Alertmanager, AMAlert, InhibitRule, Matcher, Route, Silence,
                                                 alerts_from_rules, parse_matcher)
from workbook.observability.errors import (DurationError, InvalidNameError, ObservabilityError, PromQLError,
                                           RuleFileError, TemplateError)
from workbook.observability.promql import (Engine, check_expression, delta, extrapolated_rate, histogram_quantile,
                                           increase, over_time, parse_promql, rate)
from workbook.observability.instrument import (LATENCY_BUCKETS, ResilienceMetrics, Scraper, ServiceMetrics,
                                               instrument_app, metrics_middleware)
from workbook.observability.naive import NaiveAlertManager
from workbook.observability.rules import (Alert, AlertRule, AlertState, RecordingRule, RuleEvaluator, RuleGroup,
                                          dump_rules, load_rules, parse_promtool_values, promtool_unit_test,
                                          run_promtool_tests, store_from_promtool_test)
from workbook.observability.slo import (APPROACHES, SLO, Approach, Incident, Traffic, burn_rate, compare, episodes,
                                        evaluate_approach, generate_incidents, simulate_traffic)
from workbook.observability.series import (SeriesStore, check_label_name, check_metric_name, format_duration,
                                           format_labels, labels_of, parse_duration)
from workbook.observability.templating import check_template, expand, go_float
from workbook.observability.webhook import RECEIVED, WebhookError, WebhookSender, webhook_receiver_app

__all__ = [
    "LATENCY_BUCKETS", "ResilienceMetrics", "Scraper", "ServiceMetrics", "instrument_app", "metrics_middleware",
    "AMAlert", "Alert", "AlertRule", "AlertState", "Alertmanager", "InhibitRule", "Matcher", "NaiveAlertManager",
    "RECEIVED", "RecordingRule", "Route", "RuleEvaluator", "RuleGroup", "Silence", "WebhookError", "WebhookSender",
    "alerts_from_rules", "check_template", "dump_rules", "expand", "go_float", "load_rules", "parse_matcher",
    "promtool_unit_test", "webhook_receiver_app", "parse_promtool_values", "run_promtool_tests",
    "store_from_promtool_test", "APPROACHES", "SLO", "Approach", "Incident", "Traffic", "burn_rate", "compare",
    "episodes", "evaluate_approach", "generate_incidents", "simulate_traffic",
    "DurationError", "Engine", "InvalidNameError", "ObservabilityError", "PromQLError", "RuleFileError",
    "SeriesStore", "TemplateError", "check_expression", "check_label_name", "check_metric_name", "delta",
    "extrapolated_rate", "format_duration", "format_labels", "histogram_quantile", "increase", "labels_of",
    "over_time", "parse_duration", "parse_promql", "rate",
]
