"""Chapter 0 review fixes: the exercise asks what the notebook does not print and rejects
the tempting answers; figures show direction and node kinds and state their point; the
blast radius honours edges that only degrade; random streams come from derive_seed."""

from pathlib import Path

import pytest

from workbook.core import Verdict
from workbook.core.errors import ConfigError
from workbook.labs.ch00_tour.exercise import check_hedged_fanout, smallest_fanout
from workbook.labs.ch00_tour.experiments import fanout_experiment, fanout_where_quantile_stalls, tail_distribution
from workbook.labs.ch00_tour.figures import (KIND_COLOUR, architecture_figure, describe_architecture,
                                             slow_share_figure, tail_figure)
from workbook.shop import architecture_from_dict, load_architecture

ROOT = Path(__file__).resolve().parent.parent
RIGHT = 6932  # smallest k with 1 - (1 - 0.01**2)**k >= 0.5


@pytest.fixture(scope="module")
def shop():
    return load_architecture(ROOT / "data" / "tour" / "architecture.yaml")


def test_the_right_answer_passes_and_is_the_hedged_solution():
    assert smallest_fanout(0.01 ** 2, 0.5) == RIGHT
    verdict = check_hedged_fanout(RIGHT)
    assert isinstance(verdict, Verdict) and verdict.passed
    assert str(verdict).startswith("PASS")


def test_the_prefilled_answer_does_not_pass():
    verdict = check_hedged_fanout(None)
    assert not verdict and "no answer yet" in str(verdict)


def test_the_answer_printed_above_the_exercise_is_rejected():
    shown = fanout_where_quantile_stalls(0.5, 0.01)  # the notebook prints "p50 is a stall from k = 69"
    assert shown == 69
    verdict = check_hedged_fanout(shown)
    assert not verdict and "without* hedging" in str(verdict)


def test_the_linear_approximation_is_rejected():
    verdict = check_hedged_fanout(round(0.5 / 0.01 ** 2))  # k * p^2 >= 1/2 -> 5000
    assert not verdict and "linear approximation" in str(verdict)


def test_hedging_read_as_doubling_the_fanout_is_rejected():
    verdict = check_hedged_fanout(35)  # 1 - (1 - p)^(2k) >= 1/2
    assert not verdict and "doubling the fan-out" in str(verdict)


@pytest.mark.parametrize("answer", [RIGHT - 1, RIGHT + 1])
def test_off_by_one_is_rejected(answer):
    verdict = check_hedged_fanout(answer)
    assert not verdict and "off by one" in str(verdict)


@pytest.mark.parametrize("answer", [6931.1, 6932.0, "6932", True])
def test_a_float_or_other_type_is_rejected(answer):
    verdict = check_hedged_fanout(answer)
    assert not verdict and "an int" in str(verdict)


def test_zero_or_negative_is_rejected():
    assert not check_hedged_fanout(0) and not check_hedged_fanout(-3)


def test_fanout_streams_come_from_derive_seed():
    # neighbouring seeds used to share streams (seed * 1_000_003 + k); now every (seed, k) is its own
    dist = tail_distribution("bimodal", 10, p_slow=0.2, slow_ms=1000)
    a = fanout_experiment([1, 2], requests=50, service_time=dist, seed=0)
    b = fanout_experiment([1, 2], requests=50, service_time=dist, seed=0)
    assert a == b
    assert fanout_experiment([1], requests=50, service_time=dist, seed=1) != a[:1]


def test_architecture_figure_has_arrows_and_a_legend_of_node_kinds(shop):
    fig = architecture_figure(shop)
    arrows = [a for a in fig.layout.annotations if a.showarrow]
    assert len(arrows) == shop.graph.number_of_edges()
    at = {n: (x, y) for n, x, y in zip(fig.data[-1].text, fig.data[-1].x, fig.data[-1].y)}
    # each arrow ends at its callee: the web -> gateway arrow points at the gateway
    assert any((a.x, a.y) == at["gateway"] and a.ay > a.y for a in arrows)
    legend = [t.name for t in fig.data if t.showlegend is not False and t.legendgroup == "nodes"]
    assert legend == list(KIND_COLOUR)
    assert "caller to callee" in fig.layout.title.text
    assert "38 edges (26 sync, 5 async, 7 data)" in describe_architecture(shop)


def test_tail_figure_states_each_percentiles_cliff():
    dist = tail_distribution("bimodal", 10, p_slow=0.01, slow_ms=1000)
    results = fanout_experiment([1, 10, 100], requests=100, service_time=dist, seed=1)
    fig = tail_figure(results, p_slow=0.01)
    assert "p99 from k = 2, p90 from k = 11, p50 from k = 69" in fig.layout.title.text
    assert len(fig.layout.shapes) == 3
    share = slow_share_figure(results, [0.01, 0.0956, 0.634])
    assert "largest gap" in share.layout.title.text


def test_registry_failure_degrades_instead_of_taking_the_shop_down(shop):
    assert shop.blast_radius("registry") == [] and shop.blast_radius("config-center") == []
    assert len(shop.degraded_by("registry")) == 6
    # a hard dependency still propagates: the order service waits on the user service
    assert "order-service" in shop.blast_radius("user-service")
    # async edges do not propagate by the model's definition; counting them, payment reaches orders
    assert "order-service" not in shop.blast_radius("payment-service")
    assert "order-service" in shop.blast_radius("payment-service", modes=("sync", "data", "async"))


def test_degrades_must_be_text_and_unknown_edge_fields_are_refused():
    doc = {"name": "x", "nodes": [{"id": "a", "kind": "client", "label": "A"},
                                  {"id": "b", "kind": "infrastructure", "label": "B"}],
           "edges": [{"from": "a", "to": "b", "mode": "sync", "what": "w", "degrades": ""}]}
    with pytest.raises(ConfigError, match=r"edges\[0\]\.degrades: expected a non-empty description"):
        architecture_from_dict(doc)
    doc["edges"][0] = {"from": "a", "to": "b", "mode": "sync", "what": "w", "cached": True}
    with pytest.raises(ConfigError, match=r"edges\[0\]\.cached: expected only from, to, mode, what and degrades"):
        architecture_from_dict(doc)
