"""Fixed-timeout and phi-accrual detectors on crafted heartbeat traces (ManualClock / virtual time)."""

from __future__ import annotations

import math
from statistics import NormalDist

import pytest

from workbook.core import ManualClock, ParameterError, run_virtual
from workbook.failure_detection import (FixedTimeoutDetector, HeartbeatTrace, PhiAccrualDetector, replay_heartbeats,
                                        sweep)


def beats(detector, clock, intervals):
    detector.heartbeat()
    for dt in intervals:
        clock.advance(dt)
        detector.heartbeat()


def test_phi_at_the_mean_is_log10_of_2_and_follows_the_normal_tail():
    clock = ManualClock()
    fd = PhiAccrualDetector(8, clock=clock, min_std_deviation=0.2)
    beats(fd, clock, [0.8, 1.2] * 500)  # mean 1.0, std 0.2
    assert fd.mean == pytest.approx(1.0) and fd.std_deviation == pytest.approx(0.2)
    last = clock.now()
    assert fd.phi(last + 1.0) == pytest.approx(math.log10(2), abs=1e-9)  # Akka's spec: 0.3 +- 0.01
    for y in (1, 2, 3):
        exact = -math.log10(1 - NormalDist().cdf(y))
        assert fd.phi(last + 1.0 + 0.2 * y) == pytest.approx(exact, abs=0.05)
    assert fd.phi(last + 1000.0) > 1000  # no overflow, no domain error (Akka returns Infinity)


def test_suspicion_time_is_where_phi_reaches_the_threshold():
    clock = ManualClock()
    fd = PhiAccrualDetector(8, clock=clock)
    beats(fd, clock, [1.0] * 50)
    when = fd.suspicion_time()
    assert fd.phi(when) == pytest.approx(8.0, abs=1e-6)
    assert fd.is_available(when - 1e-3) and not fd.is_available(when + 1e-3)
    # y with log10(1 + exp(y (1.5976 + 0.070566 y^2))) = 8 is 5.226: mean + 5.226 x the 0.1 s minimum deviation
    assert when - clock.now() == pytest.approx(1.0 + 0.5226, abs=1e-3)


def test_a_single_heartbeat_is_enough_to_be_suspected_later():
    clock = ManualClock()
    fd = PhiAccrualDetector(8, clock=clock, first_heartbeat_estimate=1.0)
    assert fd.phi() == 0.0 and fd.is_available() and fd.suspicion_time() is None  # never heard from
    fd.heartbeat()
    assert (fd.mean, fd.std_deviation) == (1.0, 0.25)  # seeded with 0.75 and 1.25, as Akka does
    clock.advance(1.0)
    assert fd.is_available()
    clock.advance(2.0)
    assert not fd.is_available()


def test_the_heartbeat_ending_a_suspected_pause_is_kept_out_of_the_history():
    clock = ManualClock()
    fd = PhiAccrualDetector(8, clock=clock)
    beats(fd, clock, [1.0] * 20)
    n = len(fd.intervals)
    clock.advance(10.0)
    assert not fd.is_available()
    fd.heartbeat()
    assert len(fd.intervals) == n and max(fd.intervals) == 1.25  # the seed's 1.25, not the 10 s pause
    clock.advance(1.0)
    fd.heartbeat()
    assert len(fd.intervals) == n + 1


def test_the_history_keeps_max_sample_size_intervals():
    clock = ManualClock()
    fd = PhiAccrualDetector(8, clock=clock, max_sample_size=5)
    beats(fd, clock, [2.0] * 3 + [1.0] * 5)
    assert list(fd.intervals) == [1.0] * 5 and fd.mean == pytest.approx(1.0)


def test_phi_adapts_to_a_slower_sender_where_a_fixed_timeout_does_not():
    clock = ManualClock()
    phi = PhiAccrualDetector(8, clock=clock, first_heartbeat_estimate=2.0)
    fixed = FixedTimeoutDetector(1.5, clock=clock)
    phi.heartbeat()
    fixed.heartbeat()
    for _ in range(30):
        clock.advance(2.0)
        phi.heartbeat()
        fixed.heartbeat()
    clock.advance(1.9)
    assert phi.is_available() and not fixed.is_available()


