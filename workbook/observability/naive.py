"""The source article's alert manager, rebuilt to show what it does (do not use it).

Its rules are ``(name, condition, threshold, duration, severity)``; ``check_alerts(metrics)``
looks up ``metrics[condition]`` and, when the value is ``> threshold`` (the only condition
it knows), triggers the alert unless it triggered less than ``duration`` seconds ago. So:

* **"duration" is a re-notify interval**, not "the condition held for that long": the
  first sample above the threshold pages at once, and a condition that holds for an hour
  pages every ``duration`` seconds; Prometheus's ``for:`` is the opposite (wait until it
  has held for the duration, then fire once and stay firing).
* a single spike (one scrape above the threshold) pages;
* there is no resolved state: nobody is told when it is over;
* its email and Slack channels do nothing (the article's bodies are empty), yet the
  alert counts as sent; here they record ``delivered=False`` so the loss is visible.

Differences from the listing, all mechanical: the clock is injected (no
``datetime.utcnow``), alerts are kept in a list instead of a Redis list, and an alert's
id comes from a counter instead of ``uuid4`` so runs are reproducible.
"""

from __future__ import annotations

from workbook.core.clock import DEFAULT_CLOCK, Clock
from workbook.observability.errors import ObservabilityError

__all__ = ["NaiveAlertManager"]


class NaiveAlertManager:
    """The article's ``AlertManager`` (see module doc): ``value > threshold`` and a re-notify "duration"."""

    def __init__(self, clock: Clock | None = None):
        self.clock = clock or DEFAULT_CLOCK
        self.alert_rules: list[dict] = []
        self.notification_channels: list[dict] = []
        self.alerts: list[dict] = []          # the article LPUSHes these to Redis
        self.notifications: list[dict] = []   # what each channel did with each alert

    def add_alert_rule(self, name: str, condition: str, threshold: float, duration: float = 300,
                       severity: str = "warning") -> None:
        self.alert_rules.append({"name": name, "condition": condition, "threshold": threshold,
                                 "duration": duration, "severity": severity, "last_triggered": None})

    def add_notification_channel(self, channel_type: str, config: dict | None = None, *, send=None) -> None:
        """``webhook`` channels call ``send(alert)`` (an async callable, e.g. a ``WebhookSender``);
        ``email`` and ``slack`` do nothing, as in the article."""
        if channel_type not in ("webhook", "email", "slack"):
            raise ObservabilityError(f"channel_type {channel_type!r}: expected 'webhook', 'email' or 'slack'")
        self.notification_channels.append({"type": channel_type, "config": dict(config or {}), "send": send})

    async def check_alerts(self, metrics: dict) -> list[dict]:
        """One check of every rule against the current metric values; returns the alerts triggered."""
        now = self.clock.now()
        triggered = []
        for rule in self.alert_rules:
            value = metrics.get(rule["condition"])
            if value is None or not value > rule["threshold"]:
                continue
            if rule["last_triggered"] is not None and now - rule["last_triggered"] < rule["duration"]:
                continue
            alert = {"id": len(self.alerts) + 1, "rule_name": rule["name"], "severity": rule["severity"],
                     "message": f"Alert: {rule['name']} triggered", "time": now, "value": value}
            self.alerts.append(alert)
            for channel in self.notification_channels:
                delivered, error = False, None
                try:
                    if channel["type"] == "webhook" and channel["send"] is not None:
                        await channel["send"](alert)
                        delivered = True
                except Exception as exc:  # the article prints and carries on
                    error = f"{type(exc).__name__}: {exc}"
                self.notifications.append({"alert": alert["id"], "channel": channel["type"], "time": now,
                                           "delivered": delivered, "error": error})
            rule["last_triggered"] = now
            triggered.append(alert)
        return triggered
