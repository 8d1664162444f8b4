"""Client-side discovery feeding a balancer, facing the crash nginx faces in test_nginx_passive_health.

Real demo services on 127.0.0.1, the in-memory registry with 1 s leases, a Resolver
whose watch feeds the balancer (``on_change`` -> ``set_backends``).
"""

from __future__ import annotations

import asyncio

import pytest

from workbook.core import ParameterError
from workbook.labs.ch05_discovery.balancing_runs import registry_client_after_kill

pytestmark = pytest.mark.timeout(60)


def test_a_crashed_instance_is_tried_until_its_lease_expires_then_never():
    r = asyncio.run(registry_client_after_kill(requests=40, fault_after=10, ttl=1.0))
    assert r["client_errors"] == 0                       # each try on the dead one was retried elsewhere
    assert r["retried"] == r["victim_attempts"] >= 1
    assert r["removed_after_s"] is not None and r["removed_after_s"] < 3.0
    assert r["victim_attempts_after_removal"] == 0
    assert all(t <= r["removed_after_s"] for t in r["victim_attempt_times_s"])


def test_a_clean_shutdown_deregisters_first_and_gets_no_traffic_after():
    r = asyncio.run(registry_client_after_kill(requests=25, fault_after=10, clean_shutdown=True))
    assert r["client_errors"] == 0 and r["victim_attempts"] == 0 and r["retried"] == 0


def test_hash_balancers_are_refused_here():
    with pytest.raises(ParameterError, match="'algorithm' = 'maglev'"):
        asyncio.run(registry_client_after_kill(algorithm="maglev"))
