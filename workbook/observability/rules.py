"""Prometheus rule files and an alerting-rule evaluator with Prometheus's semantics.

``load_rules(text_or_path)`` reads Prometheus's rule-file YAML (``groups:`` of ``name``,
``interval``, ``rules:`` with ``alert``/``record``, ``expr``, ``for``, ``keep_firing_for``,
``labels``, ``annotations``) and refuses what Prometheus's ``rulefmt`` refuses, with a
``RuleFileError`` naming the place (``groups[0].rules[1].for``): unknown fields, a missing
or duplicate group name, an expression that does not parse, a bad duration, an invalid
label or metric name, a template that cannot be expanded.

``RuleEvaluator`` runs the groups over a ``SeriesStore`` at ``0, interval, 2*interval...``
the way ``rules/alerting.go: AlertingRule.Eval`` (v2.42.0) does at each evaluation:

* every series the expression returns is an alert instance, identified by its labels
  (series labels without ``__name__``, plus the rule's templated labels, plus
  ``alertname``); a new one starts **pending** with ``active_at`` = now;
* a pending alert turns **firing** at the first evaluation where ``now - active_at >=
  for``; since an instance is dropped as soon as one evaluation does not return it, it
  fires only if the condition held at *every* evaluation for the whole ``for``;
* a firing alert that is no longer returned stays firing while ``now - keep_firing_since
  < keep_firing_for`` (``keep_firing_for`` exists since 2.42.0, CHANGELOG #11827), then
  becomes inactive (resolved) and is forgotten 15 minutes later;
* recording rules write their result into the store at the evaluation time, visible to
  the rules after them.

``naive.NaiveAlertManager`` is the source article's version for comparison.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from workbook.observability.errors import (DurationError, InvalidNameError, PromQLError, RuleFileError,
                                           TemplateError)
from workbook.observability.promql import Engine, check_expression, parse_promql
from workbook.observability.series import (Labels, SeriesStore, check_label_name, check_metric_name,
                                           format_duration, parse_duration)
from workbook.observability.templating import check_template, expand

__all__ = ["AlertRule", "RecordingRule", "RuleGroup", "load_rules", "dump_rules", "RuleEvaluator", "Alert",
           "AlertState", "RESOLVED_RETENTION_MS", "promtool_unit_test", "parse_promtool_values",
           "store_from_promtool_test", "run_promtool_tests"]

RESOLVED_RETENTION_MS = 15 * 60_000


class AlertState:
    INACTIVE = "inactive"
    PENDING = "pending"
    FIRING = "firing"


@dataclass(frozen=True)
class AlertRule:
    """One alerting rule; durations in milliseconds."""

    name: str
    expr: str
    for_ms: int = 0
    keep_firing_for_ms: int = 0
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)

    def to_yaml_dict(self) -> dict:
        d = {"alert": self.name, "expr": self.expr}
        if self.for_ms:
            d["for"] = format_duration(self.for_ms)
        if self.keep_firing_for_ms:
            d["keep_firing_for"] = format_duration(self.keep_firing_for_ms)
        if self.labels:
            d["labels"] = dict(self.labels)
        if self.annotations:
            d["annotations"] = dict(self.annotations)
        return d


@dataclass(frozen=True)
class RecordingRule:
    name: str
    expr: str
    labels: Mapping[str, str] = field(default_factory=dict)

    def to_yaml_dict(self) -> dict:
        d = {"record": self.name, "expr": self.expr}
        if self.labels:
            d["labels"] = dict(self.labels)
        return d


@dataclass(frozen=True)
class RuleGroup:
    name: str
    rules: tuple
    interval_ms: int | None = None

    def to_yaml_dict(self) -> dict:
        d = {"name": self.name}
        if self.interval_ms:
            d["interval"] = format_duration(self.interval_ms)
        d["rules"] = [r.to_yaml_dict() for r in self.rules]
        return d


def dump_rules(groups) -> str:
    """The groups as rule-file YAML (what ``promtool`` reads)."""
    return yaml.safe_dump({"groups": [g.to_yaml_dict() for g in groups]}, sort_keys=False)


_GROUP_FIELDS = {"name", "interval", "limit", "rules"}
_RULE_FIELDS = {"alert", "record", "expr", "for", "keep_firing_for", "labels", "annotations"}


def load_rules(source, *, name: str | None = None) -> list[RuleGroup]:
    """Rule groups from YAML text, a path, or an already-parsed dict; ``RuleFileError`` on bad input."""
    origin = name or "rules"
    if isinstance(source, Path) or (isinstance(source, str) and "\n" not in source and source.endswith((".yml", ".yaml"))):
        path = Path(source)
        origin = name or str(path)
        source = path.read_text(encoding="utf-8")
    if isinstance(source, str):
        try:
            doc = yaml.safe_load(source)
        except yaml.YAMLError as exc:
            raise RuleFileError(origin, "document", "valid YAML", str(exc).splitlines()[0]) from None
    else:
        doc = source
    if not isinstance(doc, dict) or set(doc) != {"groups"}:
        raise RuleFileError(origin, "document", "a mapping with exactly one key, 'groups'",
                            sorted(doc) if isinstance(doc, dict) else doc)
    if not isinstance(doc["groups"], list):
        raise RuleFileError(origin, "groups", "a list of groups", doc["groups"])
    groups, seen = [], set()
    for gi, g in enumerate(doc["groups"]):
        where = f"groups[{gi}]"
        if not isinstance(g, dict):
            raise RuleFileError(origin, where, "a mapping with name and rules", g)
        unknown = sorted(set(g) - _GROUP_FIELDS)
        if unknown:
            raise RuleFileError(origin, f"{where}.{unknown[0]}", f"one of the group fields {sorted(_GROUP_FIELDS)}")
        gname = g.get("name")
        if not isinstance(gname, str) or not gname:
            raise RuleFileError(origin, f"{where}.name", "a non-empty group name", gname)
        if gname in seen:
            raise RuleFileError(origin, f"{where}.name", "a group name not used before in the file", gname)
        seen.add(gname)
        if "limit" in g and (isinstance(g["limit"], bool) or not isinstance(g["limit"], int) or g["limit"] < 0):
            raise RuleFileError(origin, f"{where}.limit", "an integer >= 0 (0: no limit)", g["limit"])
        interval = None
        if "interval" in g:
            interval = _duration(origin, f"{where}.interval", g["interval"])
        rules = g.get("rules") or []
        if not isinstance(rules, list):
            raise RuleFileError(origin, f"{where}.rules", "a list of rules", rules)
        groups.append(RuleGroup(gname, tuple(_rule(origin, f"{where}.rules[{ri}]", r) for ri, r in enumerate(rules)),
                                interval))
    return groups


def _duration(origin, where, value) -> int:
    try:
        return parse_duration(value, field=where)
    except DurationError as exc:
        raise RuleFileError(origin, where, "a duration such as 30s, 5m or 1h30m", value) from exc


def _rule(origin, where, r):
    if not isinstance(r, dict):
        raise RuleFileError(origin, where, "a mapping with alert or record, and expr", r)
    unknown = sorted(set(r) - _RULE_FIELDS)
    if unknown:
        raise RuleFileError(origin, f"{where}.{unknown[0]}", f"one of the rule fields {sorted(_RULE_FIELDS)}")
    if ("alert" in r) == ("record" in r):
        raise RuleFileError(origin, where, "exactly one of 'alert' and 'record'")
    expr = r.get("expr")
    if not isinstance(expr, str) or not expr.strip():
        raise RuleFileError(origin, f"{where}.expr", "a PromQL expression", expr)
    try:
        check_expression(expr)
    except (PromQLError, InvalidNameError) as exc:
        raise RuleFileError(origin, f"{where}.expr", "a valid PromQL expression", f"{expr}: {exc}") from None
    labels = _string_map(origin, f"{where}.labels", r.get("labels"))
    if "record" in r:
        for key in ("for", "keep_firing_for", "annotations"):
            if key in r:
                raise RuleFileError(origin, f"{where}.{key}", f"no '{key}' on a recording rule (alerting rules only)")
        try:
            check_metric_name(r["record"])
        except InvalidNameError as exc:
            raise RuleFileError(origin, f"{where}.record", "a valid metric name", f"{r['record']}: {exc}") from None
        return RecordingRule(r["record"], expr, labels)
    alert = r["alert"]
    if not isinstance(alert, str) or not alert:
        raise RuleFileError(origin, f"{where}.alert", "a non-empty alert name", alert)
    annotations = _string_map(origin, f"{where}.annotations", r.get("annotations"))
    for kind, mapping in (("labels", labels), ("annotations", annotations)):
        for key, value in mapping.items():
            try:
                check_template(value, f"{where}.{kind}.{key}")
            except TemplateError as exc:
                raise RuleFileError(origin, f"{where}.{kind}.{key}", "a template this evaluator can expand",
                                    str(exc)) from None
    return AlertRule(alert, expr,
                     _duration(origin, f"{where}.for", r["for"]) if "for" in r else 0,
                     _duration(origin, f"{where}.keep_firing_for", r["keep_firing_for"]) if "keep_firing_for" in r else 0,
                     labels, annotations)


def _string_map(origin, where, value) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise RuleFileError(origin, where, "a mapping of names to strings", value)
    out = {}
    for key, v in value.items():
        try:
            check_label_name(key, allow_reserved=True)  # rulefmt: LabelName.IsValid, and not __name__
        except InvalidNameError as exc:
            raise RuleFileError(origin, f"{where}.{key}", "a valid label name", str(exc)) from None
        if key == "__name__":
            raise RuleFileError(origin, f"{where}.{key}", "a label name other than __name__ (the metric name)")
        if not isinstance(v, str):
            raise RuleFileError(origin, f"{where}.{key}", "a string value (quote numbers in YAML)", v)
        out[key] = v
    return out


@dataclass
class Alert:
    """One alert instance of a rule: its identity (labels), state and times (seconds)."""

    rule: str
    labels: Labels
    annotations: dict
    state: str
    active_at: float
    value: float
    fired_at: float | None = None
    resolved_at: float | None = None
    keep_firing_since: float | None = None

    @property
    def label_dict(self) -> dict:
        return dict(self.labels)


class RuleEvaluator:
    """Evaluates rule groups over a ``SeriesStore`` at times the caller gives (seconds).

    ``evaluate(t)`` runs every group once at ``t`` and returns the alerts that are pending
    or firing; ``run(start, end, interval)`` evaluates on that grid and returns a timeline
    ``[(t, [Alert...]), ...]`` of copies. Times are kept as integer milliseconds inside, as
    Prometheus compares them.
    """

    def __init__(self, groups, store: SeriesStore, *, external_labels: Mapping[str, str] | None = None):
        self.groups = list(groups)
        self.store = store
        self.engine = Engine(store)
        self.external_labels = dict(external_labels or {})
        self._active: dict[tuple[str, Labels], dict] = {}

    def evaluate(self, t: float) -> list[Alert]:
        ts = round(t * 1000)
        for group in self.groups:
            for rule in group.rules:
                if isinstance(rule, RecordingRule):
                    self._record(rule, ts)
                else:
                    self._alert(rule, ts)
        return self.active_alerts()

    def _record(self, rule: RecordingRule, ts: int):
        result = self.engine.query(rule.expr, ts / 1000)
        if isinstance(result, float):
            result = {(): result}
        for key, value in result.items():
            labels = {k: v for k, v in key if k != "__name__"}
            labels.update(rule.labels)
            labels["__name__"] = rule.name
            self.store.add_labels(tuple(sorted(labels.items())), ts / 1000, value)

    def _alert(self, rule: AlertRule, ts: int):
        result = self.engine.query(rule.expr, ts / 1000)
        if isinstance(result, float):
            result = {(): result}
        current: dict[Labels, tuple[dict, float]] = {}
        for key, value in result.items():
            metric = {k: v for k, v in key if k != "__name__"}
            where = f"alert {rule.name}"
            labels = dict(metric)
            for name, template in rule.labels.items():
                labels[name] = expand(template, metric, value, external_labels=self.external_labels, where=where)
            labels["alertname"] = rule.name
            annotations = {name: expand(template, metric, value, external_labels=self.external_labels, where=where)
                           for name, template in rule.annotations.items()}
            ident = tuple(sorted(labels.items()))
            if ident in current:
                raise RuleFileError(rule.name, "expr", "series with distinct label sets after the alert labels "
                                    "are applied ('vector contains metrics with the same labelset')")
            current[ident] = (annotations, value)
        for ident, (annotations, value) in current.items():
            a = self._active.get((rule.name, ident))
            if a is not None and a["state"] != AlertState.INACTIVE:
                a["value"], a["annotations"] = value, annotations
            else:
                self._active[(rule.name, ident)] = {"state": AlertState.PENDING, "active_at": ts, "value": value,
                                                    "annotations": annotations, "fired_at": None,
                                                    "resolved_at": None, "keep_firing_since": None}
        for (name, ident), a in list(self._active.items()):
            if name != rule.name:
                continue
            if ident not in current:
                keep = False
                if a["state"] == AlertState.FIRING and rule.keep_firing_for_ms > 0:
                    if a["keep_firing_since"] is None:
                        a["keep_firing_since"] = ts
                    keep = ts - a["keep_firing_since"] < rule.keep_firing_for_ms
                if a["state"] == AlertState.PENDING or (a["resolved_at"] is not None
                                                        and ts - a["resolved_at"] > RESOLVED_RETENTION_MS):
                    del self._active[(name, ident)]
                if a["state"] != AlertState.INACTIVE and not keep:
                    a["state"], a["resolved_at"] = AlertState.INACTIVE, ts
                if not keep:
                    continue
            else:
                a["keep_firing_since"] = None
            if a["state"] == AlertState.PENDING and ts - a["active_at"] >= rule.for_ms:
                a["state"], a["fired_at"] = AlertState.FIRING, ts

    def active_alerts(self, *, include_resolved: bool = False) -> list[Alert]:
        out = []
        for (name, ident), a in sorted(self._active.items()):
            if a["state"] == AlertState.INACTIVE and not include_resolved:
                continue
            out.append(Alert(name, ident, dict(a["annotations"]), a["state"], a["active_at"] / 1000, a["value"],
                             None if a["fired_at"] is None else a["fired_at"] / 1000,
                             None if a["resolved_at"] is None else a["resolved_at"] / 1000,
                             None if a["keep_firing_since"] is None else a["keep_firing_since"] / 1000))
        return out

    def firing(self) -> list[Alert]:
        return [a for a in self.active_alerts() if a.state == AlertState.FIRING]

    def run(self, start: float, end: float, interval: float) -> list[tuple[float, list[Alert]]]:
        """Evaluate at ``start, start + interval, ... <= end``; the alerts after each evaluation."""
        timeline = []
        step_ms, t_ms, end_ms = round(interval * 1000), round(start * 1000), round(end * 1000)
        if step_ms <= 0:
            raise RuleFileError("run", "interval", "a positive evaluation interval", interval)
        while t_ms <= end_ms:
            timeline.append((t_ms / 1000, self.evaluate(t_ms / 1000)))
            t_ms += step_ms
        return timeline


def promtool_unit_test(rule_file: str, store: SeriesStore, *, input_interval: float, end: float,
                       evaluation_interval: float, expected: Mapping[float, Mapping[str, list[Alert]]]) -> str:
    """A ``promtool test rules`` file: ``store`` as ``input_series`` and, for each eval time, the alerts expected.

    ``expected`` maps an eval time (seconds) to ``{alertname: [firing Alert, ...]}``; this is
    how the workbook's evaluator states its answer so promtool can check it.
    """
    interval_ms, end_ms = round(input_interval * 1000), round(end * 1000)
    series = []
    for key in store.series():
        d = dict(key)
        name = d.pop("__name__")
        text = name + ("{" + ",".join(f'{k}="{v}"' for k, v in sorted(d.items())) + "}" if d else "")
        series.append({"series": text, "values": store.promtool_values(key, interval_ms, end_ms)})
    tests = []
    for t in sorted(expected):
        for alertname, alerts in sorted(expected[t].items()):
            exp = []
            for a in alerts:
                labels = {k: v for k, v in a.labels if k != "alertname"}
                item = {}
                if labels:
                    item["exp_labels"] = labels
                if a.annotations:
                    item["exp_annotations"] = dict(a.annotations)
                exp.append(item)
            tests.append({"eval_time": format_duration(round(t * 1000)), "alertname": alertname, "exp_alerts": exp})
    doc = {"rule_files": [rule_file], "evaluation_interval": format_duration(round(evaluation_interval * 1000)),
           "tests": [{"interval": format_duration(interval_ms), "input_series": series, "alert_rule_test": tests}]}
    return yaml.safe_dump(doc, sort_keys=False)



def parse_promtool_values(text: str) -> list[float | None]:
    """promtool's ``values`` notation expanded: ``1+2x3`` -> 1 3 5 7, ``5x2`` -> 5 5 5, ``_x2`` -> _ _.

    ``None`` is a missing sample; ``stale`` is refused (this evaluator has no staleness markers).
    """
    out: list[float | None] = []
    for token in str(text).split():
        if token == "_":
            out.append(None)
            continue
        if token == "stale":
            raise RuleFileError("values", token, "numbers, '_' or expanding notation ('stale' is not supported)")
        m = _EXPAND.match(token)
        if not m:
            raise RuleFileError("values", token, "a number, '_', 'a+bxn', 'a-bxn', 'axn' or '_xn'")
        start, sign, step, times = m.groups()
        if start == "_":
            if sign:
                raise RuleFileError("values", token, "'_xn' (a missing sample cannot increment)")
            out.extend([None] * int(times))
            continue
        a = float(start)
        if times is None:
            out.append(a)
            continue
        b = float(step or 0) * (-1 if sign == "-" else 1)
        out.extend(a + i * b for i in range(int(times) + 1))
    return out


_EXPAND = re.compile(r"^(_|[-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|Inf|NaN))(?:([-+])(\d+\.?\d*(?:[eE][-+]?\d+)?))?"
                                   r"(?:x(\d+))?$")


def store_from_promtool_test(test_group: Mapping) -> tuple[SeriesStore, float]:
    """The ``input_series`` of one promtool test group as a ``SeriesStore``, and its interval (s)."""
    interval = parse_duration(test_group.get("interval", "1m"), field="interval") / 1000
    store = SeriesStore()
    for item in test_group.get("input_series", []):
        sel = parse_promql(item["series"])
        labels = {n: v for n, _, v in sel.matchers}
        for i, v in enumerate(parse_promtool_values(item["values"])):
            if v is not None:
                store.add(sel.name, labels, i * interval, v)
    return store, interval



def run_promtool_tests(path) -> list[str]:
    """Run a ``promtool test rules`` file's ``alert_rule_test`` cases with this evaluator.

    Evaluates every ``evaluation_interval`` from 0 as promtool does and compares, at each
    ``eval_time``, the firing alerts (labels and annotations) with the expected ones.
    Returns the disagreements as readable lines (empty: the file passes here too).
    """
    path = Path(path)
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    groups = []
    for rule_file in doc.get("rule_files", []):
        groups.extend(load_rules(path.parent / rule_file))
    step = parse_duration(doc.get("evaluation_interval", "1m"), field="evaluation_interval") / 1000
    problems = []
    for ti, test in enumerate(doc.get("tests", [])):
        store, _ = store_from_promtool_test(test)
        evaluator = RuleEvaluator(groups, store, external_labels=test.get("external_labels"))
        cases = sorted(test.get("alert_rule_test", []),
                       key=lambda c: parse_duration(c["eval_time"], field="eval_time"))
        t = 0.0
        for case in cases:
            at = parse_duration(case["eval_time"], field="eval_time") / 1000
            while t <= at + 1e-9:
                evaluator.evaluate(t)
                t += step
            got = sorted((tuple(sorted((k, v) for k, v in a.labels)), tuple(sorted(a.annotations.items())))
                         for a in evaluator.firing() if a.rule == case["alertname"])
            want = sorted((tuple(sorted({**(e.get("exp_labels") or {}), "alertname": case["alertname"]}.items())),
                           tuple(sorted((e.get("exp_annotations") or {}).items())))
                          for e in case.get("exp_alerts") or [])
            if got != want:
                problems.append(f"tests[{ti}] {case['alertname']} at {case['eval_time']}: expected {want}, got {got}")
    return problems

