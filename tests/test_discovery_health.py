"""Active health checks with Envoy's thresholds, on scripted probes (virtual time) and one real HTTP server."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import web

from workbook.core import ParameterError, run_virtual
from workbook.core.realtime import serve
from workbook.discovery import HealthCheckConfig, HealthChecker

URL = "http://10.0.0.1:8080/health"


def scripted(results):
    """A probe answering the given statuses in order (``None``: hangs past the timeout)."""
    it = iter(results)

    async def probe(url, timeout):
        status = next(it)
        if status is None:
            await asyncio.sleep(timeout * 10)
        return status
    return probe


def run_checks(results, **cfg):
    async def main():
        hc = HealthChecker(HealthCheckConfig(interval=1.0, timeout=0.5, **cfg), probe=scripted(results))
        hc.add(URL)
        states = []
        for _ in results:
            states.append(await hc.check(URL))
            await asyncio.sleep(1.0)
        return states, hc.hosts[URL].transitions
    return run_virtual(main())


def test_a_new_host_needs_one_success_then_the_thresholds_apply():
    states, _ = run_checks([200, 500, 200, 500, 500, 200, 200, 200], unhealthy_threshold=2, healthy_threshold=3)
    assert states == [True, True, True, True, False, False, False, True]


def test_a_new_host_starts_unhealthy_until_it_passes():
    states, _ = run_checks([500, 503, 200], unhealthy_threshold=2, healthy_threshold=2)
    assert states == [False, False, True]


def test_a_probe_past_the_timeout_is_a_failure_and_transitions_are_timed():
    states, transitions = run_checks([200, None, None, 200, 200], unhealthy_threshold=2, healthy_threshold=2)
    assert states == [True, True, False, False, True]
    assert [h for _, h in transitions] == [True, False, True]
    # probes at 0, 1 (hangs to 1.5), 2.5 (hangs): unhealthy when the third times out, at 3.0
    assert transitions[1][0] == pytest.approx(3.0)


@pytest.mark.parametrize("url", ["ftp://10.0.0.1/health", "10.0.0.1:80/health", "http:///nohost", 42])
def test_a_health_url_that_is_not_http_is_refused_by_name(url):
    with pytest.raises(ParameterError, match="'url'.*http"):
        HealthChecker().add(url)


@pytest.mark.parametrize("field,value", [("unhealthy_threshold", 0), ("interval", -1), ("timeout", 0)])
def test_bad_settings_are_refused_by_name(field, value):
    with pytest.raises(ParameterError, match=f"'{field}'"):
        HealthCheckConfig(**{field: value})


def test_the_http_probe_against_a_real_server():
    state = {"status": 200}

    async def health(request):
        return web.Response(status=state["status"])

    async def main():
        app = web.Application()
        app.router.add_get("/health", health)
        async with serve(app) as urls:
            url = urls[0] + "/health"
            hc = HealthChecker(HealthCheckConfig(interval=0.05, timeout=1.0, unhealthy_threshold=2))
            hc.add(url)
            hc.add("http://127.0.0.1:1/health")  # nothing listens on port 1
            await hc.check_all()
            first = hc.healthy()
            state["status"] = 503
            await hc.check_all()
            await hc.check_all()
            return first, hc.healthy()
    first, after = asyncio.run(asyncio.wait_for(main(), 20))
    assert len(first) == 1 and first[0].endswith("/health") and ":1/" not in first[0]
    assert after == []
