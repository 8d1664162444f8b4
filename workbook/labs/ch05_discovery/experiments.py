"""Chapter 5's registry and failure detection experiments, returning plain data for the notebook.

* ``lease_watch_demo``: three instances register with a lease and heartbeat; a client's
  ``Resolver`` watches the set (blocking queries) and logs each change it is woken for:
  a crash (heartbeats stop: the lease expires ``ttl`` later) and a clean shutdown
  (deregistered at once). It counts the registry calls the client made, against a poll.
* ``health_check_demo``: Envoy-style active health checks in virtual time: one host
  answers 503 for a while, another hangs; when each is marked unhealthy and healthy again.
* ``self_preservation_run`` / ``self_preservation_comparison``: a Eureka-configured
  in-memory registry, a fleet of instances renewing every 30 s, and a network partition
  that cuts most of them off from the registry while they keep running (one of them
  really crashes during the partition). With self-preservation the registry keeps every
  instance (the crashed one too: stale); without it, it expires them until the service is
  gone although its instances are alive. Sampled every ``sample_every`` virtual seconds.
* ``detector_sweep_table``: time to detect a crash against false suspicions, fixed
  timeouts and phi-accrual thresholds over one seeded heartbeat trace. What it shows
  (seed 0): the bare phi detector (no acceptable pause) behaves like a ~1.5 s timeout
  whatever its threshold, because a heartbeat ending a suspected pause is kept out of
  the history (Akka's rule), so the sender's rare long pauses never widen the estimated
  deviation; phi buys little over a tuned timeout on a stationary trace. Akka's 3 s
  acceptable pause is what removes the false suspicions. Where phi earns its keep is a
  sender slower than expected (``heartbeat_interval=2.0``): it adapts, a 2 s timeout does not.
"""

from __future__ import annotations

import asyncio

from workbook.core import ParameterError, derive_seed, run_virtual, stream
from workbook.core.params import check_int, check_number
from workbook.discovery import (HealthCheckConfig, HealthChecker, InMemoryRegistry, Instance, KeepAlive,
                                RegistryConfig, Resolver)
from workbook.failure_detection import sweep

SERVICE = "cart"


