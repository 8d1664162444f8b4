"""Chapter 5: service discovery, health checking, failure detection and load balancing.

* ``experiments``: leases and watches, health checks, Eureka's self-preservation, the
  failure-detector sweep (virtual time);
* ``cluster_demo``: the three-member etcd cluster losing its quorum (real processes);
* ``balancing_runs``: balancers compared with a stalled instance (``CallPolicy``: timeout,
  retries, outlier ejection), remap shares, nginx's passive health checks against a
  registry-fed client;
* ``exercise``: ``check_balancing_choice``; ``figures``: the figures and the balancer panel.
"""
