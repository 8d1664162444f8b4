"""VirtualServices and DestinationRules compiled into one routing decision, with Istio's meaning.

``compile_traffic(resources)`` validates every resource against Istio's CRD schemas (the
``schema`` module) and *refuses* the whole set with a ``MeshConfigError`` naming the file,
the resource and the field path if any of them fails, as the Kubernetes API server
refuses the object before istiod ever sees it: nothing of a refused configuration is
applied. What passes becomes a ``TrafficConfig``, immutable, which a sidecar swaps in one
assignment (configuration takes effect at the next request).

The decision (``TrafficConfig.route``) follows Istio's translation to Envoy routes:

* the VirtualService is chosen by the request's host (``Host`` header, short names and
  FQDNs in the VirtualService's namespace are the same host, ``*`` and ``*.suffix``
  wildcards); with none, traffic goes to the host itself with Istio's default policy;
* ``http`` routes are tried in order and the **first match wins**; a route's ``match``
  blocks are ORed, the conditions inside one block ANDed, a route without ``match``
  matches everything; nothing matching is Envoy's 404 ``NR`` (no route);
* ``uri``: ``exact`` and ``regex`` (a *full* match, as RE2 in Envoy) on the path without
  its query string, ``prefix`` on the path as sent; ``ignoreUriCase``; ``method``,
  ``authority``, ``headers`` (names lower-cased), ``withoutHeaders``, ``queryParams``;
* a route's destinations split traffic by ``weight`` (relative, as Envoy's
  ``weighted_clusters``: a draw in ``[0, total)``); one destination without weight takes all;
* ``retries``: ``attempts`` is the number of *retries* (tries = attempts + 1);
  ``retryOn`` a comma list of Envoy conditions and status codes (unknown ones refused, as
  Istio's webhook does); Istio's defaults when the VirtualService says nothing: 2 retries
  on ``connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes`` with
  503 retriable; ``perTryTimeout``; ``timeout`` (overall, retries included; none by default);
* ``fault``: ``delay`` and ``abort`` each with its own ``percentage`` (independent draws);
* ``headers``: ``request``/``response`` ``set``, ``add`` and ``remove``, at route level and
  at destination level; ``rewrite.uri`` (the matched prefix, or the whole path) and
  ``rewrite.authority``.

What Istio accepts but this sidecar does not execute (mirroring, CORS, delegation, TCP and
TLS routes, port-level settings, locality load balancing...) is listed in
``TrafficConfig.unsupported`` rather than silently dropped; a route with ``redirect`` or
``directResponse`` instead of destinations is refused with that reason.

DestinationRules give each host a ``TrafficPolicy`` (``connectionPool``, ``loadBalancer``,
``outlierDetection``) and subsets (labels plus an optional policy that replaces the
host's policy field by field, as istiod merges them). Each (host, subset) is one Envoy
cluster with its own pool limits and outlier detector.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import parse_qsl

from workbook.mesh.errors import MeshConfigError
from workbook.mesh.resources import MeshResource
from workbook.mesh.schema import IstioSchemas, bundled_schemas, istio_duration, validate_resources

#: Envoy's ``x-envoy-retry-on`` conditions Istio accepts in ``retryOn`` (besides status codes)
RETRY_ON = frozenset({
    "5xx", "gateway-error", "reset", "reset-before-request", "connect-failure", "envoy-ratelimited",
    "retriable-4xx", "refused-stream", "retriable-status-codes", "retriable-headers",
    "http3-post-connect-failure", "cancelled", "deadline-exceeded", "internal", "resource-exhausted",
    "unavailable",
})
#: Istio's retry policy for a route whose VirtualService sets none (pilot ``DefaultPolicy``)
ISTIO_DEFAULT_RETRY_ON = ("connect-failure", "refused-stream", "unavailable", "cancelled", "retriable-status-codes")
UNLIMITED = 2 ** 32 - 1  # Istio's value for a connection pool limit left unset


@dataclass(frozen=True)
class StringMatch:
    """Istio's ``StringMatch``: one of ``exact``, ``prefix``, ``regex`` (full match)."""

    kind: str
    value: str
    ignore_case: bool = False

    def matches(self, text: str | None) -> bool:
        if text is None:
            return False
        value, text_ = (self.value.lower(), text.lower()) if self.ignore_case else (self.value, text)
        if self.kind == "exact":
            return text_ == value
        if self.kind == "prefix":
            return text_.startswith(value)
        return re.fullmatch(self.value, text, re.IGNORECASE if self.ignore_case else 0) is not None


