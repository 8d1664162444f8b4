"""Honest figures of a grouping, measured on the coupling matrix and the dependencies.

* ``modularity``: Newman's weighted modularity of the partition in the coupling graph
  (resolution 1). 0 means "no better than chance", higher means the services contain
  more of the coupling than a random split of the same degrees would.
* ``cohesion``: mean coupling over pairs of capabilities in the same service (``None``
  when every service has a single capability: there is no pair to measure).
* ``cross_coupling``: mean coupling over pairs in different services (``None`` with one
  service). A good grouping has cohesion well above cross coupling.
* ``cross_service_dependencies``: how many capability dependencies cross a service
  boundary, i.e. become network calls.

The article's ``coupling_score`` of a service is the mean *complexity* of its capabilities;
it is reported here as ``mean_complexity`` and never as a coupling figure.
"""

from __future__ import annotations

from dataclasses import dataclass

import networkx as nx

from workbook.decomposition.catalog import Catalog
from workbook.decomposition.clustering import coupling_graph
from workbook.decomposition.coupling import CouplingMatrix
from workbook.decomposition.grouping import Grouping


@dataclass(frozen=True)
class GroupingMetrics:
    services: int
    modularity: float
    cohesion: float | None
    cross_coupling: float | None
    intra_pairs: int
    cross_pairs: int
    cross_service_dependencies: int
    dependencies: int

    def as_dict(self) -> dict:
        return dict(self.__dict__)

    def summary(self) -> str:
        def fmt(x):
            return "n/a" if x is None else f"{x:.3f}"
        return (f"services={self.services}  modularity={self.modularity:.3f}  "
                f"cohesion={fmt(self.cohesion)} ({self.intra_pairs} pairs)  "
                f"cross coupling={fmt(self.cross_coupling)} ({self.cross_pairs} pairs)  "
                f"cross-service dependencies={self.cross_service_dependencies}/{self.dependencies}")


def grouping_metrics(catalog: Catalog, matrix: CouplingMatrix, grouping: Grouping) -> GroupingMetrics:
    service_of = grouping.service_of()
    intra, cross = [], []
    for a, b, value in matrix.pairs():
        (intra if service_of[a] == service_of[b] else cross).append(value)
    graph = coupling_graph(matrix)
    if graph.number_of_edges():
        modularity = nx.community.modularity(graph, [set(s) for s in grouping.services], weight="weight")
    else:
        modularity = 0.0
    deps = [(c.name, d) for c in catalog for d in c.dependencies]
    crossing = sum(1 for a, b in deps if service_of[a] != service_of[b])
    return GroupingMetrics(
        services=len(grouping),
        modularity=float(modularity),
        cohesion=sum(intra) / len(intra) if intra else None,
        cross_coupling=sum(cross) / len(cross) if cross else None,
        intra_pairs=len(intra),
        cross_pairs=len(cross),
        cross_service_dependencies=crossing,
        dependencies=len(deps),
    )
