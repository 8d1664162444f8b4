"""Eureka's self-preservation on crafted renewal traces (virtual time)."""

from __future__ import annotations

import asyncio

import pytest

from workbook.core import ParameterError, run_virtual
from workbook.discovery import InMemoryRegistry, Instance, KeepAlive, RegistryConfig


def eureka(**kw):
    return RegistryConfig.eureka(**kw)


async def fleet(reg, n, *, ttl=90.0, interval=30.0):
    keeps = []
    for i in range(n):
        keeps.append(await KeepAlive(reg, Instance("cart", f"c{i}"), ttl, interval=interval).start())
    return keeps


def test_threshold_is_eurekas_formula():
    async def main():
        async with InMemoryRegistry(eureka()) as reg:
            await fleet(reg, 10)
            # 10 clients x (60 s / 30 s) x 0.85 = 17 renewals per minute
            return reg.renewal_threshold()
    assert run_virtual(main()) == 17


def test_one_silent_instance_of_ten_is_expired():
    """9 of 10 renew: 18 renewals a minute > 17, so expiry stays enabled."""
    async def main():
        async with InMemoryRegistry(eureka()) as reg:
            keeps = await fleet(reg, 10)
            await asyncio.sleep(300)
            keeps[0].pause()
            await asyncio.sleep(400)
            return reg.instance_count("cart"), reg.self_preservation_active, [e[2] for e in reg.evicted]
    count, active, evicted = run_virtual(main())
    assert (count, active, evicted) == (9, False, ["c0"])


def test_a_partition_silencing_most_instances_stops_expiry():
    async def main():
        async with InMemoryRegistry(eureka()) as reg:
            keeps = await fleet(reg, 10)
            await asyncio.sleep(300)
            for k in keeps[:6]:  # six of ten cut off: 8 renewals a minute < 17
                k.pause()
            await asyncio.sleep(1800)
            kept = reg.instance_count("cart")
            active = reg.self_preservation_active
            for k in keeps[:6]:
                k.resume()
            await asyncio.sleep(120)
            return kept, active, reg.self_preservation_active, reg.evicted
    kept, active, after, evicted = run_virtual(main())
    assert kept == 10 and active and evicted == []  # stale instances kept
    assert not after  # partition healed: renewals back, expiry enabled again


def test_without_self_preservation_the_whole_service_expires():
    async def main():
        async with InMemoryRegistry(eureka(self_preservation=False)) as reg:
            keeps = await fleet(reg, 10)
            await asyncio.sleep(300)
            for k in keeps:
                k.pause()
            counts = []
            for _ in range(10):
                await asyncio.sleep(60)
                counts.append(reg.instance_count("cart"))
            return counts
    counts = run_virtual(main())
    # Eureka's eviction cap (size - int(size * 0.85) per run) removes them a few at a time
    assert counts[-1] == 0 and counts[0] == 10 and counts == sorted(counts, reverse=True)
    assert counts[2] - counts[3] <= 2  # 10 -> limit 2 per run


def test_a_fresh_registry_protects_itself_until_renewals_are_counted():
    """Eureka's startup behaviour: no renewals counted yet, so nothing expires in the first window."""
    async def main():
        async with InMemoryRegistry(eureka(eviction_interval=5.0)) as reg:
            await reg.register(Instance("cart", "c0"), ttl=10)
            await asyncio.sleep(100)
            return reg.instance_count("cart"), reg.self_preservation_active
    assert run_virtual(main()) == (1, True)


@pytest.mark.parametrize("field,value", [("renewal_percent_threshold", 1.5), ("eviction_interval", 0),
                                         ("self_preservation", "yes")])
def test_bad_config_is_refused_by_name(field, value):
    with pytest.raises(ParameterError, match=f"'{field}'"):
        RegistryConfig(**{field: value})
