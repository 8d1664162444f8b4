"""Chapter 6's rate-limit experiments, returning plain data (lists of dicts, dicts of numbers)
for the notebook to print and plot.

* ``crafted_arrivals()`` / ``admissions_over_time(...)``: a fixed timeline (a burst, a
  steady stream above the rate, a burst straddling a window edge, a quiet spell, a last
  burst) run through each algorithm in memory on a ``ManualClock``: exact, the same at
  every run. ``timeline_summary`` counts per algorithm; ``binned`` per time bin; ``panel``
  is what the notebook's rate-limit panel (algorithm, rate, burst) draws.
* ``max_in_any_window(rows, period)``: the most admitted within any ``period`` seconds;
* ``memory_concurrency(n, limit, seed)``: ``n`` concurrent requests in memory under
  ``run_virtual``; the article's fixed window on ``SimulatedStore`` (seeded round-trip
  latencies: the same interleaving at every run) over-admits, the six admit ``limit``;
* ``article_boundary_burst(redis_url)``: the article's fixed window admits twice its limit
  across a window edge; the workbook's six algorithms on the same requests.
* ``article_concurrency(redis_url)``: 1,000 concurrent requests against a limit of 100,
  the article's three limiters against the workbook's six (on Redis, 200 connections).
  The article's counts depend on how the requests interleave (they vary between runs);
  the workbook's are exactly 100 at every run.
* ``fail_modes()``: a Redis of its own, stopped mid-run; fail-open and fail-closed
  limiters answer as configured and count it, the article's admits silently.

The Redis experiments are coroutines (``await`` them at the top level of a cell) and need
a running ``redis-server`` (``workbook.core.external.RedisServer``).
"""

from __future__ import annotations

import asyncio
import logging

from workbook.core.clock import ManualClock
from workbook.core.external import RedisServer
from workbook.core.params import check_int, check_number
from workbook.core.seeds import stream
from workbook.ratelimit import (
    RATE_LIMIT_ALGORITHMS,
    ArticleRateLimiter,
    MemoryRateLimiter,
    RateLimitPolicy,
    RedisRateLimiter,
    ratelimit_headers,
)


def crafted_arrivals() -> list[float]:
    """Arrival times in seconds, for a limit of 10 per second (burst 10):

    * 0.00-0.29: a burst of 30 (three times the limit at once);
    * 0.50-2.45: a steady 20 per second (twice the rate);
    * 2.90-3.09: 20 requests straddling the window edge at 3.0;
    * 3.10-4.99: quiet;
    * 5.00-5.14: a last burst of 15.
    """
    times = [i * 0.01 for i in range(30)]
    times += [0.5 + i * 0.05 for i in range(40)]
    times += [2.9 + i * 0.01 for i in range(20)]
    times += [5.0 + i * 0.01 for i in range(15)]
    return [round(t, 6) for t in times]


def admissions_over_time(algorithm: str, limit: int = 10, period: float = 1.0, burst: int | None = None,
                         arrivals: list[float] | None = None) -> list[dict]:
    """Each arrival's decision: ``{"t", "allowed", "remaining", "retry_after"}``."""
    policy = RateLimitPolicy(algorithm, limit, period, burst)
    clock = ManualClock()
    limiter = MemoryRateLimiter(policy, clock)
    rows = []
    for t in sorted(crafted_arrivals() if arrivals is None else arrivals):
        clock.advance(max(0.0, t - clock.now()))
        d = limiter.hit("client")
        rows.append({"t": t, "allowed": d.allowed, "remaining": d.remaining, "retry_after": round(d.retry_after, 6)})
    return rows


def binned(rows: list[dict], width: float = 0.25) -> list[dict]:
    """Admitted and rejected per time bin of ``width`` seconds (empty bins included)."""
    width = check_number("width", width, minimum=0, min_exclusive=True)
    if not rows:
        return []
    last = int(max(r["t"] for r in rows) / width)
    bins = [{"start": round(i * width, 6), "admitted": 0, "rejected": 0} for i in range(last + 1)]
    for r in rows:
        bins[int(r["t"] / width + 1e-9)]["admitted" if r["allowed"] else "rejected"] += 1
    return bins


