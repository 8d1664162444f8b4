"""Community detection on the weighted coupling graph (networkx), seeded and canonical.

The coupling graph has one node per capability and an edge of weight ``coupling(a, b)``
for every pair with positive coupling. Modularity-based clustering puts densely and
strongly coupled capabilities in the same service and cuts where coupling is weak:
"high cohesion, low coupling" measured on the graph, not guessed pair by pair.

* ``louvain``: ``networkx.community.louvain_communities`` with a seed. Same seed and same
  graph (nodes inserted in catalogue order) -> same partition.
* ``greedy_modularity``: Clauset-Newman-Moore agglomeration; deterministic, no seed.

Terms:

* **modularity** Q of a partition of a weighted graph: the fraction of the total edge
  weight that falls inside groups, minus the fraction expected inside them if the same
  nodes kept their weighted degrees but edges were placed at random (Newman and Girvan
  2004; Newman 2006). Q = 0 is "no better than chance"; higher means the groups hold more
  of the coupling than chance would.
* **Louvain** (Blondel, Guillaume, Lambiotte and Lefebvre 2008) maximises Q greedily: move
  each node to the neighbouring group that raises Q most, repeat until no move helps, then
  aggregate each group into one node and start again on the smaller graph. Its moves
  visit nodes in random order, hence the seed.
* **resolution** gamma scales the "expected by chance" term: Q_gamma = inside fraction -
  gamma * expected fraction. gamma > 1 penalises large groups, so it yields more, smaller
  services; gamma < 1 fewer, larger ones; gamma = 1 is plain modularity.
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