@dataclass(frozen=True)
class HttpMatch:
    """One ``match`` block: every condition present must hold."""

    uri: StringMatch | None = None
    method: StringMatch | None = None
    authority: StringMatch | None = None
    headers: tuple[tuple[str, StringMatch | None], ...] = ()
    without_headers: tuple[tuple[str, StringMatch | None], ...] = ()
    query: tuple[tuple[str, StringMatch | None], ...] = ()

    def matches(self, method: str, path: str, headers: Mapping[str, str]) -> bool:
        bare = path.split("?", 1)[0]
        if self.uri is not None and not self.uri.matches(path if self.uri.kind == "prefix" else bare):
            return False
        if self.method is not None and not self.method.matches(method):
            return False
        if self.authority is not None and not self.authority.matches(headers.get("host")):
            return False
        for name, m in self.headers:
            if name not in headers or (m is not None and not m.matches(headers[name])):
                return False
        for name, m in self.without_headers:
            if name in headers and (m is None or m.matches(headers[name])):
                return False
        if self.query:
            params = dict(parse_qsl(path.partition("?")[2], keep_blank_values=True))
            for name, m in self.query:
                if name not in params or (m is not None and not m.matches(params[name])):
                    return False
        return True


@dataclass(frozen=True)
class HeaderOps:
    """``set`` (replace), ``add`` (append), ``remove``; Envoy removes first, then adds and sets."""

    set: tuple[tuple[str, str], ...] = ()
    add: tuple[tuple[str, str], ...] = ()
    remove: tuple[str, ...] = ()

    def apply(self, headers: dict[str, str]) -> dict[str, str]:
        out = {k.lower(): v for k, v in headers.items() if k.lower() not in self.remove}
        for name, value in self.add:
            out[name] = f"{out[name]},{value}" if name in out else value
        for name, value in self.set:
            out[name] = value
        return out

    def __bool__(self):
        return bool(self.set or self.add or self.remove)


@dataclass(frozen=True)
class Destination:
    host: str
    subset: str | None = None
    port: int | None = None
    weight: int = 100
    request_headers: HeaderOps = HeaderOps()
    response_headers: HeaderOps = HeaderOps()

    @property
    def cluster(self) -> str:
        """Envoy's cluster name for it: ``outbound|port|subset|host``."""
        return f"outbound|{self.port or ''}|{self.subset or ''}|{self.host}"


@dataclass(frozen=True)
class RetrySpec:
    attempts: int = 2
    per_try_timeout: float | None = None
    retry_on: frozenset[str] = frozenset(ISTIO_DEFAULT_RETRY_ON)
    retriable_status: frozenset[int] = frozenset({503})


@dataclass(frozen=True)
class FaultSpec:
    delay: float = 0.0
    delay_percent: float = 0.0
    abort_status: int | None = None
    abort_percent: float = 0.0


@dataclass(frozen=True)
class HttpRoute:
    name: str
    matches: tuple[HttpMatch, ...] = ()
    destinations: tuple[Destination, ...] = ()
    timeout: float | None = None
    retries: RetrySpec = RetrySpec()
    fault: FaultSpec | None = None
    request_headers: HeaderOps = HeaderOps()
    response_headers: HeaderOps = HeaderOps()
    virtual_service: str | None = None
    rewrite_uri: str | None = None
    rewrite_authority: str | None = None

    def matches_request(self, method: str, path: str, headers: Mapping[str, str]) -> bool:
        return self.matching_block(method, path, headers) is not False

    def matching_block(self, method: str, path: str, headers: Mapping[str, str]) -> HttpMatch | None | bool:
        """The first ``match`` block the request meets, None for a route without any, False: no match."""
        if not self.matches:
            return None
        return next((m for m in self.matches if m.matches(method, path, headers)), False)

    def rewritten_path(self, path: str, block: HttpMatch | None) -> str:
        """Istio's ``rewrite.uri``: replaces the matched prefix (prefix match), else the whole path."""
        if self.rewrite_uri is None:
            return path
        if block is not None and block.uri is not None and block.uri.kind == "prefix":
            return self.rewrite_uri + path[len(block.uri.value):]
        bare, sep, query = path.partition("?")
        return self.rewrite_uri + sep + query

    def pick(self, rng) -> Destination:
        """The destination for one request: Envoy's weighted_clusters draw."""
        total = sum(d.weight for d in self.destinations)
        if total <= 0:
            return self.destinations[0]
        draw = rng.randrange(total)
        for d in self.destinations:
            if draw < d.weight:
                return d
            draw -= d.weight
        return self.destinations[-1]  # pragma: no cover


