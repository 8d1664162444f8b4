"""The resolver (client-side cache) in virtual time: no polling loop, a lost registry reported and retried."""

from __future__ import annotations

import asyncio

import pytest

from workbook.core import ParameterError, run_virtual
from workbook.discovery import InMemoryRegistry, Instance, NoInstancesAvailable, RegistryUnavailable, Resolver


class CountingRegistry(InMemoryRegistry):
    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.calls = 0

    async def wait_for_change(self, service, revision, timeout):
        self.calls += 1
        return await super().wait_for_change(service, revision, timeout)


def test_the_resolver_waits_on_the_watch_instead_of_polling():
    async def main():
        async with CountingRegistry() as reg:
            await reg.register(Instance("cart", "c1"), ttl=1000)
            async with Resolver(reg, "cart", watch_timeout=30.0) as res:
                await asyncio.sleep(300)  # nothing changes for five minutes
                calls_idle = reg.calls
                await reg.register(Instance("cart", "c2"), ttl=1000)
                t0 = asyncio.get_running_loop().time()
                assert await res.wait_updated(1.0)
                return calls_idle, asyncio.get_running_loop().time() - t0, [i.instance_id for i in res.instances()]
    calls_idle, latency, ids = run_virtual(main())
    assert calls_idle <= 11  # one blocking query per 30 s, not a loop
    assert latency == 0.0 and ids == ["c1", "c2"]


def test_wait_until_waits_for_a_state_and_cannot_miss_a_change_made_before_the_call():
    async def main():
        async with InMemoryRegistry() as reg:
            await reg.register(Instance("cart", "c1"), ttl=1000)
            async with Resolver(reg, "cart", watch_timeout=30.0) as res:
                loop = asyncio.get_running_loop()
                await reg.register(Instance("cart", "c2"), ttl=1000)
                await asyncio.sleep(0.1)  # the watch applies the change before anyone waits
                two = lambda snap: len(snap.instances) == 2  # noqa: E731
                missed = await res.wait_updated(0.5)  # "the next change": there is none
                t0 = loop.time()
                held = await res.wait_until(two, 0.5)  # the state: already true, at once
                at_once = loop.time() - t0

                async def later():
                    await asyncio.sleep(2)
                    await reg.register(Instance("cart", "c3"), ttl=1000)
                helper = asyncio.ensure_future(later())
                t0 = loop.time()
                three = await res.wait_until(lambda snap: len(snap.instances) == 3, 10.0)
                waited = loop.time() - t0
                await helper
                t0 = loop.time()
                never = await res.wait_until(lambda snap: len(snap.instances) == 9, 1.5)
                return missed, held, at_once, three, waited, never, loop.time() - t0
    missed, held, at_once, three, waited, never, gave_up_after = run_virtual(main())
    assert missed is False and held is True and at_once == 0.0
    assert three is True and waited == pytest.approx(2.0)
    assert never is False and gave_up_after == pytest.approx(1.5)


def test_wait_until_refuses_a_bad_timeout_by_name():
    async def main():
        async with InMemoryRegistry() as reg:
            await reg.register(Instance("cart", "c1"), ttl=1000)
            async with Resolver(reg, "cart") as res:
                with pytest.raises(ParameterError, match="timeout"):
                    await res.wait_until(lambda snap: True, -1)
    run_virtual(main())


def test_a_lost_registry_is_reported_the_cache_kept_and_the_retries_back_off():
    async def main():
        async with InMemoryRegistry() as reg:
            await reg.register(Instance("cart", "c1"), ttl=1000)
            async with Resolver(reg, "cart", watch_timeout=5.0, retry_initial=0.5, retry_max=4.0) as res:
                await asyncio.sleep(1)
                reg.set_reachable(False)
                await asyncio.sleep(30)
                status = res.status
                cached = [i.instance_id for i in res.instances()]
                reg.set_reachable(True)
                await reg.register(Instance("cart", "c2"), ttl=1000)
                await asyncio.sleep(5)
                return status, cached, res.status, [i.instance_id for i in res.instances()]
    down, cached, up, ids = run_virtual(main())
    assert not down.connected and down.disconnected_since is not None and "unreachable" in down.last_error
    # backoff 0.5, 1, 2, 4, 4, ... : about 10 attempts in 30 s, not hundreds
    assert 5 <= down.failures <= 12
    assert cached == ["c1"]
    assert up.connected and up.failures == 0 and ids == ["c1", "c2"]


def test_no_snapshot_yet_is_an_error_not_an_empty_list():
    async def main():
        async with InMemoryRegistry() as reg:
            reg.set_reachable(False)
            async with Resolver(reg, "cart") as res:
                with pytest.raises(RegistryUnavailable, match="no snapshot of 'cart' yet"):
                    res.instances()
                reg.set_reachable(True)
                await reg.register(Instance("cart", "c1"), ttl=100)
                await asyncio.sleep(10)
                return [i.instance_id for i in res.instances()]
    assert run_virtual(main()) == ["c1"]


def test_an_empty_set_says_whether_the_registry_said_so_or_is_unreachable():
    async def main():
        async with InMemoryRegistry() as reg:
            async with Resolver(reg, "cart") as res:
                with pytest.raises(NoInstancesAvailable, match="the registry lists no instance"):
                    res.instances()
                reg.set_reachable(False)
                await asyncio.sleep(40)
                with pytest.raises(NoInstancesAvailable, match="unreachable"):
                    res.instances()
    run_virtual(main())


def test_registry_watch_yields_each_new_set_once():
    async def main():
        async with InMemoryRegistry() as reg:
            await reg.register(Instance("cart", "c1"), ttl=1000)
            seen = []

            async def follow():
                async for snap in reg.watch("cart", timeout=10.0):
                    seen.append((asyncio.get_running_loop().time(), snap.ids))
                    if len(seen) == 3:
                        return
            task = asyncio.ensure_future(follow())
            await asyncio.sleep(25)
            await reg.register(Instance("cart", "c2"), ttl=1000)
            await asyncio.sleep(5)
            await reg.deregister("cart", "c1")
            await task
            return seen
    assert run_virtual(main()) == [(0.0, ["c1"]), (25.0, ["c1", "c2"]), (30.0, ["c2"])]
