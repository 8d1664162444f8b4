"""Chapter 5's load-balancing experiments: plain data (rows, dicts) for tables and figures.

* ``compare_balancers``: a seeded virtual-time run per algorithm over the same requests
  (the same arrivals, the same work per request: common random numbers), heterogeneous
  instances and one that stalls (a GC pause): p50 / p99 latency and each instance's share.
  A ``CallPolicy`` adds what the caller does about a slow instance: a per-try timeout,
  retries on another instance, and Envoy's outlier ejection.
* ``remap_shares``: the share of keys that move when one backend of N leaves, for Envoy's
  ring hash, a ketama-sized ring and Maglev, against the ideal 1/N.
* ``nginx_passive_health``: the real nginx in front of three demo services; one instance
  is killed (or answers 503, or hangs) and the access log says what nginx's passive
  health checking did: retries on the next server, and how often the dead one was tried.
* ``registry_client_after_kill``: the same crash met by client-side discovery (registry
  leases, a watched resolver feeding the balancer, retry on another backend).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass

from workbook.balancing import Backend, NginxUpstream, make_balancer, parse_access_log
from workbook.balancing.factory import BALANCERS, HASH_BALANCERS
from workbook.core import ParameterError, open_loop, quantile, run_virtual, stream
from workbook.core.params import check_choice, check_int, check_number

#: the algorithms ``compare_balancers`` runs unless told otherwise
DEFAULT_ALGORITHMS = ("round_robin", "random", "naive_least_connections", "least_connections", "least_request",
                      "peak_ewma", "ring_hash", "maglev")


@dataclass(frozen=True)
class InstanceSpec:
    """A simulated instance: mean service time (s), requests it serves at once, weight."""

    name: str
    service_time: float
    concurrency: int = 1
    weight: float = 1

    def __post_init__(self):
        check_number(f"{self.name}.service_time", self.service_time, minimum=0, min_exclusive=True)
        check_int(f"{self.name}.concurrency", self.concurrency, minimum=1)
        check_number(f"{self.name}.weight", self.weight, minimum=0)


@dataclass(frozen=True)
class Stall:
    """``instance`` makes no progress during [start, start + duration): a stop-the-world GC pause."""

    instance: str
    start: float
    duration: float

    def __post_init__(self):
        check_number("stall.start", self.start, minimum=0)
        check_number("stall.duration", self.duration, minimum=0)

    @property
    def end(self) -> float:
        return self.start + self.duration


def default_instances() -> list[InstanceSpec]:
    """Three fast instances (10 ms), two slow ones (30 ms), two requests at a time each:
    733 requests/s of capacity, of which the slow ones have 133."""
    return [InstanceSpec(f"fast-{i}", 0.010, 2) for i in (1, 2, 3)] + [InstanceSpec(f"slow-{i}", 0.030, 2)
                                                                          for i in (1, 2)]


DEFAULT_STALL = Stall("fast-1", 3.0, 0.5)


@dataclass(frozen=True)
class CallPolicy:
    """What the caller does about a slow instance (Envoy's vocabulary and defaults).

    * ``timeout``: per-try timeout in seconds (None: wait as long as it takes). A try that
      times out is abandoned by the caller, but the instance still works on it (it never
      learns that the caller left), so its slot stays busy.
    * ``retries``: further tries after a timeout, each on an instance not tried yet for this
      request (Envoy's ``previous_hosts`` retry predicate). A request whose every try timed
      out has failed.
    * ``consecutive_failures``: outlier detection; an instance whose tries time out this
      many times in a row is ejected (Envoy ``consecutive_gateway_failure``, default 5; a
      timeout is a 504). None: no outlier detection.
    * ``ejection_time``: the k-th ejection of an instance lasts k times this
      (``base_ejection_time``, 30 s); it returns at the first request after that (Envoy
      checks every ``interval``, 10 s).
    * ``max_ejection_percent``: at most this share of the instances is ejected at once,
      but at least one may be (Envoy: 10 %, "at least one host regardless").
    """

    timeout: float | None = None
    retries: int = 0
    consecutive_failures: int | None = None
    ejection_time: float = 30.0
    max_ejection_percent: float = 10.0

    def __post_init__(self):
        if self.timeout is not None:
            check_number("policy.timeout", self.timeout, minimum=0, min_exclusive=True)
        check_int("policy.retries", self.retries, minimum=0, maximum=10)
        if self.retries and self.timeout is None:
            raise ParameterError("policy.retries", self.retries,
                                 "0 unless a timeout is set (a try must end to be retried)")
        if self.consecutive_failures is not None:
            check_int("policy.consecutive_failures", self.consecutive_failures, minimum=1)
            if self.timeout is None:
                raise ParameterError("policy.consecutive_failures", self.consecutive_failures,
                                     "None unless a timeout is set (only a timed-out try counts as a failure)")
        check_number("policy.ejection_time", self.ejection_time, minimum=0, min_exclusive=True)
        check_number("policy.max_ejection_percent", self.max_ejection_percent, minimum=0, maximum=100)

    def describe(self) -> str:
        if self.timeout is None:
            return "no timeout"
        text = f"timeout {self.timeout * 1000:g} ms, {self.retries} retr{'y' if self.retries == 1 else 'ies'}"
        if self.consecutive_failures is not None:
            text += (f", ejection after {self.consecutive_failures} consecutive failures for "
                     f"{self.ejection_time:g} s (max {self.max_ejection_percent:g} %)")
        return text


class _Outliers:
    """Consecutive-failure outlier ejection over a balancer (see ``CallPolicy``)."""

    def __init__(self, policy: CallPolicy, lb, specs: list[InstanceSpec]):
        self.policy, self.lb, self.specs = policy, lb, specs
        self.streak = {s.name: 0 for s in specs}
        self.times = {s.name: 0 for s in specs}
        self.until: dict[str, float] = {}
        self.ejections: list[tuple[float, str]] = []

    def _apply(self):
        self.lb.set_backends([Backend(s.name, 0 if s.name in self.until else s.weight) for s in self.specs])

    def tick(self, now: float) -> None:
        back = [n for n, t in self.until.items() if now >= t]
        for n in back:
            del self.until[n]
        if back:
            self._apply()

    def record(self, name: str, ok: bool, now: float) -> None:
        if self.policy.consecutive_failures is None:
            return
        if ok:
            self.streak[name] = 0
            return
        self.streak[name] += 1
        if self.streak[name] < self.policy.consecutive_failures or name in self.until:
            return
        cap = max(1, int(len(self.specs) * self.policy.max_ejection_percent / 100))
        if len(self.until) >= cap:
            return
        self.streak[name] = 0
        self.times[name] += 1
        self.until[name] = now + self.policy.ejection_time * self.times[name]
        self.ejections.append((round(now, 6), name))
        self._apply()


def _finish_time(now: float, work: float, stall: Stall | None) -> float:
    """When ``work`` seconds of service started at ``now`` end, not counting the stall."""
    if stall is None or stall.duration == 0 or now >= stall.end:
        return now + work
    if now >= stall.start:          # starts inside the pause: waits for its end
        return stall.end + work
    if now + work <= stall.start:   # done before the pause
        return now + work
    return now + work + stall.duration  # interrupted by the pause


class _Instance:
    def __init__(self, spec: InstanceSpec, stall: Stall | None):
        self.spec = spec
        self.stall = stall if stall is not None and stall.instance == spec.name else None
        self.slots = asyncio.Semaphore(spec.concurrency)

    async def serve(self, work: float) -> None:
        loop = asyncio.get_running_loop()
        async with self.slots:
            now = loop.time()
            await asyncio.sleep(_finish_time(now, work * self.spec.service_time, self.stall) - now)


def compare_balancers(seed: int = 0, *, algorithms=DEFAULT_ALGORITHMS, instances: list[InstanceSpec] | None = None,
                      stall: Stall | None = DEFAULT_STALL, rate: float = 300.0, duration: float = 10.0,
                      users: int = 1000, policy: CallPolicy | None = None) -> list[dict]:
    """One row per algorithm: p50 / p99 / max latency (ms), p99 of the requests that arrived
    during the stall, and each instance's share of the requests (``share_<name>``, the
    instance that finally served it).

    With a ``policy`` (see ``CallPolicy``) the row also has ``failed`` (requests whose every
    try timed out; their latency counts up to the last timeout), ``extra_tries_pct``
    (retries as a percentage of requests) and ``ejections``; latencies are from arrival to
    the answer of the try that succeeded.

    Every algorithm sees the same Poisson arrivals (``rate`` per second for ``duration``
    seconds), the same work per request (exponential, mean 1, scaled by the instance's
    ``service_time``) and the same user per request (one of ``users``: the key of the hash
    balancers). Runs in virtual time: nothing waits.
    """
    algorithms = list(algorithms)
    if not algorithms:
        raise ParameterError("algorithms", algorithms, "at least one of " + ", ".join(BALANCERS))
    for i, a in enumerate(algorithms):
        check_choice(f"algorithms[{i}]", a, BALANCERS)
    instances = default_instances() if instances is None else list(instances)
    if not instances or not all(isinstance(s, InstanceSpec) for s in instances):
        raise ParameterError("instances", instances, "a non-empty list of InstanceSpec")
    names = [s.name for s in instances]
    if stall is not None and stall.instance not in names:
        raise ParameterError("stall.instance", stall.instance, "one of " + ", ".join(names))
    rate = check_number("rate", rate, minimum=0, min_exclusive=True)
    duration = check_number("duration", duration, minimum=0, min_exclusive=True)
    users = check_int("users", users, minimum=1)
    if policy is not None and not isinstance(policy, CallPolicy):
        raise ParameterError("policy", policy, "a CallPolicy or None")
    # the work and the user of arrival i, the same for every algorithm
    n_max = int(rate * duration * 2) + 100
    work_rng, user_rng = stream(seed, "work"), stream(seed, "users")
    works = [work_rng.expovariate(1.0) for _ in range(n_max)]
    keys = [f"user-{user_rng.randrange(users)}" for _ in range(n_max)]
    rows = []
    for algorithm in algorithms:
        options = {}
        if algorithm in ("random", "least_request", "peak_ewma"):
            options["rng"] = stream(seed, "balancer", algorithm)
        records, ejections = run_virtual(_one_run(algorithm, options, instances, stall, rate, duration,
                                                  stream(seed, "arrivals"), works, keys, policy))
        row = _row(algorithm, records, names, stall)
        if policy is not None:
            row["failed"] = sum(1 for r in records if not r[4])
            row["extra_tries_pct"] = round(100 * sum(r[3] - 1 for r in records) / len(records), 2)
            row["ejections"] = len(ejections)
        rows.append(row)
    return rows


async def _one_run(algorithm, options, specs, stall, rate, duration, arrivals_rng, works, keys, policy=None):
    sim = {s.name: _Instance(s, stall) for s in specs}
    lb = make_balancer(algorithm, [Backend(s.name, s.weight) for s in specs], **options)
    loop = asyncio.get_running_loop()
    outliers = _Outliers(policy, lb, specs) if policy is not None else None
    abandoned: list[asyncio.Future] = []

    async def send(i):
        if i >= len(works):
            raise ParameterError("rate", rate, "fewer arrivals than twice rate * duration (the run drew more)")
        arrived = loop.time()
        key = keys[i] if algorithm in HASH_BALANCERS else None
        if policy is None or policy.timeout is None:
            with lb.request(key) as backend:
                await sim[backend.name].serve(works[i])
            return arrived, loop.time() - arrived, backend.name, 1, True
        outliers.tick(arrived)
        tried: list[str] = []
        for attempt in range(1 + policy.retries):
            backend = _untried(lb, key, tried)
            if backend is None:
                break
            tried.append(backend.name)
            lb.start(backend)
            began = loop.time()
            task = asyncio.ensure_future(sim[backend.name].serve(works[i]))
            done, _ = await asyncio.wait({task}, timeout=policy.timeout)
            ok = bool(done)
            if not ok:
                abandoned.append(task)  # the instance keeps working on it
            lb.finish(backend, loop.time() - began, failed=not ok)
            outliers.record(backend.name, ok, loop.time())
            if ok:
                return arrived, loop.time() - arrived, backend.name, attempt + 1, True
        return arrived, loop.time() - arrived, tried[-1], len(tried), False

    records = await open_loop(send, rate=rate, duration=duration, rng=arrivals_rng)
    for r in records:
        if isinstance(r, BaseException):
            raise r
    if abandoned:
        await asyncio.gather(*abandoned)
    return records, (outliers.ejections if outliers is not None else [])


def _untried(lb, key, tried: list[str]):
    """The balancer's pick, unless already tried for this request: then pick again (a few
    times), then the first pickable instance not tried. None when every one was tried."""
    if not tried:
        return lb.pick(key)
    for _ in range(4 * len(lb.backends)):
        backend = lb.pick(key)
        if backend.name not in tried:
            return backend
    return next((b for b in lb.backends if b.weight > 0 and b.name not in tried), None)


def _row(algorithm, records, names, stall) -> dict:
    latencies = [r[1] for r in records]
    shares = Counter(r[2] for r in records)
    row = {"algorithm": algorithm, "requests": len(records),
           "p50_ms": round(quantile(latencies, 0.5) * 1000, 2), "p99_ms": round(quantile(latencies, 0.99) * 1000, 2),
           "max_ms": round(max(latencies) * 1000, 2)}
    if stall is not None:
        during = [r[1] for r in records if stall.start <= r[0] < stall.end]
        row["stall_p99_ms"] = round(quantile(during, 0.99) * 1000, 2)
        row["stall_sent_to_stalled"] = sum(1 for r in records
                                           if stall.start <= r[0] < stall.end and r[2] == stall.instance)
    for name in names:
        row[f"share_{name}"] = round(shares[name] / len(records), 4)
    return row


def remap_shares(n: int = 10, *, keys: int = 20_000, leaving: int = 3) -> list[dict]:
    """Share of ``keys`` keys that change backend when backend ``leaving`` of ``n`` leaves.

    ``moved`` is the share that changed, ``owned_by_leaving`` the leaving backend's share
    before (what must move), ``moved_between_others`` the share that moved although its
    backend stayed (pure disruption). Ideal: moved = owned = 1/n, others 0.
    """
    n = check_int("n", n, minimum=2)
    keys = check_int("keys", keys, minimum=1)
    leaving = check_int("leaving", leaving, minimum=0, maximum=n - 1)
    names = [f"b{i}" for i in range(n)]
    gone = names[leaving]
    variants = (("ring_hash (Envoy sizing)", "ring_hash", {}),
                ("ring_hash (ketama, 160 per backend)", "ring_hash", {"hashes_per_backend": 160}),
                ("maglev (M = 65537)", "maglev", {}))
    rows = []
    key_list = [f"user-{i}" for i in range(keys)]
    for label, algorithm, options in variants:
        lb = make_balancer(algorithm, names, **options)
        before = [lb.pick(k).name for k in key_list]
        lb.set_backends([x for x in names if x != gone])
        after = [lb.pick(k).name for k in key_list]
        moved = sum(1 for b, a in zip(before, after) if b != a)
        others = sum(1 for b, a in zip(before, after) if b != a and b != gone)
        rows.append({"balancer": label, "n": n, "ideal": round(1 / n, 4), "moved": round(moved / keys, 4),
                     "owned_by_leaving": round(before.count(gone) / keys, 4),
                     "moved_between_others": round(others / keys, 4)})
    return rows


NGINX_FAULTS = ("kill", "errors", "hang")


async def nginx_passive_health(*, fault: str = "kill", requests: int = 60, interval: float = 0.05,
                               fault_after: int = 10, max_fails: int = 1, fail_timeout: int = 1,
                               read_timeout: float = 0.5, method: str = "least_conn") -> dict:
    """The real nginx in front of three demo services; after ``fault_after`` requests the
    first instance is killed (``kill``), answers 503 (``errors``) or hangs (``hang``).

    ``requests`` GETs are sent one at a time, ``interval`` s apart (bounded: about
    requests * interval seconds, 127.0.0.1 only). Returns the numbers: what clients saw
    (errors, latencies), how many requests nginx retried on another server, and how many
    attempts the faulty instance got after the fault and when (seconds from the fault to the
    end of the client request that made the attempt, from nginx's ``$msec``):
    with passive health checking about one per ``fail_timeout`` (whole seconds, so up to
    ``fail_timeout + 1`` apart); with ``max_fails=0`` (checking off) a share of all requests.
    """
    import aiohttp

    from workbook.core.nginx_server import NginxServer
    from workbook.core.realtime import AppServers
    from workbook.transport.demo_service import FAULTS, make_demo_app

    check_choice("fault", fault, NGINX_FAULTS)
    requests = check_int("requests", requests, minimum=1, maximum=2000)
    interval = check_number("interval", interval, minimum=0, maximum=1)
    fault_after = check_int("fault_after", fault_after, minimum=0, maximum=requests)
    apps = [make_demo_app(f"inventory-{i}", seed=i) for i in range(3)]
    servers = []
    nginx = None
    try:
        for app in apps:
            servers.append(await AppServers.start(app))
        addresses = [s.urls[0].removeprefix("http://") for s in servers]
        upstream = NginxUpstream(tuple(addresses), name="inventory", method=method, max_fails=max_fails,
                                 fail_timeout=fail_timeout, read_timeout=read_timeout, connect_timeout=read_timeout)
        nginx = NginxServer(upstream.render())
        await asyncio.to_thread(nginx.start)
        victim = addresses[0]
        statuses, latencies, fault_at = [], [], None
        timeout = aiohttp.ClientTimeout(total=5 + 3 * read_timeout)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            for i in range(requests):
                if i == fault_after:
                    fault_at = time.time()
                    if fault == "kill":
                        await servers[0].stop()
                    elif fault == "errors":
                        apps[0][FAULTS].update({"error_rate": 1.0, "error_status": 503})
                    else:
                        apps[0][FAULTS].update({"hang": True})
                started = time.monotonic()
                try:
                    async with session.get(f"{nginx.url}/stock/apple") as resp:
                        await resp.read()
                        statuses.append(resp.status)
                except (aiohttp.ClientError, asyncio.TimeoutError):
                    statuses.append(0)
                latencies.append(time.monotonic() - started)
                if interval:
                    await asyncio.sleep(interval)
        log = await _wait_for_log(nginx, requests)
    finally:
        if nginx is not None:
            await asyncio.to_thread(nginx.stop)
        for s in servers:
            await s.stop()
    records = parse_access_log(log)
    after = records[fault_after:]
    victim_times = [round(r.time - fault_at, 3) for r in after for a in r.upstreams if a == victim]
    served = Counter(r.upstreams[-1] for r in after if r.upstreams)
    after_latency = latencies[fault_after:]
    return {
        "fault": fault, "method": method, "max_fails": max_fails, "fail_timeout_s": fail_timeout,
        "requests": requests, "after_fault": len(after_latency), "logged": len(records),
        "client_errors": sum(1 for s in statuses if s != 200),
        "retried": sum(1 for r in after if r.attempts > 1),
        "victim_attempts": len(victim_times),
        "victim_attempt_times_s": victim_times,
        "victim_share_of_attempts": round(len(victim_times) / max(1, sum(r.attempts for r in after)), 3),
        "served_after_fault": {f"inventory-{i}": served.get(a, 0) for i, a in enumerate(addresses)},
        "seconds_after_fault": round(time.time() - fault_at, 2) if fault_at else 0.0,
        "max_latency_after_fault_ms": round(max(after_latency) * 1000, 1) if after_latency else 0.0,
    }


async def _wait_for_log(nginx, lines: int, patience: float = 2.0) -> str:
    """nginx writes a request's log line when the request ends: wait for all of them (bounded)."""
    deadline = time.monotonic() + patience
    text = nginx.read("access.log")
    while len(parse_access_log(text)) < lines and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
        text = nginx.read("access.log")
    return text


async def registry_client_after_kill(*, requests: int = 50, interval: float = 0.05, fault_after: int = 10,
                                     ttl: float = 1.0, clean_shutdown: bool = False,
                                     algorithm: str = "least_connections", attempts: int = 3) -> dict:
    """Client-side discovery facing the same fault as ``nginx_passive_health``'s ``kill``.

    Three demo services register in an in-memory registry with a ``ttl`` lease renewed
    every ``ttl / 3`` s; the client's ``Resolver`` watches the set and feeds a balancer
    (``algorithm``); a failed attempt (refused connection, 5xx) is retried on a backend not
    yet tried, up to ``attempts``, as nginx's ``proxy_next_upstream`` does. After
    ``fault_after`` requests instance 0 dies: its server stops and its heartbeats stop
    (``clean_shutdown``: it deregisters first and exits once the watch has carried that to
    the client, as a graceful shutdown with a drain period does). Until the lease expires the
    client still tries it (each try retried elsewhere); once the watch delivers the new set,
    never again, where nginx keeps probing a dead server once per ``fail_timeout``.
    Real time on 127.0.0.1, about ``requests * interval`` s.
    """
    import aiohttp

    from workbook.core.realtime import AppServers
    from workbook.discovery import InMemoryRegistry, Instance, KeepAlive, RegistryConfig, Resolver
    from workbook.transport.demo_service import make_demo_app

    requests = check_int("requests", requests, minimum=1, maximum=2000)
    interval = check_number("interval", interval, minimum=0, maximum=1)
    fault_after = check_int("fault_after", fault_after, minimum=0, maximum=requests)
    attempts = check_int("attempts", attempts, minimum=1, maximum=10)
    check_choice("algorithm", algorithm, BALANCERS)
    if algorithm in HASH_BALANCERS:
        raise ParameterError("algorithm", algorithm, "a balancer that needs no key (not ring_hash or maglev)")
    lb = make_balancer(algorithm)
    removed_at: list[float] = []
    fault_at: float | None = None

    def on_change(snap):
        lb.set_backends([Backend(i.instance_id, i.weight, f"http://{i.host}:{i.port}") for i in snap.instances])
        if fault_at is not None and not removed_at and "inventory-0" not in {i.instance_id for i in snap.instances}:
            removed_at.append(time.monotonic() - fault_at)

    servers, keepalives = [], []
    registry = await InMemoryRegistry(RegistryConfig(eviction_interval=0.1)).start()
    resolver = None
    log: list[tuple[float | None, str, bool]] = []
    statuses = []
    try:
        for i in range(3):
            servers.append(await AppServers.start(make_demo_app(f"inventory-{i}", seed=i)))
            port = int(servers[-1].urls[0].rsplit(":", 1)[1])
            keepalives.append(await KeepAlive(registry, Instance("inventory", f"inventory-{i}", "127.0.0.1", port),
                                              ttl, interval=ttl / 3).start())
        resolver = await Resolver(registry, "inventory", watch_timeout=5.0, on_change=on_change).start()
        timeout = aiohttp.ClientTimeout(total=5)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            for n in range(requests):
                if n == fault_after:
                    fault_at = time.monotonic()
                    await keepalives[0].stop(deregister=clean_shutdown)
                    if clean_shutdown:  # drain: exit only once the clients' caches dropped it (bounded)
                        await resolver.wait_until(
                            lambda snap: "inventory-0" not in {i.instance_id for i in snap.instances}, 2.0)
                    await servers[0].stop()
                tried: set[str] = set()
                status = 0
                for _ in range(attempts):
                    backend = lb.pick()
                    for _ in range(4 * len(lb.backends)):  # a backend not tried yet, if any
                        if backend.name not in tried:
                            break
                        backend = lb.pick()
                    tried.add(backend.name)
                    lb.start(backend)
                    started, ok = time.monotonic(), False
                    try:
                        async with session.get(f"{backend.address}/stock/apple") as resp:
                            await resp.read()
                            status, ok = resp.status, resp.status < 500
                    except (aiohttp.ClientError, asyncio.TimeoutError):
                        status = 0
                    finally:
                        lb.finish(backend, time.monotonic() - started, failed=not ok)
                    log.append((None if fault_at is None else round(time.monotonic() - fault_at, 3), backend.name, ok))
                    if ok:
                        break
                statuses.append(status)
                if interval:
                    await asyncio.sleep(interval)
    finally:
        if resolver is not None:
            await resolver.close()
        for k in keepalives[1:] if fault_at is not None else keepalives:
            await k.stop(deregister=False)
        for s in servers:
            await s.stop()
        await registry.close()
    after = [entry for entry in log if entry[0] is not None]
    victim = [t for t, name, _ in after if name == "inventory-0"]
    return {
        "clean_shutdown": clean_shutdown, "algorithm": algorithm, "ttl_s": ttl, "requests": requests,
        "client_errors": sum(1 for s in statuses if not 200 <= s < 500),
        "retried": sum(1 for t, _, ok in after if not ok),
        "victim_attempts": len(victim), "victim_attempt_times_s": victim,
        "removed_after_s": round(removed_at[0], 3) if removed_at else None,
        "victim_attempts_after_removal": sum(1 for t in victim if removed_at and t > removed_at[0]),
    }
