"""Notification routing in the manner of Alertmanager: routes, grouping, timing, inhibition, silences.

``Alertmanager(route, receivers, clock=...)`` receives alerts (``receive``), files each in
an aggregation group per matching route and per value of the route's ``group_by`` labels,
and flushes groups on Alertmanager's timers (``dispatch/dispatch.go`` and
``notify/notify.go``'s ``DedupStage.needsUpdate``):

* a new group waits ``group_wait`` before its first notification (so alerts that start
  together arrive together);
* afterwards the group is looked at every ``group_interval``: it notifies if an alert
  started firing that the last notification did not contain, or (``send_resolved``) an
  alert resolved, or, when nothing changed, if ``repeat_interval`` has passed since the
  last notification;
* an alert is **inhibited** while a firing alert matches an inhibit rule's
  ``source_matchers`` and has the same values of its ``equal`` labels (a page for the
  whole service mutes the per-route warnings), and **silenced** while a silence's
  matchers all match within its time window; muted alerts are left out of notifications.

Receivers are async callables taking the webhook payload (Alertmanager's webhook format,
``version`` 4, times as RFC 3339 from the clock's seconds since the epoch);
``webhook.WebhookSender`` posts it over HTTP. Time comes from the injected ``Clock``:
``run_until(t)`` sleeps on it from flush to flush (virtual or manual time in tests).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone

from workbook.core.clock import DEFAULT_CLOCK, Clock
from workbook.observability.errors import ObservabilityError
from workbook.observability.series import check_label_name, parse_duration

__all__ = ["Alertmanager", "Route", "InhibitRule", "Silence", "AMAlert", "Matcher", "parse_matcher", "alerts_from_rules"]

Receiver = Callable[[dict], Awaitable[None]]

_MATCHER_RE = re.compile(r'^\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"?(.*?)"?\s*$')


@dataclass(frozen=True)
class Matcher:
    name: str
    op: str
    value: str

    def matches(self, labels: Mapping[str, str]) -> bool:
        actual = labels.get(self.name, "")
        if self.op == "=":
            return actual == self.value
        if self.op == "!=":
            return actual != self.value
        hit = re.fullmatch(self.value, actual) is not None
        return hit if self.op == "=~" else not hit


def parse_matcher(text) -> Matcher:
    """``severity="page"``, ``route=~"/stock.*"`` ... as Alertmanager's ``matchers`` lists spell them."""
    if isinstance(text, Matcher):
        return text
    m = _MATCHER_RE.match(text) if isinstance(text, str) else None
    if not m:
        raise ObservabilityError(f"matcher {text!r}: expected name, an operator (=, !=, =~, !~) and a value, "
                                 'e.g. severity="page"')
    if m.group(2) in ("=~", "!~"):
        try:
            re.compile(m.group(3))
        except re.error as exc:
            raise ObservabilityError(f"matcher {text!r}: invalid regular expression: {exc}") from None
    return Matcher(m.group(1), m.group(2), m.group(3))


def _seconds(value, where) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if value < 0:
            raise ObservabilityError(f"{where}: expected a duration >= 0, got {value!r}")
        return float(value)
    return parse_duration(value, field=where) / 1000


