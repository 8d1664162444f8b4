"""Build a balancer by name: the names a configuration, a widget or a gateway route use."""

from __future__ import annotations

import inspect

from workbook.balancing.base import LoadBalancer
from workbook.balancing.least_connections import LeastConnections, NaiveLeastConnections
from workbook.balancing.least_request import LeastRequest
from workbook.balancing.maglev import Maglev
from workbook.balancing.peak_ewma import PeakEwma
from workbook.balancing.ring_hash import RingHash
from workbook.balancing.round_robin import (NaiveWeightedRoundRobin, RandomBalancer, RoundRobin,
                                            SmoothWeightedRoundRobin)
from workbook.core.errors import ParameterError

#: algorithm name -> class; every class's ``algorithm`` attribute is its name here
BALANCERS: dict[str, type[LoadBalancer]] = {
    cls.algorithm: cls for cls in (RoundRobin, SmoothWeightedRoundRobin, NaiveWeightedRoundRobin, RandomBalancer,
                                   LeastConnections, NaiveLeastConnections, LeastRequest, PeakEwma, RingHash, Maglev)
}

#: the algorithms that route by a request key (affinity) rather than by load
HASH_BALANCERS = frozenset({"ring_hash", "maglev"})


def make_balancer(algorithm: str, backends=(), **options) -> LoadBalancer:
    """``make_balancer("least_request", ["a", "b"], choice_count=2, rng=rng)``.

    An unknown name or option is a ``ParameterError`` naming it and listing what exists.
    """
    cls = BALANCERS.get(algorithm) if isinstance(algorithm, str) else None
    if cls is None:
        raise ParameterError("algorithm", algorithm, "one of " + ", ".join(repr(a) for a in BALANCERS))
    accepted = [p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "backends")]
    for name in options:
        if name not in accepted:
            raise ParameterError(f"options.{name}", options[name],
                                 f"an option of {algorithm!r}: one of {', '.join(accepted)}")
    return cls(backends, **options)
