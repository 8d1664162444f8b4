"""The decomposition report: a JSON-serialisable dict and its readable text form.

Unlike the article's report, the per-service ``coupling_score`` is gone: what the article
computed there was the mean complexity, and it is reported under that name. Coupling
figures come from ``metrics`` (cohesion, cross coupling, modularity) and the checks
(ownership conflicts, cycles, size) come with the rule that produced them.
"""

from __future__ import annotations

from workbook.decomposition.catalog import Catalog
from workbook.decomposition.checks import SizeRule, ownership_conflicts, service_cycles, size_violations
from workbook.decomposition.coupling import CouplingMatrix, CouplingModel
from workbook.decomposition.grouping import Grouping
from workbook.decomposition.metrics import grouping_metrics


def build_report(catalog: Catalog, matrix: CouplingMatrix, grouping: Grouping, model: CouplingModel | None = None,
                 size_rule: SizeRule | None = None) -> dict:
    """Everything about one grouping, as plain lists, dicts, strings and numbers."""
    model = model or CouplingModel()
    size_rule = size_rule or SizeRule()
    metrics = grouping_metrics(catalog, matrix, grouping)
    services = []
    for name, members in zip(grouping.names, grouping.services):
        caps = [catalog[m] for m in members]
        entities = []
        for cap in caps:
            entities.extend(e for e in cap.entities if e not in entities)
        total = sum(c.complexity for c in caps)
        services.append({
            "service": name,
            "capabilities": list(members),
            "teams": sorted({c.team for c in caps}),
            "entities": entities,
            "api": [f"/{c.name}/{op}" for c in caps for op in c.operations],
            "total_complexity": total,
            "mean_complexity": total / len(caps),
        })
    conflicts = ownership_conflicts(catalog, grouping)
    cycles = service_cycles(catalog, grouping)
    sizes = size_violations(catalog, grouping, size_rule)
    return {
        "catalogue": catalog.name,
        "method": grouping.method,
        "model": model.as_dict(),
        "summary": {"capabilities": len(catalog), **metrics.as_dict(),
                    "article_average_coupling": matrix.mean_off_diagonal()},
        "services": services,
        "checks": {
            "ownership_conflicts": conflicts,
            "cycles": cycles,
            "size_rule": size_rule.as_dict(),
            "size_violations": sizes,
            "ok": not (conflicts or cycles or sizes),
        },
    }


def format_report(report: dict) -> str:
    """A short readable summary of ``build_report``'s result."""
    s = report["summary"]
    checks = report["checks"]

    def fmt(x):
        return "n/a" if x is None else f"{x:.3f}"

    lines = [
        f"{report['catalogue']}: {s['capabilities']} capabilities -> {s['services']} services  [{report['method']}]",
        f"  modularity {s['modularity']:.3f}   cohesion {fmt(s['cohesion'])}"
        f"   cross coupling {fmt(s['cross_coupling'])}   cross-service dependencies {s['cross_service_dependencies']}/{s['dependencies']}",
    ]
    for svc in report["services"]:
        lines.append(f"  {svc['service']:<32} complexity {svc['total_complexity']:>2}  "
                     f"{', '.join(svc['capabilities'])}")
    lines.append(f"  ownership conflicts: {len(checks['ownership_conflicts'])}")
    for c in checks["ownership_conflicts"]:
        lines.append(f"    {c['entity']}: " + "; ".join(f"{k} ({', '.join(v)})" for k, v in c["services"].items()))
    lines.append(f"  cyclic dependencies: {len(checks['cycles'])}")
    for c in checks["cycles"]:
        lines.append("    " + " -> ".join(c["example_cycle"]) + "   via " + ", ".join(c["calls"]))
    lines.append(f"  size violations: {len(checks['size_violations'])}   (rule: {checks['size_rule']['rule']})")
    for v in checks["size_violations"]:
        lines.append(f"    {v['service']}: {v['problem']}")
    lines.append("  verdict: " + ("all checks pass" if checks["ok"] else "checks fail"))
    return "\n".join(lines)
