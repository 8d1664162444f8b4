"""Community detection on the weighted coupling graph (networkx), seeded and canonical.

The coupling graph has one node per capability and an edge of weight ``coupling(a, b)``
for every pair with positive coupling. Modularity-based clustering puts densely and
strongly coupled capabilities in the same service and cuts where coupling is weak:
"high cohesion, low coupling" measured on the graph, not guessed pair by pair.

* ``louvain``: ``networkx.community.louvain_communities`` with a seed. Same seed and same
  graph (nodes inserted in catalogue order) -> same partition.
* ``greedy_modularity``: Clauset-Newman-Moore agglomeration; deterministic, no seed.

``resolution`` > 1 favours more, smaller services; < 1 fewer, larger ones.
"""

from __future__ import annotations

import networkx as nx

from workbook.core.params import check_choice, check_int, check_number
from workbook.decomposition.catalog import Catalog
from workbook.decomposition.coupling import CouplingMatrix
from workbook.decomposition.grouping import Grouping

ALGORITHMS = ("louvain", "greedy_modularity")


def coupling_graph(matrix: CouplingMatrix) -> nx.Graph:
    """Undirected weighted graph, nodes in catalogue order, edges where coupling > 0."""
    graph = nx.Graph()
    graph.add_nodes_from(matrix.names)
    for a, b, value in matrix.pairs():
        if value > 0:
            graph.add_edge(a, b, weight=value)
    return graph


def cluster(catalog: Catalog, matrix: CouplingMatrix, algorithm: str = "louvain", *, seed: int = 0,
            resolution: float = 1.0) -> Grouping:
    """Group ``catalog`` into services by modularity clustering of its coupling graph."""
    check_choice("algorithm", algorithm, ALGORITHMS)
    seed = check_int("seed", seed, minimum=0)
    resolution = check_number("resolution", resolution, minimum=0.0, min_exclusive=True)
    graph = coupling_graph(matrix)
    if algorithm == "louvain":
        communities = nx.community.louvain_communities(graph, weight="weight", resolution=resolution, seed=seed)
        method = f"louvain (seed {seed}, resolution {resolution:g})"
    else:
        communities = nx.community.greedy_modularity_communities(graph, weight="weight", resolution=resolution)
        method = f"greedy modularity (resolution {resolution:g})"
    return Grouping.of(catalog, communities, method=method)
