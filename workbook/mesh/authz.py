"""Istio's AuthorizationPolicy, evaluated exactly as the sidecar's RBAC filters evaluate it.

The semantics follow istio/api ``security/v1beta1/authorization_policy.proto`` (the
reference page) and the translation to Envoy RBAC in istio/istio
``pilot/pkg/security/authz/model/{model,generator}.go`` and ``.../matcher/*.go``:

* **Order**: CUSTOM policies first (a matching one asks its extension provider, which may
  deny; an unknown provider denies), then DENY (any match denies), then ALLOW: with no
  ALLOW policy on the workload the request is allowed; with ALLOW policies, it is allowed
  only if one matches. AUDIT policies never decide; they are listed.
* **Scope**: a policy applies to the workloads of its namespace its ``selector`` selects
  (all of them without a selector); in the root namespace (``istio-system``), to workloads
  of every namespace.
* **Rules are ORed**; inside a rule, ``from``, ``to`` and ``when`` are ANDed: at least one
  source, at least one operation and *every* condition must match. A missing ``from`` or
  ``to`` matches anything; an empty rule ``{}`` matches every request; a policy with no
  rules matches nothing (an ALLOW policy without rules therefore denies everything).
* Inside a source or an operation the fields are ANDed, the values of one field ORed; a
  ``not*`` field (``notPaths``, ``notPrincipals``...) or a condition's ``notValues``
  matches when *none* of its values matches, so it holds when the attribute is absent.
* **Strings**: ``abc`` exact, ``abc*`` prefix, ``*abc`` suffix, ``*`` any non-empty value.
  Header values (and ``methods``) with ``*`` only ask that the header be present (Envoy's
  ``present_match``, even when empty). ``hosts`` match case-insensitively. ``paths`` match
  the path without its query string; ``{*}`` (one segment) and ``{**}`` (any number) make
  a path template.
* **Identities** come from the peer certificate (``principals``, ``namespaces``,
  ``serviceAccounts``, ``trustDomains``, ``source.principal``...): a plaintext request has
  none, so a positive match on them fails and a negative one holds. ``principals`` are
  written without ``spiffe://``: ``cluster.local/ns/default/sa/api-gateway``.

``evaluate_authorization(policies, request, workload)`` returns an ``AuthzDecision`` naming
the action, the policy and the rule that decided.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from workbook.core.errors import ParameterError
from workbook.mesh.analysis import Workload, labels_match
from workbook.mesh.errors import MeshConfigError
from workbook.mesh.resources import MeshResource

ACTIONS = ("ALLOW", "DENY", "AUDIT", "CUSTOM")
SOURCE_FIELDS = ("principals", "requestPrincipals", "namespaces", "serviceAccounts", "trustDomains",
                 "ipBlocks", "remoteIpBlocks")
OPERATION_FIELDS = ("hosts", "ports", "methods", "paths")
CONDITION_KEYS = ("request.headers[", "source.ip", "remote.ip", "source.namespace", "source.serviceAccount",
                  "source.trustDomain", "source.principal", "request.auth.principal", "request.auth.audiences",
                  "request.auth.presenter", "request.auth.claims[", "destination.ip", "destination.port",
                  "connection.sni")


@dataclass(frozen=True)
class AuthzRequest:
    """What the sidecar knows about a request when it authorizes it.

    ``principal`` is the peer's identity from its verified certificate, without
    ``spiffe://`` (``cluster.local/ns/default/sa/api-gateway``), or None for a plaintext
    connection: never a header. ``headers`` are matched by case-insensitive name.
    ``request_principal`` (``iss/sub``) and ``claims`` come from a validated JWT.
    ``protocol`` is ``"http"`` or ``"tcp"`` (a plain TCP connection has no method, path,
    host, headers or JWT: see ``rule_matches``).
    """

    method: str = "GET"
    path: str = "/"
    host: str = ""
    port: int = 8080
    headers: Mapping[str, str] = field(default_factory=dict)
    principal: str | None = None
    source_ip: str = ""
    remote_ip: str = ""
    destination_ip: str = ""
    sni: str = ""
    request_principal: str | None = None
    claims: Mapping[str, Any] = field(default_factory=dict)
    protocol: str = "http"

    def __post_init__(self):
        if self.protocol not in ("http", "tcp"):
            raise ParameterError("protocol", self.protocol, "'http' or 'tcp'")
        if not isinstance(self.port, int) or not 0 <= self.port <= 65535:
            raise ParameterError("port", self.port, "an integer port number 0..65535")
        principal = self.principal
        if principal is not None and (not isinstance(principal, str) or principal.startswith("spiffe://")):
            raise ParameterError("principal", self.principal,
                                 "None or an identity without spiffe:// (cluster.local/ns/<ns>/sa/<sa>)")

    def header(self, name: str) -> str | None:
        name = name.lower()
        for k, v in self.headers.items():
            if k.lower() == name:
                return v
        return None

    @property
    def source_namespace(self) -> str | None:
        m = re.search(r"/ns/([^/]+)/", self.principal or "")
        return m.group(1) if m else None

    def describe(self) -> str:
        who = self.principal or "plaintext"
        hdrs = " ".join(f"{k}={v!r}" for k, v in self.headers.items())
        return f"{self.method} {self.path} from {who}" + (f" [{hdrs}]" if hdrs else "")


@dataclass(frozen=True)
class AuthzDecision:
    """The outcome: ``allowed``, which ``action`` decided (``CUSTOM``, ``DENY``, ``ALLOW``,
    or ``DEFAULT`` when no policy matched), the ``policy`` (``namespace/name``) and ``rule``
    index that decided (None for a default), a one-line ``reason``, and the AUDIT policies
    that matched."""

    allowed: bool
    action: str
    policy: str | None
    rule: int | None
    reason: str
    audited: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return self.allowed

    def __str__(self) -> str:
        by = f" by {self.policy} rule {self.rule}" if self.policy is not None and self.rule is not None else (
            f" by {self.policy}" if self.policy else "")
        return f"{'ALLOW' if self.allowed else 'DENY'}{by} ({self.action}): {self.reason}"


@dataclass(frozen=True)
class AuthzPolicy:
    """An AuthorizationPolicy: ``namespace``, ``name``, ``selector`` labels (None: every
    workload of the namespace), ``action``, ``provider`` (CUSTOM) and its ``rules``."""

    name: str
    namespace: str
    rules: tuple[Mapping[str, Any], ...] | None
    action: str = "ALLOW"
    selector: Mapping[str, str] | None = None
    provider: str | None = None
    source: str = "<memory>"

    @property
    def ref(self) -> str:
        return f"{self.namespace}/{self.name}"

    @classmethod
    def from_resource(cls, resource: MeshResource) -> AuthzPolicy:
        if resource.kind != "AuthorizationPolicy":
            raise MeshConfigError(resource.source, resource.ref, "an AuthorizationPolicy", resource.kind)
        return cls.from_spec(resource.name, resource.namespace, resource.spec, source=resource.source)

    @classmethod
    def from_spec(cls, name: str, namespace: str, spec: Mapping[str, Any] | None, *, source: str = "<memory>"):
        """Build from a ``spec`` mapping; unknown fields, actions or condition keys raise
        ``MeshConfigError`` naming the field path."""
        where = f"AuthorizationPolicy {namespace}/{name}"
        if spec is not None and not isinstance(spec, Mapping):
            raise MeshConfigError(source, f"{where}: spec", "a mapping", spec)
        spec = dict(spec or {})
        action = spec.get("action", "ALLOW")
        if action not in ACTIONS:
            raise MeshConfigError(source, f"{where}: spec.action", f"one of {', '.join(ACTIONS)}", action)
        rules = spec.get("rules")
        if rules is not None and not isinstance(rules, list):
            raise MeshConfigError(source, f"{where}: spec.rules", "a list of rules", rules)
        for i, rule in enumerate(rules or []):
            _check_rule(rule or {}, source, f"{where}: spec.rules[{i}]")
        selector_block = spec.get("selector") or {}
        selector = selector_block.get("matchLabels") if isinstance(selector_block, dict) else None
        if not isinstance(selector_block, dict) or not isinstance(selector or {}, dict):
            raise MeshConfigError(source, f"{where}: spec.selector.matchLabels", "a mapping of labels", selector_block)
        provider_block = spec.get("provider") or {}
        if not isinstance(provider_block, dict):
            raise MeshConfigError(source, f"{where}: spec.provider", "a mapping with name", provider_block)
        provider = provider_block.get("name")
        return cls(name, namespace, None if rules is None else tuple(r or {} for r in rules), action,
                   dict(selector) if selector else None, provider, source)

    def applies_to(self, workload: Workload, root_namespace: str = "istio-system") -> bool:
        if self.namespace != root_namespace and workload.namespace != self.namespace:
            return False
        return labels_match(self.selector, workload.labels)

    def matching_rule(self, request: AuthzRequest) -> int | None:
        """Index of the first rule that matches the request (None: no rule matches)."""
        for i, rule in enumerate(self.rules or ()):
            if rule_matches(rule, request, self.namespace, action=self.action):
                return i
        return None


def _list(value: Any, source: str, where: str, what: str) -> list:
    if value is None:
        return []
    if not isinstance(value, list):
        raise MeshConfigError(source, where, f"a list of {what}", value)
    return value


def _check_block(block: Any, fields: Iterable[str], source: str, where: str) -> None:
    if block is None:
        return
    if not isinstance(block, dict):
        raise MeshConfigError(source, where, "a mapping", block)
    allowed = set(fields) | {"not" + f[0].upper() + f[1:] for f in fields}
    for key, values in block.items():
        if key not in allowed:
            raise MeshConfigError(source, f"{where}.{key}", f"one of {sorted(allowed)}")
        if not all(isinstance(v, str) for v in _list(values, source, f"{where}.{key}", "strings")):
            raise MeshConfigError(source, f"{where}.{key}", "a list of strings", values)


def _check_rule(rule: Any, source: str, where: str) -> None:
    if not isinstance(rule, dict):
        raise MeshConfigError(source, where, "a mapping with from/to/when", rule)
    unknown = set(rule) - {"from", "to", "when"}
    if unknown:
        raise MeshConfigError(source, f"{where}.{sorted(unknown)[0]}", "from, to or when")
    for k, frm in enumerate(_list(rule.get("from"), source, f"{where}.from", "sources")):
        if frm is not None and not isinstance(frm, dict):
            raise MeshConfigError(source, f"{where}.from[{k}]", "a mapping with source", frm)
        _check_block((frm or {}).get("source"), SOURCE_FIELDS, source, f"{where}.from[{k}].source")
    for k, to in enumerate(_list(rule.get("to"), source, f"{where}.to", "operations")):
        if to is not None and not isinstance(to, dict):
            raise MeshConfigError(source, f"{where}.to[{k}]", "a mapping with operation", to)
        _check_block((to or {}).get("operation"), OPERATION_FIELDS, source, f"{where}.to[{k}].operation")
    for k, cond in enumerate(_list(rule.get("when"), source, f"{where}.when", "conditions")):
        if not isinstance(cond, dict):
            raise MeshConfigError(source, f"{where}.when[{k}]", "a mapping with key and values", cond)
        key = cond.get("key")
        if not isinstance(key, str) or not any(key == c or (c.endswith("[") and key.startswith(c) and key.endswith("]"))
                                              for c in CONDITION_KEYS):
            raise MeshConfigError(source, f"{where}.when[{k}].key", "an Istio attribute (request.headers[name], "
                                  "source.principal, source.namespace, request.auth.claims[name], ...)", key)
        for name in ("values", "notValues"):
            if not all(isinstance(v, str) for v in _list(cond.get(name), source, f"{where}.when[{k}].{name}",
                                                          "strings")):
                raise MeshConfigError(source, f"{where}.when[{k}].{name}", "a list of strings", cond.get(name))
        if not cond.get("values") and not cond.get("notValues"):
            raise MeshConfigError(source, f"{where}.when[{k}]", "values or notValues (at least one)")


# ---- matchers (istio/istio pilot/pkg/security/authz/matcher) ----

def istio_string_match(pattern: str, value: str | None, *, ignore_case: bool = False) -> bool:
    """Istio's string match: ``*`` any non-empty value, ``*abc`` suffix, ``abc*`` prefix, else exact."""
    if value is None:
        return False
    if ignore_case:
        pattern, value = pattern.lower(), value.lower()
    if pattern == "*":
        return value != ""
    if pattern.startswith("*"):
        return value.endswith(pattern[1:])
    if pattern.endswith("*"):
        return value.startswith(pattern[:-1])
    return value == pattern


