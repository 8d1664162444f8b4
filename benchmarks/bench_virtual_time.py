"""Virtual time against SimPy: plain asyncio code on VirtualTimeLoop, the same models in SimPy.

Two queueing models at load 0.9 with 100,000 customers, each fed the same pre-drawn
inter-arrival and service times on both sides, so both must report the same mean wait
(the M/M/1 theory value is rho/(mu - lambda)):

* **M/M/1 pipeline**: a source process, a FIFO queue, one server process
  (``asyncio.Queue`` against ``simpy.Store``). Target: our wall time at most 1.0x SimPy's.
* **One task per customer**: each customer is a task that takes the server
  (``asyncio.Lock``, or ``asyncio.Semaphore(1)``) for its service time, against SimPy's
  one process per customer with a ``simpy.Resource``: the form most simulation code
  takes. Target: at most 1.5x, for the idiomatic form (customers started in an
  ``asyncio.TaskGroup``). The form that keeps every task in a list and ends with
  ``asyncio.gather(*tasks)`` is measured too, against SimPy keeping every process and
  ending with ``AllOf``: it holds 100,000 finished tasks, so CPython's cyclic garbage
  collector runs full collections over a growing heap; the section reports that share.

Timings are wall time, the best of ``ROUNDS`` rounds in which every implementation runs
once in turn, so a busy machine slows all of them alike.
"""

import asyncio
import cProfile
import gc
import os
import pstats
import random
import statistics
import time

import simpy

from workbook.core import run_virtual

CUSTOMERS = 100_000
ARRIVAL_RATE, SERVICE_RATE = 0.9, 1.0
ROUNDS = 5
MM1_TARGET, PER_CUSTOMER_TARGET = 1.0, 1.5


def draws(seed=1, n=CUSTOMERS):
    rng = random.Random(seed)
    return [rng.expovariate(ARRIVAL_RATE) for _ in range(n)], [rng.expovariate(SERVICE_RATE) for _ in range(n)]


# --- M/M/1 as a pipeline: source, FIFO queue, one server ------------------------------


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


# --- one task (process) per customer, contending for one server -----------------------


async def customers_asyncio(inter, service, server_factory=asyncio.Lock):
    """Each customer is a task started in a TaskGroup; the server is a Lock (or Semaphore(1))."""
    loop = asyncio.get_running_loop()
    server = server_factory()
    waits = []

    async def customer(work):
        arrived = loop.time()
        async with server:
            waits.append(loop.time() - arrived)
            await asyncio.sleep(work)

    async with asyncio.TaskGroup() as group:
        for gap, work in zip(inter, service):
            await asyncio.sleep(gap)
            group.create_task(customer(work))
    return statistics.fmean(waits)


async def customers_asyncio_gather(inter, service):
    """The same, keeping every task in a list and waiting for them with gather."""
    loop = asyncio.get_running_loop()
    server = asyncio.Lock()
    waits = []

    async def customer(work):
        arrived = loop.time()
        async with server:
            waits.append(loop.time() - arrived)
            await asyncio.sleep(work)

    tasks = []
    for gap, work in zip(inter, service):
        await asyncio.sleep(gap)
        tasks.append(asyncio.create_task(customer(work)))
    await asyncio.gather(*tasks)
    return statistics.fmean(waits)


def customers_simpy(inter, service, keep=False):
    """One process per customer requesting a Resource; ``keep``: keep them all and wait with AllOf."""
    env = simpy.Environment()
    server = simpy.Resource(env, capacity=1)
    waits = []

    def customer(work):
        arrived = env.now
        with server.request() as request:
            yield request
            waits.append(env.now - arrived)
            yield env.timeout(work)

    def source():
        processes = []
        for gap, work in zip(inter, service):
            yield env.timeout(gap)
            process = env.process(customer(work))
            if keep:
                processes.append(process)
        if keep:
            yield simpy.AllOf(env, processes)

    env.process(source())
    env.run()  # until no event is left: every customer has been served
    return statistics.fmean(waits)


# --- measuring -------------------------------------------------------------------------


