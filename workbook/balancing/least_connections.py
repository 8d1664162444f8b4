"""Least connections that counts, and the source article's version that does not.

``LeastConnections`` is nginx's ``least_conn`` (``ngx_http_upstream_get_least_conn_peer``
in ``src/http/modules/ngx_http_upstream_least_conn_module.c``, nginx/nginx at commit
3f6f7824d4e2): the backend with the fewest in-flight requests *per unit of weight*
(compared as ``conns_a * weight_b < conns_b * weight_a``, no division); when several tie,
nginx's smooth weighted round robin runs among the tied ones only, starting at the first,
so equal backends take turns instead of the first one getting every request of a quiet
period. The counts are the base class's in-flight counts: ``start`` / ``finish`` (or
``request``) keep them true.

``NaiveLeastConnections`` is the source article's gateway balancer: its
"least connections" never counts a connection and returns the first instance, so one
instance takes all the traffic while the others idle. Kept to show exactly that.
"""

from __future__ import annotations

from workbook.balancing.base import Backend, LoadBalancer


class LeastConnections(LoadBalancer):
    """nginx ``least_conn``: fewest in-flight per weight; ties by smooth weighted round robin."""

    algorithm = "least_connections"

    def __init__(self, backends=(), *, clock=None):
        self.current_weight: dict[str, float] = {}
        super().__init__(backends, clock=clock)

    def _rebuild(self) -> None:
        self.current_weight = {b.name: self.current_weight.get(b.name, 0) for b in self._active}

    def _choose(self, key) -> Backend:
        conns = self._inflight
        best, first, many = None, 0, False
        for i, b in enumerate(self._active):
            if best is None or conns[b.name] * best.weight < conns[best.name] * b.weight:
                best, first, many = b, i, False
            elif conns[b.name] * best.weight == conns[best.name] * b.weight:
                many = True
        if many:
            cw, total = self.current_weight, 0
            lead = best
            for b in self._active[first:]:
                if conns[b.name] * lead.weight != conns[lead.name] * b.weight:
                    continue
                cw[b.name] += b.weight
                total += b.weight
                if cw[b.name] > cw[best.name]:
                    best = b
            cw[best.name] -= total
        return best


class NaiveLeastConnections(LoadBalancer):
    """The source article's least connections: nothing is counted, the first instance wins."""

    algorithm = "naive_least_connections"

    def _choose(self, key) -> Backend:
        # the article: `return instances[0]` under a "least connections" comment
        return self._active[0]
