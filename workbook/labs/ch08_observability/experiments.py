"""Chapter 8's experiments: plain data for the notebook's tables and figures (no plotting here).

* ``quantile_error(layouts, seed)``: ``histogram_quantile`` against the true quantile of
  the same latencies, for bucket layouts given (the error lives inside the bucket the
  quantile falls in).
* ``naive_versus_for(seed)``: the article's alert manager and a Prometheus rule with
  ``for:`` on the same error-ratio series: who pages, when, how often.
* ``service_alert_timeline()``: the states of ``data/observability/service_alerts.yml``'s
  alerts minute by minute on its promtool unit test's series (pending, firing, kept firing).
* ``routing_demo()``: alerts routed, grouped, inhibited and silenced, delivered to a real
  webhook receiver on 127.0.0.1 (times from a manual clock).
* ``slo_table(seed, days)``: the SRE Workbook approaches on the same simulated month.
"""

from __future__ import annotations

import asyncio

import yaml

from workbook.core.clock import ManualClock
from workbook.core.realtime import serve
from workbook.core.resources import data_path
from workbook.core.seeds import stream
from workbook.core.stats import quantile
from workbook.observability import (LATENCY_BUCKETS, RECEIVED, Alertmanager, NaiveAlertManager, RuleEvaluator,
                                    WebhookSender, compare, histogram_quantile, load_rules,
                                    store_from_promtool_test, webhook_receiver_app)
from workbook.labs.ch08_observability.exercise import exercise_series

PROMETHEUS_CLIENT_DEFAULT = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
COARSE = (0.1, 0.5, 1.0, 5.0)
LAYOUTS = {"service (stated)": LATENCY_BUCKETS, "prometheus_client default": PROMETHEUS_CLIENT_DEFAULT,
           "coarse": COARSE}


def latencies(seed: int, n: int = 20_000) -> list[float]:
    """A latency sample: lognormal around 40 ms, with 5% slow calls around 300 ms."""
    rng = stream(seed, "ch08", "latency")
    return [rng.lognormvariate(-1.2, 0.4) if rng.random() < 0.05 else rng.lognormvariate(-3.2, 0.5)
            for _ in range(n)]


def bucket_counts(values, bounds) -> list[tuple[float, float]]:
    """Cumulative ``(le, count)`` as a Prometheus histogram exposes them, ``+Inf`` last."""
    bounds = sorted(bounds)
    return [(b, float(sum(1 for v in values if v <= b))) for b in bounds] + [(float("inf"), float(len(values)))]


def quantile_error(layouts: dict | None = None, seed: int = 0, qs=(0.5, 0.9, 0.99)) -> list[dict]:
    """Rows: layout, q, true (nearest-rank), estimated by ``histogram_quantile``, error (ms and %)."""
    values = latencies(seed)
    rows = []
    for name, bounds in (layouts or LAYOUTS).items():
        counts = bucket_counts(values, bounds)
        for q in qs:
            true = quantile(values, q)
            est = histogram_quantile(q, counts)
            rows.append({"layout": name, "q": q, "true_ms": round(true * 1000, 2), "estimate_ms": round(est * 1000, 2),
                         "error_ms": round((est - true) * 1000, 2), "error_pct": round(100 * (est - true) / true, 1)})
    return rows


NAIVE_RULE = """
groups:
- name: checkout
  rules:
  - alert: HighErrorRatio
    expr: sum(rate(http_requests_total{status="500"}[1m])) / sum(rate(http_requests_total[1m])) > 0.05
    for: 3m
"""


