"""Chapter 7: Istio resources validated against Istio's CRD schemas and analyzed like istioctl."""

from __future__ import annotations

import pytest

from workbook.core.resources import data_path
from workbook.mesh import (
    IstioSchemas,
    MeshConfigError,
    analyze,
    istio_duration,
    load_inventory,
    load_mesh_directory,
    load_resources,
    parse_resources,
    strict_schema,
    validate_resources,
)

MESH = data_path("mesh")


@pytest.fixture(scope="module")
def schemas():
    return IstioSchemas()


@pytest.fixture(scope="module")
def inventory():
    return load_inventory(MESH / "inventory.yaml")


def one(text, schemas):
    return schemas.validate_all(parse_resources(text, "inline.yaml"))


DR = """apiVersion: networking.istio.io/v1beta1
kind: DestinationRule
metadata: {name: dr, namespace: default}
spec:
  host: order-service
"""


def test_bundled_crds_cover_the_five_kinds_at_every_served_version(schemas):
    kinds = {(g, v, k) for g, v, k in schemas.kinds}
    for kind, group in [("Gateway", "networking.istio.io"), ("VirtualService", "networking.istio.io"),
                        ("DestinationRule", "networking.istio.io")]:
        assert {(group, v, kind) for v in ("v1", "v1alpha3", "v1beta1")} <= kinds
    for kind in ("AuthorizationPolicy", "PeerAuthentication"):
        assert {("security.istio.io", v, kind) for v in ("v1", "v1beta1")} <= kinds
    # the vendored copy keeps its provenance header and licence beside it
    assert "Apache License 2.0" in (MESH / "istio-api" / "crds-subset.yaml").read_text()[:400]
    assert "Apache License" in (MESH / "istio-api" / "LICENSE").read_text()


def test_the_article_fails_with_circuit_breaker_named_by_file_resource_and_path():
    report = validate_resources(load_mesh_directory(MESH / "article"))
    assert [(f.code, f.resource, f.path) for f in report.errors] == [
        ("unknown-field", "DestinationRule default/order-service-dr", "spec.trafficPolicy.circuitBreaker")]
    error = report.errors[0]
    assert error.source.endswith("article/destination-rules.yaml") and error.line > 1
    assert "destination-rules.yaml" in str(error) and "order-service-dr" in str(error)
    assert report.unevaluated_rules == 0


def test_the_article_reports_deprecated_consecutive_errors_and_least_conn():
    report = validate_resources(load_mesh_directory(MESH / "article"))
    warnings = {(f.resource, f.path) for f in report.warnings}
    assert warnings == {
        ("DestinationRule default/user-service-dr", "spec.trafficPolicy.outlierDetection.consecutiveErrors"),
        ("DestinationRule default/user-service-dr", "spec.trafficPolicy.loadBalancer.simple"),
    }
    assert all(f.code == "deprecated" for f in report.warnings)


def test_the_corrected_version_passes_schema_and_analysis(inventory):
    resources = load_mesh_directory(MESH / "corrected")
    assert len(resources) == 7
    report = validate_resources(resources)
    assert report.ok and not report.findings, str(report)
    assert analyze(resources, inventory) == []


def test_analysis_of_the_article_finds_its_nonexistent_v2_host(inventory):
    findings = analyze(load_mesh_directory(MESH / "article"), inventory)
    assert [(f.code, f.path) for f in findings] == [("IST0101", "spec.http[1].route[1].destination.host")]
    assert '"order-service-v2"' in findings[0].message


def test_without_strict_pruning_the_field_would_vanish_silently():
    schema = strict_schema({"type": "object", "properties": {"a": {"type": "object", "properties": {}}},
                            "x-kubernetes-preserve-unknown-fields": True})
    assert "additionalProperties" not in schema  # preserve-unknown-fields: open
    assert schema["properties"]["a"]["additionalProperties"] is False


