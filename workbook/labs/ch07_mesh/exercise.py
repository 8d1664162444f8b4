"""Chapter 7's exercise: fix the article's AuthorizationPolicies.

The article's two policies put ``from``, ``to`` and ``when`` in three separate rules, and
Istio ORs rules: each policy lets in any request that passes *one* of the three. The
exercise: write AuthorizationPolicies (YAML, one or more documents) so that every request
of the notebook's grid (``experiments.request_grid()``: 4 callers x 3 methods x 3 paths x 3
header values, for user-service and for order-service) gets exactly the decision the
article's author meant (``experiments.intended``).

``check_authorization_answer(answer)`` returns a ``Verdict``: the answer must parse, pass
Istio's schema strictly, select the workloads it means to protect, and decide all 216
requests as intended. On failure the hint names a request decided wrongly and the policy
and rule that decided it. ``naive_answers()`` holds the tempting wrong fixes (the article
itself, the rules merged but the header check dropped, paths that miss the collection,
a presence-only header check, separate policies, DENY instead of ALLOW, an empty
policy...), each rejected by the checker.
"""

from __future__ import annotations

from workbook.core.verdict import Verdict
from workbook.labs.ch07_mesh.experiments import TARGETS, authorization_rows, inventory
from workbook.mesh import (
    AuthzPolicy,
    MeshConfigError,
    analyze,
    bundled_schemas,
    parse_resources,
    policies_from,
)

SUBJECT = "AuthorizationPolicies for user-service and order-service that decide the grid as intended"



def _hint(target: str, row: dict) -> str:
    """Why a request was decided wrongly, from the row of the grid that shows it."""
    if row["decision"] == "ALLOW" and row["decided_by"] == "DEFAULT":
        return (f"no ALLOW policy applies to {target}, so every request no DENY rule matches is allowed: "
                "check the selector and the action")
    if row["decision"] == "ALLOW":
        return (f"{row['decided_by']} lets in {row['caller']} {row['method']} {row['path']} {row['header']}: "
                "inside ONE rule from, to and when must all hold, but rules (and ALLOW policies) are ORed; "
                "check too what each value matches ('*' is mere presence for a header)")
    why = "no rule of the ALLOW policies matches it (a policy without rules matches nothing)" \
        if row["decided_by"] == "DEFAULT" else f"{row['decided_by']} denies it"
    return (f"{row['caller']} {row['method']} {row['path']} {row['header']} is refused: {why}; check the paths "
            "('/api/users/*' does not match '/api/users') and the exact values each field accepts "
            "('Bearer' is an exact match, 'Bearer *' a prefix)")


def _parse(answer) -> list[AuthzPolicy]:
    if isinstance(answer, AuthzPolicy):
        return [answer]
    if isinstance(answer, (list, tuple)) and all(isinstance(p, AuthzPolicy) for p in answer):
        return list(answer)
    if not isinstance(answer, str):
        raise TypeError(f"expected YAML text or AuthzPolicy objects, got {type(answer).__name__}")
    resources = parse_resources(answer, "answer.yaml")
    others = sorted({r.kind for r in resources} - {"AuthorizationPolicy"})
    if others:
        raise MeshConfigError("answer.yaml", "kind", "AuthorizationPolicy documents only", others)
    return policies_from(resources)


def check_authorization_answer(answer) -> Verdict:
    """Judge an answer (YAML text, an ``AuthzPolicy`` or a list of them); see the module doc."""
    try:
        policies = _parse(answer)
    except (MeshConfigError, TypeError) as exc:
        return Verdict.rejected(SUBJECT, f"{type(exc).__name__}: {exc}",
                                hint="give the AuthorizationPolicy YAML, documents separated by ---")
    checks = []
    if isinstance(answer, str):
        resources = parse_resources(answer, "answer.yaml")
        report = bundled_schemas().validate_all(resources)
        bad = [f"{f.path}: {f.message}" for f in report.errors]
        checks.append(("passes Istio's schema (strict)", not bad, "; ".join(bad[:3]) or f"{len(resources)} policies"))
        empty = [f"{f.resource} ({f.message})" for f in analyze(resources, inventory()) if f.code == "IST0127"]
        checks.append(("every policy selects a workload", not empty, "; ".join(empty) or "yes"))
    if not policies:
        return Verdict.rejected(SUBJECT, "no AuthorizationPolicy in the answer")
    rows = authorization_rows(policies)
    numbers = {}
    hints = []
    for target in TARGETS:
        mine = [r for r in rows if r["target"] == target]
        allowed_wrong = [r for r in mine if r["decision"] == "ALLOW" and r["intended"] == "DENY"]
        denied_wrong = [r for r in mine if r["decision"] == "DENY" and r["intended"] == "ALLOW"]
        numbers[f"{target}_wrongly_allowed"] = len(allowed_wrong)
        numbers[f"{target}_wrongly_denied"] = len(denied_wrong)
        example = (allowed_wrong or denied_wrong or [None])[0]
        detail = f"{len(mine)} requests: {len(allowed_wrong)} allowed that should be refused, " \
                 f"{len(denied_wrong)} refused that should be allowed"
        if example:
            detail += (f"; e.g. {example['caller']} {example['method']} {example['path']} {example['header']} -> "
                       f"{example['decision']} by {example['decided_by']}")
            hints.append(_hint(target, example))
        checks.append((f"{target}: every request decided as intended", example is None, detail))
    return Verdict.of(SUBJECT, checks, numbers=numbers,
                      hint="; ".join(hints) or "fix the schema or selector problems listed above")


