"""Alert rules (state machine on crafted series, bad input), Alertmanager-style routing, the naive manager."""

import asyncio

import pytest

from workbook.core.clock import ManualClock
from workbook.core.realtime import serve
from workbook.observability import (AMAlert, Alertmanager, AlertState, DurationError, InvalidNameError,
                                    NaiveAlertManager, ObservabilityError, PromQLError, RuleEvaluator, RuleFileError,
                                    SeriesStore, TemplateError, WebhookSender, alerts_from_rules, check_label_name,
                                    check_metric_name, load_rules, parse_duration, webhook_receiver_app)


def _store(values, name="errors", labels=None, step=60):
    s = SeriesStore()
    for i, v in enumerate(values):
        if v is not None:
            s.add(name, labels or {"route": "/a"}, i * step, v)
    return s


def _states(rule_yaml, store, end, step=60):
    ev = RuleEvaluator(load_rules(rule_yaml), store)
    return [next((a.state for a in alerts), AlertState.INACTIVE) for _, alerts in ev.run(0, end, step)]


RULE = """
groups:
- name: g
  rules:
  - alert: High
    expr: errors > 5
    for: {for_}
"""


# ------------------------------------------------------------------ the state machine

def test_pending_then_firing_only_after_the_condition_held_for_the_whole_duration():
    states = _states(RULE.format(for_="5m"), _store([0, 9, 9, 9, 9, 9, 9, 0]), 420)
    assert states == ["inactive", "pending", "pending", "pending", "pending", "pending", "firing", "inactive"]


def test_one_evaluation_below_the_threshold_starts_the_wait_over():
    states = _states(RULE.format(for_="3m"), _store([9, 9, 9, 0, 9, 9, 9, 9]), 420)
    assert states == ["pending", "pending", "pending", "inactive", "pending", "pending", "pending", "firing"]


def test_a_single_spike_never_fires_with_for():
    states = _states(RULE.format(for_="2m"), _store([0, 0, 50, 0, 0, 0]), 300)
    assert AlertState.FIRING not in states and states.count(AlertState.PENDING) == 1


def test_keep_firing_for_holds_a_firing_alert_but_not_a_pending_one():
    rule = RULE.format(for_="1m") + "    keep_firing_for: 2m\n"
    states = _states(rule, _store([9, 9, 0, 0, 0, 0, 9, 0, 0]), 480)
    assert states == ["pending", "firing", "firing", "firing", "inactive", "inactive", "pending", "inactive",
                      "inactive"]


def test_labels_and_annotations_are_templated_per_series():
    s = _store([0.4, 0.4], name="latency_seconds", labels={"route": "/stock"})
    rule = """
groups:
- name: g
  rules:
  - alert: Slow
    expr: latency_seconds > 0.25
    labels: {severity: page, where: '{{ $labels.route }}'}
    annotations: {summary: 'p99 {{ $value | humanizeDuration }} on {{ .Labels.route }}'}
"""
    (alert,) = RuleEvaluator(load_rules(rule), s).evaluate(60)
    assert alert.label_dict == {"alertname": "Slow", "route": "/stock", "severity": "page", "where": "/stock"}
    assert alert.annotations == {"summary": "p99 400ms on /stock"}


# ------------------------------------------------------------------ bad input

@pytest.mark.parametrize("rules,where", [
    ("groups:\n- name: g\n  rules:\n  - alert: A\n    expr: rate(x[5m] > 1\n", "groups[0].rules[0].expr"),
    ("groups:\n- name: g\n  rules:\n  - alert: A\n    expr: rate(x) > 1\n", "groups[0].rules[0].expr"),
    ("groups:\n- name: g\n  rules:\n  - alert: A\n    expr: x > 1\n    for: 5 minutes\n", "groups[0].rules[0].for"),
    ("groups:\n- name: g\n  rules:\n  - alert: A\n    expr: x > 1\n    for: 300\n", "groups[0].rules[0].for"),
    ("groups:\n- name: g\n  rules:\n  - alert: A\n    expr: x > 1\n    labels: {2fast: x}\n",
     "groups[0].rules[0].labels.2fast"),
    ("groups:\n- name: g\n  rules:\n  - alert: A\n    expr: x > 1\n    labels: {__name__: x}\n",
     "groups[0].rules[0].labels.__name__"),
    ("groups:\n- name: g\n  rules:\n  - record: 'http-requests:rate5m'\n    expr: rate(x[5m])\n",
     "groups[0].rules[0].record"),
    ("groups:\n- name: g\n  rules:\n  - alert: A\n    expr: x > 1\n    duration: 5m\n", "groups[0].rules[0].duration"),
    ("groups:\n- name: g\n  rules:\n  - alert: A\n    expr: x > 1\n    annotations: {s: '{{ if $value }}x{{ end }}'}\n",
     "groups[0].rules[0].annotations.s"),
    ("groups:\n- name: g\n  rules: []\n- name: g\n  rules: []\n", "groups[1].name"),
    ("groups:\n- rules: []\n", "groups[0].name"),
])
def test_a_bad_rule_file_is_refused_naming_the_place(rules, where):
    with pytest.raises(RuleFileError) as info:
        load_rules(rules)
    assert info.value.where == where
    assert where in str(info.value)


