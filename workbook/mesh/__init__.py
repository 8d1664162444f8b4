"""The service mesh of chapter 7: Istio configuration as data, checked and executed.

* ``resources``: Istio resources read from YAML files, each remembering file and line;
* ``schema``: validation against Istio's own CRD schemas as strictly as
  ``kubectl --validate=strict`` (unknown fields, deprecated fields, CEL rules);
* ``analysis``: the semantic checks of ``istioctl analyze`` (missing hosts, subsets,
  gateways, selectors; route weights) against a cluster ``Inventory``;
* ``authz``: AuthorizationPolicy evaluated with Istio's semantics (CUSTOM, DENY, ALLOW);
* ``enforce``: the same decision on live aiohttp traffic, identity from the certificate;
* ``mtls``: a mesh certificate authority, SPIFFE workload certificates, TLS 1.3 contexts
  verified on both sides, certificate rotation, and PeerAuthentication modes
  (STRICT, PERMISSIVE, DISABLE) on a listener that detects TLS by its first byte;
* ``routing``: VirtualServices and DestinationRules compiled (after validation) into one
  routing decision with Istio's semantics (matches, weights, retries, timeouts, faults,
  headers, traffic policies);
* ``outlier``: Envoy's outlier detection (consecutive 5xx / gateway errors, interval,
  ejection backoff, max ejection percent, panic threshold);
* ``pool``: Envoy's connection-pool circuit breakers (overflow is a 503 ``UO``);
* ``sidecar``: the one request path (route, fault, cluster, retries under the route
  timeout) over any transport, with ``simnet_transport`` for virtual time;
* ``proxy``: the same sidecar as a real aiohttp proxy (``sidecar_app``, ``http_transport``);
* ``canary``: a progressive canary analysed and promoted or rolled back as Flagger does.
"""

from workbook.mesh.canary import AnalysisResult, CanaryAnalysis, CanaryRun, analyse_window, run_canary
from workbook.mesh.analysis import Inventory, Service, Workload, analyze, labels_match, load_inventory
from workbook.mesh.authz import (
    AuthzDecision,
    AuthzPolicy,
    AuthzRequest,
    evaluate_authorization,
    istio_string_match,
    path_template_regex,
    policies_from,
    rule_matches,
)
from workbook.mesh.enforce import authorization_middleware, authz_request_from_http
from workbook.mesh.errors import MeshConfigError, MeshError, MtlsRefused
from workbook.mesh.findings import Finding
from workbook.mesh.mtls import (
    MeshCA,
    MeshListener,
    Refusal,
    WorkloadCertificate,
    WorkloadIdentity,
    effective_mtls_mode,
    keep_rotated,
    mtls_handshake,
    peer_principal,
    spiffe_id,
    spiffe_id_from_der,
)
from workbook.mesh.outlier import HostMonitor, OutlierDetector
from workbook.mesh.pool import Connection, ConnectionPool, PoolOverflow
from workbook.mesh.proxy import SIDECAR, http_transport, sidecar_app
from workbook.mesh.routing import (
    ISTIO_DEFAULT_RETRY_ON,
    RETRY_ON,
    UNLIMITED,
    ConnectionPoolSettings,
    Destination,
    FaultSpec,
    HeaderOps,
    HostRules,
    HttpMatch,
    HttpRoute,
    OutlierSettings,
    RetrySpec,
    RouteDecision,
    StringMatch,
    Subset,
    TrafficConfig,
    TrafficPolicy,
    compile_traffic,
    short_host,
)
from workbook.mesh.sidecar import (
    ENVOY_BACKOFF_BASE,
    ENVOY_BACKOFF_MAX,
    Endpoint,
    RequestRecord,
    Sidecar,
    Transport,
    should_retry,
    simnet_transport,
)
from workbook.mesh.resources import MeshResource, load_mesh_directory, load_resources, parse_resources
from workbook.mesh.schema import (
    IstioSchemas,
    ValidationReport,
    bundled_schemas,
    istio_duration,
    strict_schema,
    validate_resources,
)

__all__ = [
    "AuthzDecision", "AuthzPolicy", "AuthzRequest", "Finding", "Inventory", "IstioSchemas", "MeshConfigError",
    "MeshError", "MeshResource", "MtlsRefused", "Service", "ValidationReport", "Workload", "analyze",
    "evaluate_authorization", "istio_string_match", "labels_match", "load_inventory", "load_mesh_directory",
    "load_resources", "istio_duration", "parse_resources", "path_template_regex", "policies_from",
    "rule_matches", "strict_schema", "validate_resources",
    "MeshCA", "MeshListener", "Refusal", "WorkloadCertificate", "WorkloadIdentity", "effective_mtls_mode",
    "mtls_handshake", "peer_principal", "spiffe_id", "spiffe_id_from_der",
    "authorization_middleware", "authz_request_from_http", "bundled_schemas", "keep_rotated",
    "AnalysisResult", "CanaryAnalysis", "CanaryRun", "analyse_window", "run_canary",
    "HostMonitor", "OutlierDetector", "Connection", "ConnectionPool", "PoolOverflow",
    "SIDECAR", "http_transport", "sidecar_app",
    "ISTIO_DEFAULT_RETRY_ON", "RETRY_ON", "UNLIMITED", "ConnectionPoolSettings", "Destination", "FaultSpec",
    "HeaderOps", "HostRules", "HttpMatch", "HttpRoute", "OutlierSettings", "RetrySpec", "RouteDecision",
    "StringMatch", "Subset", "TrafficConfig", "TrafficPolicy", "compile_traffic", "short_host",
    "ENVOY_BACKOFF_BASE", "ENVOY_BACKOFF_MAX", "Endpoint", "RequestRecord", "Sidecar", "Transport",
    "should_retry", "simnet_transport",
]
