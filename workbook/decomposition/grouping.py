"""A grouping (a partition of a catalogue into services) and the threshold-based groupers.

``Grouping`` is canonical: members of a service are in catalogue order and services are
ordered by their first member, so two equal partitions compare equal however they were
found. A service is named after its first capability, the way the seed names them
(``user_management`` -> ``user-management-service``).

Two threshold groupers:

* ``seed_greedy_grouping``: the seed's algorithm, kept as written. Walking the catalogue
  in order, each unassigned capability opens a service and pulls in every later
  unassigned capability whose coupling with it is *at most* the threshold: it merges the
  pairs that are least related. Its answer also depends on the input order.
* ``threshold_components``: what a threshold rule should do. Link every pair whose
  coupling is *at least* the threshold; services are the connected components. The
  answer depends only on the matrix, not on the order.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from workbook.core.errors import ParameterError
from workbook.core.params import check_number
from workbook.decomposition.catalog import Catalog
from workbook.decomposition.coupling import CouplingMatrix


def service_name(first_capability: str) -> str:
    """The seed's naming rule: ``order_processing`` -> ``order-processing-service``."""
    return f"{first_capability.replace('_', '-')}-service"


@dataclass(frozen=True)
class Grouping:
    """A partition of a catalogue's capability names into services, canonically ordered."""

    services: tuple[tuple[str, ...], ...]
    method: str = "manual"

    @classmethod
    def of(cls, catalog: Catalog, groups: Iterable[Iterable[str]], method: str = "manual") -> Grouping:
        """Build a canonical grouping; every capability exactly once, nothing unknown."""
        order = {n: i for i, n in enumerate(catalog.names)}
        seen: dict[str, int] = {}
        services = []
        for k, group in enumerate(groups):
            members = list(group)
            if not members:
                raise ParameterError(f"groups[{k}]", members, "a non-empty group of capability names")
            for name in members:
                if name not in order:
                    raise ParameterError(f"groups[{k}]", name, f"names of capabilities in {catalog.name!r}")
                if name in seen:
                    raise ParameterError(f"groups[{k}]", name,
                                         f"each capability in one group (also in groups[{seen[name]}])")
                seen[name] = k
            services.append(tuple(sorted(members, key=order.__getitem__)))
        missing = [n for n in catalog.names if n not in seen]
        if missing:
            raise ParameterError("groups", missing, "every capability of the catalogue in some group")
        services.sort(key=lambda s: order[s[0]])
        return cls(tuple(services), method)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(service_name(s[0]) for s in self.services)

    def service_of(self) -> dict[str, str]:
        """Capability name -> service name."""
        return {cap: name for name, members in zip(self.names, self.services) for cap in members}

    def as_dict(self) -> dict[str, list[str]]:
        return {name: list(members) for name, members in zip(self.names, self.services)}

    def __len__(self) -> int:
        return len(self.services)

    def same_partition(self, other: Grouping) -> bool:
        return self.services == other.services


def seed_greedy_grouping(catalog: Catalog, matrix: CouplingMatrix, threshold: float = 0.3) -> Grouping:
    """The seed's ``suggest_service_boundaries``, faithfully: merges pairs with coupling <= threshold."""
    threshold = check_number("threshold", threshold, minimum=0.0, maximum=1.0)
    _check_matrix(catalog, matrix)
    processed: set[str] = set()
    groups: list[list[str]] = []
    for cap in catalog.names:
        if cap in processed:
            continue
        group = [cap]
        processed.add(cap)
        for other in catalog.names:
            if other not in processed and matrix(cap, other) <= threshold:
                group.append(other)
                processed.add(other)
        groups.append(group)
    return Grouping.of(catalog, groups, method=f"seed greedy (coupling <= {threshold:g})")


def threshold_components(catalog: Catalog, matrix: CouplingMatrix, threshold: float = 0.3) -> Grouping:
    """Connected components of the graph linking pairs with coupling >= threshold (order-free)."""
    threshold = check_number("threshold", threshold, minimum=0.0, maximum=1.0)
    _check_matrix(catalog, matrix)
    parent = {n: n for n in catalog.names}

    def find(x):
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b, value in matrix.pairs():
        if value >= threshold:
            ra, rb = find(a), find(b)
            if ra != rb:
                parent[rb] = ra
    groups: dict[str, list[str]] = {}
    for n in catalog.names:
        groups.setdefault(find(n), []).append(n)
    return Grouping.of(catalog, groups.values(), method=f"threshold components (coupling >= {threshold:g})")


def _check_matrix(catalog: Catalog, matrix: CouplingMatrix) -> None:
    if set(matrix.names) != set(catalog.names):
        raise ParameterError("matrix", list(matrix.names), f"a coupling matrix of the catalogue {catalog.name!r}")


def groups_from_names(catalog: Catalog, groups: Sequence[Sequence[str]], method: str = "manual") -> Grouping:
    """Shorthand for ``Grouping.of`` (a learner's hand-made grouping)."""
    return Grouping.of(catalog, groups, method)
