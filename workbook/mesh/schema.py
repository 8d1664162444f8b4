"""Validation of Istio resources against Istio's own CRD schemas, as strictly as kubectl.

The CustomResourceDefinitions published by istio/api (``data/mesh/istio-api/``, Apache-2.0)
carry one OpenAPI v3 ``openAPIV3Schema`` per served version. ``IstioSchemas`` turns each
into a JSON Schema that ``jsonschema`` checks the way the Kubernetes API server does under
``kubectl apply --validate=strict``:

* **unknown fields are errors**: every ``type: object`` schema without
  ``additionalProperties`` or ``x-kubernetes-preserve-unknown-fields: true`` gets
  ``additionalProperties: false`` (the server would prune the field silently without
  ``strict``; with it, it refuses the object naming the field, e.g.
  ``spec.trafficPolicy.circuitBreaker``);
* ``x-kubernetes-int-or-string`` accepts an integer or a string, ``nullable`` accepts null;
* ``apiVersion``, ``kind`` and ``metadata`` are checked as Kubernetes does for every object
  (the CRD schema does not list them);
* the CEL rules (``x-kubernetes-validations``) that are simple enough are evaluated: the
  duration rule (``duration(self) >= duration('1ms')``, 50 of them), at-most-one-of,
  no wildcard or empty label keys, port ranges; the others are counted in
  ``ValidationReport.unevaluated_rules`` and said so, never silently passed;
* **duplicate fields** (a key written twice in one mapping, which YAML silently resolves
  to the last) are errors, as under ``--validate=strict``;
* **deprecated fields** are reported as warnings: fields whose schema description starts
  with "Deprecated", and the fields and enum values the protos mark ``deprecated = true``
  (istio/api at the vendored commit: ``consecutiveErrors``, ``LEAST_CONN``,
  ``mirrorPercent``, ``corsPolicy.allowOrigin``, ``percent`` in fault injection,
  ``targetPort`` of a Gateway server's port), which the CRDs list without a word.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from workbook.core.resources import data_path
from workbook.mesh.errors import MeshConfigError
from workbook.mesh.findings import ERROR, WARNING, Finding
from workbook.mesh.resources import MeshResource

# (parent field, field) -> what to use instead; from `deprecated = true` in istio/api's protos
DEPRECATED_FIELDS = {
    ("outlierDetection", "consecutiveErrors"): "consecutive5xxErrors (or consecutiveGatewayErrors)",
    ("delay", "percent"): "percentage",
    ("abort", "percent"): "percentage",
    ("corsPolicy", "allowOrigin"): "allowOrigins",
    ("port", "targetPort"): "nothing (it is ignored)",
    ("*", "mirrorPercent"): "mirrorPercentage",
}
# (parent field, field, value) -> the value to use instead
DEPRECATED_VALUES = {("loadBalancer", "simple", "LEAST_CONN"): "LEAST_REQUEST"}

_METADATA_SCHEMA = {
    "type": "object",
    "required": ["name"],
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string", "maxLength": 253, "pattern": r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"},
        "namespace": {"type": "string", "maxLength": 63, "pattern": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
        **{k: {} for k in ("generateName", "uid", "resourceVersion", "generation", "creationTimestamp",
                           "deletionTimestamp", "deletionGracePeriodSeconds", "finalizers", "ownerReferences",
                           "managedFields", "selfLink")},
    },
}

_GO_DURATION = re.compile(r"^(?:(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h))+$")
_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_AT_MOST_ONE = re.compile(r"^\(has\(self\.\w+\) \? 1 : 0\)(?: \+ \(has\(self\.\w+\) \? 1 : 0\))* <= 1$")


def istio_duration(text: str) -> float:
    """Seconds in a Go/protobuf duration string (``"2s"``, ``"1m30s"``, ``"250ms"``).

    Raises ``ValueError`` for anything else (``"2"``, ``"2 s"``, ``"-1s"``).
    """
    if not isinstance(text, str) or not _GO_DURATION.match(text):
        raise ValueError(f"not a duration: {text!r} (expected e.g. '2s', '250ms', '1m30s')")
    return sum(float(n) * _DURATION_UNITS[u] for n, u in re.findall(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)", text))


def _cel(rule: str, value: Any) -> bool | None:
    """Evaluate the CEL rules Istio's CRDs use that are simple enough; None = not evaluated."""
    rule = " ".join(rule.split())
    if rule == "duration(self) >= duration('1ms')":
        try:
            return istio_duration(value) >= 1e-3
        except ValueError:
            return False
    if _AT_MOST_ONE.match(rule):
        names = re.findall(r"has\(self\.(\w+)\)", rule)
        return sum(1 for n in names if isinstance(value, dict) and n in value) <= 1
    if rule == 'self.all(key, !key.contains("*"))':
        return all("*" not in k for k in value)
    if rule == "self.all(key, key.size() != 0)":
        return all(len(k) != 0 for k in value)
    if rule == '!self.contains("*")':
        return "*" not in value
    if rule == "self.all(key, 0 < int(key) && int(key) <= 65535)":
        try:
            return all(0 < int(k) <= 65535 for k in value)
        except (TypeError, ValueError):
            return False
    if rule == "self.size() == 0":
        return len(value) == 0
    if rule.startswith("has(self.portLevelMtls) ?"):
        labels = (value.get("selector") or {}).get("matchLabels") or {}
        return "portLevelMtls" not in value or len(labels) > 0
    if rule.startswith("(has(self.serviceAccounts) || has(self.notServiceAccounts)) ?"):
        if "serviceAccounts" in value or "notServiceAccounts" in value:
            return not any(k in value for k in ("principals", "notPrincipals", "namespaces", "notNamespaces"))
        return True
    return None