async def naive_versus_for(seed: int = 0) -> dict:
    """The article's manager (``error_rate > 0.05``, "duration" 300 s) against ``for: 3m`` on one series."""
    store, scenario = exercise_series(seed)
    clock = ManualClock()
    naive = NaiveAlertManager(clock)
    naive.add_alert_rule("high_error_rate", "error_rate", threshold=0.05, duration=300, severity="critical")
    evaluator = RuleEvaluator(load_rules(NAIVE_RULE), store)
    ratio_expr = 'sum(rate(http_requests_total{status="500"}[1m])) / sum(rate(http_requests_total[1m]))'
    prometheus_pages, was, series = [], False, []

    t = 0.0
    while t <= scenario["duration"]:
        clock.advance(t - clock.now())
        value = list(evaluator.engine.query_vector(ratio_expr, t).values() or [0.0])[0]
        series.append((t, value))
        await naive.check_alerts({"error_rate": value})
        firing = any(a.state == "firing" for a in evaluator.evaluate(t))
        if firing and not was:
            prometheus_pages.append(t)
        was = firing
        t += 30.0
    return {"scenario": scenario, "naive_pages": [a["time"] for a in naive.alerts],
            "prometheus_pages": prometheus_pages, "error_ratio": series}


def service_alert_timeline() -> list[dict]:
    """Minute-by-minute alert states of service_alerts.yml on its unit test's input series."""
    test = yaml.safe_load(data_path("observability", "service_alerts_test.yml").read_text())["tests"][0]
    store, interval = store_from_promtool_test(test)
    evaluator = RuleEvaluator(load_rules(data_path("observability", "service_alerts.yml")), store)
    rows = []
    for t, alerts in evaluator.run(0, 60 * interval, interval):
        states = {a.rule: a.state for a in alerts}
        ratio = list(evaluator.engine.query_vector("service:http_errors:ratio_rate5m", t).values() or [0.0])[0]
        rows.append({"minute": int(t // 60), "error_ratio": round(ratio, 4),
                     "HighErrorRatio": states.get("HighErrorRatio", "inactive"),
                     "SlowP99": states.get("SlowP99", "inactive")})
    return rows


ROUTING = {
    "receiver": "team", "group_by": ["alertname", "service"], "group_wait": "30s", "group_interval": "5m",
    "repeat_interval": "4h",
    "routes": [{"matchers": ['severity="page"'], "receiver": "pager"}],
}
INHIBIT = [{"source_matchers": ['alertname="ServiceDown"'], "target_matchers": ['severity="warning"'],
            "equal": ["service"]}]


async def routing_demo() -> dict:
    """Alerts through routing, grouping, inhibition and a silence to a real webhook receiver."""
    clock = ManualClock()
    app_pager, app_team = webhook_receiver_app(clock), webhook_receiver_app(clock)
    async with serve(app_pager, app_team) as urls:
        am = Alertmanager(ROUTING, {"pager": WebhookSender(urls[0] + "/alerts"),
                                    "team": WebhookSender(urls[1] + "/alerts")}, inhibit_rules=INHIBIT, clock=clock)
        am.add_silence(['service="search"'], duration=3600, comment="search is being migrated")
        slow = [{"labels": {"alertname": "SlowRoute", "service": s, "route": r, "severity": "warning"}}
                for s, r in (("shop", "/cart"), ("inventory", "/stock"), ("search", "/q"))]
        down = {"labels": {"alertname": "ServiceDown", "service": "shop", "severity": "page"}}
        for t in range(0, 960, 60):  # Prometheus re-sends what fires every evaluation (here: each minute)
            await asyncio.wait_for(am.run_until(t), 10)
            if 60 <= t < 420:
                am.receive(slow + [down])
            elif t == 420:  # the outage is over: the page resolves
                am.receive(slow + [{**down, "ends_at": 420.0}])
            else:
                am.receive(slow)
        await asyncio.wait_for(am.run_until(960), 10)
        summary = {
            name: [{"time": r["time"], "status": r["payload"]["status"],
                    "alerts": [f"{a['labels']['alertname']}/{a['labels']['service']}"
                               for a in r["payload"]["alerts"]]} for r in app[RECEIVED]]
            for name, app in (("pager", app_pager), ("team", app_team))}
    summary["log"] = [{k: n[k] for k in ("time", "receiver", "group_key", "status", "delivered")}
                      for n in am.notifications]
    return summary


def slo_table(seed: int = 0, days: int = 30) -> list[dict]:
    return compare(seed, days=days)["rows"]


__all__ = ["quantile_error", "naive_versus_for", "service_alert_timeline", "routing_demo", "slo_table",
           "latencies", "bucket_counts", "LAYOUTS"]
