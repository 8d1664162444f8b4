"""The sidecar: one request through a ``TrafficConfig`` with Envoy's router, pools and outlier detection.

``Sidecar.handle(request)`` is the whole decision and its execution, written once; the
*transport* is what changes: ``simnet_transport(net, name)`` sends over the simulated
network (virtual time), ``http_transport(session)`` over real HTTP (``workbook.mesh.proxy``
puts the same ``Sidecar`` behind an aiohttp server). The steps, in Envoy's order:

1. **route** (``TrafficConfig.route``): first match wins; none is a local 404 ``NR``;
2. request **headers** (destination-level ops, then route-level ones, so the route wins,
   as Envoy's default ``most_specific_header_mutations_wins: false``), then ``rewrite``;
3. **fault** filter: a delay (``DI``) with its own draw, then an abort (``FI``): an aborted
   request is answered here, never forwarded and never retried;
4. the **cluster** (host, subset): a subset no DestinationRule defines is a 503 ``NC``;
   no endpoint, or all ejected, a 503 ``UH`` ("no healthy upstream");
5. the **router**, under the route ``timeout`` (overall, retries included: 504 ``UT``, never
   retried): per try, a host from the load balancer among the non-ejected ones, avoiding
   hosts already tried (Istio's ``previous_hosts`` predicate, up to 5 re-picks); a
   connection from the pool (``PoolOverflow``: 503 ``UO``, not retried); the
   ``perTryTimeout`` starts once the connection is there (Envoy arms it in ``onPoolReady``);
   the outcome goes to the outlier detector (connect failure and reset as 503, per-try
   timeout as 504) and the balancer; a retry follows if ``retryOn`` covers it (Envoy's
   ``source/common/router/retry_state_impl.cc`` and its router filter documentation,
   ``x-envoy-retry-on``: ``5xx`` = any 5xx response, connect failure, reset or per-try
   timeout; ``gateway-error`` = 502/503/504 and the same local failures; ``reset`` = any
   reset, connect failures and per-try timeouts included; ``connect-failure`` = connect
   failures only; ``retriable-4xx`` = 409; ``retriable-status-codes`` = the listed codes;
   gRPC conditions on the ``grpc-status`` header) after Envoy's default backoff: fully
   jittered, uniform in ``[0, min((2^n - 1) * 25 ms, 250 ms))`` before retry n. When the
   tries run out, the last answer goes back (flag ``URX`` if it was still retriable);
6. response **headers**.

Every request leaves a ``RequestRecord`` (route, subset, host, tries, status, Envoy's
response flags, latency). ``apply`` swaps the configuration in one assignment: requests
that start afterwards see it; a configuration that fails validation is refused and the
old one stays. ``inbound="app"`` makes the sidecar an inbound one (Envoy's inbound
listener): every request goes to the endpoints of service ``app``, without retries.
``handle`` never raises: a bad request is a 400, a bug a 500 with its
reason, so a sidecar never crashes on its input.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field

from workbook.balancing import Backend, NoBackendAvailable, make_balancer
from workbook.core.clock import Clock, LoopClock
from workbook.core.seeds import stream
from workbook.core.simnet import Request, Response, SimNetwork
from workbook.mesh.analysis import labels_match
from workbook.mesh.outlier import OutlierDetector
from workbook.mesh.pool import ConnectionPool, PoolOverflow
from workbook.mesh.resources import MeshResource
from workbook.mesh.routing import (Destination, HttpRoute, RetrySpec, RouteDecision, TrafficConfig, TrafficPolicy,
                                   compile_traffic)

Transport = Callable[["Endpoint", Request], Awaitable[Response]]

ENVOY_BACKOFF_BASE = 0.025
ENVOY_BACKOFF_MAX = 0.25
PREVIOUS_HOSTS_ATTEMPTS = 5
_GRPC = {"cancelled": "1", "deadline-exceeded": "4", "resource-exhausted": "8", "internal": "13", "unavailable": "14"}
_TOKEN = set("!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")


@dataclass(frozen=True)
class Endpoint:
    """One instance of a service: ``name`` (unique), its ``service``, pod ``labels``, ``address``."""

    name: str
    service: str
    labels: Mapping[str, str] = field(default_factory=dict)
    address: str | None = None


@dataclass
class RequestRecord:
    start: float
    end: float
    method: str
    path: str
    route: str | None
    subset: str | None
    host: str | None
    tries: int
    status: int
    flags: str

    @property
    def latency(self) -> float:
        return self.end - self.start


def should_retry(retry_on: frozenset[str], retriable_status: frozenset[int], *, status: int | None = None,
                 failure: str | None = None, grpc_status: str | None = None) -> bool:
    """Envoy's decision for one outcome: a response ``status`` or a local ``failure``
    (``connect-failure``, ``reset``, ``per-try-timeout``; an overflow is never retried)."""
    if failure is not None:
        if failure == "overflow":
            return False
        if retry_on & {"5xx", "gateway-error", "reset"}:
            return True
        return failure == "connect-failure" and "connect-failure" in retry_on
    if "5xx" in retry_on and 500 <= status <= 599:
        return True
    if "gateway-error" in retry_on and status in (502, 503, 504):
        return True
    if "retriable-4xx" in retry_on and status == 409:
        return True
    if "retriable-status-codes" in retry_on and status in retriable_status:
        return True
    return grpc_status is not None and any(c in retry_on and grpc_status == code for c, code in _GRPC.items())


class _Cluster:
    """One Envoy cluster: its endpoints, balancer, pool and outlier detector."""

    def __init__(self, name: str, policy: TrafficPolicy, endpoints: list[Endpoint], rng, clock: Clock):
        self.name, self.clock, self.rng = name, clock, rng
        self.pool = ConnectionPool(policy.connection_pool)
        self.policy: TrafficPolicy | None = None
        self.detector: OutlierDetector | None = None
        self.endpoints: list[Endpoint] = []
        self.balancer = None
        self._offered: tuple[str, ...] | None = None
        self.configure(policy, endpoints)

    def configure(self, policy: TrafficPolicy, endpoints: list[Endpoint]) -> None:
        names = [e.name for e in endpoints]
        if policy != self.policy:
            self.pool.configure(policy.connection_pool)
            if policy.outlier is None:
                self.detector = None
            elif self.detector is None or self.detector.settings != policy.outlier:
                old = self.detector
                self.detector = OutlierDetector(policy.outlier, names, start=self.clock.now())
                if old is not None:
                    self.detector.monitors.update({n: m for n, m in old.monitors.items() if n in names})
                    self.detector.events = old.events
            if self.policy is None or policy.load_balancer != self.policy.load_balancer:
                options = {"rng": self.rng} if policy.load_balancer in ("random", "least_request") else {}
                self.balancer = make_balancer(policy.load_balancer, [], clock=self.clock, **options)
                self._offered = None
            self.policy = policy
        if list(endpoints) != self.endpoints:  # a new address under an old name counts as a change
            self.endpoints = list(endpoints)
            if self.detector is not None:
                self.detector.set_hosts(names)
        self._by_name = {e.name: e for e in self.endpoints}

    def available(self) -> list[str]:
        names = [e.name for e in self.endpoints]
        return self.detector.available(names, self.clock.now()) if self.detector else names

    def pick(self, key, avoid: set[str]) -> Endpoint | None:
        offered = tuple(self.available())
        if not offered:
            return None
        if offered != self._offered:
            self.balancer.set_backends([Backend(n) for n in offered])
            self._offered = offered
        choice = None
        for _ in range(PREVIOUS_HOSTS_ATTEMPTS + 1):
            try:
                choice = self.balancer.pick(key).name
            except NoBackendAvailable:
                return None
            if choice not in avoid:
                break
        return self._by_name[choice]


class Sidecar:
    """Envoy's outbound path for one workload, over any transport (see the module docstring)."""

    def __init__(self, name: str, endpoints: Iterable[Endpoint], transport: Transport, *,
                 config: TrafficConfig | Iterable[MeshResource] | None = None, clock: Clock | None = None,
                 seed: int = 0, keep_records: bool = True, inbound: str | None = None):
        self.name = name
        self.inbound = inbound
        self.transport = transport
        self.clock = clock or LoopClock()
        self.seed = seed
        self.config = TrafficConfig()
        self.endpoints: list[Endpoint] = list(endpoints)
        self.clusters: dict[str, _Cluster] = {}
        self.records: list[RequestRecord] = []
        self.keep_records = keep_records
        self.applied: list[tuple[float, str]] = []
        self._route_rng, self._fault_rng = stream(seed, name, "route"), stream(seed, name, "fault")
        self._retry_rng, self._lb_rng = stream(seed, name, "backoff"), stream(seed, name, "balancer")
        if config is not None:
            self.apply(config)

    # ---- configuration ------------------------------------------------------------------
    def apply(self, config: TrafficConfig | Iterable[MeshResource], *, note: str = "") -> TrafficConfig:
        """Compile (validating) and swap in; a refused configuration raises and changes nothing."""
        compiled = config if isinstance(config, TrafficConfig) else compile_traffic(config)
        self.config = compiled
        self.applied.append((self.clock.now(), note or "applied"))
        return compiled

    def set_endpoints(self, endpoints: Iterable[Endpoint]) -> None:
        self.endpoints = list(endpoints)

    # ---- the request path -----------------------------------------------------------------
    async def handle(self, request: Request) -> Response:
        start = self.clock.now()
        record = RequestRecord(start, start, str(request.method), str(request.path), None, None, None, 0, 0, "")
        try:
            response = await self._handle(request, record)
        except Exception as exc:  # never crash on a request: say what went wrong
            response = self._local(500, "sidecar error: " + f"{type(exc).__name__}: {exc}", record, "-")
        record.end, record.status = self.clock.now(), response.status
        if self.keep_records:
            self.records.append(record)
        return response

    def _local(self, status: int, text: str, record: RequestRecord, flag: str) -> Response:
        record.flags = ",".join(f for f in (record.flags, flag) if f and f != "-") or record.flags
        return Response(status, text, {"content-type": "text/plain", "server": "envoy"})

    async def _handle(self, request: Request, record: RequestRecord) -> Response:
        method, path = request.method, request.path
        if not isinstance(method, str) or not method or not set(method) <= _TOKEN:
            return self._local(400, f"bad request: method {method!r} is not an HTTP token", record, "")
        if not isinstance(path, str) or not path.startswith("/") or any(c in path for c in " \r\n\x00"):
            return self._local(400, f"bad request: path {path!r} must start with '/' and hold no spaces", record, "")
        headers = {str(k).lower(): str(v) for k, v in (request.headers or {}).items()}
        config = self.config  # one snapshot for the whole request
        if self.inbound is not None:  # Envoy's inbound listener: everything to the local app, no retries
            dest = Destination(self.inbound)
            inbound = HttpRoute("inbound", destinations=(dest,), retries=RetrySpec(attempts=0))
            decision = RouteDecision(inbound, dest, path)
        else:
            decision = config.route(method, path, headers, self._route_rng)
        if decision is None:
            return self._local(404, f"no route for {headers.get('host', '')}{path}", record, "NR")
        route, dest = decision.route, decision.destination
        record.route, record.subset = route.name, dest.subset
        headers = route.request_headers.apply(dest.request_headers.apply(headers))
        if route.rewrite_authority:
            headers["host"] = route.rewrite_authority
        if route.fault is not None:
            f = route.fault
            if f.delay_percent and self._fault_rng.random() * 100 < f.delay_percent:
                record.flags = "DI"
                await self.clock.sleep(f.delay)
            if f.abort_status is not None and f.abort_percent and self._fault_rng.random() * 100 < f.abort_percent:
                return self._local(f.abort_status, "fault filter abort", record, "FI")
        rules = config.rules_for(dest.host)
        if dest.subset is not None and dest.subset not in rules.subsets:
            return self._local(503, f"no cluster: subset {dest.subset!r} of {dest.host} is in no DestinationRule",
                               record, "NC")
        cluster = self._cluster(dest, rules.policy_for(dest.subset),
                                rules.subsets[dest.subset].labels if dest.subset else {})
        forwarded = Request(method, decision.path, headers, request.body, request.source)
        try:
            if route.timeout:
                response = await asyncio.wait_for(self._route(route, cluster, forwarded, record), route.timeout)
            else:
                response = await self._route(route, cluster, forwarded, record)
        except TimeoutError:
            return self._local(504, "upstream request timeout", record, "UT")
        out = dict(response.headers or {})
        out = route.response_headers.apply(dest.response_headers.apply(out))
        return Response(response.status, response.body, out)

    def _cluster(self, dest: Destination, policy: TrafficPolicy, labels: Mapping[str, str]) -> _Cluster:
        endpoints = [e for e in self.endpoints if e.service == dest.host and labels_match(labels, e.labels)]
        cluster = self.clusters.get(dest.cluster)
        if cluster is None:
            cluster = self.clusters[dest.cluster] = _Cluster(dest.cluster, policy, endpoints, self._lb_rng, self.clock)
        else:
            cluster.configure(policy, endpoints)
        return cluster

    def _hash_key(self, policy: TrafficPolicy, request: Request) -> str | None:
        if policy.hash_on is None:
            return None
        kind, name = policy.hash_on
        if kind == "header":
            return request.headers.get(name, "")
        if kind == "query":
            from urllib.parse import parse_qs
            return (parse_qs(request.path.partition("?")[2]).get(name) or [""])[0]
        return request.source or ""

    async def _route(self, route: HttpRoute, cluster: _Cluster, request: Request, record: RequestRecord) -> Response:
        spec = route.retries
        tried: set[str] = set()
        key = self._hash_key(cluster.policy, request)
        for attempt in range(spec.attempts + 1):
            if attempt:
                cap = min((2 ** attempt - 1) * ENVOY_BACKOFF_BASE, ENVOY_BACKOFF_MAX)
                await self.clock.sleep(self._retry_rng.uniform(0, cap))
            endpoint = cluster.pick(key, tried)
            if endpoint is None:
                return self._local(503, "no healthy upstream", record, "UH")
            tried.add(endpoint.name)
            record.host, record.tries = endpoint.name, attempt + 1
            last = attempt == spec.attempts
            try:
                conn = await cluster.pool.acquire(endpoint.name)
            except PoolOverflow as exc:
                return self._local(503, f"upstream connect error or disconnect/reset before headers. "
                                        f"reset reason: overflow ({exc.limit})", record, "UO")
            cluster.balancer.start(endpoint.name)
            began = self.clock.now()
            failure, response, reusable = None, None, True
            try:
                send = self.transport(endpoint, Request(request.method, request.path, dict(request.headers),
                                                        request.body, self.name))
                response = await (asyncio.wait_for(send, spec.per_try_timeout) if spec.per_try_timeout else send)
            except TimeoutError:
                failure, reusable = "per-try-timeout", False
            except asyncio.CancelledError:  # the route timeout fired: Envoy reports it as a timeout (504)
                if cluster.detector is not None:
                    cluster.detector.record(endpoint.name, 504, self.clock.now())
                reusable = False
                raise
            except ConnectionResetError:
                failure, reusable = "reset", False
            except (ConnectionError, OSError):
                failure, reusable = "connect-failure", False
            finally:
                cluster.pool.release(conn, reusable=reusable)
                if cluster.balancer.inflight(endpoint.name):
                    failed = failure is not None or (response is not None and response.status >= 500)
                    cluster.balancer.finish(endpoint.name, self.clock.now() - began, failed=failed)
            status = response.status if response is not None else (504 if failure == "per-try-timeout" else 503)
            if cluster.detector is not None:
                cluster.detector.record(endpoint.name, status, self.clock.now())
            grpc = (response.headers or {}).get("grpc-status") if response is not None else None
            retriable = should_retry(spec.retry_on, spec.retriable_status, status=None if failure else status,
                                     failure=failure, grpc_status=grpc)
            if retriable and not last:
                continue
            urx = ",URX" if retriable and spec.attempts else ""  # the retry limit was what stopped it
            if failure == "per-try-timeout":
                return self._local(504, "upstream request timeout", record, "UT" + urx)
            if failure == "connect-failure":
                return self._local(503, "upstream connect error or disconnect/reset before headers. "
                                        "reset reason: connection failure", record, "UF" + urx)
            if failure == "reset":
                return self._local(503, "upstream connect error or disconnect/reset before headers. "
                                        "reset reason: connection termination", record, "UC" + urx)
            if urx:
                record.flags = ",".join(f for f in (record.flags, "URX") if f)
            return response
        raise AssertionError("unreachable")  # pragma: no cover


def simnet_transport(net: SimNetwork, source: str) -> Transport:
    """Send to ``endpoint.address`` (or its name) over a ``SimNetwork`` from node ``source``."""

    async def send(endpoint: Endpoint, request: Request) -> Response:
        return await net.call(source, endpoint.address or endpoint.name, request)

    return send