_TYPES = {"object": (dict,), "array": (list,), "string": (str,), "integer": (int,), "number": (int, float),
          "boolean": (bool,)}


def _type_ok(schema: dict[str, Any], value: Any) -> bool:
    """Whether a value has the type its schema says (CEL rules run only on well-typed values)."""
    if schema.get("x-kubernetes-int-or-string"):
        return isinstance(value, (int, str)) and not isinstance(value, bool)
    expected = _TYPES.get(schema.get("type", ""), None)
    if expected is None:
        return True
    if isinstance(value, bool) and schema.get("type") != "boolean":
        return False
    return isinstance(value, expected)


def strict_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """A Kubernetes structural schema as a JSON Schema that refuses unknown fields."""

    def convert(s: Any) -> Any:
        if not isinstance(s, dict):
            return s
        s = {k: v for k, v in s.items() if k not in ("description", "x-kubernetes-validations")}
        if s.pop("x-kubernetes-int-or-string", False):
            s.pop("type", None)
            s["type"] = ["integer", "string"]
        if s.pop("nullable", False) and isinstance(s.get("type"), str):
            s["type"] = [s["type"], "null"]
        preserve = s.pop("x-kubernetes-preserve-unknown-fields", False)
        if s.get("type") == "object" and not preserve and "additionalProperties" not in s:
            s["additionalProperties"] = False
        if "properties" in s:
            s["properties"] = {k: convert(v) for k, v in s["properties"].items()}
        for key in ("items", "additionalProperties", "not"):
            if isinstance(s.get(key), dict):
                s[key] = convert(s[key])
        for key in ("allOf", "anyOf", "oneOf"):
            if key in s:
                s[key] = [convert(v) for v in s[key]]
        s.pop("format", None)  # int32/uint32/...: Kubernetes checks ranges with minimum/maximum
        return s

    return convert(copy.deepcopy(schema))


def _path(parts: Iterable[Any]) -> str:
    text = ""
    for p in parts:
        text += f"[{p}]" if isinstance(p, int) else (f".{p}" if text else str(p))
    return text or "(root)"


@dataclass
class ValidationReport:
    """The findings for a set of resources, and how many CEL rules could not be evaluated."""

    findings: list[Finding] = field(default_factory=list)
    resources: int = 0
    unevaluated_rules: int = 0

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == ERROR]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == WARNING]

    @property
    def ok(self) -> bool:
        return not self.errors

    def paths(self, severity: str | None = None) -> list[str]:
        return [f.path for f in self.findings if severity is None or f.severity == severity]

    def __str__(self) -> str:
        head = (f"{self.resources} resources: {len(self.errors)} errors, {len(self.warnings)} warnings"
                + (f", {self.unevaluated_rules} CEL rules not evaluated" if self.unevaluated_rules else ""))
        return "\n".join([head, *map(str, self.findings)])


