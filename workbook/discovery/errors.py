"""Errors of the registry, the resolver and the health checks; all derive from WorkbookError."""

from workbook.core.errors import WorkbookError


class DiscoveryError(WorkbookError):
    """Base class of service discovery errors."""


class RegistryUnavailable(DiscoveryError, ConnectionError):
    """The registry cannot be reached (``endpoint`` names what was tried) or did not answer in time."""

    def __init__(self, message: str, endpoint: str | None = None):
        self.endpoint = endpoint
        super().__init__(message)


class NoQuorum(RegistryUnavailable):
    """The registry's members answer but cannot agree: a majority is down, so writes cannot commit."""


class AlreadyRegistered(DiscoveryError):
    """Register-if-absent found the instance id already registered."""

    def __init__(self, service: str, instance_id: str):
        self.service, self.instance_id = service, instance_id
        super().__init__(f"instance {instance_id!r} of service {service!r} is already registered")


class LeaseExpired(DiscoveryError):
    """A renewal (heartbeat) came for a lease the registry no longer has: register again."""

    def __init__(self, lease_id, detail: str = ""):
        self.lease_id = lease_id
        super().__init__(f"lease {lease_id} has expired or was revoked{': ' + detail if detail else ''}")


class NoInstancesAvailable(DiscoveryError):
    """The resolver has no instance to offer; the message says whether the registry said so or is unreachable."""
