"""Server-side discovery with the real nginx: passive health checking, measured (issue 11 point 4).

Three demo services behind the article's upstream (least_conn, proxy_next_upstream on
error/timeout/5xx, max_fails/fail_timeout); one instance fails after ten requests.
"""

from __future__ import annotations

import asyncio

import pytest

from workbook.labs.ch05_discovery.balancing_runs import nginx_passive_health

pytestmark = [pytest.mark.nginx, pytest.mark.timeout(90)]


def run(**kw):
    return asyncio.run(nginx_passive_health(requests=50, interval=0.05, fault_after=10, fail_timeout=1, **kw))


@pytest.mark.parametrize("fault", ["kill", "errors"])
def test_a_failed_instance_is_retried_on_the_next_and_skipped_for_fail_timeout(nginx_binary, fault):
    r = run(fault=fault)
    assert r["logged"] == 50
    assert r["client_errors"] == 0                       # every failed attempt was retried on the next server
    assert r["retried"] == r["victim_attempts"]          # and only attempts on the failed instance were
    # one attempt, then skipped for fail_timeout (whole seconds: 1 to 2 s) before the next probe
    span = r["seconds_after_fault"]
    assert 1 <= r["victim_attempts"] <= span / 1.0 + 1
    times = r["victim_attempt_times_s"]
    assert all(b - a >= 1.0 for a, b in zip(times, times[1:]))
    assert r["served_after_fault"]["inventory-0"] == 0
    assert abs(r["served_after_fault"]["inventory-1"] - r["served_after_fault"]["inventory-2"]) <= 1


def test_without_passive_health_checks_the_dead_instance_keeps_getting_its_share(nginx_binary):
    off = run(fault="kill", max_fails=0)
    assert off["client_errors"] == 0                     # still retried on the next server...
    assert off["victim_attempts"] >= 10                  # ...but tried on about a third of the requests
    assert off["victim_share_of_attempts"] > 0.15


def test_a_hung_instance_costs_one_read_timeout_per_probe(nginx_binary):
    r = run(fault="hang", read_timeout=0.3)
    assert r["client_errors"] == 0
    assert 1 <= r["victim_attempts"] <= 3
    assert r["max_latency_after_fault_ms"] >= 300        # the request that met the hang waited read_timeout