class IstioSchemas:
    """Istio's CRDs, one strict JSON Schema per (group, version, kind).

    ``IstioSchemas()`` reads the bundled ``data/mesh/istio-api/crds-subset.yaml``; pass
    another path to use another copy of ``customresourcedefinitions.gen.yaml``.
    """

    def __init__(self, crd_path: str | Path | None = None):
        self.path = Path(crd_path) if crd_path else data_path("mesh", "istio-api", "crds-subset.yaml")
        self._raw: dict[tuple[str, str, str], dict[str, Any]] = {}
        try:
            loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
            docs = list(yaml.load_all(self.path.read_text(encoding="utf-8"), Loader=loader))
        except (OSError, yaml.YAMLError) as exc:
            raise MeshConfigError(self.path, "file", "Istio's CRD YAML", str(exc)) from None
        for doc in docs:
            if not isinstance(doc, dict) or doc.get("kind") != "CustomResourceDefinition":
                continue
            spec = doc["spec"]
            for version in spec["versions"]:
                if version.get("served", True):
                    key = (spec["group"], version["name"], spec["names"]["kind"])
                    self._raw[key] = version["schema"]["openAPIV3Schema"]
        self._validators: dict[tuple[str, str, str], jsonschema.protocols.Validator] = {}

    @cached_property
    def kinds(self) -> list[tuple[str, str, str]]:
        """(group, version, kind) of every served version."""
        return sorted(self._raw)

    def openapi(self, api_version: str, kind: str) -> dict[str, Any] | None:
        group, _, version = api_version.rpartition("/")
        return self._raw.get((group, version, kind))

    def _validator(self, key):
        if key not in self._validators:
            spec_schema = strict_schema(self._raw[key])
            spec_schema.setdefault("properties", {})
            spec_schema["properties"].update({"apiVersion": {"type": "string"}, "kind": {"type": "string"},
                                              "metadata": _METADATA_SCHEMA})
            spec_schema["required"] = ["apiVersion", "kind", "metadata"]
            spec_schema["additionalProperties"] = False
            cls = jsonschema.validators.validator_for({}, default=jsonschema.Draft7Validator)
            self._validators[key] = cls(spec_schema)
        return self._validators[key]

    def validate(self, resource: MeshResource, report: ValidationReport | None = None) -> ValidationReport:
        """Check one resource; findings are appended to ``report`` (a new one if None)."""
        report = report if report is not None else ValidationReport()
        report.resources += 1
        key = (resource.group, resource.version, resource.kind)

        def add(severity, code, path, message):
            report.findings.append(Finding(severity, code, resource.source, resource.ref, path, message, resource.line))

        for path, line in resource.duplicates:
            report.findings.append(Finding(ERROR, "duplicate-field", resource.source, resource.ref, path,
                                           f'duplicate field "{path}" (line {line}): YAML keeps only the last',
                                           resource.line))
        if key not in self._raw:
            served = sorted(f"{g}/{v}" for g, v, k in self._raw if k == resource.kind)
            add(ERROR, "unknown-kind", "apiVersion",
                f"no CRD serves kind {resource.kind!r} at {resource.api_version!r}"
                + (f" (served: {', '.join(served)})" if served else " (not one of Istio's kinds here)"))
            return report
        errors = self._validator(key).iter_errors(resource.body)
        for error in sorted(errors, key=lambda e: list(map(str, e.absolute_path))):
            if error.validator == "additionalProperties" and isinstance(error.instance, dict):
                known = set(error.schema.get("properties", {}))
                for extra in sorted(k for k in error.instance if k not in known):
                    path = _path([*error.absolute_path, extra])
                    add(ERROR, "unknown-field", path, f'unknown field "{path}"')
                continue
            add(ERROR, "schema", _path(error.absolute_path), error.message)
        for schema, value, parts in _walk(self._raw[key], resource.body, []):
            for rule in schema.get("x-kubernetes-validations", ()) if _type_ok(schema, value) else ():
                try:
                    verdict = _cel(rule["rule"], value)
                except (TypeError, AttributeError, ValueError):
                    verdict = False  # a well-typed value the rule cannot read (a nested field of the wrong type)
                if verdict is None:
                    report.unevaluated_rules += 1
                elif not verdict:
                    add(ERROR, "cel", _path(parts), f"{rule.get('message', rule['rule'])} (got {value!r})")
            if parts and isinstance(parts[-1], str):
                parent = next((p for p in reversed(parts[:-1]) if isinstance(p, str)), "")
                name = parts[-1]
                description = str(schema.get("description", ""))
                instead = DEPRECATED_FIELDS.get((parent, name)) or DEPRECATED_FIELDS.get(("*", name))
                if instead:
                    add(WARNING, "deprecated", _path(parts), f"{name} is deprecated: use {instead}")
                elif description.startswith("Deprecated"):
                    add(WARNING, "deprecated", _path(parts), f"{name}: {description}")
                if isinstance(value, str) and (parent, name, value) in DEPRECATED_VALUES:
                    add(WARNING, "deprecated", _path(parts),
                        f"{name}: {value} is deprecated: use {DEPRECATED_VALUES[(parent, name, value)]}")
        return report

    def validate_all(self, resources: Iterable[MeshResource]) -> ValidationReport:
        report = ValidationReport()
        for resource in resources:
            self.validate(resource, report)
        return report


def _walk(schema: dict[str, Any], value: Any, parts: list[Any]) -> Iterator[tuple[dict, Any, list]]:
    """(schema, value, path) for every value the schema describes through properties/items."""
    yield schema, value, parts
    if isinstance(value, dict):
        props = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        for k, v in value.items():
            sub = props.get(k) if k in props else (extra if isinstance(extra, dict) else None)
            if sub is not None:
                yield from _walk(sub, v, [*parts, k])
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, v in enumerate(value):
            yield from _walk(schema["items"], v, [*parts, i])


_DEFAULT: IstioSchemas | None = None


def bundled_schemas() -> IstioSchemas:
    """The bundled CRD schemas, read once per process (the file is 600 kB of YAML)."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = IstioSchemas()
    return _DEFAULT


def validate_resources(resources: Iterable[MeshResource], schemas: IstioSchemas | None = None) -> ValidationReport:
    """Validate resources against Istio's CRD schemas (the bundled ones unless ``schemas`` is given)."""
    return (schemas or bundled_schemas()).validate_all(resources)
