"""The chapter's exercise: an alert rule that catches an incident within 5 minutes and ignores spikes.

A checkout service takes about 50 requests a second and normally fails ``BASELINE`` (0.5%)
of them. Now and then a **spike** fails 20-50% of requests for at most 90 seconds (a
deploy, a GC storm): nobody should be paged for those. An **incident** fails 6-12% of
requests for 20-40 minutes: the on-call engineer must be paged within
``MAX_DETECTION`` (5 minutes) of its start. Prometheus scrapes every 15 s and evaluates
rules every 30 s; the series is ``http_requests_total{service="checkout", status="200"|"500"}``.

``exercise_series(seed)`` is a series to try rules on (one incident, a few spikes);
``check_alert_rule(answer)`` evaluates the answer with the workbook's evaluator (which
agrees with promtool: tests/test_observability_rules_vs_promtool.py) on held-out series
and returns a ``Verdict``. The answer is ``{"expr": "...", "for": "2m"}`` or the YAML of
one alerting rule. The usual wrong answers fail for a reason the verdict names: the
article's ``value > threshold`` without ``for:`` pages on spikes; a long ``for:`` pages too
late; a threshold on the raw counter (``http_requests_total{status="500"} > 100``) stays
true forever once the counter passes it; a long rate window lets one spike lift the
average above the threshold.
"""

from __future__ import annotations

import math

import yaml

from workbook.core.params import check_int
from workbook.core.seeds import derive_seed, stream
from workbook.core.verdict import Verdict
from workbook.observability import AlertRule, ObservabilityError, RuleEvaluator, RuleGroup, SeriesStore, load_rules
from workbook.observability.promql import Call, Selector, parse_promql

BASELINE = 0.005
RATE = 50.0
SCRAPE = 15.0
EVALUATION = 30.0
MAX_DETECTION = 300.0
DURATION = 3 * 3600.0
HELD_OUT = 4


def _binomial(rng, n, p):
    # normal approximation is plenty for n = 750
    x = round(rng.gauss(n * p, math.sqrt(max(n * p * (1 - p), 1e-9))))
    return min(n, max(0, x))


def scenario(seed: int) -> dict:
    """One incident and four spikes at seeded times and sizes (seconds, error ratios)."""
    rng = stream(seed, "ch08", "scenario")
    incident_start = rng.uniform(3600, 5400)
    incident = (incident_start, incident_start + rng.uniform(1200, 2400), rng.uniform(0.06, 0.12))
    spikes, t = [], 600.0
    for _ in range(4):
        t += rng.uniform(900, 1500)
        if incident[0] - 600 < t < incident[1] + 600:
            t = incident[1] + rng.uniform(600, 900)
        spikes.append((t, t + rng.uniform(30, 90), rng.uniform(0.2, 0.5)))
    return {"incident": incident, "spikes": spikes, "duration": DURATION}


def exercise_series(seed: int = 0) -> tuple[SeriesStore, dict]:
    """Counters scraped every 15 s for 3 hours, and the scenario behind them."""
    seed = check_int("seed", seed, minimum=0)
    sc = scenario(seed)
    rng = stream(seed, "ch08", "traffic")
    store = SeriesStore()
    ok = err = 0
    t = 0.0
    while t <= sc["duration"]:
        ratio = BASELINE
        for start, end, r in [sc["incident"], *sc["spikes"]]:
            if start <= t < end + SCRAPE:  # errors of the interval ending at t
                ratio = max(ratio, r)
        n = int(RATE * SCRAPE)
        e = _binomial(rng, n, ratio)
        ok, err = ok + n - e, err + e
        store.add("http_requests_total", {"service": "checkout", "status": "200"}, t, ok)
        store.add("http_requests_total", {"service": "checkout", "status": "500"}, t, err)
        t += SCRAPE
    return store, sc


