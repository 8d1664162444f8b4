"""Chapter 5's registry and detector experiments (workbook.labs.ch05_discovery.experiments)."""

from __future__ import annotations

import pytest

from workbook.core import ParameterError
from workbook.labs.ch05_discovery.experiments import (detector_sweep_table, self_preservation_comparison,
                                                      self_preservation_run)


def test_self_preservation_keeps_the_instances_and_without_it_the_service_disappears():
    c = self_preservation_comparison(seed=0)
    kept, gone = c["with"]["summary"], c["without"]["summary"]
    assert kept["min_registered_during_partition"] == 10 and kept["service_gone_at"] is None
    assert kept["dead_listed_at_heal"] == 1  # the price: the crashed instance is still listed
    assert gone["min_registered_during_partition"] == 0 and 690 < gone["service_gone_at"] < 1800
    assert gone["dead_listed_at_heal"] == 0
    # after the partition heals both converge to the nine live instances
    assert kept["registered_at_end"] == gone["registered_at_end"] == 9
    w = c["without"]
    assert all(a == 10 for a in w["alive"][: w["times"].index(900.0)])  # every instance alive while expired
    assert c["with"]["preserving"][w["times"].index(1500.0)] is True


def test_a_partition_of_one_instance_is_expired_normally_with_self_preservation():
    run = self_preservation_run(True, seed=0, cut_off=1)
    assert min(run["registered"]) == 9 and not any(run["preserving"][10:])


def test_runs_are_reproducible_for_a_seed():
    a = self_preservation_run(False, seed=3, duration=1200.0)
    assert a == self_preservation_run(False, seed=3, duration=1200.0)


def test_bad_parameters_are_named():
    with pytest.raises(ParameterError, match="'cut_off'"):
        self_preservation_run(True, instances=3, cut_off=4)
    with pytest.raises(ParameterError, match="'heartbeats'"):
        detector_sweep_table(heartbeats=1)


def test_detector_sweep_table_trades_detection_time_for_false_suspicions():
    rows = detector_sweep_table(seed=0, heartbeats=900, phi_thresholds=(2, 8), timeouts=(1.5, 6),
                                acceptable_pauses=(0.0, 3.0))
    assert rows == detector_sweep_table(seed=0, heartbeats=900, phi_thresholds=(2, 8), timeouts=(1.5, 6),
                                        acceptable_pauses=(0.0, 3.0))
    by = {r["detector"]: r for r in rows}
    assert set(by) == {"timeout 1.5 s", "timeout 6 s", "phi 2", "phi 8", "phi 2 (+3 s)", "phi 8 (+3 s)"}
    assert by["timeout 1.5 s"]["false_suspicions"] > by["timeout 6 s"]["false_suspicions"]
    assert by["timeout 1.5 s"]["detect_p50"] < by["timeout 6 s"]["detect_p50"]
    assert by["phi 8 (+3 s)"]["detect_p50"] > by["phi 8"]["detect_p50"] + 2.5


def test_phi_adapts_to_a_slower_sender_and_a_tight_timeout_does_not():
    table = detector_sweep_table(seed=0, heartbeat_interval=2.0, heartbeats=900, phi_thresholds=(8,), timeouts=(2,),
                                 acceptable_pauses=(0.0,))
    rows = {r["detector"]: r for r in table}
    assert rows["timeout 2 s"]["false_suspicions"] > 100
    assert rows["phi 8"]["false_suspicions"] < 20