def _header_match(pattern: str, value: str | None, *, ignore_case: bool = False) -> bool:
    """Envoy HeaderMatcher as Istio builds it: ``*`` is present_match (even an empty value)."""
    if value is None:
        return False
    if pattern == "*":
        return True
    return istio_string_match(pattern, value, ignore_case=ignore_case)


def path_template_regex(template: str) -> re.Pattern[str]:
    """``{*}`` one path segment, ``{**}`` zero or more characters across segments."""
    out = []
    for part in re.split(r"(\{\*\*\}|\{\*\})", template):
        out.append("[^/]+" if part == "{*}" else ".*" if part == "{**}" else re.escape(part))
    return re.compile("".join(out))


def _path_match(pattern: str, path: str) -> bool:
    path = path.split("?", 1)[0].split("#", 1)[0]
    if "{*}" in pattern or "{**}" in pattern:
        return path_template_regex(pattern).fullmatch(path) is not None
    return istio_string_match(pattern, path)


def _uri(request: AuthzRequest) -> str | None:
    return None if request.principal is None else "spiffe://" + request.principal


def _principal_match(pattern: str, request: AuthzRequest) -> bool:
    return request.principal is not None and (pattern == "*" or istio_string_match(pattern, request.principal))


def _namespace_match(pattern: str, request: AuthzRequest) -> bool:
    uri = _uri(request)
    regex = ".*".join(re.escape(p) for p in pattern.split("*"))
    return uri is not None and re.fullmatch(f".*/ns/{regex}/.*", uri) is not None