def test_bad_names_and_durations_name_what_was_wrong():
    with pytest.raises(InvalidNameError, match="metric name 'http-requests'"):
        check_metric_name("http-requests")
    with pytest.raises(InvalidNameError, match="label name '__x' is reserved"):
        check_label_name("__x")
    with pytest.raises(DurationError, match="'5 m' is not a duration"):
        parse_duration("5 m")
    with pytest.raises(PromQLError, match=r"at char 23: expected .,. or .\). in a label list"):
        RuleEvaluator([], SeriesStore()).engine.query('sum(rate(x[5m])) by (le', 0)
    store = SeriesStore()
    with pytest.raises(InvalidNameError):
        store.add("bad name", {}, 0, 1)
    with pytest.raises(TemplateError, match="undefined variable"):
        from workbook.observability import expand
        expand("{{ $lables.route }}", {}, 1.0)
    assert issubclass(RuleFileError, ObservabilityError)


# ------------------------------------------------------------------ Alertmanager timing and muting

def _am(clock, received, **route):
    async def receiver(payload):
        received.append((clock.now(), payload))
    cfg = {"receiver": "team", "group_by": ["alertname", "service"], "group_wait": "30s", "group_interval": "5m",
           "repeat_interval": "1h"}
    cfg.update(route)
    return Alertmanager(cfg, {"team": receiver, "pager": receiver}, clock=clock)


def test_group_wait_group_interval_and_repeat_interval():
    clock, received = ManualClock(), []
    am = _am(clock, received)

    async def main():
        am.receive([{"labels": {"alertname": "High", "service": "shop", "route": "/a"}}])
        await am.run_until(100)
        am.receive([{"labels": {"alertname": "High", "service": "shop", "route": "/b"}}])
        for t in range(200, 4000, 100):  # Prometheus re-sends firing alerts regularly
            await am.run_until(t)
            am.receive([{"labels": {"alertname": "High", "service": "shop", "route": r}} for r in ("/a", "/b")])
        await am.run_until(4000)
        am.receive([{"labels": {"alertname": "High", "service": "shop", "route": "/a"}, "ends_at": 4000}])
        am.receive([{"labels": {"alertname": "High", "service": "shop", "route": "/b"}, "ends_at": 4000}])
        await am.run_until(5000)

    asyncio.run(main())
    times = [t for t, _ in received]
    # first after group_wait (30 s) with /a only; /b joins at the next group_interval tick (330 s);
    # then nothing new until repeat_interval (1 h) after 330 s: the tick at 3930 s; resolved
    # at 4000 s, told at the next tick
    assert times == [30, 330, 3930, 4230]
    assert [len(p["alerts"]) for _, p in received] == [1, 2, 2, 2]
    assert received[-1][1]["status"] == "resolved"
    assert received[0][1]["groupLabels"] == {"alertname": "High", "service": "shop"}


def test_inhibition_and_silences_mute_alerts():
    clock, received = ManualClock(), []
    am = _am(clock, received, routes=[{"matchers": ['severity="page"'], "receiver": "pager"}])
    am.inhibit_rules = [__import__("workbook.observability", fromlist=["InhibitRule"]).InhibitRule.from_dict(
        {"source_matchers": ['alertname="ServiceDown"'], "target_matchers": ['severity="warning"'],
         "equal": ["service"]})]

    async def main():
        am.receive([{"labels": {"alertname": "ServiceDown", "service": "shop", "severity": "page"}},
                    {"labels": {"alertname": "SlowRoute", "service": "shop", "severity": "warning"}},
                    {"labels": {"alertname": "SlowRoute", "service": "cart", "severity": "warning"}}])
        am.add_silence(['service="cart"'], duration=600, comment="deploying cart")
        await am.run_until(60)

    asyncio.run(main())
    sent = [(p["receiver"], a["labels"]["alertname"], a["labels"]["service"]) for _, p in received for a in p["alerts"]]
    # the shop warning is inhibited by the shop page; the cart warning is silenced
    assert sent == [("pager", "ServiceDown", "shop")]


