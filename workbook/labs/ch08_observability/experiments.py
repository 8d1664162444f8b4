"""Chapter 8's experiments: plain data for the notebook's tables and figures (no plotting here).

* ``quantile_error(layouts, seed)``: ``histogram_quantile`` against the true quantile of
  the same latencies, for bucket layouts given (the error lives inside the bucket the
  quantile falls in).
* ``naive_versus_for(seed)``: the article's alert manager and a Prometheus rule with
  ``for: 5m`` on the same error-ratio series: who pages, when, how often.
* ``service_alert_timeline()``: the states of ``data/observability/service_alerts.yml``'s
  alerts minute by minute on its promtool unit test's series (pending, firing, kept firing).
* ``routing_demo()``: alerts routed, grouped, inhibited and silenced, delivered to a real
  webhook receiver on 127.0.0.1 (times from a manual clock).
* ``repeat_demo()``: one alert group over two and a half hours: ``group_wait`` before the
  first notification, a second alert joining the group (sent at the next
  ``group_interval``), then an unchanged group re-sent every ``repeat_interval``.
* ``slo_table(seed, days)``: the SRE Workbook approaches on the same simulated month.
* ``resilience_demo()`` (a coroutine): chapter 2's breaker and retry reporting through
  ``ResilienceMetrics`` (calls by outcome, state, transitions, retries).
* ``red_demo()`` (a coroutine): chapter 2's demo inventory service, instrumented, on a real
  127.0.0.1 port; a few requests, then its ``/metrics`` (the lines whose values do not
  depend on the wall clock).
* ``extrapolation_example()``: ``increase`` on a counter scraped every 15 s is not "last
  minus first": Prometheus extrapolates to the window's edges.
* ``compare_with_prometheus(seed)``: the same samples in the workbook's engine and in a
  real ``prometheus`` (imported with ``promtool tsdb create-blocks-from openmetrics``):
  queries at several instants, the largest relative difference. Raises
  ``ServiceUnavailable`` (with an install hint) when prometheus or promtool is missing.
"""

from __future__ import annotations

import asyncio
import math

import aiohttp
import yaml
from prometheus_client import generate_latest

from workbook.core.clock import ManualClock
from workbook.core.prometheus_server import PrometheusServer
from workbook.core.realtime import serve
from workbook.core.resources import data_path
from workbook.core.seeds import stream
from workbook.core.stats import quantile
from workbook.labs.ch08_observability.exercise import exercise_series
from workbook.observability import (LATENCY_BUCKETS, RECEIVED, Alertmanager, Engine, NaiveAlertManager, RuleEvaluator,
                                    SeriesStore, ServiceMetrics, WebhookSender, compare, histogram_quantile, increase,
                                    instrument_app, load_rules, rate, store_from_promtool_test, webhook_receiver_app)
from workbook.observability.instrument import ResilienceMetrics
from workbook.resilience import CircuitBreaker, Retry
from workbook.transport.demo_service import make_demo_app

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
    for: 5m