@dataclass(frozen=True)
class ConnectionPoolSettings:
    max_connections: int = UNLIMITED
    max_pending: int = UNLIMITED
    max_requests: int = UNLIMITED
    max_requests_per_connection: int = 0  # 0: unlimited


@dataclass(frozen=True)
class OutlierSettings:
    """Istio's ``outlierDetection`` with Envoy's defaults where Istio leaves them."""

    consecutive_5xx: int = 5
    consecutive_gateway: int = 0  # 0: disabled (Envoy enforces it at 0 % by default)
    interval: float = 10.0
    base_ejection_time: float = 30.0
    max_ejection_percent: float = 10.0
    min_health_percent: float = 0.0
    max_ejection_time: float = 300.0


@dataclass(frozen=True)
class TrafficPolicy:
    connection_pool: ConnectionPoolSettings = ConnectionPoolSettings()
    load_balancer: str = "least_request"  # Istio's default since 1.14
    hash_on: tuple[str, str] | None = None  # ("header", name) | ("source_ip", "") | ("query", name)
    outlier: OutlierSettings | None = None

    def merged(self, override: dict[str, Any]) -> TrafficPolicy:
        """This policy with a subset's fields replacing whole fields (istiod's MergeTrafficPolicy)."""
        base = _policy(override)
        return replace(self, **{k: getattr(base, k) for k in _policy_fields(override)})


@dataclass(frozen=True)
class Subset:
    name: str
    labels: Mapping[str, str]
    policy: TrafficPolicy


@dataclass(frozen=True)
class HostRules:
    host: str
    policy: TrafficPolicy = TrafficPolicy()
    subsets: Mapping[str, Subset] = field(default_factory=dict)
    rule: str | None = None

    def policy_for(self, subset: str | None) -> TrafficPolicy:
        return self.subsets[subset].policy if subset in self.subsets else self.policy


@dataclass(frozen=True)
class RouteDecision:
    """What the configuration says for one request: the route and the destination drawn."""

    route: HttpRoute
    destination: Destination
    path: str = "/"  # after ``rewrite.uri``


def short_host(host: str, namespace: str = "default") -> str:
    """``order-service.default.svc.cluster.local`` -> ``order-service`` (seen from ``namespace``)."""
    host = host.split(":", 1)[0].lower()
    for suffix in (f".{namespace}.svc.cluster.local", f".{namespace}.svc", f".{namespace}"):
        if host.endswith(suffix):
            return host[: -len(suffix)]
    return host


def _host_matches(pattern: str, host: str) -> bool:
    return pattern == "*" or pattern == host or (pattern.startswith("*.") and host.endswith(pattern[1:]))


@dataclass(frozen=True)
class TrafficConfig:
    """VirtualServices and DestinationRules ready to decide; immutable."""

    routes: tuple[tuple[tuple[str, ...], tuple[HttpRoute, ...]], ...] = ()
    hosts: Mapping[str, HostRules] = field(default_factory=dict)
    namespace: str = "default"
    #: fields present in the resources that the sidecar does not execute, as "Kind ns/name: path"
    unsupported: tuple[str, ...] = ()

    def routes_for(self, host: str) -> tuple[HttpRoute, ...]:
        """The http routes of the first VirtualService whose hosts cover ``host`` (exact before wildcard)."""
        host = short_host(host, self.namespace)
        ordered = sorted(self.routes, key=lambda item: 0 if host in item[0] else 1)
        for patterns, routes in ordered:
            if any(_host_matches(p, host) for p in patterns):
                return routes
        return (HttpRoute("default", destinations=(Destination(host),)),)

    def route(self, method: str, path: str, headers: Mapping[str, str], rng) -> RouteDecision | None:
        """The first route matching, with its destination drawn; None: no route (404 NR)."""
        headers = {k.lower(): v for k, v in headers.items()}
        for route in self.routes_for(headers.get("host", "")):
            block = route.matching_block(method, path, headers)
            if block is not False:
                return RouteDecision(route, route.pick(rng), route.rewritten_path(path, block))
        return None

    def rules_for(self, host: str) -> HostRules:
        return self.hosts.get(short_host(host, self.namespace)) or HostRules(short_host(host, self.namespace))

    def with_weights(self, route_name: str, weights: Mapping[str | None, int]) -> TrafficConfig:
        """A copy where the destinations of route ``route_name`` get ``weights`` by subset."""
        found = False
        new_routes = []
        for patterns, routes in self.routes:
            rs = []
            for r in routes:
                if r.name == route_name:
                    found = True
                    r = replace(r, destinations=tuple(replace(d, weight=int(weights.get(d.subset, d.weight)))
                                                      for d in r.destinations))
                rs.append(r)
            new_routes.append((patterns, tuple(rs)))
        if not found:
            raise MeshConfigError("TrafficConfig", f"route {route_name!r}", "the name of an http route",
                                  sorted(r.name for _, rs in self.routes for r in rs))
        return replace(self, routes=tuple(new_routes))


