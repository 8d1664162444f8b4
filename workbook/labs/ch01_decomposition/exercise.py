"""The chapter's exercise: reach a target grouping, judged by a checker with reasons.

A ``Target`` states what a good decomposition must achieve: no data-ownership conflicts,
no cyclic dependencies between services, every service within the ``SizeRule``, and a
modularity of at least ``min_modularity`` measured on a fixed *reference* coupling graph.

The reference is ``REFERENCE_MODEL`` (data 0.5, functional 0.5, team 0): the structural
coupling (shared data, calls, shared operations), on which the learner's own weights have
no say, so the target cannot be met by re-weighting the yardstick. The team term is left
out of the yardstick on purpose: with the article's team values nearly every pair gets the
same 0.16 background, which pushes the modularity of every partition towards zero and
makes the figure meaningless.

``check_grouping`` returns the workbook's ``Verdict`` (``workbook.core.verdict``):
``print(verdict)`` lists every target with PASS/FAIL and the numbers behind it, and
``bool(verdict)`` is whether the grouping passed. The naive groupings (the article's
greedy rule, everything in one service, one service per capability) all fail it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from workbook.core.params import check_number
from workbook.core.verdict import Verdict
from workbook.decomposition.catalog import Catalog
from workbook.decomposition.checks import SizeRule, ownership_conflicts, service_cycles, size_violations
from workbook.decomposition.coupling import CouplingModel, coupling_matrix
from workbook.decomposition.grouping import Grouping
from workbook.decomposition.metrics import grouping_metrics

REFERENCE_MODEL = CouplingModel.from_weights(0.5, 0.5, 0.0)


@dataclass(frozen=True)
class Target:
    min_modularity: float = 0.15
    size_rule: SizeRule = field(default_factory=SizeRule)
    reference_model: CouplingModel = REFERENCE_MODEL

    def __post_init__(self):
        check_number("min_modularity", self.min_modularity, minimum=-0.5, maximum=1.0)

    def describe(self) -> str:
        w = self.reference_model.weights
        return (f"no ownership conflicts; no cyclic dependencies between services; sizes within the rule "
                f"({self.size_rule.describe()}); modularity >= {self.min_modularity:g} on the reference graph "
                f"(weights data {w.data:g}, functional {w.functional:g}, team {w.team:g})")


def check_grouping(catalog: Catalog, grouping, target: Target | None = None) -> Verdict:
    """Judge ``grouping`` of ``catalog`` against ``target`` (default ``Target()``)."""
    target = target or Target()
    subject = f"grouping of {catalog.name!r}"
    if not isinstance(grouping, Grouping):
        return Verdict.rejected(subject, f"expected a Grouping (from decompose(...).grouping or Grouping.of), "
                                         f"got {type(grouping).__name__}")
    if set(grouping.service_of()) != set(catalog.names):
        return Verdict.rejected(subject, f"the grouping is not a partition of {catalog.name!r}'s capabilities")
    subject = f"{len(grouping)} services of {catalog.name!r} [{grouping.method}]"
    results = []
    conflicts = ownership_conflicts(catalog, grouping)
    detail = "none" if not conflicts else f"{len(conflicts)}: " + "; ".join(
        f"{c['entity']} in {', '.join(c['services'])}" for c in conflicts)
    results.append(("no ownership conflicts", not conflicts, detail))
    cycles = service_cycles(catalog, grouping)
    detail = "none" if not cycles else f"{len(cycles)}: " + "; ".join(
        " -> ".join(c["example_cycle"]) for c in cycles)
    results.append(("no cyclic dependencies", not cycles, detail))
    sizes = size_violations(catalog, grouping, target.size_rule)
    detail = "all services within the rule" if not sizes else f"{len(sizes)}: " + "; ".join(
        f"{v['service']} {v['problem']}" for v in sizes)
    results.append(("service sizes", not sizes, detail))
    matrix = coupling_matrix(catalog, target.reference_model)
    q = grouping_metrics(catalog, matrix, grouping).modularity
    results.append(("modularity", q >= target.min_modularity,
                    f"{q:.3f} on the reference graph, needs >= {target.min_modularity:g}"))
    return Verdict.of(subject, results, numbers={"services": len(grouping), "modularity": q,
                                                 "ownership_conflicts": len(conflicts), "cycles": len(cycles),
                                                 "size_violations": len(sizes)},
                      hint="keep capabilities that share an entity or call each other in a circle together, and cut "
                           "where coupling is weak; levers: the weights, the team rule, the algorithm, the resolution")