def _service_account_match(pattern: str, request: AuthzRequest, policy_namespace: str) -> bool:
    uri = _uri(request)
    ns, sep, sa = pattern.partition("/")
    if not sep:
        ns, sa = policy_namespace, pattern
    regex = f"spiffe://.+/ns/{re.escape(ns)}/(.+/|)sa/{re.escape(sa)}(/.+)?"
    return uri is not None and re.fullmatch(regex, uri) is not None


def _trust_domain_match(pattern: str, request: AuthzRequest) -> bool:
    uri = _uri(request)
    if uri is None:
        return False
    if pattern == "*":
        return uri.startswith("spiffe://")
    if "*" not in pattern:
        return uri.startswith(f"spiffe://{pattern}/")
    head, _, tail = pattern.partition("*")
    return re.fullmatch(f"spiffe://{re.escape(head)}[^/]*{re.escape(tail)}/.*", uri) is not None


def _ip_match(pattern: str, ip: str) -> bool:
    if not ip:
        return False
    try:
        return ipaddress.ip_address(ip) in ipaddress.ip_network(pattern, strict=False)
    except ValueError:
        return False


def _request_principal_match(pattern: str, request: AuthzRequest) -> bool:
    rp = request.request_principal
    if rp is None:
        return False
    iss, _, sub = rp.rpartition("/")

    def s(p, v):  # Istio's matchAny is ".+"
        return v != "" if p == "*" else istio_string_match(p, v)

    idx = pattern.rfind("/")
    if pattern == "*":
        return iss != "" and sub != ""
    if idx < 0:  # no "/": the pattern speaks of the issuer (a trailing *) or the subject (a leading *)
        if pattern.startswith("*"):
            return iss != "" and sub.endswith(pattern[1:])
        if pattern.endswith("*"):
            return iss.startswith(pattern[:-1]) and sub != ""
        return iss == pattern and sub == ""
    piss, psub = pattern[:idx], pattern[idx + 1:]
    if pattern.startswith("*"):
        return (iss != "" if piss == "*" else iss.endswith(piss[1:])) and sub == psub
    if pattern.endswith("*"):
        return iss == piss and s(psub, sub)
    return iss == piss and sub == psub


