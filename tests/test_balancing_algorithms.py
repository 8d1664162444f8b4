"""Exact behaviour of each load balancer (chapter 5, issue 11 point 5)."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from workbook.balancing import (BALANCERS, PENALTY, Backend, LeastConnections, LeastRequest, Maglev,
                                NaiveLeastConnections, NaiveWeightedRoundRobin, NoBackendAvailable, PeakEwma,
                                RandomBalancer, RingHash, RoundRobin, SmoothWeightedRoundRobin, UnbalancedFinish,
                                make_balancer)
from workbook.core import ManualClock, ParameterError, WorkbookError


def names(lb, n, key=None):
    return "".join(lb.pick(key).name for _ in range(n))


# ---- round robin and nginx's smooth weighted round robin ------------------------------

def test_round_robin_takes_turns_and_ignores_weights():
    lb = RoundRobin([Backend("a", 5), Backend("b"), Backend("c")])
    assert names(lb, 7) == "abcabca"


def test_smooth_weighted_round_robin_is_nginx_sequence_for_5_1_1():
    lb = SmoothWeightedRoundRobin([Backend("a", 5), Backend("b", 1), Backend("c", 1)])
    assert names(lb, 14) == "aabacaa" * 2


def test_the_articles_weighted_round_robin_sends_the_heavy_backends_turns_in_a_burst():
    lb = NaiveWeightedRoundRobin([Backend("a", 5), Backend("b", 1), Backend("c", 1)])
    assert names(lb, 14) == "aaaaabc" * 2


def test_smooth_weighted_round_robin_current_weights_return_to_zero_after_a_cycle():
    lb = SmoothWeightedRoundRobin([Backend("a", 4), Backend("b", 2), Backend("c", 1)])
    seq = names(lb, 7)
    assert Counter(seq) == {"a": 4, "b": 2, "c": 1}
    assert seq == "abacaba"
    assert lb.current_weight == {"a": 0, "b": 0, "c": 0}


def test_weight_zero_drains_a_backend_and_all_drained_is_a_clear_error():
    lb = SmoothWeightedRoundRobin([Backend("a", 0), Backend("b", 1)])
    assert names(lb, 3) == "bbb"
    lb.set_backends([Backend("a", 0)])
    with pytest.raises(NoBackendAvailable, match="none with weight > 0"):
        lb.pick()


# ---- least connections ---------------------------------------------------------------

def test_least_connections_counts_in_flight_requests():
    lb = LeastConnections(["a", "b", "c"])
    a = lb.pick()
    lb.start(a)
    b = lb.pick()
    lb.start(b)
    assert (a.name, b.name) == ("a", "b")
    c = lb.pick()
    assert c.name == "c"                  # a and b are busy
    lb.start(c)
    lb.finish(a, 0.01)
    assert lb.pick().name == "a"          # a is free again; b still busy
    assert lb.inflight("b") == 1 and lb.inflight("a") == 0


def test_least_connections_ties_take_turns_like_nginx():
    # nginx: among the tied, smooth weighted round robin, not always the first
    lb = LeastConnections(["a", "b", "c"])
    assert names(lb, 6) == "abcabc"


def test_least_connections_compares_per_weight():
    lb = LeastConnections([Backend("big", 3), Backend("small", 1)])
    for _ in range(2):
        lb.start("big")
    # 2/3 < 1/1 once small has one: small first (0/1), then big (2/3 < 1/1)
    assert lb.pick().name == "small"
    lb.start("small")
    assert lb.pick().name == "big"


def test_the_articles_least_connections_always_returns_the_first_instance():
    lb = NaiveLeastConnections(["a", "b", "c"])
    for _ in range(5):
        lb.start(lb.pick())
    assert names(lb, 10) == "a" * 10
    assert lb.inflight("a") == 5 and lb.inflight("b") == lb.inflight("c") == 0


def test_finish_without_start_is_an_error_and_request_context_keeps_counts():
    lb = LeastConnections(["a", "b"], clock=ManualClock())
    with pytest.raises(UnbalancedFinish, match="without a matching start"):
        lb.finish("a")
    with pytest.raises(RuntimeError):
        with lb.request() as backend:
            assert lb.inflight(backend) == 1
            raise RuntimeError("boom")
    assert lb.inflight(backend) == 0


def test_a_pick_alone_leaves_no_phantom_request():
    lb = LeastConnections(["a", "b"])
    for _ in range(5):
        lb.pick()
    assert lb.inflight("a") == lb.inflight("b") == 0


def test_a_backend_carries_its_address():
    lb = RoundRobin([Backend("i-1", 1, "127.0.0.1:8081"), Backend("i-2", 2, "http://127.0.0.1:8082")])
    assert [lb.pick().address for _ in range(2)] == ["127.0.0.1:8081", "http://127.0.0.1:8082"]
    with pytest.raises(ParameterError, match=r"backends\[0\]\.address"):
        RoundRobin([Backend("i-1", 1, "")])


def test_removed_backend_keeps_its_in_flight_until_they_finish():
    lb = LeastConnections(["a", "b"])
    lb.start("a")
    lb.set_backends(["b"])
    assert lb.inflight("a") == 1
    lb.finish("a", 0.1)
    assert lb.inflight("a") == 0 and names(lb, 2) == "bb"


# ---- power of two choices (Envoy LEAST_REQUEST) --------------------------------------

class ScriptedRandom(random.Random):
    def __init__(self, draws):
        super().__init__(0)
        self.draws = list(draws)

    def randrange(self, n):
        value = self.draws.pop(0)
        assert value < n
        return value


def test_least_request_keeps_the_less_loaded_of_two_draws_and_the_first_on_ties():
    lb = LeastRequest(["a", "b", "c"], rng=ScriptedRandom([0, 2, 0, 2, 1, 1]))
    lb.start("a")
    assert lb.pick().name == "c"          # draws a (1 active), c (0): c
    lb.start("c")
    assert lb.pick().name == "a"          # draws a (1), c (1): tie, the first drawn stays
    assert lb.pick().name == "b"          # with replacement: b twice
    assert lb.choice_count == 2


def test_least_request_spreads_load_better_than_random():
    def max_pile(lb):
        for _ in range(3000):
            lb.start(lb.pick())
        return max(lb.inflight(b) for b in lb.backends)

    backends = [f"b{i}" for i in range(30)]
    p2c = max_pile(LeastRequest(backends, rng=random.Random(1)))
    rand = max_pile(RandomBalancer(backends, rng=random.Random(1)))
    assert p2c <= 102 < rand               # 100 each is perfect


def test_least_request_full_scan_is_the_least_of_all():
    lb = LeastRequest(["a", "b", "c"], full_scan=True)
    lb.start("a")
    lb.start("b")
    assert lb.pick().name == "c"


# ---- peak EWMA -----------------------------------------------------------------------

def test_peak_ewma_cost_jumps_to_a_peak_and_decays_with_time():
    clock = ManualClock()
    lb = PeakEwma(["a", "b"], decay_time=10.0, clock=clock)
    lb.start("a")
    lb.finish("a", 0.1)
    assert lb.ewma("a") == pytest.approx(0.1)
    lb.start("a")
    lb.finish("a", 0.5)                   # a peak replaces the average at once
    assert lb.ewma("a") == pytest.approx(0.5)
    clock.advance(10.0)
    lb.start("a")
    lb.finish("a", 0.1)                   # below: blended with weight 1 - e^-1
    assert lb.ewma("a") == pytest.approx(0.5 * 0.36787944 + 0.1 * (1 - 0.36787944))
    clock.advance(10.0)
    assert lb.load("a") == pytest.approx(lb.ewma("a"))          # decayed to now, nothing in flight
    assert lb.ewma("a") < 0.25


def test_peak_ewma_cost_is_latency_times_in_flight_plus_one_and_unknown_is_penalized():
    clock = ManualClock()
    lb = PeakEwma(["a", "b"], clock=clock)
    assert lb.load("b") == 0.0                                  # nothing known, nothing pending
    lb.start("b")
    assert lb.load("b") == PENALTY + 1                          # pending and no history
    lb.start("a")
    lb.finish("a", 0.2)
    lb.start("a")
    lb.start("a")
    assert lb.load("a") == pytest.approx(0.2 * 3)


def test_peak_ewma_forgets_a_backend_that_left_after_its_last_request():
    lb = PeakEwma(["a", "b"], clock=ManualClock())
    lb.start("a")
    lb.set_backends(["b"])
    lb.finish("a", 0.3)
    lb.set_backends(["b"])
    assert lb.ewma("a") == 0.0 and "a" not in lb._cost


def test_peak_ewma_picks_two_distinct_and_prefers_the_cheaper():
    clock = ManualClock()
    lb = PeakEwma(["slow", "fast"], clock=clock, rng=random.Random(3))
    for name, rtt in (("slow", 1.0), ("fast", 0.01)):
        lb.start(name)
        lb.finish(name, rtt)
    assert names(lb, 20) == "fast" * 20


# ---- ring hash and Maglev: affinity and what moves -----------------------------------

KEYS = [f"user-{i}" for i in range(20_000)]
TEN = [f"b{i}" for i in range(10)]


def remapped(lb, leaving="b3"):
    before = {k: lb.pick(k).name for k in KEYS}
    lb.set_backends([n for n in TEN if n != leaving])
    after = {k: lb.pick(k).name for k in KEYS}
    moved = [k for k in KEYS if before[k] != after[k]]
    owned = sum(1 for k in KEYS if before[k] == leaving)
    return len(moved) / len(KEYS), owned / len(KEYS), sum(1 for k in moved if before[k] != leaving) / len(KEYS)


def test_hash_balancers_send_a_key_to_the_same_backend():
    for lb in (RingHash(TEN), Maglev(TEN)):
        assert len({lb.pick("user-42").name for _ in range(5)}) == 1
        assert len({lb.pick(k).name for k in KEYS[:200]}) == 10


def test_ketama_ring_moves_exactly_the_leaving_backends_keys_about_one_in_n():
    share, owned, others = remapped(RingHash(TEN, hashes_per_backend=160))
    assert others == 0 and share == owned
    assert 0.07 < share < 0.13                                  # 1/N = 0.10


def test_envoy_ring_sizing_moves_more_than_the_leaving_share():
    # ceil(1024 / N) points per backend: 103 at N = 10, 114 at N = 9, so new points move keys too
    lb = RingHash(TEN)
    assert lb.ring_size == 1030
    share, owned, others = remapped(lb)
    assert others > 0.03 and share > owned


def test_maglev_moves_about_one_in_n_and_spreads_evenly():
    lb = Maglev(TEN)
    counts = Counter(lb.pick(k).name for k in KEYS)
    assert max(counts.values()) / min(counts.values()) < 1.15
    table = Counter(b.name for b in lb.table)
    assert max(table.values()) - min(table.values()) <= 1    # each owns its share of entries
    share, owned, others = remapped(lb)
    assert 0.08 < share < 0.12 and others < 0.01


def test_maglev_weights_share_the_table():
    lb = Maglev([Backend("a", 3), Backend("b", 1)], table_size=1009)
    share = Counter(b.name for b in lb.table)
    assert share["a"] == pytest.approx(3 * share["b"], rel=0.02)


def test_hash_balancers_need_a_key_and_maglev_a_prime_table():
    with pytest.raises(ParameterError, match="'key'"):
        RingHash(TEN).pick()
    with pytest.raises(ParameterError, match="'table_size' = 65536.*prime"):
        Maglev(TEN, table_size=65536)


# ---- bad input -----------------------------------------------------------------------

def test_unknown_algorithm_and_option_are_named():
    with pytest.raises(ParameterError, match="'algorithm' = 'fastest'.*'round_robin'"):
        make_balancer("fastest", ["a"])
    with pytest.raises(ParameterError, match="'options.choices'.*choice_count"):
        make_balancer("least_request", ["a"], choices=3)
    assert isinstance(make_balancer("maglev", ["a"], table_size=5), Maglev)
    assert sorted(BALANCERS) == sorted({"round_robin", "weighted_round_robin", "random", "least_connections",
                                         "naive_least_connections", "naive_weighted_round_robin", "least_request",
                                         "peak_ewma", "ring_hash", "maglev"})


@pytest.mark.parametrize("algorithm", sorted(BALANCERS))
def test_negative_weight_is_refused_naming_the_field(algorithm):
    with pytest.raises(ParameterError, match=r"'backends\[1\]\.weight' = -1.*>= 0") as err:
        make_balancer(algorithm, [Backend("a"), Backend("b", -1)])
    assert isinstance(err.value, WorkbookError)


def test_duplicate_names_and_bad_backends_are_refused():
    with pytest.raises(ParameterError, match=r"backends\[1\]\.name"):
        RoundRobin(["a", "a"])
    with pytest.raises(ParameterError, match=r"backends\[0\]"):
        RoundRobin([3])
    lb = RoundRobin(["a"])
    lb.start("a")
    with pytest.raises(ParameterError, match="latency"):
        lb.finish("a", -1)
    assert lb.inflight("a") == 1                          # a refused finish changes nothing
