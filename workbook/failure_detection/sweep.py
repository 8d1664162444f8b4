"""Time to detect a crash against false suspicions, for detectors replayed over seeded heartbeat traces.

``heartbeat_trace`` draws a heartbeat stream: the sender emits every ``interval`` seconds,
but now and then (``pause_probability`` per heartbeat) it stalls for an exponential time
of mean ``pause_mean`` (a GC pause, a scheduling hiccup); each heartbeat's network delay is
``base_delay`` plus the absolute value of a normal of deviation ``jitter``; arrivals keep
their order (one TCP connection). Random numbers come from ``stream(seed, "heartbeats", ...)``.

``replay_heartbeats`` runs one detector over a trace in virtual time as a monitor would: it sleeps
until the next heartbeat or until the detector's ``suspicion_time``, whichever is first.
A suspicion while the sender is alive is a *false suspicion* (counted once per gap).
Every ``crash_every``-th heartbeat after ``warmup`` is also a crash trial: had the sender
died right after sending it, the detector would have suspected at its
``suspicion_time`` after that arrival; *time to detect* is that instant minus the send time.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from workbook.core.clock import DEFAULT_CLOCK, Clock
from workbook.core.params import check_int, check_number
from workbook.core.seeds import stream
from workbook.core.stats import quantiles
from workbook.core.virtual_time import run_virtual
from workbook.failure_detection.detectors import FixedTimeoutDetector, PhiAccrualDetector


@dataclass(frozen=True)
class HeartbeatTrace:
    send_times: tuple[float, ...]
    arrival_times: tuple[float, ...]

    @property
    def duration(self) -> float:
        return self.arrival_times[-1] - self.arrival_times[0] if self.arrival_times else 0.0


def heartbeat_trace(seed: int, *, count: int = 3600, interval: float = 1.0, jitter: float = 0.05,
                    base_delay: float = 0.005, pause_probability: float = 0.01,
                    pause_mean: float = 1.5) -> HeartbeatTrace:
    """A seeded heartbeat trace (see the module docstring)."""
    count = check_int("count", count, minimum=2)
    interval = check_number("interval", interval, minimum=0, min_exclusive=True)
    jitter = check_number("jitter", jitter, minimum=0)
    base_delay = check_number("base_delay", base_delay, minimum=0)
    pause_probability = check_number("pause_probability", pause_probability, minimum=0, maximum=1)
    pause_mean = check_number("pause_mean", pause_mean, minimum=0, min_exclusive=True)
    pauses, delays = stream(seed, "heartbeats", "pauses"), stream(seed, "heartbeats", "delays")
    sends, arrivals = [], []
    t = 0.0
    for _ in range(count):
        t += interval
        if pauses.random() < pause_probability:
            t += pauses.expovariate(1.0 / pause_mean)
        sends.append(t)
        arrival = t + base_delay + abs(delays.gauss(0.0, jitter))
        arrivals.append(max(arrival, arrivals[-1]) if arrivals else arrival)
    return HeartbeatTrace(tuple(sends), tuple(arrivals))


@dataclass(frozen=True)
class ReplayResult:
    detector: str
    false_suspicions: int
    hours: float
    detection_times: tuple[float, ...]

    @property
    def false_per_hour(self) -> float:
        return self.false_suspicions / self.hours if self.hours else 0.0

    def detection_quantiles(self, qs=(0.5, 0.99)) -> list[float]:
        return quantiles(self.detection_times, qs)


async def replay_heartbeats(detector, trace: HeartbeatTrace, *, clock: Clock = DEFAULT_CLOCK, warmup: int = 100,
                 crash_every: int = 10) -> ReplayResult:
    """Feed ``trace`` to ``detector`` (which reads ``clock``) in time; see the module docstring."""
    warmup = check_int("warmup", warmup, minimum=0)
    crash_every = check_int("crash_every", crash_every, minimum=1)
    start = clock.now()  # trace times are relative to the replay's start
    false_suspicions = 0
    detections = []
    for i, (sent, arrival) in enumerate(zip(trace.send_times, trace.arrival_times)):
        sent, arrival = start + sent, start + arrival
        suspect_at = detector.suspicion_time()
        if suspect_at is not None and suspect_at < arrival:
            await _sleep_until(clock, suspect_at)  # the monitor wakes and suspects a live sender
            false_suspicions += 1  # (not re-read from is_available: a float clock may land a hair early)
        await _sleep_until(clock, arrival)
        detector.heartbeat()
        if i >= warmup and (i - warmup) % crash_every == 0:
            detections.append(detector.suspicion_time() - sent)
    hours = trace.duration / 3600.0
    return ReplayResult(detector.name, false_suspicions, hours, tuple(detections))


async def _sleep_until(clock: Clock, when: float) -> None:
    delay = when - clock.now()
    if delay > 0:
        await clock.sleep(delay)


def sweep(seed: int, *, phi_thresholds: Sequence[float] = (1, 2, 4, 8, 12, 16),
          timeouts: Sequence[float] = (1.5, 2, 3, 4, 5, 6, 8), acceptable_pauses: Sequence[float] = (0.0, 3.0),
          min_std_deviation: float = 0.1, trace_kwargs: dict | None = None,
          detector_factories: Sequence[Callable[[], object]] = ()) -> list[dict]:
    """Replay one seeded trace through each fixed timeout and each phi threshold.

    phi runs once per ``acceptable_pauses`` value (0: the bare detector of the paper; 3 s:
    Akka cluster's default ``acceptable-heartbeat-pause``). Returns one row per detector:
    ``detector``, ``kind`` (``timeout`` / ``phi``), ``setting`` (timeout or threshold),
    ``acceptable_pause``, ``false_suspicions``, ``false_per_hour``, ``detect_p50``,
    ``detect_p99``, ``detect_mean`` (seconds from the crash to the suspicion).
    """
    trace = heartbeat_trace(seed, **(trace_kwargs or {}))
    for i, p in enumerate(acceptable_pauses):
        check_number(f"acceptable_pauses[{i}]", p, minimum=0)

    async def main():
        rows = []
        factories = [lambda t=t: FixedTimeoutDetector(t) for t in timeouts]
        factories += [lambda p=p, a=a: PhiAccrualDetector(p, min_std_deviation=min_std_deviation,
                                                          acceptable_heartbeat_pause=a)
                      for a in acceptable_pauses for p in phi_thresholds]
        factories += list(detector_factories)
        for make in factories:
            detector = make()
            result = await replay_heartbeats(detector, trace)
            p50, p99 = result.detection_quantiles()
            is_phi = isinstance(detector, PhiAccrualDetector)
            rows.append({
                "detector": result.detector + (f" (+{detector.acceptable_heartbeat_pause:g} s)"
                                               if is_phi and detector.acceptable_heartbeat_pause else ""),
                "kind": "phi" if is_phi else "timeout",
                "setting": detector.threshold if is_phi else getattr(detector, "timeout", None),
                "acceptable_pause": detector.acceptable_heartbeat_pause if is_phi else None,
                "false_suspicions": result.false_suspicions, "false_per_hour": round(result.false_per_hour, 2),
                "detect_p50": round(p50, 3), "detect_p99": round(p99, 3),
                "detect_mean": round(sum(result.detection_times) / len(result.detection_times), 3)})
        return rows

    return run_virtual(main())