@pytest.mark.parametrize("snippet,path,code", [
    ("  trafficPolicy:\n    outlierDetection: {consecutive5xxErrors: 3, interval: 30}\n",
     "spec.trafficPolicy.outlierDetection.interval", "schema"),           # a duration must be a string
    ("  trafficPolicy:\n    outlierDetection: {interval: 30 seconds}\n",
     "spec.trafficPolicy.outlierDetection.interval", "cel"),              # ... in Go syntax
    ("  trafficPolicy:\n    loadBalancer: {simple: FASTEST}\n", "spec.trafficPolicy.loadBalancer.simple", "schema"),
    ("  subsets:\n  - name: v1\n    lables: {version: v1}\n", "spec.subsets[0].lables", "unknown-field"),
    ("  trafficPolicy:\n    connectionPool:\n      tcp: {maxConnections: many}\n",
     "spec.trafficPolicy.connectionPool.tcp.maxConnections", "schema"),
])
def test_schema_errors_name_the_field_path(schemas, snippet, path, code):
    report = one(DR + snippet, schemas)
    assert (code, path) in [(f.code, f.path) for f in report.errors], str(report)


def test_int_or_string_and_nullable_are_handled(schemas):
    text = DR + ("  trafficPolicy:\n"
                 "    outlierDetection: {consecutive5xxErrors: 3, interval: 1s, baseEjectionTime: 30s}\n")
    assert one(text, schemas).ok
    vs = """apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: vs}
spec:
  hosts: [order-service]
  http:
  - route:
    - destination: {host: order-service}
    retries: {attempts: 2, perTryTimeout: 1s, retryOn: 5xx}
    fault:
      abort: {httpStatus: 503, percentage: {value: 1.5}}
"""
    assert one(vs, schemas).ok, str(one(vs, schemas))


def test_unknown_top_level_and_metadata_fields_are_errors(schemas):
    text = DR.replace("spec:", "specs:\n  host: x\nspec:").replace("namespace: default}", "namespace: default, nam: x}")
    report = one(text, schemas)
    assert {"specs", "metadata.nam"} <= set(report.paths("error"))


def test_unknown_kind_or_version_is_reported_not_crashed(schemas):
    report = one(DR.replace("v1beta1", "v2"), schemas)
    assert [f.code for f in report.errors] == ["unknown-kind"]
    assert "served: networking.istio.io/v1" in report.errors[0].message


def test_deprecated_fault_percent_and_mirror_percent_warned(schemas):
    vs = """apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata: {name: vs}
spec:
  hosts: [order-service]
  http:
  - route:
    - destination: {host: order-service}
    mirrorPercent: 10
    fault:
      delay: {percent: 10, fixedDelay: 1s}
"""
    paths = one(vs, schemas).paths("warning")
    assert paths == ["spec.http[0].fault.delay.percent", "spec.http[0].mirrorPercent"] or sorted(paths) == sorted(
        ["spec.http[0].fault.delay.percent", "spec.http[0].mirrorPercent"])


def test_cel_rules_at_most_one_and_service_accounts(schemas):
    ap = """apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: ap}
spec:
  rules:
  - from:
    - source: {serviceAccounts: [a], principals: [b]}
"""
    report = one(ap, schemas)
    assert [(f.code, f.path) for f in report.errors] == [("cel", "spec.rules[0].from[0].source")]
    assert "serviceAccounts" in report.errors[0].message


def test_invalid_yaml_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: v1\nkind: a: b\n")
    with pytest.raises(MeshConfigError) as e:
        load_resources(bad)
    assert "bad.yaml" in str(e.value) and "line 2" in str(e.value) and "valid YAML" in str(e.value)


@pytest.mark.parametrize("text,element", [
    ("- a list\n", "document 1"),
    ("apiVersion: v1\nkind: X\n", "metadata.name"),
    ("kind: X\nmetadata: {name: a}\n", "apiVersion"),
])
def test_documents_that_are_not_resources_are_refused(text, element):
    with pytest.raises(MeshConfigError, match=element):
        parse_resources(text, "x.yaml")


def test_istio_durations():
    assert istio_duration("2s") == 2 and istio_duration("1m30s") == 90 and istio_duration("250ms") == 0.25
    for bad in ("2", "2 s", "-1s", "", "s"):
        with pytest.raises(ValueError):
            istio_duration(bad)