def panel(algorithm: str, rate: float, burst: int, width: float = 0.25) -> dict:
    """What the rate-limit panel (algorithm, rate, burst) draws: admitted and rejected per
    bin of ``crafted_arrivals()``, and the totals. A window algorithm admits ``burst`` per
    ``burst / rate`` seconds, so the three knobs mean the same for all six."""
    policy = RateLimitPolicy.from_rate(algorithm, rate, burst)
    rows = admissions_over_time(algorithm, policy.limit, policy.period, policy.burst)
    return {"algorithm": algorithm, "rate": policy.rate, "burst": policy.capacity, "bins": binned(rows, width),
            "admitted": sum(r["allowed"] for r in rows), "rejected": sum(not r["allowed"] for r in rows)}


def timeline_summary(limit: int = 10, period: float = 1.0, burst: int | None = None) -> list[dict]:
    """Per algorithm on ``crafted_arrivals()``: admitted in total, in the first burst, in the
    steady stream, across the edge at 3.0 (2.9-3.1), and in the last burst."""
    phases = {"first burst": (0.0, 0.3), "steady": (0.5, 2.5), "edge 2.9-3.1": (2.9, 3.1), "last burst": (5.0, 5.2)}
    out = []
    for algorithm in RATE_LIMIT_ALGORITHMS:
        b = None if algorithm not in ("token_bucket", "leaky_bucket", "gcra") else burst
        rows = admissions_over_time(algorithm, limit, period, b)
        row = {"algorithm": algorithm, "admitted": sum(r["allowed"] for r in rows), "requests": len(rows)}
        for name, (lo, hi) in phases.items():
            row[name] = sum(r["allowed"] for r in rows if lo <= r["t"] < hi)
        out.append(row)
    return out


async def article_boundary_burst(redis_url: str, limit: int = 10, window: int = 60) -> dict:
    """``limit`` requests 0.1 s before a window edge and ``limit`` 0.1 s after it: admitted by
    the article's fixed window and by each of the workbook's algorithms (same requests)."""
    import redis.asyncio as aioredis

    check_int("limit", limit, minimum=1)
    check_int("window", window, minimum=1)
    client = aioredis.Redis.from_url(redis_url)
    try:
        await client.flushdb()
        edge = 1000 * window
        clock = ManualClock(edge - 0.1)
        article = ArticleRateLimiter(client, clock=clock)
        ours = {a: RedisRateLimiter(client, RateLimitPolicy(a, limit, float(window)), clock=clock, prefix="edge")
                for a in RATE_LIMIT_ALGORITHMS}
        counts = {"article fixed_window": 0, **dict.fromkeys(ours, 0)}
        for _ in range(2):
            for _ in range(limit):
                counts["article fixed_window"] += await article.is_allowed("edge-client", limit, window)
                for a, limiter in ours.items():
                    counts[a] += (await limiter.decide("edge-client")).allowed
            clock.advance(0.2)
        return {"limit": limit, "window": window, "span_seconds": 0.1 + 0.1, "requests": 2 * limit,
                "admitted": counts}
    finally:
        await client.aclose()


