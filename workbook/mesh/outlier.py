"""Outlier detection as Envoy does it (``source/common/upstream/outlier_detection_impl.cc``).

One ``OutlierDetector`` per Envoy cluster (per host and subset in Istio). Its rules, read
from Envoy's ``DetectorImpl`` / ``DetectorHostMonitorImpl``:

* every response code is put to the host's monitor; a 5xx increments ``consecutive_5xx``,
  a 502/503/504 also ``consecutive_gateway_failure`` (another 5xx resets that one), any
  non-5xx resets both. Errors of local origin are mapped first (Istio leaves
  ``splitExternalLocalOriginErrors`` false): a connect failure or reset is a 503, a
  per-try timeout a 504. A pool overflow is never reported;
* the host is ejected *when a counter reaches its threshold* (``==``: at once, not at the
  next interval), then that counter is reset;
* an ejection happens only if ``100 * (ejected + 1) / hosts <= max_ejection_percent``
  (``always_eject_one_host`` is false by default and Istio does not set it: with 10 %
  and fewer than 10 hosts, *nothing* is ever ejected);
* each ejection increments the host's backoff multiplier (while ``backoff * base <
  max_ejection_time + base``); the host stays out ``min(base_ejection_time * backoff,
  max_ejection_time)``, and is let back only by the **interval timer**: at the first tick
  at or after that (so an ejection lasts up to one ``interval`` more). Unejection resets
  every counter. At each tick, a host that is in and was let back at least one interval
  ago has its backoff decremented (so "base time x number of ejections", as Istio's
  documentation says, holds for ejections in quick succession);
* ``minHealthPercent`` is Envoy's panic threshold: below it the balancer uses every
  host, ejected or not (Istio's default 0 %: never).

The interval ticks at ``start + k * interval``; they are processed lazily, in order, at
the next event (no background task, so virtual time stays deterministic).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from workbook.mesh.routing import OutlierSettings


@dataclass
class HostMonitor:
    consecutive_5xx: int = 0
    consecutive_gateway: int = 0
    ejected_at: float | None = None
    num_ejections: int = 0
    backoff: int = 0
    last_unejection: float | None = None


class OutlierDetector:
    """Ejects hosts of one cluster by Envoy's consecutive-error rules; ``events`` logs it."""

    def __init__(self, settings: OutlierSettings, hosts: Iterable[str] = (), *, start: float = 0.0):
        self.settings = settings
        self.start = start
        self.next_tick = start + settings.interval
        self.monitors: dict[str, HostMonitor] = {}
        self.events: list[tuple[float, str, str, str]] = []  # (time, "eject"|"uneject", host, why)
        self.set_hosts(hosts)

    def set_hosts(self, hosts: Iterable[str]) -> None:
        names = list(hosts)
        self.monitors = {n: self.monitors.get(n) or HostMonitor() for n in names}

    @property
    def ejected(self) -> set[str]:
        return {n for n, m in self.monitors.items() if m.ejected_at is not None}

    def advance(self, now: float) -> None:
        """Run every interval tick up to ``now``."""
        while self.next_tick <= now:
            tick, self.next_tick = self.next_tick, self.next_tick + self.settings.interval
            s = self.settings
            max_time = max(s.max_ejection_time, s.base_ejection_time)
            for name, m in self.monitors.items():
                if m.ejected_at is not None and min(s.base_ejection_time * m.backoff, max_time) <= tick - m.ejected_at:
                    m.ejected_at, m.last_unejection = None, tick
                    m.consecutive_5xx = m.consecutive_gateway = 0
                    self.events.append((tick, "uneject", name, f"after {tick - self.last_ejection(name):g} s"))
            for m in self.monitors.values():
                if (m.ejected_at is None and m.last_unejection is not None
                        and tick - m.last_unejection >= s.interval and m.backoff > 0):
                    m.backoff -= 1

    def last_ejection(self, name: str) -> float:
        for t, kind, host, _ in reversed(self.events):
            if host == name and kind == "eject":
                return t
        return math.nan

    def record(self, host: str, status: int, now: float) -> None:
        """Put one result: an HTTP status (local-origin errors already mapped to 503/504)."""
        self.advance(now)
        m = self.monitors.get(host)
        if m is None:
            return
        s = self.settings
        if 500 <= status <= 599:
            if status in (502, 503, 504):
                m.consecutive_gateway += 1
                if s.consecutive_gateway and m.consecutive_gateway == s.consecutive_gateway:
                    self._eject(host, m, now, f"{s.consecutive_gateway} consecutive gateway errors")
                    m.consecutive_gateway = 0
            else:
                m.consecutive_gateway = 0
            m.consecutive_5xx += 1
            if s.consecutive_5xx and m.consecutive_5xx == s.consecutive_5xx:
                self._eject(host, m, now, f"{s.consecutive_5xx} consecutive 5xx")
                m.consecutive_5xx = 0
        else:
            m.consecutive_5xx = m.consecutive_gateway = 0

    def _eject(self, host: str, m: HostMonitor, now: float, why: str) -> None:
        if m.ejected_at is not None:
            return
        s = self.settings
        active = len(self.ejected)
        if 100.0 * (active + 1) / len(self.monitors) > min(100.0, s.max_ejection_percent):
            self.events.append((now, "overflow", host, f"{why}; ejecting would exceed {s.max_ejection_percent:g} %"))
            return
        m.ejected_at = now
        m.num_ejections += 1
        if m.backoff * s.base_ejection_time < max(s.max_ejection_time, s.base_ejection_time) + s.base_ejection_time:
            m.backoff += 1
        self.events.append((now, "eject", host, f"{why} (ejection {m.num_ejections}, "
                                                 f"{s.base_ejection_time * m.backoff:g} s)"))

    def available(self, hosts: Iterable[str], now: float) -> list[str]:
        """The hosts a balancer may pick now: the non-ejected ones, or all in panic mode."""
        self.advance(now)
        hosts = list(hosts)
        healthy = [h for h in hosts if h not in self.ejected]
        if hosts and 100.0 * len(healthy) / len(hosts) < self.settings.min_health_percent:
            return hosts
        return healthy
