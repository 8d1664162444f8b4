"""Checks of a grouping: shared data, cycles between services, services of the wrong size.

* Data-ownership conflict: an entity used by capabilities that sit in two or more
  services. Each entity should have one owning service (database per service); a
  conflict means two services write the same data.
* Cyclic dependency: services that (through their capabilities' dependencies) call each
  other round a cycle. Reported as the strongly connected components of the service
  dependency graph with more than one service; such services cannot be deployed or
  reasoned about independently.
* Size (``SizeRule``): a service is *too large* when its capabilities' total complexity
  exceeds ``max_complexity`` or it has more than ``max_capabilities`` capabilities, and
  *too small* when its total complexity is below ``min_complexity`` (a service that
  costs more to run than it is worth). Defaults: complexity in [3, 16], at most 5
  capabilities.
"""

from __future__ import annotations

from dataclasses import dataclass

import networkx as nx

from workbook.core.errors import ParameterError
from workbook.core.params import check_int
from workbook.decomposition.catalog import Catalog
from workbook.decomposition.grouping import Grouping


@dataclass(frozen=True)
class SizeRule:
    min_complexity: int = 3
    max_complexity: int = 16
    max_capabilities: int = 5

    def __post_init__(self):
        check_int("min_complexity", self.min_complexity, minimum=0)
        check_int("max_complexity", self.max_complexity, minimum=1)
        check_int("max_capabilities", self.max_capabilities, minimum=1)
        if self.min_complexity > self.max_complexity:
            raise ParameterError("min_complexity", self.min_complexity, f"<= max_complexity ({self.max_complexity})")

    def describe(self) -> str:
        return (f"too large: total complexity > {self.max_complexity} or more than {self.max_capabilities} "
                f"capabilities; too small: total complexity < {self.min_complexity}")

    def as_dict(self) -> dict:
        return {"min_complexity": self.min_complexity, "max_complexity": self.max_complexity,
                "max_capabilities": self.max_capabilities, "rule": self.describe()}


def ownership_conflicts(catalog: Catalog, grouping: Grouping) -> list[dict]:
    """Entities used in more than one service: ``[{entity, services: {service: [capabilities]}}]``."""
    service_of = grouping.service_of()
    users: dict[str, dict[str, list[str]]] = {}
    for cap in catalog:
        for entity in cap.entities:
            users.setdefault(entity, {}).setdefault(service_of[cap.name], []).append(cap.name)
    order = {n: i for i, n in enumerate(grouping.names)}
    conflicts = []
    for entity in sorted(users):
        services = users[entity]
        if len(services) > 1:
            conflicts.append({"entity": entity,
                              "services": {s: services[s] for s in sorted(services, key=order.__getitem__)}})
    return conflicts


def service_dependency_graph(catalog: Catalog, grouping: Grouping) -> nx.DiGraph:
    """Directed graph of services; edge s -> t when a capability of s depends on one of t.

    Edge attribute ``calls`` lists the ``"capability -> dependency"`` pairs behind it and
    ``weight`` is their number. Dependencies inside a service are not edges.
    """
    service_of = grouping.service_of()
    graph = nx.DiGraph()
    graph.add_nodes_from(grouping.names)
    for cap in catalog:
        for dep in cap.dependencies:
            s, t = service_of[cap.name], service_of[dep]
            if s == t:
                continue
            if graph.has_edge(s, t):
                graph[s][t]["calls"].append(f"{cap.name} -> {dep}")
                graph[s][t]["weight"] += 1
            else:
                graph.add_edge(s, t, calls=[f"{cap.name} -> {dep}"], weight=1)
    return graph


def service_cycles(catalog: Catalog, grouping: Grouping) -> list[dict]:
    """Groups of services that depend on each other in a cycle, each with one example cycle."""
    graph = service_dependency_graph(catalog, grouping)
    order = {n: i for i, n in enumerate(grouping.names)}
    found = []
    for component in nx.strongly_connected_components(graph):
        if len(component) < 2:
            continue
        members = sorted(component, key=order.__getitem__)
        sub = graph.subgraph(members)
        cycle = [u for u, _ in nx.find_cycle(sub, source=members[0])]
        start = cycle.index(min(cycle, key=order.__getitem__))
        cycle = cycle[start:] + cycle[:start]
        calls = [call for u, v in zip(cycle, cycle[1:] + cycle[:1]) for call in graph[u][v]["calls"]]
        found.append({"services": members, "example_cycle": cycle + [cycle[0]], "calls": calls})
    found.sort(key=lambda c: order[c["services"][0]])
    return found


def size_violations(catalog: Catalog, grouping: Grouping, rule: SizeRule | None = None) -> list[dict]:
    """Services outside ``rule``: ``[{service, problem, capabilities, total_complexity}]``."""
    rule = rule or SizeRule()
    out = []
    for name, members in zip(grouping.names, grouping.services):
        total = sum(catalog[m].complexity for m in members)
        problems = []
        if total > rule.max_complexity:
            problems.append(f"too large: total complexity {total} > {rule.max_complexity}")
        if len(members) > rule.max_capabilities:
            problems.append(f"too large: {len(members)} capabilities > {rule.max_capabilities}")
        if total < rule.min_complexity:
            problems.append(f"too small: total complexity {total} < {rule.min_complexity}")
        for problem in problems:
            out.append({"service": name, "problem": problem, "capabilities": len(members),
                        "total_complexity": total})
    return out
