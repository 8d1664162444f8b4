"""Load balancers behind one interface: pick a backend, report each request's start and finish.

``LoadBalancer.pick(key)`` chooses; ``start`` / ``finish`` (or ``with lb.request(key)``)
keep in-flight counts and latencies true for the load-aware algorithms. Chapter 5
compares them, the gateway (chapter 6) and the mesh (chapter 7) reuse them.

* ``round_robin``: ``RoundRobin``, ``SmoothWeightedRoundRobin`` (nginx's, exact
  sequence), ``NaiveWeightedRoundRobin`` (the source article's: in bursts), ``RandomBalancer``;
* ``least_connections``: ``LeastConnections`` (nginx ``least_conn``) and
  ``NaiveLeastConnections`` (the source article's: always the first instance);
* ``least_request``: ``LeastRequest`` (Envoy's power of two choices);
* ``peak_ewma``: ``PeakEwma`` (Finagle / Linkerd);
* ``ring_hash``: ``RingHash`` (Envoy's ketama ring); ``maglev``: ``Maglev`` (Eisenbud et
  al. 2016); both route a key to the same backend while the set is unchanged;
* ``factory``: ``make_balancer(name, backends, **options)`` and ``BALANCERS``;
* ``nginx``: ``NginxUpstream``, the article's nginx upstream as a validated configuration
  (rendered from ``data/discovery/nginx_upstream.conf``; run it with
  ``workbook.core.nginx_server.NginxServer``), and ``parse_access_log``;
* ``base``: ``Backend``, ``LoadBalancer`` and the errors.
"""

from workbook.balancing.base import (Backend, BalancingError, LoadBalancer, NoBackendAvailable, UnbalancedFinish,
                                     as_backends)
from workbook.balancing.factory import BALANCERS, HASH_BALANCERS, make_balancer
from workbook.balancing.hashing import hash64
from workbook.balancing.least_connections import LeastConnections, NaiveLeastConnections
from workbook.balancing.least_request import LeastRequest
from workbook.balancing.maglev import Maglev
from workbook.balancing.nginx import (NEXT_UPSTREAM_CONDITIONS, NGINX_METHODS, AccessRecord, NginxUpstream,
                                      parse_access_log)
from workbook.balancing.peak_ewma import PENALTY, PeakEwma
from workbook.balancing.ring_hash import RingHash
from workbook.balancing.round_robin import (NaiveWeightedRoundRobin, RandomBalancer, RoundRobin,
                                            SmoothWeightedRoundRobin)

__all__ = [
    "AccessRecord", "as_backends", "Backend", "BALANCERS", "BalancingError", "hash64", "HASH_BALANCERS",
    "LeastConnections", "LeastRequest", "LoadBalancer", "Maglev", "make_balancer", "NaiveLeastConnections",
    "NaiveWeightedRoundRobin", "NEXT_UPSTREAM_CONDITIONS", "NGINX_METHODS", "NginxUpstream", "NoBackendAvailable",
    "parse_access_log", "PeakEwma", "PENALTY", "RandomBalancer", "RingHash", "RoundRobin",
    "SmoothWeightedRoundRobin", "UnbalancedFinish",
]
