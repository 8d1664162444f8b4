"""The one interface every load balancer has: ``pick``, then ``start`` / ``finish`` per request.

A balancer chooses among ``Backend`` s (a name and a weight). The caller reports each
request's life so that load-aware algorithms know the in-flight count and the latency:

    backend = lb.pick(key)          # key: only hash balancers need one
    lb.start(backend)               # in flight + 1
    ...send the request...
    lb.finish(backend, latency)     # in flight - 1; latency (s) feeds latency-aware ones

or, with the balancer's clock measuring the latency (works around ``await`` too)::

    with lb.request(key) as backend:
        await send(backend)

``pick`` alone never changes an in-flight count: a pick that is not followed by
``start`` (the caller gave up before sending) leaves no phantom connection behind.
``set_backends`` replaces the set (discovery pushed a change) and keeps what is known
about backends that stay (in-flight counts, latency estimates). A backend of weight 0
is drained: never picked, but its in-flight requests still finish.

Subclasses implement ``_choose(key)``; the base class owns validation, the backend set
and the in-flight counts.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from workbook.core.clock import Clock, LoopClock
from workbook.core.errors import ParameterError, WorkbookError


class BalancingError(WorkbookError):
    """Base class of the load balancers' own errors."""


class NoBackendAvailable(BalancingError, LookupError):
    """Every backend is gone or drained (weight 0): there is nothing to pick."""


class UnbalancedFinish(BalancingError, RuntimeError):
    """``finish`` for a backend with no request in flight (a ``start`` is missing)."""


@dataclass(frozen=True)
class Backend:
    """One instance a balancer can send to: a unique ``name``, a ``weight`` >= 0 and, for
    callers that send over a network, its ``address`` (``host:port`` or a base URL).

    A discovery resolver feeds a balancer with
    ``lb.set_backends([Backend(i.instance_id, i.weight, f"{i.host}:{i.port}") for i in ...])``.
    """

    name: str
    weight: float = 1
    address: str | None = None

    def __str__(self):
        return self.name


def as_backends(backends: Iterable[Backend | str], field: str = "backends") -> list[Backend]:
    """Validate a backend list (names become weight-1 backends); errors name the element."""
    if isinstance(backends, (str, bytes)) or not isinstance(backends, Iterable):
        raise ParameterError(field, backends, "a list of Backend or names")
    result, seen = [], set()
    for i, b in enumerate(backends):
        if isinstance(b, str):
            b = Backend(b)
        if not isinstance(b, Backend):
            raise ParameterError(f"{field}[{i}]", b, "a Backend or a name (str)")
        if not isinstance(b.name, str) or not b.name:
            raise ParameterError(f"{field}[{i}].name", b.name, "a non-empty str")
        w = b.weight
        if isinstance(w, bool) or not isinstance(w, numbers.Real) or w != w or w < 0 or w == float("inf"):
            raise ParameterError(f"{field}[{i}].weight", w, "a finite number >= 0 (0 drains the backend)")
        if b.address is not None and (not isinstance(b.address, str) or not b.address):
            raise ParameterError(f"{field}[{i}].address", b.address, "a non-empty str ('host:port' or a URL) or None")
        if b.name in seen:
            raise ParameterError(f"{field}[{i}].name", b.name, "a name not used by another backend")
        seen.add(b.name)
        result.append(b)
    return result


class LoadBalancer:
    """Base class: the backend set, in-flight counts and the pick/start/finish protocol."""

    #: the name ``make_balancer`` knows this algorithm by
    algorithm = "abstract"

    def __init__(self, backends: Iterable[Backend | str] = (), *, clock: Clock | None = None):
        self.clock = clock or LoopClock()
        self._inflight: dict[str, int] = {}
        self.backends: list[Backend] = []
        self.set_backends(backends)

    # ---- the backend set -------------------------------------------------------------
    def set_backends(self, backends: Iterable[Backend | str]) -> None:
        """Replace the backend set; state of backends that stay is kept."""
        new = as_backends(backends)
        names = {b.name for b in new}
        # a removed backend's requests may still finish: keep its count until they do
        self._inflight = {n: c for n, c in self._inflight.items() if n in names or c > 0}
        for b in new:
            self._inflight.setdefault(b.name, 0)
        self.backends = new
        self._by_name = {b.name: b for b in new}
        self._active = [b for b in new if b.weight > 0]
        self._rebuild()

    def _rebuild(self) -> None:
        """Called after the backend set changed (``self._active`` holds the pickable ones)."""

    # ---- the protocol ----------------------------------------------------------------
    def pick(self, key: str | bytes | None = None) -> Backend:
        """The backend for the next request (``key`` matters to hash balancers only)."""
        if not self._active:
            raise NoBackendAvailable(
                f"{self.algorithm}: no backend to pick ({len(self.backends)} known, none with weight > 0)")
        return self._choose(key)

    def _choose(self, key) -> Backend:
        raise NotImplementedError

    def start(self, backend: Backend | str) -> None:
        """A request was sent to ``backend``: one more in flight."""
        name = self._name(backend)
        self._inflight[name] = self._inflight.get(name, 0) + 1

    def finish(self, backend: Backend | str, latency: float | None = None, *, failed: bool = False) -> None:
        """A request to ``backend`` ended after ``latency`` seconds (None: unknown)."""
        name = self._name(backend)
        if latency is not None and (latency.__class__ is not float or not latency >= 0):  # float: fast path
            if isinstance(latency, bool) or not isinstance(latency, numbers.Real) or not latency >= 0:
                raise ParameterError("latency", latency, "a number of seconds >= 0, or None")
        if self._inflight.get(name, 0) <= 0:
            raise UnbalancedFinish(f"{self.algorithm}: finish({name!r}) without a matching start")
        self._inflight[name] -= 1
        self._observe(name, latency, failed)
        if self._inflight[name] == 0 and name not in self._by_name:
            del self._inflight[name]

    def _observe(self, name: str, latency: float | None, failed: bool) -> None:
        """Hook for latency-aware balancers (called after the in-flight count dropped)."""

    @contextmanager
    def request(self, key: str | bytes | None = None) -> Iterator[Backend]:
        """Pick, start, and finish on exit with the latency measured on ``self.clock``."""
        backend = self.pick(key)
        self.start(backend)
        began = self.clock.now()
        failed = True
        try:
            yield backend
            failed = False
        finally:
            self.finish(backend, self.clock.now() - began, failed=failed)

    def inflight(self, backend: Backend | str) -> int:
        """Requests started on ``backend`` and not finished."""
        return self._inflight.get(self._name(backend), 0)

    @staticmethod
    def _name(backend) -> str:
        if isinstance(backend, Backend):
            return backend.name
        if isinstance(backend, str):
            return backend
        raise ParameterError("backend", backend, "a Backend or a backend name")

    def __repr__(self):
        return f"{type(self).__name__}({[b.name for b in self.backends]})"
