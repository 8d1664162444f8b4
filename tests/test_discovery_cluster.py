"""A three-member etcd cluster: one member down, the registry works; two down, writes fail (no quorum)
while the client's cached set is still served."""

from __future__ import annotations

import asyncio

import pytest

from workbook.discovery import EtcdRegistry, Instance, NoQuorum, RegistryUnavailable, Resolver

pytestmark = pytest.mark.etcd


def test_quorum_loss_stops_writes_but_not_the_cached_reads(etcd_cluster):
    async def main():
        async with EtcdRegistry(etcd_cluster.endpoints, request_timeout=1.5) as reg:
            for i in range(3):
                await reg.register(Instance("cart", f"cart-{i}", port=8000 + i), ttl=30)
            async with Resolver(reg, "cart", watch_timeout=1.0, retry_initial=0.1, retry_max=0.5) as res:
                assert len(res.instances()) == 3
                etcd_cluster.kill(0)
                await asyncio.sleep(1.2)  # a new leader if m0 led
                await reg.register(Instance("cart", "cart-3", port=8003), ttl=30)  # two of three: a quorum
                # the state, not "the next change": the watch may win the race
                assert await res.wait_until(lambda snap: len(snap.instances) == 4, 5.0)

                etcd_cluster.kill(1)
                loop = asyncio.get_running_loop()
                t0 = loop.time()
                with pytest.raises(NoQuorum, match="no quorum"):
                    await reg.register(Instance("cart", "cart-4", port=8004), ttl=30)
                assert loop.time() - t0 < 10.0  # bounded
                # the resolver's cached set is still served, and it says it is disconnected
                assert [i.instance_id for i in res.instances()] == ["cart-0", "cart-1", "cart-2", "cart-3"]
                for _ in range(60):
                    if not res.status.connected:
                        break
                    await asyncio.sleep(0.1)
                assert not res.status.connected and res.status.failures >= 1
                assert "NoQuorum" in res.status.last_error or "RegistryUnavailable" in res.status.last_error
                # a serializable read of the surviving member's local copy still answers
                local = await reg.snapshot("cart", serializable=True)
                assert len(local) == 4

                etcd_cluster.restart(1)  # quorum back: writes work, the resolver reconnects
                await reg.register(Instance("cart", "cart-4", port=8004), ttl=30)
                for _ in range(100):
                    if res.status.connected and len(res.instances()) == 5:
                        break
                    await asyncio.sleep(0.1)
                assert res.status.connected and len(res.instances()) == 5

    asyncio.run(asyncio.wait_for(main(), 60))


def test_all_members_down_is_unavailable_naming_every_endpoint(etcd_cluster):
    async def main():
        async with EtcdRegistry(etcd_cluster.endpoints, request_timeout=1.0) as reg:
            for i in range(3):
                etcd_cluster.kill(i)
            with pytest.raises(RegistryUnavailable) as err:
                await reg.snapshot("cart")
            assert not isinstance(err.value, NoQuorum)
            for url in etcd_cluster.endpoints:
                assert url in str(err.value)
    asyncio.run(asyncio.wait_for(main(), 30))
