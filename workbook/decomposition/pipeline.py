"""One call from a catalogue and settings to a grouping, its metrics and its report.

``decompose`` is what the notebook's widgets call on every change; it validates its
arguments (a bad weight or algorithm is a ``ParameterError`` naming it).
"""

from __future__ import annotations

from dataclasses import dataclass

from workbook.core.params import check_choice
from workbook.decomposition.catalog import Catalog
from workbook.decomposition.checks import SizeRule
from workbook.decomposition.clustering import ALGORITHMS, cluster
from workbook.decomposition.coupling import CouplingMatrix, CouplingModel, coupling_matrix
from workbook.decomposition.grouping import Grouping, article_greedy_grouping, threshold_components
from workbook.decomposition.metrics import GroupingMetrics, grouping_metrics
from workbook.decomposition.report import build_report

METHODS = ("article_greedy", "threshold_components") + ALGORITHMS


@dataclass(frozen=True)
class Decomposition:
    catalog: Catalog
    model: CouplingModel
    matrix: CouplingMatrix
    grouping: Grouping
    metrics: GroupingMetrics
    report: dict


def group(catalog: Catalog, matrix: CouplingMatrix, method: str = "louvain", *, threshold: float = 0.3,
          seed: int = 0, resolution: float = 1.0) -> Grouping:
    check_choice("method", method, METHODS)
    if method == "article_greedy":
        return article_greedy_grouping(catalog, matrix, threshold)
    if method == "threshold_components":
        return threshold_components(catalog, matrix, threshold)
    return cluster(catalog, matrix, method, seed=seed, resolution=resolution)


def decompose(catalog: Catalog, model: CouplingModel | None = None, method: str = "louvain", *,
              threshold: float = 0.3, seed: int = 0, resolution: float = 1.0,
              size_rule: SizeRule | None = None) -> Decomposition:
    model = model or CouplingModel()
    matrix = coupling_matrix(catalog, model)
    grouping = group(catalog, matrix, method, threshold=threshold, seed=seed, resolution=resolution)
    return Decomposition(catalog, model, matrix, grouping, grouping_metrics(catalog, matrix, grouping),
                         build_report(catalog, matrix, grouping, model, size_rule))