class _CountingRegistry(InMemoryRegistry):
    """An in-memory registry that counts the calls a client makes to read the set."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.reads = 0

    async def snapshot(self, service):
        self.reads += 1
        return await super().snapshot(service)

    async def wait_for_change(self, service, revision, timeout):
        self.reads += 1
        return await super().wait_for_change(service, revision, timeout)


def lease_watch_demo(*, ttl: float = 3.0, interval: float = 1.0, crash_at: float = 5.0, leave_at: float = 12.0,
                     duration: float = 20.0, watch_timeout: float = 30.0) -> dict:
    """See the module docstring. Virtual time; returns ``changes`` (time, revision, instance ids
    the client's cache holds after each change), ``client_reads`` (registry calls the
    resolver made), ``poll_reads`` (what polling every ``interval`` would have made),
    ``renewals`` and ``evicted`` (time, instance id)."""
    ttl = check_number("ttl", ttl, minimum=0, min_exclusive=True)
    interval = check_number("interval", interval, minimum=0, min_exclusive=True)
    if not 0 <= crash_at <= leave_at <= duration:
        raise ParameterError("crash_at", crash_at, f"0 <= crash_at <= leave_at ({leave_at}) <= duration ({duration})")

    async def main():
        loop = asyncio.get_running_loop()
        changes = []
        async with _CountingRegistry(RegistryConfig(eviction_interval=0.5)) as reg:
            t0 = loop.time()
            keeps = [await KeepAlive(reg, Instance(SERVICE, f"{SERVICE}-{i}", port=8000 + i, zone=f"zone-{i % 2}",
                                                   version="1.4.2"), ttl, interval=interval).start() for i in range(3)]

            def on_change(snap):
                changes.append((round(loop.time() - t0, 3), snap.revision, [i.instance_id for i in snap.instances]))

            resolver = await Resolver(reg, SERVICE, watch_timeout=watch_timeout, on_change=on_change).start()
            await asyncio.sleep(crash_at)
            await keeps[0].stop(deregister=False)  # crashed: no more heartbeats, no goodbye
            await asyncio.sleep(leave_at - crash_at)
            await keeps[1].stop(deregister=True)   # clean shutdown: deregisters
            await asyncio.sleep(duration - leave_at)
            await resolver.close()
            renewals = sum(k.renewals for k in keeps)
            await keeps[2].stop()
            return {"changes": changes, "client_reads": reg.reads, "poll_reads": int(duration / interval),
                    "renewals": renewals,
                    "evicted": [(round(t - t0, 3), iid) for t, _, iid in reg.evicted]}

    return run_virtual(main())


def health_check_demo(*, interval: float = 1.0, timeout: float = 0.5, unhealthy_threshold: int = 2,
                      healthy_threshold: int = 2, duration: float = 30.0) -> dict:
    """Three hosts probed every ``interval`` s: ``a`` always answers 200; ``b`` answers 503 from
    10 s to 20 s; ``c`` hangs (no answer: the probe times out) from 5 s on. Returns each host's
    ``transitions`` (time, healthy) and probe count (Envoy's semantics: a new host is healthy
    after one success; ``unhealthy_threshold`` consecutive failures mark it unhealthy,
    ``healthy_threshold`` consecutive successes healthy again)."""
    config = HealthCheckConfig(interval=interval, timeout=timeout, unhealthy_threshold=unhealthy_threshold,
                               healthy_threshold=healthy_threshold)
    duration = check_number("duration", duration, minimum=0, min_exclusive=True)

    async def main():
        loop = asyncio.get_running_loop()
        t0 = loop.time()

        async def probe(url, probe_timeout):
            now = loop.time() - t0
            if url.endswith("b:8080/health") and 10.0 <= now < 20.0:
                return 503
            if url.endswith("c:8080/health") and now >= 5.0:
                await asyncio.sleep(3600)  # hangs: the checker's timeout ends the probe
            return 200

        checker = HealthChecker(config, probe=probe)
        for host in "abc":
            checker.add(f"http://{host}:8080/health")
        checker.start()
        await asyncio.sleep(duration)
        await checker.stop()
        return {url.split("//")[1].split(":")[0]: {"transitions": [(round(t - t0, 3), h) for t, h in hh.transitions],
                                                   "probes": hh.probes}
                for url, hh in checker.hosts.items()}

    return run_virtual(main())


def self_preservation_run(self_preservation: bool, *, seed: int = 0, instances: int = 10, cut_off: int | None = None,
                          partition_at: float = 600.0, heal_at: float = 1800.0, crash_at: float = 900.0,
                          duration: float = 2400.0, sample_every: float = 30.0) -> dict:
    """One run (virtual time); see the module docstring.

    ``cut_off`` of the ``instances`` (all by default: the registry is the one cut off)
    lose their connection to the registry from ``partition_at`` to ``heal_at``; the first
    of them crashes for good at ``crash_at``.
    Returns ``times`` and, per sample, ``registered`` (instances the registry lists),
    ``alive`` (instances really running), ``listed_dead`` (listed but crashed),
    ``renewals`` (in the last complete minute), ``threshold`` and ``preserving``
    (self-preservation holding expiry), plus a ``summary``.
    """
    instances = check_int("instances", instances, minimum=1)
    cut_off = check_int("cut_off", instances if cut_off is None else cut_off, minimum=0, maximum=instances)
    for name, value in (("partition_at", partition_at), ("heal_at", heal_at), ("crash_at", crash_at),
                        ("duration", duration)):
        check_number(name, value, minimum=0)
    sample_every = check_number("sample_every", sample_every, minimum=0, min_exclusive=True)
    starts = stream(seed, "ch05", "self_preservation", "starts")
    config = RegistryConfig.eureka(self_preservation=bool(self_preservation))

    async def main():
        out = {k: [] for k in ("times", "registered", "alive", "listed_dead", "renewals", "threshold", "preserving")}
        async with InMemoryRegistry(config) as reg:
            keeps = []
            for i in range(instances):
                await asyncio.sleep(starts.uniform(0, 30.0 / instances))  # staggered starts
                keeps.append(await KeepAlive(reg, Instance(SERVICE, f"{SERVICE}-{i}", port=8000 + i), 90.0,
                                             interval=30.0).start())
            crashed: set[str] = set()
            t0 = asyncio.get_running_loop().time()

            async def script():
                await asyncio.sleep(partition_at - (asyncio.get_running_loop().time() - t0))
                for k in keeps[:cut_off]:
                    k.pause()
                await asyncio.sleep(crash_at - partition_at)
                if cut_off:
                    await keeps[0].stop(deregister=False)  # dies inside the partition: never renews again
                    crashed.add(keeps[0].instance.instance_id)
                await asyncio.sleep(heal_at - crash_at)
                for k in keeps[1:cut_off]:
                    k.resume()
            task = asyncio.ensure_future(script())
            t = 0.0
            while t <= duration:
                listed = {i.instance_id for i in reg.current(SERVICE).instances}
                out["times"].append(round(t, 3))
                out["registered"].append(len(listed))
                out["alive"].append(instances - len(crashed))
                out["listed_dead"].append(len(listed & crashed))
                out["renewals"].append(reg.renewals_in_window())
                out["threshold"].append(reg.renewal_threshold())
                out["preserving"].append(reg.self_preservation_active)
                t += sample_every
                await asyncio.sleep(sample_every)
            await task
            for k in keeps[1:]:
                await k.stop(deregister=False)
        return out

    out = run_virtual(main())
    during = [r for t, r in zip(out["times"], out["registered"]) if partition_at <= t < heal_at]
    gone = next((t for t, r in zip(out["times"], out["registered"]) if r == 0), None)
    out["summary"] = {
        "self_preservation": bool(self_preservation),
        "min_registered_during_partition": min(during) if during else None,
        "service_gone_at": gone,
        "dead_listed_at_heal": next((d for t, d in zip(out["times"], out["listed_dead"]) if t >= heal_at), None),
        "registered_at_end": out["registered"][-1],
        "alive_at_end": out["alive"][-1],
    }
    return out


def self_preservation_comparison(*, seed: int = 0, **kwargs) -> dict:
    """Both runs on the same seed: ``{"with": run, "without": run, "table": [summary, summary]}``."""
    with_sp = self_preservation_run(True, seed=seed, **kwargs)
    without = self_preservation_run(False, seed=seed, **kwargs)
    return {"with": with_sp, "without": without, "table": [with_sp["summary"], without["summary"]]}


def detector_sweep_table(*, seed: int = 0, heartbeat_interval: float = 1.0, heartbeats: int = 3600,
                         jitter: float = 0.05, pause_probability: float = 0.01, pause_mean: float = 1.5,
                         phi_thresholds=(1, 2, 4, 8, 12, 16), timeouts=(1.5, 2, 3, 4, 5, 6, 8),
                         acceptable_pauses=(0.0, 3.0)) -> list[dict]:
    """Rows of ``workbook.failure_detection.sweep`` over one seeded trace (an hour of 1 s heartbeats
    by default). The phi detectors expect 1 s heartbeats (``first_heartbeat_estimate``); pass
    ``heartbeat_interval=2.0`` to see which detectors adapt to a slower sender."""
    trace = dict(count=check_int("heartbeats", heartbeats, minimum=2), interval=heartbeat_interval, jitter=jitter,
                 pause_probability=pause_probability, pause_mean=pause_mean)
    return sweep(derive_seed(seed, "ch05", "detectors"), phi_thresholds=phi_thresholds, timeouts=timeouts,
                 acceptable_pauses=acceptable_pauses, trace_kwargs=trace)
