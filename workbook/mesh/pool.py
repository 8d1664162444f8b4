"""A connection pool with Envoy's circuit-breaking limits, for HTTP/1.1 (one request per connection at a time).

Istio's ``connectionPool`` becomes Envoy's cluster circuit breakers (Envoy documentation,
"Circuit breaking", ``intro/arch_overview/upstream/circuit_breaking``): ``tcp.maxConnections``
(connections to all hosts of the cluster), ``http.http1MaxPendingRequests`` (requests
waiting for a connection), ``http.http2MaxRequests`` (requests in flight) and
``http.maxRequestsPerConnection`` (a connection is closed after that many; 0: never).
A request that finds no idle connection to its host opens one if the cluster is under
``maxConnections`` (closing an idle connection to another host if that is what stands in
the way), and otherwise waits in the pending queue. A request that finds the queue full,
or ``max_requests`` in flight, is refused at once: ``PoolOverflow``, which the sidecar
answers with Envoy's local reply, a 503 with response flag ``UO`` ("upstream overflow"),
never retried (``wouldRetryFromReset`` returns NoRetry for Overflow) and never counted by
outlier detection.

The pool counts *logical* connections: over the simulated network they are the only ones;
in the real sidecar they are the circuit breaker's accounting beside aiohttp's own pool.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass

from workbook.mesh.errors import MeshError
from workbook.mesh.routing import ConnectionPoolSettings


class PoolOverflow(MeshError):
    """A circuit breaker of the pool is open: ``limit`` says which (``pending`` or ``requests``)."""

    def __init__(self, limit: str, detail: str):
        self.limit = limit
        super().__init__(f"upstream overflow ({limit}): {detail}")


@dataclass(eq=False)
class Connection:
    host: str
    number: int
    served: int = 0


class ConnectionPool:
    """The connections of one cluster; ``stats`` counts what Envoy's ``upstream_cx_*`` / ``rq_*`` do."""

    def __init__(self, settings: ConnectionPoolSettings | None = None):
        self.settings = settings or ConnectionPoolSettings()
        self.open: int = 0
        self.active: int = 0
        self.idle: dict[str, list[Connection]] = {}
        self.pending: deque[tuple[str, asyncio.Future]] = deque()
        self.stats = {"cx_opened": 0, "cx_closed": 0, "rq_total": 0, "rq_pending_total": 0,
                      "overflow_pending": 0, "overflow_requests": 0, "pending_max": 0}

    def _open(self, host: str) -> Connection:
        self.open += 1
        self.stats["cx_opened"] += 1
        return Connection(host, self.stats["cx_opened"])

    def _close(self, conn: Connection) -> None:
        self.open -= 1
        self.stats["cx_closed"] += 1

    def _grant(self, host: str) -> Connection | None:
        idle = self.idle.get(host)
        if idle:
            return idle.pop()
        if self.open < self.settings.max_connections:
            return self._open(host)
        for other in self.idle.values():  # a free slot held by an idle connection elsewhere
            if other:
                self._close(other.pop())
                return self._open(host)
        return None

    async def acquire(self, host: str) -> Connection:
        """A connection to ``host``, at once or after waiting; ``PoolOverflow`` if a limit refuses."""
        s = self.settings
        if self.active >= s.max_requests:
            self.stats["overflow_requests"] += 1
            raise PoolOverflow("requests", f"{self.active} requests in flight, http2MaxRequests = {s.max_requests}")
        conn = self._grant(host) if not self.pending else None
        if conn is None:
            if len(self.pending) >= s.max_pending:
                self.stats["overflow_pending"] += 1
                raise PoolOverflow("pending", f"{len(self.pending)} requests pending, "
                                              f"http1MaxPendingRequests = {s.max_pending}")
            future = asyncio.get_running_loop().create_future()
            entry = (host, future)
            self.pending.append(entry)
            self.stats["rq_pending_total"] += 1
            self.stats["pending_max"] = max(self.stats["pending_max"], len(self.pending))
            try:
                conn = await future
            except asyncio.CancelledError:
                if entry in self.pending:
                    self.pending.remove(entry)
                elif future.done() and not future.cancelled():
                    self._put_back(future.result(), reusable=True)
                raise
        self.active += 1
        self.stats["rq_total"] += 1
        return conn

    def release(self, conn: Connection, *, reusable: bool = True) -> None:
        """The request on ``conn`` is over; a failed connection (reset, refused) is closed."""
        self.active -= 1
        conn.served += 1
        self._put_back(conn, reusable=reusable)

    def _put_back(self, conn: Connection, *, reusable: bool) -> None:
        limit = self.settings.max_requests_per_connection
        if not reusable or (limit and conn.served >= limit):
            self._close(conn)
        else:
            self.idle.setdefault(conn.host, []).append(conn)
        while self.pending:
            host, future = self.pending[0]
            granted = self._grant(host)
            if granted is None:
                break
            self.pending.popleft()
            future.set_result(granted)

    def configure(self, settings: ConnectionPoolSettings) -> None:
        """New limits (a DestinationRule changed): they apply to the next request."""
        self.settings = settings
