"""M/M/1 queue (load 0.9, 100,000 customers): asyncio code on VirtualTimeLoop against SimPy.

Both models have the same structure (a source process, a FIFO queue, one server
process) and are fed the same pre-drawn inter-arrival and service times, so both must
report the same mean waiting time; the theoretical value is rho/(mu - lambda).
Target: our wall time at most 1.5x SimPy's.
"""

import asyncio
import random
import statistics
import time

import simpy

from workbook.core import run_virtual

CUSTOMERS = 100_000
ARRIVAL_RATE, SERVICE_RATE = 0.9, 1.0


def draws(seed=1, n=CUSTOMERS):
    rng = random.Random(seed)
    return [rng.expovariate(ARRIVAL_RATE) for _ in range(n)], [rng.expovariate(SERVICE_RATE) for _ in range(n)]


async def mm1_asyncio(inter, service):
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue()
    waits = []

    async def source():
        for gap, work in zip(inter, service):
            await asyncio.sleep(gap)
            queue.put_nowait((loop.time(), work))

    async def server():
        for _ in range(len(inter)):
            arrived, work = await queue.get()
            waits.append(loop.time() - arrived)
            await asyncio.sleep(work)

    await asyncio.gather(source(), server())
    return statistics.fmean(waits)


def mm1_simpy(inter, service):
    env = simpy.Environment()
    store = simpy.Store(env)
    waits = []

    def source():
        for gap, work in zip(inter, service):
            yield env.timeout(gap)
            store.put((env.now, work))

    def server():
        for _ in range(len(inter)):
            arrived, work = yield store.get()
            waits.append(env.now - arrived)
            yield env.timeout(work)

    env.process(source())
    done = env.process(server())
    env.run(until=done)
    return statistics.fmean(waits)


def best_of(fn, repeat=3):
    best, value = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        value = fn()
        best = min(best, time.perf_counter() - start)
    return best, value


def hour_of_traffic(seed=1):
    """One simulated hour at 100 requests/s (Poisson) through one hop of the simulated network."""
    from workbook.core.load import open_loop
    from workbook.core.simnet import Request, SimNetwork

    async def main():
        net = SimNetwork(seed, latency={"kind": "lognormal", "median": 0.002, "sigma": 0.5})
        net.add_service("client")
        net.add_service("api", service_time={"kind": "exponential", "mean": 0.004})

        async def send(i):
            return (await net.call("client", "api", Request(path="/orders"), timeout=1.0)).status

        statuses = await open_loop(send, rate=100, duration=3600, rng=net.rng)
        return len(statuses), asyncio.get_running_loop().time()

    start = time.perf_counter()
    n, simulated = run_virtual(main)
    return n, simulated, time.perf_counter() - start


def run() -> str:
    inter, service = draws()
    ours, ours_wait = best_of(lambda: run_virtual(mm1_asyncio(inter, service)))
    theirs, simpy_wait = best_of(lambda: mm1_simpy(inter, service))
    theory = (ARRIVAL_RATE / SERVICE_RATE) / (SERVICE_RATE - ARRIVAL_RATE)
    ratio = ours / theirs
    return "\n".join([
        f"## Virtual time: M/M/1, load {ARRIVAL_RATE / SERVICE_RATE:.1f}, {CUSTOMERS:,} customers (best of 3)",
        "",
        "| implementation | wall time (s) | mean wait |",
        "|---|---|---|",
        f"| asyncio on VirtualTimeLoop | {ours:.3f} | {ours_wait:.6f} |",
        f"| SimPy {simpy.__version__} | {theirs:.3f} | {simpy_wait:.6f} |",
        "",
        f"Ratio ours/SimPy: **{ratio:.2f}x** (target <= 1.5x: {'met' if ratio <= 1.5 else 'NOT met'}). "
        f"Same mean wait: {'yes' if abs(ours_wait - simpy_wait) < 1e-9 * max(1, simpy_wait) else 'NO'} "
        f"(difference {abs(ours_wait - simpy_wait):.2e}); M/M/1 theory: {theory:.3f}.",
        "",
        "## Virtual time: one simulated hour at 100 requests/s through one hop",
        "",
        hour_line(*hour_of_traffic()),
    ])


def hour_line(n, simulated, wall):
    return (f"{n:,} requests over {simulated:,.0f} simulated seconds in {wall:.1f} s wall: "
            f"speed-up **{simulated / wall:,.0f}x** (simulated seconds per wall second).")


if __name__ == "__main__":
    print(run())
