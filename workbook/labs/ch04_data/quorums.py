"""Consistency levels you can check: the replicated register, its histories and their verdicts.

``stale_read`` (N=3, R=W=1: a read that starts after a write completed misses it),
``new_then_old`` (N=3, R=W=2, plain quorum reads: while a write is in flight one reader
sees the new value and a later reader the old one; with ``mode="abd"`` the same run is
linearizable) build the three small histories by setting which links are slow.
``random_histories`` runs a seeded workload of concurrent clients for a configuration and
returns the checker's verdict per history and the operations' latencies.
``pbs_curves`` is the probability of a stale read against the time since the write.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from workbook.consistency import (Quorum, QuorumUnavailable, ReplicatedRegister, check_linearizable,
                                  stale_read_probability)
from workbook.core.seeds import derive_seed, stream
from workbook.core.simnet import SimNetwork
from workbook.core.stats import quantile
from workbook.core.verdict import Verdict
from workbook.core.virtual_time import run_virtual

FAST, SLOW = 0.001, 1.0


def _links(net, reg, client, fast):
    for i, r in enumerate(reg.replicas):
        net.set_latency(client, r, FAST if i in fast else SLOW)


@dataclass
class QuorumScenario:
    name: str
    quorum: Quorum
    mode: str
    reads: tuple
    verdict: Verdict
    operations: list


def stale_read(quorum: Quorum = Quorum(3, 1, 1), mode: str = "plain") -> QuorumScenario:
    """A write completes at the W replicas the writer reaches fast; then a reader asks, and reaches fast the last R
    replicas: with R + W <= N the two sets do not meet and the read misses a completed write."""
    async def main():
        net = SimNetwork(0, latency=FAST)
        reg = ReplicatedRegister(net, quorum, mode=mode, timeout=5)
        writer, reader = reg.client("writer"), reg.client("reader")
        _links(net, reg, "writer", set(range(quorum.w)))
        _links(net, reg, "reader", set(range(quorum.n - quorum.r, quorum.n)))
        await writer.write(1)
        await asyncio.sleep(0.01)
        got = await reader.read()
        await asyncio.sleep(3)
        return reg, (got,)
    reg, reads = run_virtual(main())
    return QuorumScenario("a read after a completed write", quorum, mode, reads,
                    check_linearizable(reg.history, subject=f"{quorum} {mode}: read after write"), list(reg.history))


def new_then_old(mode: str = "plain", quorum: Quorum = Quorum(3, 2, 2)) -> QuorumScenario:
    """A write reaches replica 0 at once and the others after 1 s. While it is in flight reader a asks (fast) the
    first R replicas, then reader b the last R: a sees the new value, b (without replica 0) the old one."""
    async def main():
        net = SimNetwork(0, latency=FAST)
        reg = ReplicatedRegister(net, quorum, mode=mode, timeout=5)
        writer, a, b = reg.client("writer"), reg.client("a"), reg.client("b")
        _links(net, reg, "writer", {0})
        _links(net, reg, "a", set(range(quorum.r)))
        _links(net, reg, "b", set(range(quorum.n - quorum.r, quorum.n)))
        task = asyncio.ensure_future(writer.write(1))
        while reg.stored["replica-0"][1] != 1:
            await asyncio.sleep(0.001)
        first = await a.read()
        second = await b.read()
        await task
        return reg, (first, second)
    reg, reads = run_virtual(main())
    return QuorumScenario("two reads while a write is in flight", quorum, mode, reads,
                    check_linearizable(reg.history, subject=f"{quorum} {mode}: reads during a write"),
                    list(reg.history))


@dataclass
class HistoryStats:
    quorum: Quorum
    mode: str
    histories: int
    linearizable: int
    first_counterexample: str
    read_p50: float
    write_p50: float
    unavailable: int

    @property
    def label(self) -> str:
        return f"N={self.quorum.n} R={self.quorum.r} W={self.quorum.w} {self.mode}"


def one_history(quorum: Quorum, mode: str, seed: int, *, clients: int = 3, ops: int = 8, latency=None,
                down: int = 0):
    """A seeded workload (40 % writes of unique values) on a fresh register; ``down`` replicas are down throughout.
    Returns (register, read latencies, write latencies, unavailable operations)."""
    latency = latency or {"kind": "exponential", "mean": 0.01}

    async def main():
        net = SimNetwork(seed, latency=latency)
        reg = ReplicatedRegister(net, quorum, mode=mode, timeout=1.0)
        for r in reg.replicas[:down]:
            net.down(r)
        rng = stream(seed, "ch04", "register-workload")
        values = iter(range(1, 10**6))
        reads, writes, unavailable = [], [], 0

        async def client(name):
            nonlocal unavailable
            c = reg.client(name)
            for _ in range(ops):
                await asyncio.sleep(rng.expovariate(100))
                start = net.clock.now()
                try:
                    if rng.random() < 0.4:
                        await c.write(next(values))
                        writes.append(net.clock.now() - start)
                    else:
                        await c.read()
                        reads.append(net.clock.now() - start)
                except QuorumUnavailable:
                    unavailable += 1

        await asyncio.gather(*(client(f"c{i}") for i in range(clients)))
        await asyncio.sleep(2)
        return reg, reads, writes, unavailable
    return run_virtual(main())


def random_histories(quorum: Quorum, mode: str, *, histories: int, seed: int, down: int = 0, **kw) -> HistoryStats:
    ok, first, reads, writes, unavailable = 0, "", [], [], 0
    for k in range(histories):
        reg, r, w, u = one_history(quorum, mode, _seed(seed, k), down=down, **kw)
        reads += r
        writes += w
        unavailable += u
        v = check_linearizable(reg.history)
        ok += v.passed
        if not v.passed and not first:
            first = str(v.numbers.get("counterexample", ""))
    return HistoryStats(quorum, mode, histories, ok, first, quantile(reads, 0.5), quantile(writes, 0.5), unavailable)


def _seed(seed: int, k: int) -> int:
    return derive_seed(seed, "ch04", "history", k)


PBS_CONFIGS = (Quorum(3, 1, 1), Quorum(3, 1, 2), Quorum(5, 1, 1), Quorum(5, 2, 2), Quorum(3, 2, 2))


def pbs_curves(configs=PBS_CONFIGS, times=(0.0, 0.005, 0.01, 0.02, 0.05, 0.1), *, mean_latency: float = 0.01,
               trials: int = 2000, seed: int = 0) -> dict[str, list[float]]:
    """``{"N=3, R=1, W=1": [P(stale) at each t]}`` (Monte Carlo, WARS model, exponential delays)."""
    latency = {"kind": "exponential", "mean": mean_latency}
    return {str(q): [stale_read_probability(q, t, latency=latency, trials=trials, seed=seed) for t in times]
            for q in configs}
