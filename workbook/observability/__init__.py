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

Traces and logs: ``tracing`` (OpenTelemetry SDK tracers per service, an in-memory exporter,
span times from the injected clock, ids from a seed), ``propagation`` (W3C ``traceparent``
across aiohttp servers and clients and across broker messages, producer and consumer spans
linked), ``trace_analysis`` (waterfall rows, the service dependency graph, the critical
path), ``sampling`` (head-based ratio against tail-based sampling at the same budget),
``logs`` (JSON logs carrying trace and span ids, stored in SQLite FTS5 and queried),
``drilldown`` (alert -> exemplar trace -> its logs), ``traced_shop`` (five traced services
and the broker in virtual time).
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
from workbook.observability.drilldown import DrillDownError, drill_down, read_exemplars
from workbook.observability.logs import (LEVELS, JsonFormatter, LogQueryError, LogStore, LogStoreHandler,
                                         TraceContextFilter, fts5_available, parse_log_query, service_logger)
from workbook.observability.propagation import (PROPAGATOR, TracedHandler, client_trace_config, extract_context,
                                                inject_context, parse_traceparent, process_span, publish_traced,
                                                tracing_middleware)
from workbook.observability.sampling import (TailSamplingProcessor, TraceSummary, compare_sampling, head_sample,
                                             simulate_workload, summarize_traces, tail_sample)
from workbook.observability.trace_analysis import (BROKER, SpanRecord, TraceNotFound, critical_path, dependency_graph,
                                                   span_records, traces_by_id, waterfall)
from workbook.observability.traced_shop import ORDERS_TOPIC, SHOP_SERVICES, ShopConfig, TracedShop
from workbook.observability.tracing import (SeededIdGenerator, ServiceTracer, Tracing, current_ids,
                                            exemplar_of_current_span)

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
    # traces and logs
    "SeededIdGenerator", "ServiceTracer", "Tracing", "current_ids", "exemplar_of_current_span",
    "PROPAGATOR", "TracedHandler", "client_trace_config", "extract_context", "inject_context", "parse_traceparent",
    "process_span", "publish_traced", "tracing_middleware",
    "BROKER", "SpanRecord", "TraceNotFound", "critical_path", "dependency_graph", "span_records", "traces_by_id",
    "waterfall",
    "TailSamplingProcessor", "TraceSummary", "compare_sampling", "head_sample", "simulate_workload",
    "summarize_traces", "tail_sample",
    "LEVELS", "JsonFormatter", "LogQueryError", "LogStore", "LogStoreHandler", "TraceContextFilter",
    "fts5_available", "parse_log_query", "service_logger",
    "DrillDownError", "drill_down", "read_exemplars",
    "ORDERS_TOPIC", "SHOP_SERVICES", "ShopConfig", "TracedShop",
]