@dataclass(frozen=True)
class Route:
    """A routing-tree node; children inherit unset settings from their parent, as in Alertmanager."""

    receiver: str
    group_by: tuple = ("alertname",)
    group_wait: float = 30.0
    group_interval: float = 300.0
    repeat_interval: float = 4 * 3600.0
    matchers: tuple = ()
    continue_: bool = False
    routes: tuple = ()

    @classmethod
    def from_dict(cls, d: Mapping, parent: Route | None = None, where: str = "route") -> Route:
        known = {"receiver", "group_by", "group_wait", "group_interval", "repeat_interval", "matchers",
                 "continue", "routes"}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ObservabilityError(f"{where}.{unknown[0]}: unknown field, expected one of {sorted(known)}")
        receiver = d.get("receiver", parent.receiver if parent else None)
        if not receiver:
            raise ObservabilityError(f"{where}.receiver: the root route needs a receiver")
        group_by = tuple(d.get("group_by", parent.group_by if parent else ("alertname",)))
        for name in group_by:
            if name != "...":
                check_label_name(name)
        base = parent or cls(receiver)
        node = cls(receiver, group_by,
                   _seconds(d["group_wait"], f"{where}.group_wait") if "group_wait" in d else base.group_wait,
                   _seconds(d["group_interval"], f"{where}.group_interval") if "group_interval" in d
                   else base.group_interval,
                   _seconds(d["repeat_interval"], f"{where}.repeat_interval") if "repeat_interval" in d
                   else base.repeat_interval,
                   tuple(parse_matcher(m) for m in d.get("matchers", ())), bool(d.get("continue", False)))
        if node.group_interval <= 0:
            raise ObservabilityError(f"{where}.group_interval: expected a duration > 0")
        children = tuple(cls.from_dict(c, node, f"{where}.routes[{i}]") for i, c in enumerate(d.get("routes", ())))
        return cls(node.receiver, node.group_by, node.group_wait, node.group_interval, node.repeat_interval,
                   node.matchers, node.continue_, children)

    def match(self, labels: Mapping[str, str]) -> list[Route]:
        """The routes an alert goes to: the deepest matching children, first match unless ``continue``."""
        if not all(m.matches(labels) for m in self.matchers):
            return []
        found = []
        for child in self.routes:
            hits = child.match(labels)
            found.extend(hits)
            if hits and not child.continue_:
                break
        return found or [self]


@dataclass(frozen=True)
class InhibitRule:
    source_matchers: tuple
    target_matchers: tuple
    equal: tuple = ()

    @classmethod
    def from_dict(cls, d: Mapping) -> InhibitRule:
        return cls(tuple(parse_matcher(m) for m in d.get("source_matchers", ())),
                   tuple(parse_matcher(m) for m in d.get("target_matchers", ())),
                   tuple(check_label_name(n) for n in d.get("equal", ())))


@dataclass(frozen=True)
class Silence:
    matchers: tuple
    starts_at: float
    ends_at: float
    comment: str = ""

    def active(self, now: float, labels: Mapping[str, str]) -> bool:
        return self.starts_at <= now < self.ends_at and all(m.matches(labels) for m in self.matchers)


@dataclass
class AMAlert:
    """An alert as Alertmanager holds it; ``ends_at`` None means "firing until told otherwise"."""

    labels: dict
    annotations: dict = field(default_factory=dict)
    starts_at: float = 0.0
    ends_at: float | None = None
    updated_at: float = 0.0

    def resolved(self, now: float, resolve_timeout: float) -> bool:
        if self.ends_at is not None:
            return self.ends_at <= now
        return now - self.updated_at > resolve_timeout

    @property
    def fingerprint(self) -> str:
        text = "\x1f".join(f"{k}\x1e{v}" for k, v in sorted(self.labels.items()))
        return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


@dataclass
class _Group:
    route: Route
    labels: dict
    key: str
    alerts: dict = field(default_factory=dict)
    next_flush: float = 0.0
    flushed: bool = False
    last_firing: frozenset = frozenset()
    last_resolved: frozenset = frozenset()
    last_sent: float | None = None


def _rfc3339(t: float | None) -> str:
    if t is None:
        return "0001-01-01T00:00:00Z"
    return datetime.fromtimestamp(t, timezone.utc).isoformat().replace("+00:00", "Z")