# ---- compiling resources ---------------------------------------------------------------

def compile_traffic(resources: Iterable[MeshResource], *, schemas: IstioSchemas | None = None,
                    namespace: str = "default") -> TrafficConfig:
    """Validate, then compile; the first schema error refuses everything (``MeshConfigError``)."""
    resources = [r for r in resources if r.kind in ("VirtualService", "DestinationRule")]
    report = validate_resources(resources, schemas or bundled_schemas())
    if not report.ok:
        first = report.errors[0]
        raise MeshConfigError(first.source, f"{first.resource}: {first.path}",
                              "a resource Istio's schema accepts (nothing was applied)", first.message)
    for r in resources:
        if r.kind == "VirtualService":
            _webhook_checks(r)
    hosts: dict[str, HostRules] = {}
    for r in resources:
        if r.kind == "DestinationRule":
            spec = r.spec
            policy = _policy(spec.get("trafficPolicy") or {}, r)
            subsets = {}
            for i, s in enumerate(spec.get("subsets") or []):
                subsets[s["name"]] = Subset(s["name"], dict(s.get("labels") or {}),
                                            policy.merged(s.get("trafficPolicy") or {}))
            host = short_host(spec["host"], r.namespace)
            hosts[host] = HostRules(host, policy, subsets, r.ref)
    routes = []
    for r in resources:
        if r.kind == "VirtualService":
            vs_hosts = tuple(short_host(h, r.namespace) for h in r.spec.get("hosts") or ())
            compiled = tuple(_route(h, i, r) for i, h in enumerate(r.spec.get("http") or []))
            routes.append((vs_hosts, compiled))
    return TrafficConfig(tuple(routes), hosts, namespace, tuple(_unsupported(resources)))


_UNSUPPORTED_HTTP = ("mirror", "mirrors", "mirrorPercentage", "mirrorPercent", "corsPolicy", "delegate",
                     "directResponse")
_UNSUPPORTED_POLICY = ("portLevelSettings", "tls", "tunnel", "proxyProtocol")


def _unsupported(resources: list[MeshResource]):
    """Fields accepted by Istio that this sidecar does not act on: said, never silently dropped."""
    for r in resources:
        spec = r.spec
        if r.kind == "VirtualService":
            for key in ("tcp", "tls"):
                if spec.get(key):
                    yield f"{r.ref}: spec.{key}"
            for i, http in enumerate(spec.get("http") or []):
                for key in _UNSUPPORTED_HTTP:
                    if key in http:
                        yield f"{r.ref}: spec.http[{i}].{key}"
        else:
            policies = [("spec.trafficPolicy", spec.get("trafficPolicy") or {})]
            policies += [(f"spec.subsets[{i}].trafficPolicy", s.get("trafficPolicy") or {})
                         for i, s in enumerate(spec.get("subsets") or [])]
            for path, policy in policies:
                for key in _UNSUPPORTED_POLICY:
                    if key in policy:
                        yield f"{r.ref}: {path}.{key}"
                for key in ("localityLbSetting", "warmupDurationSecs", "warmup"):
                    if key in (policy.get("loadBalancer") or {}):
                        yield f"{r.ref}: {path}.loadBalancer.{key}"
                pool = policy.get("connectionPool") or {}
                for group, keys in (("tcp", ("connectTimeout", "tcpKeepalive", "maxConnectionDuration",
                                             "idleTimeout")),
                                    ("http", ("maxRetries", "idleTimeout", "h2UpgradePolicy", "useClientProtocol",
                                              "maxConcurrentStreams"))):
                    for key in keys:
                        if key in (pool.get(group) or {}):
                            yield f"{r.ref}: {path}.connectionPool.{group}.{key}"


