"""Chapter 5's lease and watch demo, and the cluster demo's text (etcd itself is in test_ch05_cluster_demo)."""

from __future__ import annotations

import pytest

from workbook.core import ParameterError
from workbook.labs.ch05_discovery.cluster_demo import step_lines
from workbook.labs.ch05_discovery.experiments import lease_watch_demo


def test_a_crash_expires_after_the_ttl_and_a_clean_shutdown_leaves_at_once():
    demo = lease_watch_demo(ttl=3.0, interval=1.0, crash_at=5.0, leave_at=12.0, duration=20.0)
    times = [t for t, _, _ in demo["changes"]]
    assert [ids for _, _, ids in demo["changes"]] == [["cart-0", "cart-1", "cart-2"], ["cart-1", "cart-2"], ["cart-2"]]
    # last heartbeat at 4 s, TTL 3 s, next eviction pass 0.5 s later
    assert times[1] == 7.5 and demo["evicted"] == [(7.5, "cart-0")]
    assert times[2] == 12.0  # deregistered: the watch wakes the client at once


def test_the_client_is_woken_by_the_registry_instead_of_polling():
    demo = lease_watch_demo()
    assert demo["client_reads"] == len(demo["changes"]) + 1  # one read per change, plus the pending watch
    assert demo["client_reads"] * 4 < demo["poll_reads"]


def test_bad_times_are_named():
    with pytest.raises(ParameterError, match="crash_at"):
        lease_watch_demo(crash_at=15.0, leave_at=12.0)
    with pytest.raises(ParameterError, match="'ttl'"):
        lease_watch_demo(ttl=0)


def test_without_etcd_the_demo_text_is_the_install_hint():
    assert step_lines({"available": False, "hint": "etcd is not available; install it"}) == \
        ["etcd is not available; install it"]


def test_health_checks_mark_an_erroring_and_a_hung_host_after_two_failures_and_back_after_two_successes():
    from workbook.labs.ch05_discovery.experiments import health_check_demo

    hosts = health_check_demo()
    assert hosts["a"]["transitions"] == [(0.0, True)]           # one success at start is enough (Envoy)
    b = hosts["b"]["transitions"]
    assert [h for _, h in b] == [True, False, True] and 10.0 < b[1][0] < 14.0 and 20.0 < b[2][0] < 23.0
    c = hosts["c"]["transitions"]
    assert [h for _, h in c] == [True, False] and 5.0 < c[1][0] < 8.0  # a hang is a failure after the timeout


def test_without_etcd_the_cluster_demo_returns_the_install_hint_instead_of_raising(monkeypatch):
    import asyncio

    import workbook.core.etcd_server as etcd_server
    from workbook.core.external import ServiceUnavailable
    from workbook.labs.ch05_discovery.cluster_demo import quorum_demo

    def missing(name):
        raise ServiceUnavailable(f"{name} not found")

    monkeypatch.setattr(etcd_server, "find_executable", missing)
    result = asyncio.run(quorum_demo())
    assert result["available"] is False and "apt-get install -y etcd-server" in result["hint"]
    assert step_lines(result) == [result["hint"]]


def test_without_nginx_the_server_side_run_raises_service_unavailable_which_the_notebook_catches(monkeypatch):
    import asyncio

    import workbook.core.nginx_server as nginx_server
    from workbook.core.external import ServiceUnavailable
    from workbook.labs.ch05_discovery.balancing_runs import nginx_passive_health

    def missing(name):
        raise ServiceUnavailable(f"{name} not found: install it")

    monkeypatch.setattr(nginx_server, "find_executable", missing)
    with pytest.raises(ServiceUnavailable, match="nginx"):
        asyncio.run(nginx_passive_health(requests=5, fault_after=2))
