"""The semantic checks ``istioctl analyze`` makes for these kinds, against a cluster inventory.

A schema says a field is well formed; it cannot say that the host a route sends traffic to
exists. ``analyze(resources, inventory)`` resolves references against an ``Inventory``
(Services and workloads, read from ``data/mesh/inventory.yaml``) and reports what
``istioctl analyze`` would, with its message codes (istio/istio
``pkg/config/analysis/msg/messages.yaml``):

* ``IST0101`` ReferencedResourceNotFound (error): a route's destination ``host`` that no
  Service has, a ``host:port`` the Service does not expose, a ``subset`` that no
  DestinationRule for that host defines ("host+subset in destinationrule"), a VirtualService
  ``gateway`` that does not exist, a Gateway ``selector`` no workload has, an
  AuthorizationPolicy ``namespaces`` value naming no namespace;
* ``IST0127`` NoMatchingWorkloadsFound (warning): an AuthorizationPolicy whose selector
  selects no workload (so it protects nothing);
* ``weights`` : the weights of a route's destinations. Current Istio refuses only a total
  of 0 with several destinations (``pkg/config/validation/validation.go``) and otherwise
  normalizes; older releases refused any total other than 100. A total other than 100 is
  reported as a warning (the split is not the numbers written), a total of 0 as an error.

Short host names resolve in the resource's namespace, as in Kubernetes DNS:
``user-service`` -> ``user-service.default.svc.cluster.local``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from workbook.mesh.errors import MeshConfigError
from workbook.mesh.findings import ERROR, WARNING, Finding
from workbook.mesh.resources import MeshResource

CLUSTER_DOMAIN = "svc.cluster.local"


@dataclass(frozen=True)
class Service:
    """A Kubernetes Service: name, namespace, ports, and the labels it selects pods by."""

    name: str
    namespace: str
    ports: tuple[int, ...] = ()
    selector: Mapping[str, str] = field(default_factory=dict)

    @property
    def fqdn(self) -> str:
        return f"{self.name}.{self.namespace}.{CLUSTER_DOMAIN}"


@dataclass(frozen=True)
class Workload:
    """A pod (or a group of identical pods): its labels and the service account it runs as."""

    name: str
    namespace: str
    labels: Mapping[str, str] = field(default_factory=dict)
    service_account: str = "default"

    def principal(self, trust_domain: str = "cluster.local") -> str:
        """The SPIFFE identity without ``spiffe://``, as AuthorizationPolicy ``principals`` write it."""
        return f"{trust_domain}/ns/{self.namespace}/sa/{self.service_account}"


def labels_match(selector: Mapping[str, str] | None, labels: Mapping[str, str]) -> bool:
    """Whether every ``key: value`` of a ``matchLabels`` selector is in ``labels`` (empty: all)."""
    return all(labels.get(k) == v for k, v in (selector or {}).items())


@dataclass(frozen=True)
class Inventory:
    """What runs in the cluster: its Services and workloads."""

    services: tuple[Service, ...] = ()
    workloads: tuple[Workload, ...] = ()

    @property
    def namespaces(self) -> set[str]:
        return {s.namespace for s in self.services} | {w.namespace for w in self.workloads}

    def resolve_host(self, host: str, namespace: str) -> Service | None:
        """The Service a destination host names, seen from ``namespace`` (None if none)."""
        for s in self.services:
            if host in (s.fqdn, f"{s.name}.{s.namespace}", f"{s.name}.{s.namespace}.svc") or (
                    host == s.name and s.namespace == namespace):
                return s
        return None

    def workloads_selected(self, namespace: str, selector: Mapping[str, str] | None,
                           *, root_namespace: str = "istio-system") -> list[Workload]:
        """Workloads a namespaced ``selector`` selects (in every namespace when in the root one)."""
        return [w for w in self.workloads
                if (namespace == root_namespace or w.namespace == namespace) and labels_match(selector, w.labels)]

    def workload(self, name: str, namespace: str = "default") -> Workload:
        for w in self.workloads:
            if w.name == name and w.namespace == namespace:
                return w
        raise MeshConfigError("inventory", f"workload {namespace}/{name}", "a workload of the inventory",
                              sorted(f"{w.namespace}/{w.name}" for w in self.workloads))


def _strings(value: Any, source, where) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise MeshConfigError(source, where, "a mapping of strings to strings", value)
    return dict(value)


def load_inventory(path: str | Path) -> Inventory:
    """Read an inventory file: ``services`` (name, namespace, ports, selector) and ``workloads``
    (name, namespace, labels, serviceAccount). Bad entries raise ``MeshConfigError``."""
    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise MeshConfigError(path, "file", "a readable inventory file", exc.strerror) from None
    except yaml.YAMLError as exc:
        raise MeshConfigError(path, "file", "valid YAML", str(exc)) from None
    if not isinstance(doc, dict):
        raise MeshConfigError(path, "document", "a mapping with services and workloads", doc)
    services, workloads = [], []
    for i, s in enumerate(doc.get("services") or []):
        where = f"services[{i}]"
        if not isinstance(s, dict) or not isinstance(s.get("name"), str):
            raise MeshConfigError(path, f"{where}.name", "a string", s)
        ports = s.get("ports", [])
        if not isinstance(ports, list) or not all(isinstance(p, int) and 0 < p < 65536 for p in ports):
            raise MeshConfigError(path, f"{where}.ports", "a list of port numbers 1..65535", ports)
        services.append(Service(s["name"], s.get("namespace", "default"), tuple(ports),
                                _strings(s.get("selector"), path, f"{where}.selector")))
    for i, w in enumerate(doc.get("workloads") or []):
        where = f"workloads[{i}]"
        if not isinstance(w, dict) or not isinstance(w.get("name"), str):
            raise MeshConfigError(path, f"{where}.name", "a string", w)
        workloads.append(Workload(w["name"], w.get("namespace", "default"),
                                  _strings(w.get("labels"), path, f"{where}.labels"),
                                  w.get("serviceAccount", "default")))
    return Inventory(tuple(services), tuple(workloads))


