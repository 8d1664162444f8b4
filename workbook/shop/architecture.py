"""The reference architecture as a validated directed graph.

A node is a client, the edge (gateway), a service, a database, the cache or a piece of
infrastructure; an edge ``a -> b`` means "a calls / sends to / stores in b", with a
``mode`` of ``sync``, ``async`` or ``data``. An edge may also say what ``degrades`` when
its target fails, if the caller survives that failure (a discovery client keeps serving
from its cached instance list when the registry dies: it no longer finds new instances
nor drops dead ones). ``load_architecture`` checks every element and raises
``ConfigError`` naming the file, the element and what was expected.

The blast radius is a *model*, and its assumptions are stated where it is computed
(``Architecture.blast_radius``): a failure travels backwards along ``sync`` and ``data``
edges, not along ``async`` ones, and not along edges that only degrade.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import networkx as nx
import yaml

from workbook.core.errors import ConfigError

NODE_KINDS = ("client", "edge", "service", "database", "cache", "infrastructure")
EDGE_MODES = ("sync", "async", "data")


@dataclass
class Architecture:
    """A named system: ``graph`` is a networkx DiGraph with node attrs kind/label(/team)."""

    name: str
    graph: nx.DiGraph

    def nodes_of(self, kind: str) -> list[str]:
        return [n for n, d in self.graph.nodes(data=True) if d["kind"] == kind]

    def _check(self, node: str) -> None:
        if node not in self.graph:
            raise KeyError(f"no node {node!r} in {self.name!r} (known: {', '.join(sorted(self.graph))})")

    def callees(self, node: str) -> list[str]:
        """What ``node`` calls, sends to or stores in (its direct dependencies)."""
        self._check(node)
        return sorted(self.graph.successors(node))

    def callers(self, node: str) -> list[str]:
        """What calls, sends to or stores in ``node``."""
        self._check(node)
        return sorted(self.graph.predecessors(node))

    def blast_radius(self, node: str, modes: tuple[str, ...] = ("sync", "data"), *,
                     through_degraded: bool = False) -> list[str]:
        """What a failure of ``node`` can reach: every node that waits on it, directly or
        transitively, through edges of the given ``modes``.

        Assumptions of the model, not facts about a running system: only synchronous calls
        and data access propagate a failure; an ``async`` edge breaks the chain because
        the producer does not wait for the consumer. That holds only when the producer can
        go on without the consumer (a durable queue, an outbox while the broker is down):
        the consumer's work is delayed, not lost, and the delay is still visible to users.
        An edge with ``degrades`` does not propagate either (the caller survives, with the
        degradation it names) unless ``through_degraded`` is true.
        """
        self._check(node)

        def propagates(a, b):
            data = self.graph.edges[a, b]
            return data["mode"] in modes and (through_degraded or not data.get("degrades"))

        view = nx.subgraph_view(self.graph, filter_edge=propagates)
        return sorted(nx.ancestors(view, node))

    def degraded_by(self, node: str) -> dict[str, str]:
        """The direct callers that survive a failure of ``node``, each with what degrades."""
        self._check(node)
        return {a: self.graph.edges[a, node]["degrades"] for a in sorted(self.graph.predecessors(node))
                if self.graph.edges[a, node].get("degrades")}


def load_architecture(path: str | Path) -> Architecture:
    """Read and validate an architecture YAML file (see ``data/tour/architecture.yaml``)."""
    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(path, "file", "a readable YAML file", str(exc)) from None
    except yaml.YAMLError as exc:
        raise ConfigError(path, "file", "valid YAML", str(exc).splitlines()[0]) from None
    return architecture_from_dict(doc, source=path)


def architecture_from_dict(doc, *, source="<dict>") -> Architecture:
    if not isinstance(doc, dict):
        raise ConfigError(source, "top level", "a mapping with 'name', 'nodes' and 'edges'", type(doc).__name__)
    for key, kind in (("name", str), ("nodes", list), ("edges", list)):
        if key not in doc:
            raise ConfigError(source, key, f"a top-level '{key}' field")
        if not isinstance(doc[key], kind):
            raise ConfigError(source, key, f"a {kind.__name__}", type(doc[key]).__name__)
    graph = nx.DiGraph()
    for i, node in enumerate(doc["nodes"]):
        where = f"nodes[{i}]"
        if not isinstance(node, dict):
            raise ConfigError(source, where, "a mapping with id, kind and label", node)
        for field in ("id", "kind", "label"):
            if field not in node:
                raise ConfigError(source, f"{where}.{field}", f"a '{field}' field")
            if not isinstance(node[field], str) or not node[field]:
                raise ConfigError(source, f"{where}.{field}", "a non-empty string", node[field])
        where = f"node {node['id']!r}"
        if node["kind"] not in NODE_KINDS:
            raise ConfigError(source, f"{where}.kind", "one of " + ", ".join(NODE_KINDS), node["kind"])
        if node["id"] in graph:
            raise ConfigError(source, where, "a unique id", node["id"])
        unknown = set(node) - {"id", "kind", "label", "team"}
        if unknown:
            raise ConfigError(source, f"{where}.{sorted(unknown)[0]}", "only id, kind, label and team")
        if node["kind"] == "service" and not isinstance(node.get("team"), str):
            raise ConfigError(source, f"{where}.team", "the owning team's name (every service has one)", node.get("team"))
        graph.add_node(node["id"], kind=node["kind"], label=node["label"], team=node.get("team"))
    for i, edge in enumerate(doc["edges"]):
        where = f"edges[{i}]"
        if not isinstance(edge, dict):
            raise ConfigError(source, where, "a mapping with from, to, mode and what", edge)
        for field in ("from", "to", "mode", "what"):
            if field not in edge:
                raise ConfigError(source, f"{where}.{field}", f"a '{field}' field")
            if not isinstance(edge[field], str):
                raise ConfigError(source, f"{where}.{field}", "a string", edge[field])
        unknown = set(edge) - {"from", "to", "mode", "what", "degrades"}
        if unknown:
            raise ConfigError(source, f"{where}.{sorted(unknown)[0]}", "only from, to, mode, what and degrades")
        if "degrades" in edge and (not isinstance(edge["degrades"], str) or not edge["degrades"].strip()):
            raise ConfigError(source, f"{where}.degrades", "a non-empty description of what degrades",
                              edge["degrades"])
        for end in ("from", "to"):
            if edge[end] not in graph:
                raise ConfigError(source, f"{where}.{end}", "the id of a node declared under 'nodes'", edge[end])
        if edge["mode"] not in EDGE_MODES:
            raise ConfigError(source, f"{where}.mode", "one of " + ", ".join(EDGE_MODES), edge["mode"])
        if graph.has_edge(edge["from"], edge["to"]):
            raise ConfigError(source, where, "no duplicate edge", f"{edge['from']} -> {edge['to']}")
        graph.add_edge(edge["from"], edge["to"], mode=edge["mode"], what=edge["what"],
                       degrades=edge.get("degrades"))
    return Architecture(doc["name"], graph)