def _policy(name: str, app: str, rules: str, action: str = "ALLOW") -> str:
    return (f"apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata:\n  name: {name}\n"
            f"  namespace: default\nspec:\n  selector:\n    matchLabels:\n      app: {app}\n  action: {action}\n"
            f"  rules:\n{rules}")


_USER_FROM = "    - source:\n        principals: [\"cluster.local/ns/default/sa/api-gateway\"]\n"
_ORDER_FROM = ("    - source:\n        principals: [\"cluster.local/ns/default/sa/api-gateway\", "
               "\"cluster.local/ns/default/sa/user-service\"]\n")


def _user(paths='["/api/users", "/api/users/*"]', when='["Bearer *"]', merged=True, with_when=True, action="ALLOW"):
    to = f"    - operation:\n        methods: [\"GET\", \"POST\"]\n        paths: {paths}\n"
    wh = f"    - key: request.headers[authorization]\n      values: {when}\n"
    if merged:
        rules = "  - from:\n" + _USER_FROM + "    to:\n" + to + (("    when:\n" + wh) if with_when else "")
    else:
        rules = "  - from:\n" + _USER_FROM + "  - to:\n" + to + "  - when:\n" + wh
    return _policy("user-service-authz", "user-service", rules, action)


def _order(paths='["/api/orders", "/api/orders/*"]', when='      values: ["*"]\n      notValues: [""]\n',
           merged=True, action="ALLOW"):
    to = f"    - operation:\n        methods: [\"GET\", \"POST\", \"PUT\", \"DELETE\"]\n        paths: {paths}\n"
    wh = "    - key: request.headers[x-user-id]\n" + when
    if merged:
        rules = "  - from:\n" + _ORDER_FROM + "    to:\n" + to + "    when:\n" + wh
    else:
        rules = "  - from:\n" + _ORDER_FROM + "  - to:\n" + to + "  - when:\n" + wh
    return _policy("order-service-authz", "order-service", rules, action)


def model_answer() -> str:
    """One right answer (the same as ``data/mesh/corrected/security.yaml``'s policies)."""
    return _user() + "---\n" + _order()


def naive_answers() -> dict[str, str]:
    """The tempting wrong fixes, by name: each is rejected by ``check_authorization_answer``."""
    split_user = (_policy("user-from", "user-service", "  - from:\n" + _USER_FROM) + "---\n"
                  + _policy("user-to", "user-service", "  - to:\n    - operation:\n"
                            "        methods: [\"GET\", \"POST\"]\n"
                            "        paths: [\"/api/users\", \"/api/users/*\"]\n"))
    return {
        "the article's rules (from, to, when ORed)": _user(merged=False, paths='["/api/users/*"]')
        + "---\n" + _order(merged=False, paths='["/api/orders/*"]', when='      notValues: [""]\n'),
        "rules merged, header condition dropped": _user(with_when=False) + "---\n" + _order(),
        "paths miss the collection (/api/users/* only)": _user(paths='["/api/users/*"]') + "---\n"
        + _order(paths='["/api/orders/*"]'),
        "header check by presence only (values ['*'])": _user(when='["*"]') + "---\n" + _order(),
        "x-user-id checked with notValues [''] alone": _user() + "---\n" + _order(when='      notValues: [""]\n'),
        "conditions split into separate ALLOW policies": split_user + "---\n" + _order(),
        "DENY instead of ALLOW": _user(action="DENY") + "---\n" + _order(action="DENY"),
        "empty policies (spec: {})": _policy("user-service-authz", "user-service", "").replace("  rules:\n", "")
        + "---\n" + _order(),
        "exact header value 'Bearer'": _user(when='["Bearer"]') + "---\n" + _order(),
        "selector that selects nothing (app: users)": _user().replace("app: user-service", "app: users")
        + "---\n" + _order(),
    }