class Alertmanager:
    """Routes, groups, mutes and delivers alerts on Alertmanager's timers (see module doc).

    ``notifications`` lists every delivery attempted: ``{"time", "receiver", "group_key",
    "status", "alerts": [names], "delivered": bool, "error"}``.
    """

    def __init__(self, route: Route | Mapping, receivers: Mapping[str, Receiver], *, inhibit_rules=(),
                 clock: Clock | None = None, resolve_timeout: float = 300.0, send_resolved: bool = True):
        self.route = route if isinstance(route, Route) else Route.from_dict(route)
        self.receivers = dict(receivers)
        for r in self._all_receivers(self.route):
            if r not in self.receivers:
                raise ObservabilityError(f"route receiver {r!r} is not defined: expected one of {sorted(self.receivers)}")
        self.inhibit_rules = [r if isinstance(r, InhibitRule) else InhibitRule.from_dict(r) for r in inhibit_rules]
        self.clock = clock or DEFAULT_CLOCK
        self.resolve_timeout = resolve_timeout
        self.send_resolved = send_resolved
        self.silences: list[Silence] = []
        self._alerts: dict[str, AMAlert] = {}
        self._groups: dict[str, _Group] = {}
        self.notifications: list[dict] = []
        self._route_path: dict[int, str] = {}
        self._number_routes(self.route, "0")

    def _number_routes(self, route, path):
        self._route_path[id(route)] = path
        for i, child in enumerate(route.routes):
            self._number_routes(child, f"{path}.{i}")

    def _all_receivers(self, route):
        yield route.receiver
        for child in route.routes:
            yield from self._all_receivers(child)

    def add_silence(self, matchers, *, duration: float, starts_at: float | None = None, comment: str = "") -> Silence:
        start = self.clock.now() if starts_at is None else starts_at
        silence = Silence(tuple(parse_matcher(m) for m in matchers), start, start + duration, comment)
        self.silences.append(silence)
        return silence

    def receive(self, alerts) -> None:
        """Take alerts (``AMAlert`` or dicts with labels/annotations/starts_at/ends_at) as Prometheus sends them."""
        now = self.clock.now()
        for raw in alerts:
            a = raw if isinstance(raw, AMAlert) else AMAlert(dict(raw["labels"]), dict(raw.get("annotations", {})),
                                                             raw.get("starts_at", now), raw.get("ends_at"))
            a.updated_at = now
            old = self._alerts.get(a.fingerprint)
            if old is not None and not old.resolved(now, self.resolve_timeout):
                a.starts_at = old.starts_at
            self._alerts[a.fingerprint] = a
            for route in self.route.match(a.labels):
                if "..." in route.group_by:
                    glabels = dict(a.labels)
                else:
                    glabels = {k: a.labels[k] for k in route.group_by if k in a.labels}
                key = f"{self._route_path[id(route)]}:" + ",".join(f"{k}={v}" for k, v in sorted(glabels.items()))
                group = self._groups.get(key)
                if group is None:
                    group = self._groups[key] = _Group(route, glabels, key, next_flush=now + route.group_wait)
                group.alerts[a.fingerprint] = a
                # dispatch.go: a group that has not flushed yet flushes at once when this
                # alert's own group_wait is already over
                if not group.flushed and a.starts_at + route.group_wait <= now:
                    group.next_flush = now

    def muted(self, a: AMAlert, now: float) -> str | None:
        """``"silenced"``, ``"inhibited"`` or None."""
        if any(s.active(now, a.labels) for s in self.silences):
            return "silenced"
        for rule in self.inhibit_rules:
            if not all(m.matches(a.labels) for m in rule.target_matchers):
                continue
            for src in self._alerts.values():
                if src is a or src.resolved(now, self.resolve_timeout):
                    continue
                if all(m.matches(src.labels) for m in rule.source_matchers) and all(
                        src.labels.get(n, "") == a.labels.get(n, "") for n in rule.equal):
                    return "inhibited"
        return None

    def next_flush(self) -> float | None:
        return min((g.next_flush for g in self._groups.values()), default=None)

    async def flush_due(self) -> int:
        """Flush every group whose timer is due; returns the number of notifications sent."""
        now = self.clock.now()
        sent = 0
        for group in sorted(self._groups.values(), key=lambda g: (g.next_flush, g.key)):
            if group.next_flush > now:
                continue
            group.flushed = True
            group.next_flush = now + group.route.group_interval
            sent += await self._flush(group, now)
        return sent

    async def _flush(self, group: _Group, now: float) -> int:
        visible = {fp: a for fp, a in group.alerts.items() if self.muted(a, now) is None}
        if not visible:  # everything muted (notify.go's MuteStage leaves nothing to send)
            return 0
        firing = frozenset(fp for fp, a in visible.items() if not a.resolved(now, self.resolve_timeout))
        resolved = frozenset(fp for fp, a in visible.items() if a.resolved(now, self.resolve_timeout))
        if group.last_sent is None:
            needs = bool(firing)
        elif not firing <= group.last_firing:
            needs = True
        elif not firing:
            needs = bool(group.last_firing)
        elif self.send_resolved and not resolved <= group.last_resolved:
            needs = True
        else:
            needs = group.last_sent <= now - group.route.repeat_interval
        if not needs:
            return 0
        alerts = [visible[fp] for fp in sorted(firing)]
        if self.send_resolved:
            alerts += [visible[fp] for fp in sorted(resolved)]
        payload = self._payload(group, alerts, now)
        record = {"time": now, "receiver": group.route.receiver, "group_key": group.key.split(":", 1)[1],
                  "status": payload["status"], "alerts": [a.labels.get("alertname", "") for a in alerts],
                  "firing": len(firing), "resolved": len(resolved) if self.send_resolved else 0,
                  "delivered": False, "error": None}
        try:
            await self.receivers[group.route.receiver](payload)
            record["delivered"] = True
        except Exception as exc:  # a failed delivery is retried at the next group_interval
            record["error"] = f"{type(exc).__name__}: {exc}"
            self.notifications.append(record)
            return 0
        self.notifications.append(record)
        group.last_firing, group.last_resolved, group.last_sent = firing, resolved, now
        for fp in resolved:  # delivered resolved alerts leave the group
            group.alerts.pop(fp, None)
        return 1

    def _payload(self, group: _Group, alerts, now) -> dict:
        common_labels = dict(alerts[0].labels) if alerts else {}
        common_ann = dict(alerts[0].annotations) if alerts else {}
        for a in alerts[1:]:
            common_labels = {k: v for k, v in common_labels.items() if a.labels.get(k) == v}
            common_ann = {k: v for k, v in common_ann.items() if a.annotations.get(k) == v}
        firing = any(not a.resolved(now, self.resolve_timeout) for a in alerts)
        return {
            "version": "4", "groupKey": group.key.split(":", 1)[1], "truncatedAlerts": 0,
            "status": "firing" if firing else "resolved", "receiver": group.route.receiver,
            "groupLabels": dict(group.labels), "commonLabels": common_labels, "commonAnnotations": common_ann,
            "externalURL": "",
            "alerts": [{"status": "resolved" if a.resolved(now, self.resolve_timeout) else "firing",
                        "labels": dict(a.labels), "annotations": dict(a.annotations),
                        "startsAt": _rfc3339(a.starts_at),
                        "endsAt": _rfc3339(a.ends_at if a.resolved(now, self.resolve_timeout) else None),
                        "generatorURL": "", "fingerprint": a.fingerprint} for a in alerts],
        }

    async def run_until(self, end: float) -> None:
        """Flush on every group timer up to ``end`` (sleeping on the clock between them)."""
        while True:
            due = self.next_flush()
            now = self.clock.now()
            if due is None or due > end:
                if end > now:
                    await self.clock.sleep(end - now)
                return
            if due > now:
                await self.clock.sleep(due - now)
            await self.flush_due()


def alerts_from_rules(alerts, now: float) -> list[AMAlert]:
    """What Prometheus sends Alertmanager after an evaluation: firing alerts, and resolved ones with ``ends_at``.

    ``alerts`` are ``rules.Alert`` objects (``RuleEvaluator.active_alerts(include_resolved=True)``);
    pending alerts are not sent (Prometheus sends only firing and recently resolved ones).
    """
    out = []
    for a in alerts:
        if a.state == "firing":
            out.append(AMAlert(dict(a.labels), dict(a.annotations), a.fired_at or a.active_at, None, now))
        elif a.state == "inactive" and a.resolved_at is not None and a.fired_at is not None:
            out.append(AMAlert(dict(a.labels), dict(a.annotations), a.fired_at, a.resolved_at, now))
    return out

