"""Failure detection: a fixed-timeout detector and the phi-accrual detector, compared on seeded heartbeats.

* ``detectors``: ``FixedTimeoutDetector`` and ``PhiAccrualDetector`` (Hayashibara et al.
  2004, as Akka implements it; Cassandra's exponential variant as an option), both on an
  injectable ``Clock``.
* ``sweep``: seeded heartbeat traces (jitter and sender pauses), a virtual-time replay that
  counts false suspicions and measures time to detect a crash, and the sweep over
  thresholds that chapter 5 tabulates.
"""

from workbook.failure_detection.detectors import FixedTimeoutDetector, PhiAccrualDetector
from workbook.failure_detection.sweep import HeartbeatTrace, ReplayResult, heartbeat_trace, replay_heartbeats, sweep

__all__ = ["FixedTimeoutDetector", "HeartbeatTrace", "PhiAccrualDetector", "ReplayResult", "heartbeat_trace",
           "replay_heartbeats", "sweep"]
