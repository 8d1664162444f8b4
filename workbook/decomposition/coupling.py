"""Pairwise coupling between capabilities: the source article's formula, with the weights exposed.

coupling(a, b) = w_data * data(a, b) + w_functional * functional(a, b) + w_team * team(a, b)

* data: Jaccard index of the two entity sets (|A & B| / |A | B|).
* functional: ``dependency_coupling`` (0.8) when either depends on the other, otherwise
  the Jaccard index of the two operation sets.
* team: ``same_team`` (0.2) when one team owns both, ``different_team`` (0.8) otherwise.

The defaults are the article's (0.4, 0.4, 0.2; 0.8; 0.2 / 0.8) and the sum is evaluated
in the article's order, so the floats are bit-for-bit the article's (0.4800000000000001
...). The article's team term scores two *different* teams as more coupled than one team,
which pulls capabilities of different teams into one service. Conway's law is descriptive
(an organisation produces designs that copy its communication structure); choosing
service boundaries to match the teams you want is the *inverse Conway manoeuvre*, and
``CouplingModel(same_team=0.8, different_team=0.2)`` encodes it: what one team owns
couples more. The article's values stay the default because this chapter reproduces the
article. Invariants: the result is symmetric, within [0, 1] when the weights sum to 1 and
every term lies in [0, 1], and 0.0 on the diagonal (the article's convention).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from workbook.core.errors import ParameterError
from workbook.core.params import check_number
from workbook.decomposition.capability import Capability
from workbook.decomposition.catalog import Catalog

WEIGHT_TOLERANCE = 1e-9


@dataclass(frozen=True)
class CouplingWeights:
    """The three weights; each in [0, 1] and summing to 1 (within ``WEIGHT_TOLERANCE``)."""

    data: float = 0.4
    functional: float = 0.4
    team: float = 0.2

    def __post_init__(self):
        for name in ("data", "functional", "team"):
            check_number(f"weights.{name}", getattr(self, name), minimum=0.0, maximum=1.0)
        total = self.data + self.functional + self.team
        if not math.isclose(total, 1.0, rel_tol=0.0, abs_tol=WEIGHT_TOLERANCE):
            raise ParameterError("weights", (self.data, self.functional, self.team),
                                 f"data + functional + team == 1 (they sum to {total:.6g})")

    def as_dict(self) -> dict:
        return {"data": self.data, "functional": self.functional, "team": self.team}


@dataclass(frozen=True)
class CouplingModel:
    """The coupling formula's parameters (defaults: the article's)."""

    weights: CouplingWeights = field(default_factory=CouplingWeights)
    dependency_coupling: float = 0.8
    same_team: float = 0.2
    different_team: float = 0.8

    def __post_init__(self):
        if not isinstance(self.weights, CouplingWeights):
            raise ParameterError("weights", self.weights, "a CouplingWeights")
        for name in ("dependency_coupling", "same_team", "different_team"):
            check_number(name, getattr(self, name), minimum=0.0, maximum=1.0)

    @classmethod
    def from_weights(cls, data: float, functional: float, team: float, **kwargs) -> CouplingModel:
        return cls(CouplingWeights(data, functional, team), **kwargs)

    def data(self, a: Capability, b: Capability) -> float:
        return jaccard(a.entities, b.entities)

    def functional(self, a: Capability, b: Capability) -> float:
        if b.name in a.dependencies or a.name in b.dependencies:
            return self.dependency_coupling
        return jaccard(a.operations, b.operations)

    def team(self, a: Capability, b: Capability) -> float:
        return self.same_team if a.team == b.team else self.different_team

    def pair(self, a: Capability, b: Capability) -> float:
        """The coupling of two distinct capabilities (0.0 for a capability with itself)."""
        if a.name == b.name:
            return 0.0
        w = self.weights
        return self.data(a, b) * w.data + self.functional(a, b) * w.functional + self.team(a, b) * w.team

    def terms(self, a: Capability, b: Capability) -> dict:
        """The three unweighted terms and the total, for explaining one pair."""
        return {"data": self.data(a, b), "functional": self.functional(a, b), "team": self.team(a, b),
                "coupling": self.pair(a, b)}

    def as_dict(self) -> dict:
        return {"weights": self.weights.as_dict(), "dependency_coupling": self.dependency_coupling,
                "same_team": self.same_team, "different_team": self.different_team}


def jaccard(a, b) -> float:
    """|A & B| / |A | B| of two collections of names; 0.0 when both are empty."""
    a, b = set(a), set(b)
    union = a | b
    if not union:
        return 0.0
    return len(a & b) / len(union)


@dataclass(frozen=True)
class CouplingMatrix:
    """Coupling of every ordered pair of a catalogue, in catalogue order.

    ``values[i][j]`` is the coupling of ``names[i]`` and ``names[j]``; symmetric, with a
    zero diagonal.
    """

    names: tuple[str, ...]
    values: tuple[tuple[float, ...], ...]

    def __call__(self, a: str, b: str) -> float:
        return self.values[self.names.index(a)][self.names.index(b)]

    def as_dict(self) -> dict[str, dict[str, float]]:
        """The article's shape: ``{a: {b: coupling}}``."""
        return {a: dict(zip(self.names, row)) for a, row in zip(self.names, self.values)}

    def pairs(self):
        """Yield ``(a, b, coupling)`` for each unordered pair, a before b in catalogue order."""
        for i, a in enumerate(self.names):
            for j in range(i + 1, len(self.names)):
                yield a, self.names[j], self.values[i][j]

    def mean_off_diagonal(self) -> float:
        """The article's "average coupling": mean over ordered pairs a != b."""
        n = len(self.names)
        if n < 2:
            return 0.0
        total = 0
        for i in range(n):
            for j in range(n):
                if i != j:
                    total += self.values[i][j]
        return total / (n * (n - 1))

    def table(self, digits: int = 2) -> str:
        """A fixed-width text table of the matrix (rows and columns in catalogue order)."""
        width = max(len(n) for n in self.names)
        head = " " * width + "  " + "  ".join(f"c{j:<{digits + 1}d}" for j in range(len(self.names)))
        lines = [head]
        for i, (name, row) in enumerate(zip(self.names, self.values)):
            lines.append(f"{name:<{width}}  " + "  ".join(f"{v:.{digits}f}" for v in row) + f"   (c{i})")
        return "\n".join(lines)


def coupling_matrix(catalog: Catalog, model: CouplingModel | None = None) -> CouplingMatrix:
    """The coupling of every pair of ``catalog`` under ``model`` (default: the article's)."""
    model = model or CouplingModel()
    caps = catalog.capabilities
    values = tuple(tuple(model.pair(a, b) for b in caps) for a in caps)
    return CouplingMatrix(catalog.names, values)