def test_the_acceptable_pause_is_added_to_the_mean():
    clock = ManualClock()
    fd = PhiAccrualDetector(8, clock=clock, acceptable_heartbeat_pause=3.0)
    beats(fd, clock, [1.0] * 50)
    clock.advance(3.9)
    assert fd.phi() < 0.1  # 3.9 s of silence is within mean 1 s + 3 s acceptable pause
    assert fd.suspicion_time() - (clock.now() - 3.9) == pytest.approx(1.0 + 3.0 + 0.5226, abs=1e-3)


def test_cassandras_exponential_variant():
    clock = ManualClock()
    fd = PhiAccrualDetector(8, clock=clock, distribution="exponential")
    beats(fd, clock, [1.0] * 10)
    clock.advance(2.0)
    assert fd.phi() == pytest.approx(2.0 / math.log(10))
    assert fd.suspicion_time() - (clock.now() - 2.0) == pytest.approx(8 * math.log(10))


def test_fixed_timeout_boundaries():
    clock = ManualClock()
    fd = FixedTimeoutDetector(3.0, clock=clock)
    assert fd.is_available() and fd.suspicion_time() is None
    fd.heartbeat()
    clock.advance(2.999)
    assert fd.is_available()
    clock.advance(0.001)
    assert not fd.is_available() and fd.suspicion_time() == 3.0


@pytest.mark.parametrize("kwargs,field", [({"threshold": 0}, "threshold"), ({"max_sample_size": 0}, "max_sample_size"),
                                          ({"min_std_deviation": 0}, "min_std_deviation"),
                                          ({"acceptable_heartbeat_pause": -1}, "acceptable_heartbeat_pause"),
                                          ({"distribution": "pareto"}, "distribution")])
def test_bad_phi_settings_are_refused_by_name(kwargs, field):
    with pytest.raises(ParameterError, match=f"'{field}'"):
        PhiAccrualDetector(**kwargs)
    with pytest.raises(ParameterError, match="'timeout'"):
        FixedTimeoutDetector(0)


def test_replay_counts_one_false_suspicion_per_long_gap_and_times_detection_from_the_send():
    sends = [float(i) for i in range(1, 31)]
    sends[20:] = [s + 5.0 for s in sends[20:]]  # one 6 s gap while alive
    trace = HeartbeatTrace(tuple(sends), tuple(s + 0.1 for s in sends))

    async def main():
        fixed = await replay_heartbeats(FixedTimeoutDetector(3.0), trace, warmup=0, crash_every=1)
        phi = await replay_heartbeats(PhiAccrualDetector(8), trace, warmup=0, crash_every=1)
        return fixed, phi
    fixed, phi = run_virtual(main())
    assert fixed.false_suspicions == 1 and phi.false_suspicions == 1
    assert set(round(d, 9) for d in fixed.detection_times) == {3.1}
    assert len(phi.detection_times) == 30


def test_the_sweep_is_reproducible_for_a_seed_and_monotone_in_the_timeout():
    kwargs = dict(phi_thresholds=(2, 8), timeouts=(1.5, 3, 6), acceptable_pauses=(0.0,), trace_kwargs={"count": 600})
    a, b = sweep(3, **kwargs), sweep(3, **kwargs)
    assert a == b
    assert a != sweep(4, **kwargs)
    timeouts = [r for r in a if r["kind"] == "timeout"]
    assert [r["false_suspicions"] for r in timeouts] == sorted((r["false_suspicions"] for r in timeouts), reverse=True)
    assert all(r["detect_p50"] >= r["setting"] for r in timeouts)
    phis = [r for r in a if r["kind"] == "phi"]
    assert phis[0]["detect_p50"] < phis[1]["detect_p50"] and phis[0]["false_suspicions"] >= phis[1]["false_suspicions"]
