"""Chapter 5: registry watch latency, from a change to the client's cache.

A ``Resolver`` watches service ``cart`` (blocking queries: after each change it reads the
new set and waits again from its revision). The benchmark registers one new instance at a
time (then removes the oldest, so the set stays at 20 instances) and waits until the
resolver's cache lists it: **latency** is measured from the start
of the ``register`` call to the resolver's ``on_change`` callback, **write** is the
register call alone (lease grant + transaction for etcd). Wall-clock time, real asyncio
loop (the in-memory registry also runs outside virtual time), 127.0.0.1.

* **in-memory**: the registry in the same process; the latency is asyncio's scheduling
  (the waiter's event set, the resolver task resumed).
* **etcd, one member** and **etcd, three members**: a real etcd 3.4 (``workbook.core.etcd_server``,
  50 ms heartbeat), v3 JSON gateway over aiohttp. The change travels: our register
  (two HTTP requests, a raft commit), the watch stream's event, then the resolver's range
  read of the new set.
"""

from __future__ import annotations

import asyncio
import time

from workbook.core.stats import quantiles
from workbook.discovery import EtcdRegistry, InMemoryRegistry, Instance, Resolver

MEMORY_N = 2000
ETCD_N = 200
SET_SIZE = 20


async def _measure(reg, n: int) -> tuple[list[float], list[float]]:
    arrived: dict[str, float] = {}
    waiting: dict[str, asyncio.Event] = {}

    gone = asyncio.Event()

    def on_change(snap):
        now = time.perf_counter()
        for i in snap.ids:
            if i not in arrived:
                arrived[i] = now
                if i in waiting:
                    waiting[i].set()
        if len(snap) <= SET_SIZE:
            gone.set()

    latencies, writes = [], []
    async with Resolver(reg, "cart", watch_timeout=10.0, on_change=on_change):
        for k in range(n):
            iid = f"cart-{k}"
            waiting[iid] = asyncio.Event()
            t0 = time.perf_counter()
            await reg.register(Instance("cart", iid, port=1024 + k), ttl=600)
            t1 = time.perf_counter()
            await asyncio.wait_for(waiting[iid].wait(), 10.0)
            latencies.append(arrived[iid] - t0)
            writes.append(t1 - t0)
            if k >= SET_SIZE:  # keep the set at SET_SIZE instances (the removal is not measured)
                gone.clear()
                await reg.deregister("cart", f"cart-{k - SET_SIZE}")
                await asyncio.wait_for(gone.wait(), 10.0)
    return latencies, writes


def memory() -> tuple[list[float], list[float]]:
    async def main():
        async with InMemoryRegistry() as reg:
            return await _measure(reg, MEMORY_N)
    return asyncio.run(main())


def etcd(members: int) -> tuple[list[float], list[float]] | None:
    from workbook.core.etcd_server import EtcdCluster
    from workbook.core.external import ServiceUnavailable

    try:
        cluster = EtcdCluster(members).start()
    except ServiceUnavailable:
        return None
    try:
        async def main():
            async with EtcdRegistry(cluster.endpoints, request_timeout=5.0) as reg:
                return await _measure(reg, ETCD_N)
        return asyncio.run(main())
    finally:
        cluster.stop()


def _row(name: str, n: int, result) -> str:
    if result is None:
        return f"| {name} | - | etcd not installed | | | |"
    lat, writes = result
    p50, p99 = quantiles(lat, (0.5, 0.99))
    w50, w99 = quantiles(writes, (0.5, 0.99))
    return f"| {name} | {n:,} | {p50 * 1e3:.3f} ms | {p99 * 1e3:.3f} ms | {w50 * 1e3:.3f} ms | {w99 * 1e3:.3f} ms |"


def run() -> str:
    lines = ["### Registry watch latency: change to client cache", "",
             "| backend | changes | latency p50 | latency p99 | write p50 | write p99 |",
             "|---|---:|---:|---:|---:|---:|",
             _row("in-memory", MEMORY_N, memory()),
             _row("etcd, one member", ETCD_N, etcd(1)),
             _row("etcd, three members", ETCD_N, etcd(3))]
    return "\n".join(lines) + "\n\n" + __doc__.split("\n\n", 1)[1].strip() + "\n"


if __name__ == "__main__":
    print(run())