def _claim(claims: Mapping[str, Any], path: Sequence[str]) -> Any:
    value: Any = claims
    for name in path:
        if not isinstance(value, Mapping) or name not in value:
            return None
        value = value[name]
    return value


def _claim_match(pattern: str, value: Any) -> bool:
    if isinstance(value, list):
        return any(isinstance(v, str) and istio_string_match(pattern, v) for v in value)
    return isinstance(value, str) and istio_string_match(pattern, value)


def _source_value_match(field_name: str, pattern: str, request: AuthzRequest, policy_ns: str) -> bool:
    if field_name == "principals":
        return _principal_match(pattern, request)
    if field_name == "namespaces":
        return _namespace_match(pattern, request)
    if field_name == "serviceAccounts":
        return _service_account_match(pattern, request, policy_ns)
    if field_name == "trustDomains":
        return _trust_domain_match(pattern, request)
    if field_name == "ipBlocks":
        return _ip_match(pattern, request.source_ip)
    if field_name == "remoteIpBlocks":
        return _ip_match(pattern, request.remote_ip or request.source_ip)
    if field_name == "requestPrincipals":
        return _request_principal_match(pattern, request)
    raise MeshConfigError("AuthorizationPolicy", f"source.{field_name}", "a source field")


def _operation_value_match(field_name: str, pattern: str, request: AuthzRequest) -> bool:
    if field_name == "hosts":
        return _header_match(pattern, request.host or None, ignore_case=True)
    if field_name == "ports":
        return str(request.port) == str(pattern).strip()
    if field_name == "methods":
        return _header_match(pattern, request.method)
    if field_name == "paths":
        return _path_match(pattern, request.path)
    raise MeshConfigError("AuthorizationPolicy", f"operation.{field_name}", "an operation field")