def _webhook_checks(r: MeshResource) -> None:
    """What Istio's validating webhook refuses beyond the schema (``pkg/config/validation``)."""
    for i, http in enumerate(r.spec.get("http") or []):
        path = f"spec.http[{i}]"
        retries = http.get("retries") or {}
        if int(retries.get("attempts", 0)) < 0:
            raise _error(r, f"{path}.retries.attempts", "an integer >= 0", retries["attempts"])
        fault = http.get("fault") or {}
        for kind in ("delay", "abort"):
            value = ((fault.get(kind) or {}).get("percentage") or {}).get("value")
            if value is not None and not 0 <= float(value) <= 100:
                raise _error(r, f"{path}.fault.{kind}.percentage.value", "a percentage in [0, 100]", value)
        status = (fault.get("abort") or {}).get("httpStatus")
        if status is not None and not 200 <= int(status) <= 599:
            raise _error(r, f"{path}.fault.abort.httpStatus", "an HTTP status in [200, 599]", status)
        for j, d in enumerate(http.get("route") or []):
            if int(d.get("weight", 0)) < 0:
                raise _error(r, f"{path}.route[{j}].weight", "a weight >= 0", d["weight"])


def _error(r: MeshResource, path: str, expected: str, got=None) -> MeshConfigError:
    return MeshConfigError(r.source, f"{r.ref}: {path}", expected, got)


def _string_match(m: dict, r: MeshResource, path: str, ignore_case=False) -> StringMatch:
    kinds = [k for k in ("exact", "prefix", "regex") if k in m]
    if len(kinds) != 1:
        raise _error(r, path, "exactly one of exact, prefix, regex", m)
    kind = kinds[0]
    if kind == "regex":
        try:
            re.compile(m[kind])
        except re.error as exc:
            raise _error(r, f"{path}.regex", "a valid regular expression", f"{m[kind]} ({exc})") from None
    return StringMatch(kind, str(m[kind]), ignore_case)


def _named_matches(items: dict | None, r, path) -> tuple:
    out = []
    for name, m in (items or {}).items():
        out.append((name.lower(), _string_match(m, r, f"{path}.{name}") if m else None))
    return tuple(out)


def _header_ops(h: dict | None) -> HeaderOps:
    h = h or {}
    return HeaderOps(tuple((k.lower(), str(v)) for k, v in (h.get("set") or {}).items()),
                     tuple((k.lower(), str(v)) for k, v in (h.get("add") or {}).items()),
                     tuple(k.lower() for k in h.get("remove") or ()))


def _percent(block: dict) -> float:
    if "percentage" in block:
        return float(block["percentage"].get("value", 0.0))
    if "percent" in block:  # deprecated integer form
        return float(block["percent"])
    return 100.0  # Istio: no percentage means every request