"""


async def naive_versus_for(seed: int = 0) -> dict:
    """The article's manager (``error_rate > 0.05``, "duration" 300 s) against ``for: 5m`` on one series.

    ``states`` is the rule's state (inactive, pending, firing) at each 30 s evaluation.
    """
    store, scenario = exercise_series(seed)
    clock = ManualClock()
    naive = NaiveAlertManager(clock)
    naive.add_alert_rule("high_error_rate", "error_rate", threshold=0.05, duration=300, severity="critical")
    evaluator = RuleEvaluator(load_rules(NAIVE_RULE), store)
    ratio_expr = 'sum(rate(http_requests_total{status="500"}[1m])) / sum(rate(http_requests_total[1m]))'
    prometheus_pages, was, series, states = [], False, [], []

    t = 0.0
    while t <= scenario["duration"]:
        clock.advance(t - clock.now())
        value = list(evaluator.engine.query_vector(ratio_expr, t).values() or [0.0])[0]
        series.append((t, value))
        await naive.check_alerts({"error_rate": value})
        alerts = evaluator.evaluate(t)
        states.append((t, alerts[0].state if alerts else "inactive"))
        firing = any(a.state == "firing" for a in alerts)
        if firing and not was:
            prometheus_pages.append(t)
        was = firing
        t += 30.0
    return {"scenario": scenario, "naive_pages": [a["time"] for a in naive.alerts],
            "prometheus_pages": prometheus_pages, "error_ratio": series, "states": states}


def service_alert_timeline() -> list[dict]:
    """Minute-by-minute alert states of service_alerts.yml on its unit test's input series.

    ``summaries`` holds the templated ``summary`` annotation of each firing alert.
    """
    test = yaml.safe_load(data_path("observability", "service_alerts_test.yml").read_text())["tests"][0]
    store, interval = store_from_promtool_test(test)
    evaluator = RuleEvaluator(load_rules(data_path("observability", "service_alerts.yml")), store)
    rows = []
    for t, alerts in evaluator.run(0, 60 * interval, interval):
        states = {a.rule: a.state for a in alerts}
        ratio = list(evaluator.engine.query_vector("service:http_errors:ratio_rate5m", t).values() or [0.0])[0]
        rows.append({"minute": int(t // 60), "error_ratio": round(ratio, 4),
                     "HighErrorRatio": states.get("HighErrorRatio", "inactive"),
                     "SlowP99": states.get("SlowP99", "inactive"),
                     "summaries": {a.rule: a.annotations.get("summary", "") for a in alerts if a.state == "firing"}})
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


REPEAT_ROUTING = {"receiver": "team", "group_by": ["alertname"], "group_wait": "30s", "group_interval": "5m",
                  "repeat_interval": "1h"}


async def repeat_demo(minutes: int = 150) -> list[dict]:
    """Deliveries of one group (``REPEAT_ROUTING``) to a real webhook receiver: time, status, alerts."""
    clock = ManualClock()
    app = webhook_receiver_app(clock)
    async with serve(app) as (url,):
        am = Alertmanager(REPEAT_ROUTING, {"team": WebhookSender(url + "/alerts")}, clock=clock)
        disk = {"labels": {"alertname": "DiskFilling", "instance": "db-1", "severity": "warning"}}
        other = {"labels": {"alertname": "DiskFilling", "instance": "db-2", "severity": "warning"}}
        for t in range(0, minutes * 60 + 1, 60):  # Prometheus re-sends what fires every evaluation
            await asyncio.wait_for(am.run_until(t), 10)
            am.receive([disk] + ([other] if t >= 20 * 60 else []))
        await asyncio.wait_for(am.run_until(minutes * 60), 10)
    return [{"time": r["time"], "status": r["payload"]["status"],
             "alerts": [a["labels"]["instance"] for a in r["payload"]["alerts"]]} for r in app[RECEIVED]]


async def resilience_demo() -> list[str]:
    """A breaker opening on failures and a retry recovering a flaky call: the metrics lines they produce."""
    clock = ManualClock()
    metrics = ResilienceMetrics()
    breaker = CircuitBreaker("inventory", failure_rate_threshold=50, sliding_window_size=4,
                             minimum_number_of_calls=4, wait_duration_in_open_state=30, clock=clock)
    metrics.attach_breaker(breaker)
    retry = Retry(max_attempts=3, clock=clock, rng=stream(0, "ch08", "retry-jitter"))
    metrics.attach_retry(retry, "inventory")

    def down():
        raise ConnectionError("inventory is down")

    for _ in range(6):
        try:
            breaker.call(down)
        except Exception:  # noqa: BLE001 (errors, then CallNotPermitted: both counted by outcome)
            pass
    attempts = {"n": 0}

    async def flaky():
        attempts["n"] += 1
        if attempts["n"] < 3:
            raise ConnectionError("blip")
        return "ok"

    await retry.call_async(flaky)
    text = generate_latest(metrics.registry).decode()
    return [line for line in text.splitlines()
            if line and not line.startswith("#") and "_created" not in line and not line.endswith(" 0.0")]


def slo_table(seed: int = 0, days: int = 30) -> list[dict]:
    return compare(seed, days=days)["rows"]


async def red_demo(requests: int = 30, timeout: float = 5.0) -> dict:
    """The demo inventory service with RED metrics on 127.0.0.1: ``requests`` GETs, then ``/metrics``."""
    metrics = ServiceMetrics("inventory")
    paths = ("/stock/apple", "/stock/plum", "/stock/nope")
    async with serve(instrument_app(make_demo_app("inventory", seed=0), metrics)) as (url,):
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as http:
            for i in range(requests):
                async with http.get(url + paths[i % len(paths)]) as r:
                    await r.read()
            async with http.get(url + "/metrics") as r:
                text = await r.text()
                content_type = r.headers["Content-Type"]
    keep = ("http_requests_total{", "http_request_duration_seconds_count{", "http_requests_in_flight{",
            "# TYPE http_")
    lines = [line for line in text.splitlines() if line.startswith(keep) and "_created" not in line]
    buckets = [line.split('le="')[1].split('"')[0] for line in text.splitlines()
               if line.startswith("http_request_duration_seconds_bucket{") and 'route="/stock/{sku}"' in line]
    return {"content_type": content_type, "lines": lines, "bucket_bounds": buckets}


def extrapolation_example() -> dict:
    """A counter growing by 10 every 15 s: raw difference against ``increase``/``rate`` over 1 minute."""
    times = [i * 15_000 for i in range(9)]
    values = [10.0 * i for i in range(9)]
    rows = []
    for t in (60.0, 67.5, 120.0):
        inside = [v for tm, v in zip(times, values) if (t - 60) * 1000 <= tm <= t * 1000]
        rows.append({"t_s": t, "samples_in_window": len(inside), "last_minus_first": inside[-1] - inside[0],
                     "increase_1m": round(increase(times, values, t, 60), 6),
                     "rate_1m_per_s": round(rate(times, values, t, 60), 6)})
    return {"samples": list(zip([t / 1000 for t in times], values)), "rows": rows}


T0 = 1_700_000_000  # epoch seconds: imported blocks must lie inside prometheus's retention
COMPARE_QUERIES = (
    "rate(http_requests_total[5m])",
    "increase(http_requests_total[1m])",
    'sum(rate(http_requests_total{status="500"}[5m])) / sum(rate(http_requests_total[5m]))',
    "histogram_quantile(0.9, sum by (le) (rate(http_request_duration_seconds_bucket[5m])))",
    "histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket[5m])))",
    "avg_over_time(http_requests_in_flight[5m])",
)
COMPARE_TIMES = (300.0, 607.5, 900.0, 1215.0, 1500.0)


def comparison_store(seed: int = 0, minutes: int = 30) -> SeriesStore:
    """Counters (one resets), a latency histogram and a gauge, scraped every 15 s from ``T0``."""
    rng = stream(seed, "ch08", "promql-compare")
    store = SeriesStore()
    ok = err = 0
    counts = dict.fromkeys(LATENCY_BUCKETS + (math.inf,), 0)
    values = latencies(seed, n=40 * minutes * 4)
    for i in range(minutes * 4 + 1):
        t = T0 + 15 * i
        ok = 0 if i == 40 else ok + rng.randint(20, 40)  # a process restart: the counter resets
        err += rng.randint(0, 3)
        store.add("http_requests_total", {"status": "200"}, t, ok)
        store.add("http_requests_total", {"status": "500"}, t, err)
        for x in values[i * 10:(i + 1) * 10]:
            for le in counts:
                if x <= le:
                    counts[le] += 1
        for le, c in counts.items():
            store.add("http_request_duration_seconds_bucket", {"le": "+Inf" if math.isinf(le) else f"{le:g}"}, t, c)
        store.add("http_requests_in_flight", {}, t, rng.randint(0, 12))
    return store


def _relative_difference(mine: float, theirs: float) -> float:
    """0 when both are NaN (Prometheus's answer for an empty bucket set), inf when only one is."""
    if math.isnan(mine) or math.isnan(theirs):
        return 0.0 if math.isnan(mine) and math.isnan(theirs) else math.inf
    return abs(mine - theirs) / max(abs(theirs), 1e-300)


def compare_with_prometheus(seed: int = 0, *, rel_tol: float = 1e-9) -> dict:
    """The workbook's answers and a real prometheus's on the same samples (module doc)."""
    store = comparison_store(seed)
    engine = Engine(store)
    rows, worst = [], 0.0
    server = PrometheusServer()
    server.import_openmetrics(store.to_openmetrics())
    with server:
        for expr in COMPARE_QUERIES:
            for t in COMPARE_TIMES:
                theirs = server.query_values(expr, T0 + t)
                ours = {tuple(sorted(k)): v for k, v in engine.query_vector(expr, T0 + t).items()}
                if set(ours) != set(theirs):
                    worst = math.inf
                for key, value in theirs.items():
                    mine = ours.get(key, math.nan)
                    worst = max(worst, _relative_difference(mine, value))
                    rows.append({"expr": expr, "t_s": t, "labels": dict(key), "workbook": mine, "prometheus": value})
    return {"compared": len(rows), "max_rel_diff": worst, "agree": worst <= rel_tol, "rel_tol": rel_tol,
            "rows": rows}


__all__ = ["COMPARE_QUERIES", "LAYOUTS", "REPEAT_ROUTING", "bucket_counts", "compare_with_prometheus",
           "comparison_store", "extrapolation_example", "latencies", "naive_versus_for", "quantile_error", "red_demo",
           "repeat_demo", "resilience_demo", "routing_demo", "service_alert_timeline", "slo_table"]
