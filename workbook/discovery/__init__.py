"""Service discovery: a registry with leases, health checks, watches and a client-side cache.

Modules (one concept each):

* ``instance``: ``Instance`` (address and metadata: version, zone, weight), ``RegistrySnapshot``
  (a service's set as of a revision), ``Lease``.
* ``registry``: the ``Registry`` interface, ``RegistryConfig`` (expiry and Eureka's
  self-preservation) and ``KeepAlive`` (an instance's heartbeats).
* ``memory``: the in-memory backend, in virtual time; ``etcd``: the etcd backend over
  etcd's v3 JSON gateway (real time). One test suite runs on both.
* ``health``: active HTTP health checks with Envoy's thresholds.
* ``resolver``: client-side discovery: a watched cache that reports a lost registry and
  retries, never answering with a silent empty list.

Load balancers live in ``workbook.balancing``, failure detectors in
``workbook.failure_detection``; the etcd launcher in ``workbook.core.etcd_server``.
"""

from workbook.discovery.errors import (AlreadyRegistered, DiscoveryError, LeaseExpired, NoInstancesAvailable, NoQuorum,
                                       RegistryUnavailable)
from workbook.discovery.etcd import EtcdRegistry
from workbook.discovery.health import HealthCheckConfig, HealthChecker, HostHealth, http_probe
from workbook.discovery.instance import Instance, Lease, RegistrySnapshot
from workbook.discovery.memory import InMemoryRegistry
from workbook.discovery.registry import KeepAlive, Registry, RegistryConfig
from workbook.discovery.resolver import Resolver, ResolverStatus

__all__ = [
    "AlreadyRegistered", "DiscoveryError", "EtcdRegistry", "HealthCheckConfig", "HealthChecker", "HostHealth",
    "InMemoryRegistry", "Instance", "KeepAlive", "Lease", "LeaseExpired", "NoInstancesAvailable", "NoQuorum",
    "Registry", "RegistryConfig", "RegistryUnavailable", "Resolver", "ResolverStatus", "RegistrySnapshot", "http_probe",
]
