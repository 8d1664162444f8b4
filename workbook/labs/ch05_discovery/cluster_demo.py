"""The seed's 3-server Consul cluster made real: a three-member etcd cluster on 127.0.0.1.

``quorum_demo`` starts three ``etcd`` processes (``workbook.core.etcd_server.EtcdCluster``),
registers the shop's instances through ``EtcdRegistry`` (etcd's v3 JSON gateway), keeps a
client-side ``Resolver`` watching ``cart``, and then:

1. kills one member (SIGKILL, by the PID it started): two of three still form a Raft
   majority, a leader is (re-)elected if needed, and a registration still commits;
2. kills a second member: one of three is no majority, so a write cannot commit
   (``NoQuorum``), while the resolver keeps serving the set it cached and a serializable
   read of the survivor's local copy still answers (possibly stale);
3. restarts both: the quorum is back, writes commit, the resolver reconnects.

Every process it started is stopped (by PID) and its data directories removed, also on
error. What it returns splits into ``steps`` (outcomes and counts: the same on every run)
and ``timings`` (seconds of wall-clock time: differ from run to run). When ``etcd`` is not
installed it returns ``{"available": False, "hint": ...}`` instead of raising.
"""

from __future__ import annotations

import asyncio
import os
import time

from workbook.core.etcd_server import ETCD_HINT, EtcdCluster
from workbook.core.external import ServiceUnavailable
from workbook.discovery import EtcdRegistry, Instance, NoInstancesAvailable, RegistryUnavailable, Resolver

#: the shop's services and how many instances each registers
SHOP_INSTANCES = {"cart": 3, "inventory": 2, "orders": 2, "payments": 2}


def _instances():
    port = 8100
    for service, count in SHOP_INSTANCES.items():
        for i in range(count):
            port += 1
            yield Instance(service, f"{service}-{i}", "127.0.0.1", port, version="1.4.2", zone=f"zone-{i % 2}")


async def _try_write(reg: EtcdRegistry, instance: Instance) -> str:
    try:
        await reg.register(instance, ttl=60)
        return "committed"
    except RegistryUnavailable as exc:  # NoQuorum is a RegistryUnavailable
        return type(exc).__name__


def _cached(resolver: Resolver) -> str:
    try:
        return ", ".join(i.instance_id for i in resolver.instances())
    except (RegistryUnavailable, NoInstancesAvailable) as exc:
        return type(exc).__name__


async def _wait(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


async def quorum_demo(*, request_timeout: float = 1.5) -> dict:
    """Run the demo (real time, about 10 to 20 s; see the module docstring)."""
    cluster = EtcdCluster(3)
    try:
        await asyncio.to_thread(cluster.start)
    except ServiceUnavailable as exc:
        return {"available": False, "hint": f"etcd is not available ({exc}); {ETCD_HINT}"}
    steps: list[dict] = []
    timings: dict[str, float] = {}
    began = time.monotonic()
    try:
        async with EtcdRegistry(cluster.endpoints, request_timeout=request_timeout) as reg:
            for inst in _instances():
                await reg.register(inst, ttl=60)
            counts = {s: len(await reg.snapshot(s)) for s in SHOP_INSTANCES}
            async with Resolver(reg, "cart", watch_timeout=1.0, retry_initial=0.1, retry_max=0.5) as res:
                steps.append({"step": "3 of 3 members up", "members_up": 3,
                              "write": "committed" if sum(counts.values()) == sum(SHOP_INSTANCES.values()) else "?",
                              "registered": counts, "resolver_cart": _cached(res),
                              "resolver_connected": res.status.connected})

                t = time.monotonic()
                cluster.kill(0)
                await asyncio.to_thread(cluster.wait_healthy, [1, 2], 10.0)  # a leader among the two
                timings["kill 1: leader among the other two"] = time.monotonic() - t
                t = time.monotonic()
                write = await _try_write(reg, Instance("cart", "cart-3", "127.0.0.1", 8201))
                timings["kill 1: write committed"] = time.monotonic() - t
                await _wait(lambda: len(res.snapshot) == 4 and res.status.connected, 10.0)
                steps.append({"step": "1 member killed", "members_up": 2, "write": write,
                              "resolver_cart": _cached(res), "resolver_connected": res.status.connected})

                cluster.kill(1)
                t = time.monotonic()
                write = await _try_write(reg, Instance("cart", "cart-4", "127.0.0.1", 8202))
                timings["kill 2: write refused"] = time.monotonic() - t
                await _wait(lambda: not res.status.connected, 15.0)
                timings["kill 2: resolver knows it is disconnected"] = time.monotonic() - t
                try:
                    local = len(await reg.snapshot("cart", serializable=True))
                    local_text = f"{local} instances"
                except RegistryUnavailable as exc:
                    local_text = type(exc).__name__
                try:
                    await reg.snapshot("cart")
                    linear = "answered"
                except RegistryUnavailable as exc:
                    linear = type(exc).__name__
                steps.append({"step": "2 members killed", "members_up": 1, "write": write,
                              "linearizable_read": linear, "serializable_read": local_text,
                              "resolver_cart": _cached(res), "resolver_connected": res.status.connected})

                t = time.monotonic()
                await asyncio.to_thread(cluster.restart, 1)
                timings["restart 1: member healthy"] = time.monotonic() - t
                write = await _try_write(reg, Instance("cart", "cart-4", "127.0.0.1", 8202))
                await _wait(lambda: res.status.connected and res.snapshot is not None and len(res.snapshot) == 5, 15.0)
                timings["restart 1: resolver up to date"] = time.monotonic() - t
                steps.append({"step": "1 member restarted", "members_up": 2, "write": write,
                              "resolver_cart": _cached(res), "resolver_connected": res.status.connected})
                await asyncio.to_thread(cluster.restart, 0)
                steps.append({"step": "all restarted", "members_up": 3,
                              "write": await _try_write(reg, Instance("cart", "cart-5", "127.0.0.1", 8203)),
                              "registered_cart": len(await reg.snapshot("cart"))})
    finally:
        pids = [m.pid for m in cluster.members if m.pid is not None]
        await asyncio.to_thread(cluster.stop)
    timings["total"] = time.monotonic() - began
    return {"available": True, "steps": steps, "timings": {k: round(v, 2) for k, v in timings.items()},
            "processes_started_left_running": sum(1 for pid in pids if _alive(pid))}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def step_lines(result: dict) -> list[str]:
    """The demo's outcome as text lines (no timings, no ports: the same on every run)."""
    if not result.get("available"):
        return [result["hint"]]
    lines = []
    for s in result["steps"]:
        parts = [f"{s['step']:<20} up {s['members_up']}/3", f"write: {s['write']}"]
        if "registered" in s:
            parts.append("registered " + ", ".join(f"{k} {v}" for k, v in s["registered"].items()))
        if "linearizable_read" in s:
            parts.append(f"linearizable read: {s['linearizable_read']}; serializable read: {s['serializable_read']}")
        if "resolver_cart" in s:
            parts.append(f"resolver cache ({'connected' if s['resolver_connected'] else 'DISCONNECTED'}): "
                         f"{s['resolver_cart']}")
        if "registered_cart" in s:
            parts.append(f"cart instances {s['registered_cart']}")
        lines.append(" | ".join(parts))
    return lines