def analyze(resources: Iterable[MeshResource], inventory: Inventory, *,
            root_namespace: str = "istio-system") -> list[Finding]:
    """The ``istioctl analyze`` findings for these resources in this cluster (see the module doc)."""
    resources = list(resources)
    findings: list[Finding] = []

    def add(r: MeshResource, severity, code, path, message):
        findings.append(Finding(severity, code, r.source, r.ref, path, message, r.line))

    gateways = {(r.namespace, r.name) for r in resources if r.kind == "Gateway"}
    subsets: dict[str, set[str]] = {}
    for r in resources:
        if r.kind == "DestinationRule" and isinstance(r.spec.get("host"), str) and isinstance(
                r.spec.get("subsets") or [], list):
            svc = inventory.resolve_host(r.spec["host"], r.namespace)
            key = svc.fqdn if svc else r.spec["host"]
            subsets.setdefault(key, set()).update(
                s.get("name") for s in r.spec.get("subsets") or [] if isinstance(s, dict))

    for r in resources:
        try:
            _analyze_one(r, inventory, gateways, subsets, add, root_namespace)
        except (AttributeError, TypeError, ValueError) as exc:
            add(r, ERROR, "unanalyzable", "spec", f"cannot analyze a resource that does not match its schema "
                f"(validate it first): {type(exc).__name__}: {exc}")
    return findings


def _analyze_one(r: MeshResource, inventory: Inventory, gateways, subsets, add, root_namespace: str) -> None:
    spec = r.spec
    if r.kind == "VirtualService":
        for g, name in enumerate(spec.get("gateways") or []):
            if name == "mesh" or not isinstance(name, str):
                continue
            ns, _, gw = name.rpartition("/")
            if (ns or r.namespace, gw) not in gateways:
                add(r, ERROR, "IST0101", f"spec.gateways[{g}]", f'Referenced gateway not found: "{name}"')
        for kind in ("http", "tcp", "tls"):
            for i, route in enumerate(spec.get(kind) or []):
                dests = route.get("route") or [] if isinstance(route, dict) else []
                total = 0
                for j, d in enumerate(dests):
                    dest = d.get("destination") or {}
                    host, base = dest.get("host"), f"spec.{kind}[{i}].route[{j}].destination"
                    total += int(d.get("weight", 0) or 0)
                    svc = inventory.resolve_host(host, r.namespace) if isinstance(host, str) else None
                    if svc is None:
                        add(r, ERROR, "IST0101", f"{base}.host", f'Referenced host not found: "{host}"')
                        continue
                    port = (dest.get("port") or {}).get("number")
                    if port is not None and port not in svc.ports:
                        add(r, ERROR, "IST0101", f"{base}.port.number",
                            f'Referenced host:port not found: "{host}:{port}" (ports: {list(svc.ports)})')
                    subset = dest.get("subset")
                    if subset and subset not in subsets.get(svc.fqdn, set()):
                        add(r, ERROR, "IST0101", f"{base}.subset",
                            f'Referenced host+subset in destinationrule not found: "{host}+{subset}"')
                if len(dests) > 1 and total == 0:
                    add(r, ERROR, "weights", f"spec.{kind}[{i}].route", "total destination weight = 0")
                elif len(dests) > 1 and total != 100:
                    add(r, WARNING, "weights", f"spec.{kind}[{i}].route",
                        f"destination weights sum to {total}, not 100: the proxy normalizes them, "
                        f"so the split is not the percentages written")
    elif r.kind == "Gateway":
        selector = spec.get("selector") or {}
        if not [w for w in inventory.workloads if labels_match(selector, w.labels)]:
            add(r, ERROR, "IST0101", "spec.selector",
                f"Referenced selector not found: {_selector_text(selector)!r}")
    elif r.kind == "AuthorizationPolicy":
        selector = (spec.get("selector") or {}).get("matchLabels")
        if not inventory.workloads_selected(r.namespace, selector, root_namespace=root_namespace):
            add(r, WARNING, "IST0127", "spec.selector",
                f"No matching workloads for this resource with the following labels: {_selector_text(selector)}")
        known = inventory.namespaces
        for i, rule in enumerate(spec.get("rules") or []):
            for k, frm in enumerate((rule or {}).get("from") or []):
                for n, ns in enumerate(((frm or {}).get("source") or {}).get("namespaces") or []):
                    if "*" not in ns and ns not in known:
                        add(r, ERROR, "IST0101", f"spec.rules[{i}].from[{k}].source.namespaces[{n}]",
                            f'Referenced namespace not found: "{ns}"')


def _selector_text(selector: Mapping[str, str] | None) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted((selector or {}).items()))