async def article_concurrency(redis_url: str, n: int = 1000, limit: int = 100, connections: int = 200) -> dict:
    """``n`` concurrent requests against ``limit``, at one instant (a frozen clock, so only
    atomicity decides): admitted by each of the article's limiters and the workbook's."""
    import redis.asyncio as aioredis

    check_int("n", n, minimum=1)
    check_int("limit", limit, minimum=1)
    check_int("connections", connections, minimum=1)
    pool = aioredis.BlockingConnectionPool.from_url(redis_url, max_connections=connections)
    client = aioredis.Redis(connection_pool=pool)
    try:
        await client.flushdb()
        clock = ManualClock(1_000_000.0)
        article = ArticleRateLimiter(client, clock=clock)
        admitted = {}
        for strategy in ("fixed_window", "sliding_window", "token_bucket"):
            window = 0 if strategy == "token_bucket" else 60  # token bucket: capacity 100, no refill
            got = await asyncio.gather(*(article.is_allowed("conc", limit, window, strategy) for _ in range(n)))
            admitted[f"article {strategy}"] = sum(got)
            await client.flushdb()
        for algorithm in RATE_LIMIT_ALGORITHMS:
            limiter = RedisRateLimiter(client, RateLimitPolicy(algorithm, limit, 60.0), clock=clock, prefix="conc")
            got = await asyncio.gather(*(limiter.decide("conc") for _ in range(n)))
            admitted[algorithm] = sum(d.allowed for d in got)
        return {"requests": n, "limit": limit, "connections": connections, "admitted": admitted}
    finally:
        await client.aclose()


async def fail_modes(requests: int = 5) -> dict:
    """A Redis of its own, stopped after one decision; then ``requests`` more through a
    fail-open limiter, a fail-closed one, and the article's. Returns what each answered,
    its counters, and the warnings each logged: one when the outage begins (then one per
    ``log_interval`` while it lasts), however many requests fail; the article's, none."""
    check_int("requests", requests, minimum=1)
    server = RedisServer().start()
    records: list[logging.LogRecord] = []

    class _Keep(logging.Handler):
        def emit(self, record):
            records.append(record)

    handler = _Keep(logging.WARNING)
    logger = logging.getLogger("workbook.ratelimit")
    logger.addHandler(handler)
    try:
        policy = RateLimitPolicy("token_bucket", 1, 60.0)
        limiters = {mode: RedisRateLimiter.from_url(server.url, policy, on_error=mode, prefix=mode)
                    for mode in ("open", "closed")}
        import redis.asyncio as aioredis
        article_client = aioredis.Redis.from_url(server.url, retry=None, socket_connect_timeout=0.25)
        article = ArticleRateLimiter(article_client, clock=ManualClock(0.0))
        for limiter in limiters.values():
            await limiter.decide("k")
        await article.is_allowed("k", 1, 60)
        server.stop()
        out = {}
        for mode, limiter in limiters.items():
            before = len(records)
            answers = [(await limiter.decide("k")).allowed for _ in range(requests)]
            s = limiter.stats
            out[f"fail {mode}"] = {"admitted": sum(answers), "refused": requests - sum(answers),
                                   "backend_errors": s.backend_errors, "failed_open": s.failed_open,
                                   "failed_closed": s.failed_closed, "warnings_logged": len(records) - before,
                                   "first warning": records[before].getMessage() if len(records) > before else None}
            await limiter.aclose()
        answers = [await article.is_allowed("k", 1, 60) for _ in range(requests)]
        out["article"] = {"admitted": sum(answers), "refused": requests - sum(answers),
                          "backend_errors": "not counted", "warnings_logged": 0,
                          "errors it swallowed (counted here only)": article.silent_failures}
        await article_client.aclose()
        return out
    finally:
        logger.removeHandler(handler)
        server.stop()


class SimulatedStore:
    """Just enough of ``redis.asyncio`` for ``ArticleRateLimiter``'s fixed window (GET, a
    pipeline of INCR + EXPIRE), in memory, each round trip taking a latency drawn from a
    seeded stream: under ``run_virtual`` the interleaving of concurrent requests is the
    same at every run, as on a real Redis it is not."""

    def __init__(self, seed: int = 0, latency=(0.0002, 0.002)):
        self.data: dict[str, int] = {}
        self.rng = stream(seed, "simulated-store")
        self.latency = latency
        self.round_trips = 0

    async def _trip(self):
        self.round_trips += 1
        await asyncio.sleep(self.rng.uniform(*self.latency))

    async def get(self, key):
        await self._trip()
        value = self.data.get(key)
        return None if value is None else str(value).encode()

    def pipeline(self):
        store, ops = self, []

        class _Pipe:
            def incr(self, key):
                ops.append(key)

            def expire(self, key, seconds):
                pass

            async def execute(self):
                await store._trip()
                for key in ops:
                    store.data[key] = store.data.get(key, 0) + 1

        return _Pipe()