# ---- istioctl analyze ----

VS_SUBSET = """apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: vs}
spec:
  hosts: [order-service]
  gateways: [no-such-gateway]
  http:
  - route:
    - destination: {host: order-service, subset: v3}
      weight: 70
    - destination: {host: order-service, subset: v1, port: {number: 9999}}
      weight: 20
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: dr}
spec:
  host: order-service.default.svc.cluster.local
  subsets:
  - {name: v1, labels: {version: v1}}
"""


def test_analyze_subset_weights_port_and_gateway(inventory):
    findings = {(f.code, f.path, f.severity) for f in analyze(parse_resources(VS_SUBSET, "vs.yaml"), inventory)}
    assert findings == {
        ("IST0101", "spec.gateways[0]", "error"),
        ("IST0101", "spec.http[0].route[0].destination.subset", "error"),
        ("IST0101", "spec.http[0].route[1].destination.port.number", "error"),
        ("weights", "spec.http[0].route", "warning"),
    }


def test_analyze_zero_weights_is_an_error(inventory):
    text = VS_SUBSET.replace("weight: 70", "weight: 0").replace("weight: 20", "weight: 0")
    found = [f for f in analyze(parse_resources(text, "vs.yaml"), inventory) if f.code == "weights"]
    assert [f.severity for f in found] == ["error"]


def test_analyze_policy_and_gateway_selecting_nothing(inventory):
    text = """apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: ap}
spec:
  selector: {matchLabels: {app: reviews}}
  rules:
  - from:
    - source: {namespaces: [prod]}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw}
spec:
  selector: {istio: egressgateway}
  servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ["*"]}]
"""
    findings = {(f.resource, f.code, f.path) for f in analyze(parse_resources(text, "x.yaml"), inventory)}
    assert findings == {("AuthorizationPolicy default/ap", "IST0127", "spec.selector"),
                        ("AuthorizationPolicy default/ap", "IST0101", "spec.rules[0].from[0].source.namespaces[0]"),
                        ("Gateway default/gw", "IST0101", "spec.selector")}


def test_a_root_namespace_policy_selects_across_namespaces(inventory):
    text = """apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: ap, namespace: istio-system}
spec:
  selector: {matchLabels: {app: order-service}}
"""
    assert analyze(parse_resources(text, "x.yaml"), inventory) == []


def test_bad_inventory_is_a_clear_error(tmp_path):
    bad = tmp_path / "inv.yaml"
    bad.write_text("services:\n- {name: a, ports: [http]}\n")
    with pytest.raises(MeshConfigError, match=r"services\[0\]\.ports"):
        load_inventory(bad)


@pytest.mark.parametrize("text", [
    "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: a}\n"
    "spec: {selector: {matchLabels: 5}, portLevelMtls: x}\n",
    "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: a}\nspec: 5\n",
    "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: a}\n"
    "spec: {rules: [{from: [{source: 7}]}]}\n",
    "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: a}\n"
    "spec: {hosts: [x], gateways: 5, http: [{route: [{destination: 3, weight: x}]}]}\n",
    "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: a}\nspec: {host: x, subsets: 3}\n",
])
def test_wrongly_typed_resources_are_reported_never_crash(text, inventory):
    resources = parse_resources(text, "typed.yaml")
    report = validate_resources(resources)
    assert report.errors and all(f.source == "typed.yaml" for f in report.findings)
    analyze(resources, inventory)        # findings or "unanalyzable", never an exception


def test_duplicate_fields_are_errors_as_under_strict_validation(schemas):
    text = DR + ("  trafficPolicy:\n    loadBalancer: {simple: ROUND_ROBIN}\n"
                 "  trafficPolicy:\n    tls: {mode: ISTIO_MUTUAL}\n")
    report = one(text, schemas)
    assert [(f.code, f.path) for f in report.errors] == [("duplicate-field", "spec.trafficPolicy")]
    assert "line 8" in report.errors[0].message