def _rule_of(answer):
    if isinstance(answer, dict) and "groups" not in answer:
        rule = {"alert": answer.get("alert", "CheckoutErrors"), **{k: v for k, v in answer.items() if k != "alert"}}
        return load_rules({"groups": [{"name": "exercise", "rules": [rule]}]}, name="answer")
    if isinstance(answer, str):
        doc = yaml.safe_load(answer)
        if isinstance(doc, dict) and "groups" not in doc:
            return _rule_of(doc)
        return load_rules(answer, name="answer")
    if isinstance(answer, dict):
        return load_rules(answer, name="answer")
    raise ObservabilityError(f"answer: expected {{'expr': ..., 'for': ...}} or rule YAML, got {type(answer).__name__}")


def _raw_counter(node) -> bool:
    """Whether the expression compares a ``*_total`` series directly (no rate/increase around it)."""
    if isinstance(node, Selector):
        return (node.name or "").endswith("_total") and node.range_ms is None
    if isinstance(node, Call):
        return False
    return any(_raw_counter(child) for child in vars(node).values() if hasattr(child, "__dict__"))


def _run(groups, seed):
    store, sc = exercise_series(seed)
    evaluator = RuleEvaluator(groups, store)
    firing = [(t, any(a.state == "firing" for a in alerts)) for t, alerts in evaluator.run(0, sc["duration"],
                                                                                             EVALUATION)]
    start, end, _ = sc["incident"]
    first = next((t for t, f in firing if f and t >= start), None)
    detection = None if first is None or first > end else first - start
    false = []
    was = False
    for t, f in firing:
        if f and not was and not (start <= t <= end):
            false.append(t)
        was = f
    return detection, false, sc


def check_alert_rule(answer, *, seed: int = 0) -> Verdict:
    """Judge the answer on ``HELD_OUT`` held-out scenarios (see module doc)."""
    subject = "alert rule for the checkout incident"
    try:
        groups = _rule_of(answer)
    except (ObservabilityError, yaml.YAMLError) as exc:
        return Verdict.rejected(subject, f"{type(exc).__name__}: {exc}",
                                hint="give {'expr': 'PromQL', 'for': '2m'} or one rule in Prometheus's YAML")
    alerts = [r for g in groups for r in g.rules if isinstance(r, AlertRule)]
    if len(alerts) != 1:
        return Verdict.rejected(subject, f"expected exactly one alerting rule, got {len(alerts)}")
    rule = alerts[0]
    detections, false_alerts = [], 0
    for k in range(HELD_OUT):
        detection, false, _ = _run([RuleGroup("exercise", (rule,))], derive_seed(seed, "held-out", k))
        detections.append(detection)
        false_alerts += len(false)
    caught = [d for d in detections if d is not None]
    worst = max(caught) if len(caught) == len(detections) else math.inf
    raw = _raw_counter(parse_promql(rule.expr))
    checks = [
        ("every held-out incident is caught", len(caught) == len(detections),
         f"{len(caught)} of {len(detections)} incidents paged"),
        (f"each within {MAX_DETECTION / 60:.0f} minutes of its start", worst <= MAX_DETECTION,
         "detection times " + ", ".join("missed" if d is None else f"{d:.0f} s" for d in detections)),
        ("no page outside an incident (spikes, baseline)", false_alerts == 0, f"{false_alerts} false page(s)"),
        ("the condition is on a rate, not on the raw counter", not raw,
         "compares a *_total counter directly" if raw else "uses rate/increase"),
    ]
    hints = []
    if false_alerts and rule.for_ms == 0:
        hints.append("without for: a single bad evaluation pages; add for: long enough to outlast a 90 s spike")
    elif false_alerts:
        hints.append("a spike still lifts the condition long enough: a shorter rate window or a longer for:")
    if worst > MAX_DETECTION and caught:
        hints.append("the rate window plus for: is longer than 5 minutes: shorten them")
    if raw:
        hints.append("a counter only grows: take rate(...[1m]) of errors over rate(...[1m]) of all requests")
    numbers = {"detection_s": detections, "false_pages": false_alerts, "for_s": rule.for_ms / 1000}
    return Verdict.of(subject, checks, numbers=numbers, hint="; ".join(hints))