def _condition_value_match(key: str, pattern: str, request: AuthzRequest, policy_ns: str) -> bool:
    if key.startswith("request.headers["):
        return _header_match(pattern, request.header(key[len("request.headers["):-1]))
    if key.startswith("request.auth.claims["):
        path = re.findall(r"\[([^\]]*)\]", key[len("request.auth.claims"):])
        return _claim_match(pattern, _claim(request.claims, path))
    simple = {"source.ip": lambda: _ip_match(pattern, request.source_ip),
              "remote.ip": lambda: _ip_match(pattern, request.remote_ip or request.source_ip),
              "source.namespace": lambda: _namespace_match(pattern, request),
              "source.principal": lambda: _principal_match(pattern, request),
              "source.serviceAccount": lambda: _service_account_match(pattern, request, policy_ns),
              "source.trustDomain": lambda: _trust_domain_match(pattern, request),
              "request.auth.principal": lambda: _request_principal_match(pattern, request),
              "request.auth.audiences": lambda: _claim_match(pattern, request.claims.get("aud")),
              "request.auth.presenter": lambda: _claim_match(pattern, request.claims.get("azp")),
              "destination.ip": lambda: _ip_match(pattern, request.destination_ip),
              "destination.port": lambda: str(request.port) == str(pattern),
              "connection.sni": lambda: istio_string_match(pattern, request.sni or None)}
    return simple[key]()


def _values_hold(values, not_values, match: Callable[[str], bool]) -> bool:
    """``values`` ORed (if any), AND none of ``notValues``."""
    if values and not any(match(v) for v in values):
        return False
    return not (not_values and any(match(v) for v in not_values))


def _fields_hold(block: Mapping[str, Any], names: Iterable[str], match: Callable[[str, str], bool]) -> bool:
    for name in names:
        negated = "not" + name[0].upper() + name[1:]
        if not _values_hold(block.get(name), block.get(negated), lambda v, n=name: match(n, v)):
            return False
    return True


HTTP_ONLY_FIELDS = ("hosts", "notHosts", "methods", "notMethods", "paths", "notPaths", "requestPrincipals",
                    "notRequestPrincipals")
HTTP_ONLY_KEYS = ("request.headers[", "request.auth.")


