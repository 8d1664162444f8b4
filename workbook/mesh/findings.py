"""What a check found: one ``Finding`` per problem, naming file, resource and field path."""

from __future__ import annotations

from dataclasses import dataclass

ERROR, WARNING, INFO = "error", "warning", "info"


@dataclass(frozen=True)
class Finding:
    """One problem in one resource.

    ``severity`` is ``"error"`` (Kubernetes or Istio would refuse the resource, or it
    cannot do what it says), ``"warning"`` (accepted, but deprecated or suspicious) or
    ``"info"``. ``code`` is a short stable name (``unknown-field``, ``schema``,
    ``deprecated``, ``cel``) or the ``istioctl analyze`` message code (``IST0101``...).
    ``path`` is the field path inside the resource, as kubectl prints it
    (``spec.trafficPolicy.circuitBreaker``, ``spec.http[1].route[0].weight``).
    """

    severity: str
    code: str
    source: str
    resource: str
    path: str
    message: str
    line: int = 0

    def __str__(self) -> str:
        where = f"{self.source}:{self.line}" if self.line else self.source
        return f"{self.severity.upper()} [{self.code}] {where}: {self.resource}: {self.path}: {self.message}"
