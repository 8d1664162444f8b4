"""A business capability: the unit that decomposition groups into services.

A ``Capability`` is immutable and already valid when it exists (``workbook.decomposition.
catalog`` builds them from YAML and checks every field first). Invariants: ``entities`` is
a non-empty tuple of distinct names; ``operations`` and ``dependencies`` are tuples of
distinct names; a capability never depends on itself; ``complexity`` is an int >= 1.
"""

from __future__ import annotations

from dataclasses import dataclass

FIELDS = ("name", "description", "entities", "operations", "dependencies", "team", "complexity")


@dataclass(frozen=True)
class Capability:
    """One business capability (the source article's ``BusinessCapability``, with shorter names).

    ``entities`` are the data it reads and writes, ``operations`` what it offers,
    ``dependencies`` the names of the capabilities it calls synchronously, ``team`` the
    owning team, ``complexity`` a relative effort (an integer, 1 = trivial).
    """

    name: str
    description: str
    entities: tuple[str, ...]
    operations: tuple[str, ...]
    dependencies: tuple[str, ...]
    team: str
    complexity: int

    def as_dict(self) -> dict:
        """A JSON-serialisable mapping with the YAML field names."""
        return {
            "name": self.name,
            "description": self.description,
            "entities": list(self.entities),
            "operations": list(self.operations),
            "dependencies": list(self.dependencies),
            "team": self.team,
            "complexity": self.complexity,
        }