async def memory_concurrency(n: int = 1000, limit: int = 100, seed: int = 0) -> dict:
    """``n`` concurrent requests (``asyncio.gather``) against ``limit`` at one instant: the
    workbook's six algorithms in memory (a decision has no ``await`` inside, so nothing
    interleaves) and the article's fixed window on ``SimulatedStore`` (GET, then INCR: two
    round trips with other requests in between). Run it under ``run_virtual``."""
    check_int("n", n, minimum=1)
    check_int("limit", limit, minimum=1)
    clock = ManualClock(1_000_000.0)
    admitted = {}
    store = SimulatedStore(seed)
    article = ArticleRateLimiter(store, clock=clock)
    got = await asyncio.gather(*(article.is_allowed("conc", limit, 60) for _ in range(n)))
    admitted["article fixed_window (GET then INCR)"] = sum(got)
    for algorithm in RATE_LIMIT_ALGORITHMS:
        limiter = MemoryRateLimiter(RateLimitPolicy(algorithm, limit, 60.0), clock)
        got = await asyncio.gather(*(limiter.decide("conc") for _ in range(n)))
        admitted[algorithm] = sum(d.allowed for d in got)
    return {"requests": n, "limit": limit, "admitted": admitted, "article_round_trips": store.round_trips}


def max_in_any_window(rows: list[dict], period: float = 1.0) -> int:
    """The most requests admitted within any ``period`` seconds (a window starting at an
    admitted request's time): what a client actually got, whatever the algorithm promised."""
    admitted = sorted(r["t"] for r in rows if r["allowed"])
    best, j = 0, 0
    for i, t in enumerate(admitted):
        while admitted[j] <= t - period + 1e-9:
            j += 1
        best = max(best, i - j + 1)
    return best


def ratelimit_header_rows(algorithm: str = "fixed_window", limit: int = 5, period: float = 60.0, requests: int = 7,
                start: float = 30.0, step: float = 1.0) -> list[dict]:
    """``requests`` hits ``step`` seconds apart from ``start`` (a ``ManualClock``), and the HTTP
    fields each answer would carry: ``RateLimit-Policy``, ``RateLimit`` and, when refused
    (``429``), ``Retry-After``."""
    check_int("requests", requests, minimum=1)
    policy = RateLimitPolicy(algorithm, limit, period, name=f"{limit}-per-{period:g}s")
    clock = ManualClock(start)
    limiter = MemoryRateLimiter(policy, clock)
    rows = []
    for i in range(requests):
        if i:
            clock.advance(step)
        d = limiter.hit("client")
        h = ratelimit_headers(policy, d)
        rows.append({"t": clock.now(), "status": 200 if d.allowed else 429, "RateLimit-Policy": h["RateLimit-Policy"],
                     "RateLimit": h["RateLimit"], "Retry-After": h.get("Retry-After")})
    return rows


async def live_429(stack) -> dict:
    """One more request to the demo stack's ``limited`` route (5 per minute, fixed window) after
    its quota is spent: the status and its rate-limit fields (the values that depend on the
    wall clock reported as bounds, not as numbers)."""
    import aiohttp

    async with aiohttp.ClientSession() as client, client.get(stack.gateway_url + "/api/limited/x") as r:
        await r.read()
        retry = r.headers.get("Retry-After")
        limit = r.headers.get("RateLimit", "")
        return {"status": r.status, "RateLimit-Policy": r.headers.get("RateLimit-Policy"),
                "RateLimit remaining": limit.split(";r=")[1].split(";")[0] if ";r=" in limit else None,
                "Retry-After within 1..60 s": retry is not None and 1 <= int(retry) <= 60,
                "content type": r.content_type}