def _route(http: dict, index: int, r: MeshResource) -> HttpRoute:
    path = f"spec.http[{index}]"
    matches = []
    for j, m in enumerate(http.get("match") or []):
        mp = f"{path}.match[{j}]"
        ic = bool(m.get("ignoreUriCase"))
        matches.append(HttpMatch(
            uri=_string_match(m["uri"], r, f"{mp}.uri", ic) if "uri" in m else None,
            method=_string_match(m["method"], r, f"{mp}.method") if "method" in m else None,
            authority=_string_match(m["authority"], r, f"{mp}.authority") if "authority" in m else None,
            headers=_named_matches(m.get("headers"), r, f"{mp}.headers"),
            without_headers=_named_matches(m.get("withoutHeaders"), r, f"{mp}.withoutHeaders"),
            query=_named_matches(m.get("queryParams"), r, f"{mp}.queryParams")))
    dests = []
    routes = http.get("route") or []
    if not routes:
        raise _error(r, f"{path}.route", "at least one destination (this sidecar executes neither redirect "
                     "nor directResponse)")
    for j, d in enumerate(routes):
        dest = d["destination"]
        weight = d.get("weight", 100 if len(routes) == 1 else 0)
        dests.append(Destination(short_host(dest["host"], r.namespace), dest.get("subset"),
                                 (dest.get("port") or {}).get("number"), int(weight),
                                 _header_ops((d.get("headers") or {}).get("request")),
                                 _header_ops((d.get("headers") or {}).get("response"))))
    retries = RetrySpec()
    if "retries" in http:
        spec = http["retries"] or {}
        on, codes = set(), set()
        conditions = str(spec.get("retryOn", ",".join(ISTIO_DEFAULT_RETRY_ON))).split(",")
        for item in (x.strip() for x in conditions):
            if item.isdigit():
                codes.add(int(item))
                on.add("retriable-status-codes")
            elif item in RETRY_ON:
                on.add(item)
            elif item:
                raise _error(r, f"{path}.retries.retryOn", "Envoy retry conditions (5xx, gateway-error, reset, "
                             "connect-failure, retriable-4xx, ...) or HTTP status codes", item)
        if "retryOn" not in spec:
            codes = {503}
        retries = RetrySpec(int(spec.get("attempts", 2)),
                            istio_duration(spec["perTryTimeout"]) if spec.get("perTryTimeout") else None,
                            frozenset(on), frozenset(codes))
    fault = None
    if http.get("fault"):
        f = http["fault"]
        delay, abort = f.get("delay") or {}, f.get("abort") or {}
        fault = FaultSpec(istio_duration(delay["fixedDelay"]) if delay.get("fixedDelay") else 0.0,
                          _percent(delay) if delay else 0.0,
                          int(abort["httpStatus"]) if "httpStatus" in abort else None,
                          _percent(abort) if abort else 0.0)
    headers = http.get("headers") or {}
    timeout = istio_duration(http["timeout"]) if http.get("timeout") else None
    rewrite = http.get("rewrite") or {}
    return HttpRoute(http.get("name") or f"route-{index}", tuple(matches), tuple(dests), timeout or None, retries,
                     fault, _header_ops(headers.get("request")), _header_ops(headers.get("response")), r.ref,
                     rewrite.get("uri"), rewrite.get("authority"))


_LB = {"ROUND_ROBIN": "round_robin", "LEAST_REQUEST": "least_request", "LEAST_CONN": "least_request",
       "RANDOM": "random", "PASSTHROUGH": "random"}


def _policy_fields(spec: dict) -> list[str]:
    names = {"connectionPool": "connection_pool", "loadBalancer": "load_balancer", "outlierDetection": "outlier"}
    out = [names[k] for k in spec if k in names]
    if "loadBalancer" in spec:
        out.append("hash_on")
    return out


def _policy(spec: dict, r: MeshResource | None = None) -> TrafficPolicy:
    policy = TrafficPolicy()
    pool = spec.get("connectionPool") or {}
    if pool:
        tcp, http = pool.get("tcp") or {}, pool.get("http") or {}
        policy = replace(policy, connection_pool=ConnectionPoolSettings(
            # Istio reads 0 as "unset" (its default, 2^32-1) for the three limits
            int(tcp.get("maxConnections") or UNLIMITED), int(http.get("http1MaxPendingRequests") or UNLIMITED),
            int(http.get("http2MaxRequests") or UNLIMITED), int(http.get("maxRequestsPerConnection", 0))))
    lb = spec.get("loadBalancer") or {}
    if "simple" in lb:
        policy = replace(policy, load_balancer=_LB.get(lb["simple"], "least_request"))
    elif "consistentHash" in lb:
        ch = lb["consistentHash"]
        key = (("header", ch["httpHeaderName"].lower()) if "httpHeaderName" in ch else
               ("query", ch["httpQueryParameterName"]) if "httpQueryParameterName" in ch else ("source_ip", ""))
        policy = replace(policy, load_balancer="maglev" if "maglev" in ch else "ring_hash", hash_on=key)
    od = spec.get("outlierDetection")
    if od is not None:
        five, gateway = od.get("consecutive5xxErrors", 5), od.get("consecutiveGatewayErrors", 0)
        if "consecutiveErrors" in od and "consecutive5xxErrors" not in od:
            # the deprecated field counted 502/503/504 only: istiod set consecutive_gateway_failure
            five, gateway = 0, od["consecutiveErrors"]
        policy = replace(policy, outlier=OutlierSettings(
            int(five), int(gateway),
            istio_duration(od.get("interval", "10s")), istio_duration(od.get("baseEjectionTime", "30s")),
            float(od.get("maxEjectionPercent", 10)), float(od.get("minHealthPercent", 0))))
    return policy
