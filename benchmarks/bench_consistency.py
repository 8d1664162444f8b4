"""Chapter 4: how long the linearizability checker takes, and where it becomes exponential.

* **1,000-operation histories recorded from the ABD register** (``mode="abd"``, N=3,
  R=W=2, exponential link latency of mean 10 ms, clients issuing reads and writes with
  exponential think times of mean 10 ms) with 3, 5 and 10 clients: verdict, states
  explored, wall-clock time of ``check_linearizable``.
* **The exponential case**: k writes of distinct values all concurrent with each other,
  then a read returning a value nobody wrote. No order works, so the memoised search
  visits every (subset of placed writes, register value) pair: about k * 2^(k-1) states.
  Each extra concurrent write roughly doubles the time; the number of operations does not
  matter, the width of the concurrency does (Gibbons and Korach 1997: NP-complete in general).
"""

from __future__ import annotations

import asyncio
import time

from workbook.consistency import Operation, Quorum, ReplicatedRegister, check_linearizable
from workbook.core import run_virtual, stream
from workbook.core.simnet import SimNetwork


def abd_history(clients: int, total: int = 1000, seed: int = 0):
    async def main():
        net = SimNetwork(seed, latency={"kind": "exponential", "mean": 0.01}, keep_log=False)
        reg = ReplicatedRegister(net, Quorum(3, 2, 2), mode="abd", timeout=10)
        rng = stream(seed, "bench-workload")
        values = iter(range(1, 10**9))

        async def client(name, n):
            c = reg.client(name)
            for _ in range(n):
                await asyncio.sleep(rng.expovariate(100))
                if rng.random() < 0.5:
                    await c.write(next(values))
                else:
                    await c.read()

        per = total // clients
        await asyncio.gather(*(client(f"c{i}", per) for i in range(clients)))
        return reg.history
    return run_virtual(main())


def wide_writes(k: int) -> list[Operation]:
    return [Operation(f"w{i}", "write", i, 0.0, 10.0) for i in range(k)] + [Operation("r", "read", -1, 11.0, 12.0)]


def run() -> str:
    lines = ["### Linearizability checker (Wing-Gong search with memoisation)", "",
             "| history | operations | verdict | states explored | time |", "|---|---:|---|---:|---:|"]
    for clients in (3, 5, 10):
        h = abd_history(clients)
        t = time.perf_counter()
        v = check_linearizable(h)
        dt = time.perf_counter() - t
        lines.append(f"| ABD register, {clients} clients | {len(h)} | {'linearizable' if v else 'NOT linearizable'} "
                     f"| {v.numbers['states_explored']:,} | {dt * 1000:.0f} ms |")
    for k in (4, 8, 10, 12, 14, 16):
        h = wide_writes(k)
        t = time.perf_counter()
        v = check_linearizable(h, max_states=5_000_000)
        dt = time.perf_counter() - t
        lines.append(f"| {k} concurrent writes + impossible read | {len(h)} | "
                     f"{'linearizable' if v else 'NOT linearizable'} | {v.numbers['states_explored']:,} | "
                     f"{dt * 1000:.0f} ms |")
    return "\n".join(lines) + "\n\n" + __doc__.split("\n\n", 1)[1].strip() + "\n"


if __name__ == "__main__":
    print(run())
