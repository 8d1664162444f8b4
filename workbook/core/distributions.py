"""Random distributions for latencies and service times, drawn from a seeded ``random.Random``.

A distribution is a small immutable object with ``sample(rng)`` and ``mean``; it never
owns randomness, so the caller's seeded generator fixes every draw. ``make_distribution``
builds one from a plain spec (a number, a name, or a dict), which is what notebooks and
YAML files use, and says which parameter is wrong when the spec is bad.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from workbook.core.errors import ParameterError
from workbook.core.params import check_number


class Distribution:
    """Base class: ``sample(rng) -> float`` (seconds, never negative) and ``mean``."""

    mean: float

    def sample(self, rng: random.Random) -> float:  # pragma: no cover - abstract
        raise NotImplementedError

    def scaled(self, factor: float) -> "Distribution":
        return Scaled(self, factor)


@dataclass(frozen=True)
class Constant(Distribution):
    value: float

    def sample(self, rng):
        return self.value

    @property
    def mean(self):
        return self.value


@dataclass(frozen=True)
class Uniform(Distribution):
    low: float
    high: float

    def sample(self, rng):
        return rng.uniform(self.low, self.high)

    @property
    def mean(self):
        return (self.low + self.high) / 2


@dataclass(frozen=True)
class Exponential(Distribution):
    """Memoryless: the service time of an M/M/1 queue. ``mean`` is 1/rate."""

    mean: float

    def sample(self, rng):
        return rng.expovariate(1.0 / self.mean)


@dataclass(frozen=True)
class LogNormal(Distribution):
    """Right-skewed, the usual shape of a service's latency. ``median`` = exp(mu)."""

    median: float
    sigma: float

    def sample(self, rng):
        return rng.lognormvariate(math.log(self.median), self.sigma)

    @property
    def mean(self):
        return self.median * math.exp(self.sigma**2 / 2)


@dataclass(frozen=True)
class Bimodal(Distribution):
    """Usually ``fast``, with probability ``p_slow`` ``slow``: a tail from GC pauses, cache misses."""

    fast: Distribution
    slow: Distribution
    p_slow: float

    def sample(self, rng):
        return (self.slow if rng.random() < self.p_slow else self.fast).sample(rng)

    @property
    def mean(self):
        return (1 - self.p_slow) * self.fast.mean + self.p_slow * self.slow.mean


@dataclass(frozen=True)
class Scaled(Distribution):
    base: Distribution
    factor: float

    def sample(self, rng):
        return self.base.sample(rng) * self.factor

    @property
    def mean(self):
        return self.base.mean * self.factor


KINDS = {
    "constant": (Constant, ("value",)),
    "uniform": (Uniform, ("low", "high")),
    "exponential": (Exponential, ("mean",)),
    "lognormal": (LogNormal, ("median", "sigma")),
    "bimodal": (Bimodal, ("fast", "slow", "p_slow")),
}


def make_distribution(spec, *, name: str = "distribution") -> Distribution:
    """Build a Distribution from a spec; ``name`` is the parameter named in errors.

    Accepted specs: a Distribution; a non-negative number (constant); a dict such as
    ``{"kind": "lognormal", "median": 0.02, "sigma": 0.6}``; for ``bimodal``, ``fast``
    and ``slow`` are specs themselves.
    """
    if isinstance(spec, Distribution):
        return spec
    if isinstance(spec, (int, float)) and not isinstance(spec, bool):
        return Constant(check_number(name, spec, minimum=0))
    if not isinstance(spec, dict):
        raise ParameterError(name, spec, "a number of seconds or a dict with 'kind' in " + ", ".join(KINDS))
    kind = spec.get("kind")
    if kind not in KINDS:
        raise ParameterError(f"{name}.kind", kind, "one of " + ", ".join(repr(k) for k in KINDS))
    cls, fields = KINDS[kind]
    extra = set(spec) - set(fields) - {"kind"}
    if extra:
        raise ParameterError(f"{name}.{sorted(extra)[0]}", spec[sorted(extra)[0]], f"only the fields {fields} for kind {kind!r}")
    missing = [f for f in fields if f not in spec]
    if missing:
        raise ParameterError(f"{name}.{missing[0]}", None, f"a value (kind {kind!r} needs {', '.join(fields)})")
    if kind == "bimodal":
        return Bimodal(
            make_distribution(spec["fast"], name=f"{name}.fast"),
            make_distribution(spec["slow"], name=f"{name}.slow"),
            check_number(f"{name}.p_slow", spec["p_slow"], minimum=0, maximum=1),
        )
    values = {f: check_number(f"{name}.{f}", spec[f], minimum=0) for f in fields}
    if kind == "uniform" and values["low"] > values["high"]:
        raise ParameterError(f"{name}.low", values["low"], f"<= high ({values['high']})")
    if kind in ("exponential", "lognormal") and values.get("mean", values.get("median")) == 0:
        raise ParameterError(f"{name}.{fields[0]}", 0, "a number > 0")
    return cls(**values)