def interleaved_best(fns, rounds=ROUNDS):
    """{name: (best wall time, value)}: every function runs once per round, in turn."""
    best = {name: (float("inf"), None) for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            start = time.perf_counter()
            value = fn()
            elapsed = time.perf_counter() - start
            if elapsed < best[name][0]:
                best[name] = (elapsed, value)
    return best


def gc_share(fn):
    """(wall time, time in cyclic GC, full collections) of one call of ``fn``."""
    spent, full, started = [0.0], [0], [0.0]

    def callback(phase, info):
        if phase == "start":
            started[0] = time.perf_counter()
        else:
            spent[0] += time.perf_counter() - started[0]
            full[0] += info["generation"] == 2

    gc.callbacks.append(callback)
    try:
        start = time.perf_counter()
        fn()
        return time.perf_counter() - start, spent[0], full[0]
    finally:
        gc.callbacks.remove(callback)


def profile_top(fn, n=6):
    """The ``n`` functions with the most own time under cProfile, as 'name share%' strings.

    cProfile inflates the cost of small Python functions, so shares are indicative."""
    profiler = cProfile.Profile()
    profiler.runcall(fn)
    stats = pstats.Stats(profiler).stats
    total = sum(row[2] for row in stats.values()) or 1.0
    rows = sorted(stats.items(), key=lambda item: -item[1][2])[:n]
    out = []
    for (filename, line, name), row in rows:
        where = filename.rsplit("/", 2)
        where = "/".join(where[-2:]) if "site-packages" not in filename else where[-1]
        label = f"`{name}`" if filename == "~" else f"`{name}` ({where}:{line})"
        out.append(f"{label} {100 * row[2] / total:.0f}%")
    return ", ".join(out)


def same(a, b):
    return abs(a - b) < 1e-9 * max(1.0, abs(b))


def verdict(ratio, target):
    return f"target <= {target:.1f}x: {'met' if ratio <= target else 'NOT met'}"


def run() -> str:
    load_before = os.getloadavg()[0]
    inter, service = draws()
    theory = (ARRIVAL_RATE / SERVICE_RATE) / (SERVICE_RATE - ARRIVAL_RATE)

    mm1 = interleaved_best({
        "ours": lambda: run_virtual(mm1_asyncio(inter, service)),
        "simpy": lambda: mm1_simpy(inter, service),
    })
    per = interleaved_best({
        "lock": lambda: run_virtual(customers_asyncio(inter, service)),
        "semaphore": lambda: run_virtual(customers_asyncio(inter, service, lambda: asyncio.Semaphore(1))),
        "simpy": lambda: customers_simpy(inter, service),
    })
    kept = interleaved_best({
        "gather": lambda: run_virtual(customers_asyncio_gather(inter, service)),
        "allof": lambda: customers_simpy(inter, service, keep=True),
    }, rounds=3)
    for results in (mm1, per, kept):
        waits = [value for _, value in results.values()]
        assert all(same(w, waits[0]) for w in waits), f"mean waits differ: {results}"

    mm1_ratio = mm1["ours"][0] / mm1["simpy"][0]
    lock_ratio = per["lock"][0] / per["simpy"][0]
    sem_ratio = per["semaphore"][0] / per["simpy"][0]
    kept_ratio = kept["gather"][0] / kept["allof"][0]
    gather_wall, gather_gc, gather_full = gc_share(lambda: run_virtual(customers_asyncio_gather(inter, service)))
    allof_wall, allof_gc, allof_full = gc_share(lambda: customers_simpy(inter, service, keep=True))

    lines = [
        f"## Virtual time against SimPy: load {ARRIVAL_RATE / SERVICE_RATE:.1f}, {CUSTOMERS:,} customers "
        f"(wall time, best of {ROUNDS} interleaved rounds)",
        "",
        f"Machine load average (1 min) before / after the timings: {load_before:.1f} / {os.getloadavg()[0]:.1f} "
        f"on {os.cpu_count()} cores (others share this machine; above ~1 the ratios move by 0.1 or more).",
        "",
        "Both sides get the same pre-drawn inter-arrival and service times and must report the same mean wait "
        f"(M/M/1 theory: {theory:.3f}).",
        "",
        "| model | implementation | wall time (s) | mean wait | ours/SimPy | target |",
        "|---|---|---:|---:|---:|---|",
        f"| M/M/1 pipeline | asyncio `Queue` on VirtualTimeLoop | {mm1['ours'][0]:.3f} | {mm1['ours'][1]:.6f} "
        f"| **{mm1_ratio:.2f}x** | {verdict(mm1_ratio, MM1_TARGET)} |",
        f"| M/M/1 pipeline | SimPy {simpy.__version__} `Store` | {mm1['simpy'][0]:.3f} | {mm1['simpy'][1]:.6f} | 1 | |",
        f"| task per customer | asyncio `Lock`, `TaskGroup` | {per['lock'][0]:.3f} | {per['lock'][1]:.6f} "
        f"| **{lock_ratio:.2f}x** | {verdict(lock_ratio, PER_CUSTOMER_TARGET)} |",
        f"| task per customer | asyncio `Semaphore(1)`, `TaskGroup` | {per['semaphore'][0]:.3f} "
        f"| {per['semaphore'][1]:.6f} | {sem_ratio:.2f}x | |",
        f"| task per customer | SimPy process per customer, `Resource` | {per['simpy'][0]:.3f} "
        f"| {per['simpy'][1]:.6f} | 1 | |",
        f"| all tasks kept | asyncio `Lock`, list of tasks + `gather` (best of 3) | {kept['gather'][0]:.3f} "
        f"| {kept['gather'][1]:.6f} | {kept_ratio:.2f}x | none |",
        f"| all tasks kept | SimPy, list of processes + `AllOf` (best of 3) | {kept['allof'][0]:.3f} "
        f"| {kept['allof'][1]:.6f} | 1 | |",
        "",
        "Same mean wait on both sides in every model: yes (asserted).",
        "",
        f"Keeping every task: of one gather run's {gather_wall:.2f} s, CPython's cyclic GC took {gather_gc:.2f} s "
        f"({gather_full} full collections over the 100,000 finished tasks still referenced); SimPy with AllOf: "
        f"{allof_gc:.2f} s of {allof_wall:.2f} s ({allof_full} full). The TaskGroup form forgets finished tasks.",
        "",
        "Where the time goes (cProfile own time, indicative: it inflates small Python functions):",
        "",
        f"- M/M/1, asyncio: {profile_top(lambda: run_virtual(mm1_asyncio(inter, service)))}.",
        f"- M/M/1, SimPy: {profile_top(lambda: mm1_simpy(inter, service))}.",
        f"- Task per customer, asyncio Lock: {profile_top(lambda: run_virtual(customers_asyncio(inter, service)))}.",
        "",
        "## Virtual time: one simulated hour at 100 requests/s through one hop",
        "",
        hour_line(*hour_of_traffic()),
    ]
    return "\n".join(lines)


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


def hour_line(n, simulated, wall):
    return (f"{n:,} requests over {simulated:,.0f} simulated seconds in {wall:.1f} s wall: "
            f"speed-up **{simulated / wall:,.0f}x** (simulated seconds per wall second).")


if __name__ == "__main__":
    print(run())
