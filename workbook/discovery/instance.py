"""What a registry stores: an instance with its address and metadata, and a versioned snapshot of a service.

An ``Instance`` is immutable and validated when built: the service name and instance id
are non-empty strings without ``/`` (they become etcd key segments), the port is in
1..65535, ``weight`` >= 0 (0 keeps an instance registered but sends it nothing, as
Envoy's load balancing weight of a draining host), ``zone`` and ``version`` are free text.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from types import MappingProxyType

from workbook.core.errors import ParameterError
from workbook.core.params import check_int, check_number

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$")


def check_name(name: str, value) -> str:
    """A service name or instance id: letters, digits, ``_ . : -``, starting with a letter or digit."""
    if not isinstance(value, str) or not _NAME.match(value):
        raise ParameterError(name, value, "a non-empty name of letters, digits, '_', '.', ':' or '-' (no '/')")
    return value


def check_ttl(value) -> float:
    """A lease TTL in seconds, > 0."""
    return check_number("ttl", value, minimum=0, min_exclusive=True)


@dataclass(frozen=True)
class Instance:
    """One running copy of a service, as registered: address plus metadata (version, zone, weight)."""

    service: str
    instance_id: str
    host: str = "127.0.0.1"
    port: int = 80
    version: str = ""
    zone: str = ""
    weight: float = 1.0
    tags: tuple[str, ...] = ()
    extra: MappingProxyType = field(default_factory=lambda: MappingProxyType({}), compare=False)

    def __post_init__(self):
        check_name("service", self.service)
        check_name("instance_id", self.instance_id)
        if not isinstance(self.host, str) or not self.host:
            raise ParameterError("host", self.host, "a non-empty host name or address")
        check_int("port", self.port, minimum=1, maximum=65535)
        check_number("weight", self.weight, minimum=0)
        for name in ("version", "zone"):
            if not isinstance(getattr(self, name), str):
                raise ParameterError(name, getattr(self, name), "a string")
        object.__setattr__(self, "tags", tuple(self.tags))
        object.__setattr__(self, "extra", MappingProxyType(dict(self.extra)))

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def to_json(self) -> str:
        return json.dumps({"service": self.service, "instance_id": self.instance_id, "host": self.host,
                           "port": self.port, "version": self.version, "zone": self.zone, "weight": self.weight,
                           "tags": list(self.tags), "extra": dict(self.extra)}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes) -> "Instance":
        data = json.loads(text)
        data["tags"] = tuple(data.get("tags", ()))
        return cls(**data)


@dataclass(frozen=True)
class RegistrySnapshot:
    """A service's instances as of ``revision`` (Consul's ``X-Consul-Index``, etcd's store revision).

    ``revision`` grows with every change of the set; a watch asks for a snapshot newer than
    the one it has. Instances are sorted by id.
    """

    service: str
    revision: int
    instances: tuple[Instance, ...]

    @property
    def ids(self) -> list[str]:
        return [i.instance_id for i in self.instances]

    def __len__(self):
        return len(self.instances)


@dataclass(frozen=True)
class Lease:
    """A registration's lease: renew it (heartbeat) before ``ttl`` seconds pass, or the instance expires."""

    lease_id: int | str
    service: str
    instance_id: str
    ttl: float