def _strip_http_only(rule: Mapping[str, Any]) -> tuple[dict[str, Any], bool]:
    """The rule without its HTTP-only fields and conditions, and whether it had any."""
    had = False

    def keep(block):
        nonlocal had
        had = had or any(k in block for k in HTTP_ONLY_FIELDS)
        return {k: v for k, v in block.items() if k not in HTTP_ONLY_FIELDS}

    out = dict(rule)
    if rule.get("from"):
        out["from"] = [{"source": keep((f or {}).get("source") or {})} for f in rule["from"]]
    if rule.get("to"):
        out["to"] = [{"operation": keep((t or {}).get("operation") or {})} for t in rule["to"]]
    if rule.get("when"):
        kept = [c for c in rule["when"] if not c["key"].startswith(HTTP_ONLY_KEYS)]
        had = had or len(kept) != len(rule["when"])
        out["when"] = kept
    return out, had


def rule_matches(rule: Mapping[str, Any], request: AuthzRequest, policy_namespace: str = "default", *,
                 action: str = "ALLOW") -> bool:
    """Whether one rule matches: some ``from`` AND some ``to`` AND every ``when``.

    For a TCP connection the HTTP-only fields (hosts, methods, paths, request principals,
    request headers, JWT claims) cannot be evaluated, and Istio errs on the safe side of
    each action: an ALLOW (or CUSTOM) rule using one never matches, a DENY (or AUDIT) rule
    is evaluated without them, so it matches *more* ("For a DENY rule, missing attributes
    are treated as matches", authorization_policy.proto).
    """
    if request.protocol == "tcp":
        rule, had_http = _strip_http_only(rule)
        if had_http and action in ("ALLOW", "CUSTOM"):
            return False
    froms, tos, whens = rule.get("from") or [], rule.get("to") or [], rule.get("when") or []
    if froms and not any(_fields_hold((f or {}).get("source") or {}, SOURCE_FIELDS,
                                      lambda n, v: _source_value_match(n, v, request, policy_namespace))
                         for f in froms):
        return False
    if tos and not any(_fields_hold((t or {}).get("operation") or {}, OPERATION_FIELDS,
                                    lambda n, v: _operation_value_match(n, v, request)) for t in tos):
        return False
    return all(_values_hold(c.get("values"), c.get("notValues"),
                            lambda v, k=c["key"]: _condition_value_match(k, v, request, policy_namespace))
               for c in whens)


def evaluate_authorization(policies: Iterable[AuthzPolicy], request: AuthzRequest, workload: Workload, *,
                           root_namespace: str = "istio-system",
                           providers: Mapping[str, Callable[[AuthzRequest], bool]] | None = None) -> AuthzDecision:
    """Decide a request to ``workload`` under ``policies`` as Istio does (see the module doc).

    ``providers`` maps a CUSTOM policy's provider name to a function saying whether the
    extension allows the request; a CUSTOM policy naming no known provider denies.
    """
    applicable = [p for p in policies if p.applies_to(workload, root_namespace)]
    audited = tuple(p.ref for p in applicable if p.action == "AUDIT" and p.matching_rule(request) is not None)
    for p in applicable:
        if p.action != "CUSTOM":
            continue
        rule = p.matching_rule(request)
        if rule is None:
            continue
        ask = (providers or {}).get(p.provider or "")
        if ask is None:
            return AuthzDecision(False, "CUSTOM", p.ref, rule, f"extension provider {p.provider!r} is not defined",
                                 audited)
        if not ask(request):
            return AuthzDecision(False, "CUSTOM", p.ref, rule, f"extension provider {p.provider!r} denied", audited)
    for p in applicable:
        if p.action == "DENY":
            rule = p.matching_rule(request)
            if rule is not None:
                return AuthzDecision(False, "DENY", p.ref, rule, "a DENY rule matches", audited)
    allows = [p for p in applicable if p.action == "ALLOW"]
    if not allows:
        return AuthzDecision(True, "DEFAULT", None, None, "no ALLOW policy applies to the workload", audited)
    for p in allows:
        rule = p.matching_rule(request)
        if rule is not None:
            return AuthzDecision(True, "ALLOW", p.ref, rule, "an ALLOW rule matches", audited)
    names = ", ".join(p.ref for p in allows)
    return AuthzDecision(False, "DEFAULT", None, None, f"ALLOW policies apply ({names}) and none matches", audited)


def policies_from(resources: Iterable[MeshResource]) -> list[AuthzPolicy]:
    """The AuthorizationPolicies among ``resources``, parsed."""
    return [AuthzPolicy.from_resource(r) for r in resources if r.kind == "AuthorizationPolicy"]
