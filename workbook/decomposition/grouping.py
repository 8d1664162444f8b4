"""A grouping (a partition of a catalogue into services) and the threshold-based groupers.

``Grouping`` is canonical: members of a service are in catalogue order and services are
ordered by their first member, so two equal partitions compare equal however they were
found. A service is named after its *core* capability (``service_label``): the member most
tied to the others in the service (dependencies between them and entities they share),
ties going to the more complex one. The source article named a service after whichever
capability came first in its list, so the same service changed name with the input order
and a mixed bag was named after an arbitrary member.

Two threshold groupers:

* ``article_greedy_grouping``: the source article's algorithm, kept as written. Walking
  the catalogue in order, each unassigned capability opens a service and pulls in every
  later unassigned capability whose coupling with it is *at most* the threshold: it
  merges the pairs that are least related. Its answer also depends on the input order.
* ``threshold_components``: what a threshold rule should do. Link every pair whose
  coupling is *at least* the threshold; services are the connected components. The
  answer depends only on the matrix, not on the order.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from workbook.core.errors import ParameterError
from workbook.core.params import check_number
from workbook.decomposition.catalog import Catalog
from workbook.decomposition.coupling import CouplingMatrix


def core_capability(catalog: Catalog, members: Sequence[str]) -> str:
    """The member with the most ties to the other members (dependencies either way, shared
    entities), then the highest complexity, then the alphabetically first name (so the
    choice does not depend on the order of the catalogue)."""
    group = set(members)

    def ties(name: str) -> int:
        cap = catalog[name]
        calls = sum(1 for d in cap.dependencies if d in group)
        called = sum(1 for o in members if o != name and name in catalog[o].dependencies)
        shared = sum(len(set(cap.entities) & set(catalog[o].entities)) for o in members if o != name)
        return calls + called + shared

    return min(members, key=lambda n: (-ties(n), -catalog[n].complexity, n))


def service_label(catalog: Catalog, members: Sequence[str]) -> str:
    """A service's name from its core capability: ``order_management`` -> ``order-management-service``."""
    return f"{core_capability(catalog, members).replace('_', '-')}-service"


@dataclass(frozen=True)
class Grouping:
    """A partition of a catalogue's capability names into services, canonically ordered.

    ``labels`` are the service names (``service_label``), computed by ``Grouping.of``; they
    do not take part in equality, which is about the partition.
    """

    services: tuple[tuple[str, ...], ...]
    method: str = "manual"
    labels: tuple[str, ...] = field(default=(), compare=False)

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
        return cls(tuple(services), method, tuple(service_label(catalog, s) for s in services))

    @property
    def names(self) -> tuple[str, ...]:
        if len(self.labels) == len(self.services):
            return self.labels
        return tuple(f"service-{k + 1}" for k in range(len(self.services)))

    def service_of(self) -> dict[str, str]:
        """Capability name -> service name."""
        return {cap: name for name, members in zip(self.names, self.services) for cap in members}

    def as_dict(self) -> dict[str, list[str]]:
        return {name: list(members) for name, members in zip(self.names, self.services)}

    def __len__(self) -> int:
        return len(self.services)

    def same_partition(self, other: Grouping) -> bool:
        return self.services == other.services


def article_greedy_grouping(catalog: Catalog, matrix: CouplingMatrix, threshold: float = 0.3) -> Grouping:
    """The article's ``suggest_service_boundaries``, faithfully: merges pairs with coupling <= threshold."""
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
    return Grouping.of(catalog, groups, method=f"article's greedy (coupling <= {threshold:g})")


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
