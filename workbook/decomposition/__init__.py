"""Decomposition: from business capabilities to service boundaries.

Capabilities load from YAML (``catalog``), pairwise coupling follows the source article's
formula with exposed weights (``coupling``), groupings come from the article's greedy
threshold rule, an order-free threshold rule or modularity clustering (``grouping``,
``clustering``), and each grouping is measured (``metrics``), checked (``checks``) and
reported (``report``). No plotting here: chapter 1's lab (``workbook.labs.ch01_decomposition``) draws it
and holds the exercise.
"""

from workbook.decomposition.capability import Capability
from workbook.decomposition.catalog import DATA_DIR, Catalog, catalog_from_records, load_catalog
from workbook.decomposition.checks import (SizeRule, ownership_conflicts, service_cycles, service_dependency_graph,
                                           size_violations)
from workbook.decomposition.clustering import ALGORITHMS, cluster, coupling_graph
from workbook.decomposition.coupling import CouplingMatrix, CouplingModel, CouplingWeights, coupling_matrix, jaccard
from workbook.decomposition.grouping import (Grouping, article_greedy_grouping, core_capability, service_label,
                                             threshold_components)
from workbook.decomposition.metrics import GroupingMetrics, grouping_metrics
from workbook.decomposition.pipeline import METHODS, Decomposition, decompose, group
from workbook.decomposition.report import build_report, format_report

__all__ = [
    "ALGORITHMS", "DATA_DIR", "METHODS", "Capability", "Catalog", "CouplingMatrix", "CouplingModel",
    "CouplingWeights", "Decomposition", "Grouping", "GroupingMetrics", "SizeRule",
    "article_greedy_grouping", "build_report", "catalog_from_records", "cluster", "core_capability",
    "coupling_graph", "coupling_matrix", "decompose", "format_report", "group", "grouping_metrics", "jaccard",
    "load_catalog", "ownership_conflicts", "service_cycles", "service_dependency_graph", "service_label",
    "size_violations", "threshold_components",
]