def test_notifications_reach_a_real_webhook_receiver():
    clock = ManualClock()

    async def main():
        app = webhook_receiver_app(clock)
        async with serve(app) as urls:
            am = Alertmanager({"receiver": "hook", "group_wait": "10s"},
                              {"hook": WebhookSender(urls[0] + "/alerts", timeout=5)}, clock=clock)
            am.receive([{"labels": {"alertname": "High", "service": "shop"},
                         "annotations": {"summary": "errors at 12%"}}])
            await asyncio.wait_for(am.run_until(20), timeout=10)
            return list(app[__import__("workbook.observability", fromlist=["RECEIVED"]).RECEIVED]), am.notifications

    got, log = asyncio.run(main())
    assert len(got) == 1 and got[0]["time"] == 10
    payload = got[0]["payload"]
    assert payload["version"] == "4" and payload["status"] == "firing"
    assert payload["alerts"][0]["annotations"] == {"summary": "errors at 12%"}
    assert log[0]["delivered"] is True


def test_a_failed_delivery_is_recorded_and_retried_at_the_next_interval():
    clock, calls = ManualClock(), []

    async def flaky(payload):
        calls.append(clock.now())
        if len(calls) == 1:
            raise ConnectionError("receiver down")

    am = Alertmanager({"receiver": "r", "group_wait": "10s", "group_interval": "1m"}, {"r": flaky}, clock=clock)

    async def main():
        am.receive([{"labels": {"alertname": "High"}}])
        await am.run_until(100)

    asyncio.run(main())
    assert calls == [10, 70]
    assert [n["delivered"] for n in am.notifications] == [False, True]
    assert "receiver down" in am.notifications[0]["error"]


def test_bad_routing_config_is_refused():
    with pytest.raises(ObservabilityError, match="group_wait"):
        Alertmanager({"receiver": "r", "group_wait": "soon"}, {"r": None})
    with pytest.raises(ObservabilityError, match="'nobody' is not defined"):
        Alertmanager({"receiver": "nobody"}, {"r": None})
    with pytest.raises(ObservabilityError, match="matcher"):
        Alertmanager({"receiver": "r", "matchers": ["severity page"]}, {"r": None})


def test_rule_alerts_become_alertmanager_alerts():
    store = _store([9, 9, 9, 0])
    ev = RuleEvaluator(load_rules(RULE.format(for_="1m")), store)
    ev.run(0, 120, 60)
    (firing,) = alerts_from_rules(ev.active_alerts(include_resolved=True), 120)
    assert isinstance(firing, AMAlert) and firing.ends_at is None and firing.starts_at == 60
    ev.evaluate(180)
    (resolved,) = alerts_from_rules(ev.active_alerts(include_resolved=True), 180)
    assert resolved.ends_at == 180


# ------------------------------------------------------------------ the article's alert manager

def test_naive_manager_pages_on_a_single_spike_where_for_does_not():
    values = [0.01, 0.01, 0.30, 0.01, 0.01, 0.01, 0.01, 0.01]   # error ratio per minute: one bad scrape
    clock = ManualClock()
    naive = NaiveAlertManager(clock)
    naive.add_alert_rule("high_error_rate", "error_rate", threshold=0.05, duration=300, severity="critical")

    async def main():
        for v in values:
            await naive.check_alerts({"error_rate": v})
            clock.advance(60)

    asyncio.run(main())
    assert [a["time"] for a in naive.alerts] == [120]      # paged on the spike
    store = _store(values, name="error_rate")
    rule = RULE.replace("errors > 5", "error_rate > 0.05").format(for_="5m")
    assert AlertState.FIRING not in _states(rule, store, 420)  # Prometheus's for: 5m does not


def test_naive_duration_is_a_renotify_interval_and_its_email_and_slack_deliver_nothing():
    clock = ManualClock()
    naive = NaiveAlertManager(clock)
    naive.add_alert_rule("high_error_rate", "error_rate", threshold=0.05, duration=300)
    naive.add_notification_channel("email", {"to": "oncall@example.com"})
    naive.add_notification_channel("slack", {"channel": "#alerts"})

    async def main():
        for _ in range(20):  # 20 minutes above the threshold
            await naive.check_alerts({"error_rate": 0.5})
            clock.advance(60)

    asyncio.run(main())
    # "duration=300" did not delay the first page; it re-sends every 5 minutes
    assert [a["time"] for a in naive.alerts] == [0, 300, 600, 900]
    assert naive.notifications and not any(n["delivered"] for n in naive.notifications)


def test_a_group_whose_alerts_are_all_muted_sends_nothing():
    """Regression: a fully silenced group used to send an empty "resolved" notification."""
    clock, received = ManualClock(), []
    am = _am(clock, received)

    async def main():
        am.receive([{"labels": {"alertname": "High", "service": "shop"}}])
        await am.run_until(60)                     # notified at 30 s
        am.add_silence(['service="shop"'], duration=3600)
        for t in range(120, 1000, 60):
            am.receive([{"labels": {"alertname": "High", "service": "shop"}}])
            await am.run_until(t)

    asyncio.run(main())
    assert [(t, len(p["alerts"])) for t, p in received] == [(30, 1)]
