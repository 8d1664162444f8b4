"""Chapter 0: the architecture loader, the graph queries, the fan-out experiment, the exercise."""

import copy
from pathlib import Path

import pytest
import yaml

from workbook.core import ConfigError, ParameterError
from workbook.shop import load_architecture
from workbook.labs.ch00_tour.experiments import fanout_experiment, slow_share_theory, tail_distribution
from workbook.shop.architecture import architecture_from_dict
from workbook.labs.ch00_tour.exercise import smallest_fanout
from workbook.labs.ch00_tour.experiments import check_k_values

DATA = Path(__file__).resolve().parent.parent / "data" / "tour" / "architecture.yaml"


@pytest.fixture(scope="module")
def shop():
    return load_architecture(DATA)


def test_the_shop_has_the_seed_reference_architecture(shop):
    assert sorted(shop.nodes_of("service")) == [
        "notification-service", "order-service", "payment-service", "product-service", "user-service",
    ]
    assert sorted(shop.nodes_of("client")) == ["mobile", "partner", "web"]
    assert sorted(shop.nodes_of("infrastructure")) == ["config-center", "message-queue", "monitoring", "registry"]
    for service in shop.nodes_of("service"):  # one database each, owned by that service only
        dbs = [n for n in shop.callees(service) if shop.graph.nodes[n]["kind"] == "database"]
        assert len(dbs) == 1
        assert shop.callers(dbs[0]) == [service]


def test_callers_callees_and_blast_radius(shop):
    assert shop.callers("gateway") == ["mobile", "monitoring", "partner", "web"]
    assert "payment-db" in shop.callees("payment-service")
    # order -> queue -> payment is asynchronous: payment failing does not reach orders
    assert "order-service" not in shop.blast_radius("payment-service")
    assert "order-service" in shop.blast_radius("payment-service", modes=("sync", "data", "async"))
    # every service and the gateway call the registry, but they keep working from cached
    # instance lists when it dies: its failure degrades them, it does not take them down
    assert shop.blast_radius("registry") == []
    assert set(shop.degraded_by("registry")) == set(shop.nodes_of("service")) | {"gateway"}
    assert "cached instance list" in shop.degraded_by("registry")["gateway"]
    # counting those edges as hard dependencies gives the naive "whole system" answer
    assert set(shop.blast_radius("registry", through_degraded=True)) >= (
        set(shop.nodes_of("service")) | set(shop.nodes_of("client")))
    with pytest.raises(KeyError, match="no node 'nope'"):
        shop.callers("nope")


def base_doc():
    return yaml.safe_load(DATA.read_text())


@pytest.mark.parametrize(
    "mutate, match",
    [
        (lambda d: d["edges"].append({"from": "web", "to": "gatewy", "mode": "sync", "what": "x"}),
         r"edges\[38\]\.to: expected the id of a node declared under 'nodes', got 'gatewy'"),
        (lambda d: d["nodes"][0].pop("kind"), r"nodes\[0\]\.kind: expected a 'kind' field"),
        (lambda d: d["nodes"][0].update(label=7), r"nodes\[0\]\.label: expected a non-empty string, got 7"),
        (lambda d: d["nodes"][0].update(kind="browser"), r"node 'web'\.kind: expected one of client, edge"),
        (lambda d: d["nodes"].append(dict(d["nodes"][0])), r"node 'web': expected a unique id"),
        (lambda d: d["nodes"][4].pop("team"), r"node 'user-service'\.team: expected the owning team"),
        (lambda d: d["edges"][0].update(mode="rpc"), r"edges\[0\]\.mode: expected one of sync, async, data"),
        (lambda d: d.update(edges={"a": 1}), r"edges: expected a list, got 'dict'"),
        (lambda d: d.pop("name"), r"name: expected a top-level 'name' field"),
        (lambda d: d["edges"].append(dict(d["edges"][0])), r"edges\[38\]: expected no duplicate edge"),
    ],
)
def test_malformed_architecture_names_file_element_and_expectation(mutate, match):
    doc = copy.deepcopy(base_doc())
    mutate(doc)
    with pytest.raises(ConfigError, match=match) as info:
        architecture_from_dict(doc, source="shop.yaml")
    assert str(info.value).startswith("shop.yaml: ")


def test_unreadable_and_invalid_yaml_files(tmp_path):
    with pytest.raises(ConfigError, match="missing.yaml: file: expected a readable YAML file"):
        load_architecture(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("nodes: [unclosed\n")
    with pytest.raises(ConfigError, match="bad.yaml: file: expected valid YAML"):
        load_architecture(bad)


def test_fanout_is_deterministic_and_matches_theory():
    dist = tail_distribution("bimodal", 10, p_slow=0.02, slow_ms=1000)
    a = fanout_experiment([1, 10, 40], requests=600, service_time=dist, seed=3)
    b = fanout_experiment([1, 10, 40], requests=600, service_time=dist, seed=3)
    c = fanout_experiment([1, 10, 40], requests=600, service_time=dist, seed=4)
    assert a == b and a != c
    for r in a:
        theory = slow_share_theory(r.k, 0.02)
        sd = (theory * (1 - theory) / r.requests) ** 0.5
        assert abs(r.slow_share - theory) < 4 * sd + 1e-9
    # the median grows with fan-out; at k=40 (55 % meet a stall) it is the stall itself
    assert a[0].p50_ms < a[1].p50_ms < 100 < a[2].p50_ms
    assert a[2].p50_ms == pytest.approx(1001.0)  # stall + two 0.5 ms hops


def test_no_stall_distributions_and_bad_parameters():
    assert tail_distribution("exponential", 10).mean == pytest.approx(0.010 / 0.6931471805599453)
    with pytest.raises(ParameterError, match=r"'distribution' = 'pareto'.*one of 'bimodal', 'lognormal', 'exponential'"):
        tail_distribution("pareto", 10)
    with pytest.raises(ParameterError, match=r"'k_values\[1\]' = -3.*integer >= 1"):
        check_k_values([1, -3])
    with pytest.raises(ParameterError, match="'k_values'"):
        check_k_values([])
    with pytest.raises(ParameterError, match="repeated"):
        check_k_values([2, 2])
    with pytest.raises(ParameterError, match="'requests'"):
        fanout_experiment([1], requests=0, service_time=tail_distribution("lognormal", 5), seed=1)


def test_smallest_fanout_solves_the_shown_question():
    assert smallest_fanout(0.01, 0.5) == 69
    assert slow_share_theory(69, 0.01) >= 0.5 > slow_share_theory(68, 0.01)
    with pytest.raises(ParameterError, match="'share'"):
        smallest_fanout(0.01, 1.0)


def test_each_quantile_falls_off_the_cliff_at_the_predicted_fanout():
    from workbook.labs.ch00_tour.experiments import fanout_where_quantile_stalls

    assert [fanout_where_quantile_stalls(q, 0.01) for q in (0.5, 0.9, 0.99)] == [69, 11, 2]
    dist = tail_distribution("bimodal", 10, p_slow=0.01, slow_ms=1000)
    below, above = fanout_experiment([4, 30], requests=2000, service_time=dist, seed=5)
    assert below.p90_ms < 100 < above.p90_ms  # p90 stalls from k = 11 on
    assert below.p50_ms < 100 and above.p50_ms < 100  # p50 only from k = 69
    with pytest.raises(ParameterError, match="'q' = 1.5"):
        fanout_where_quantile_stalls(1.5, 0.01)


def test_explorer_redraws_the_selected_nodes_edges(shop):
    from workbook.labs.ch00_tour.figures import architecture_explorer, architecture_figure

    # the figure has the same traces whatever is selected, so the explorer can update it in place
    counts = {len(architecture_figure(shop, node).data) for node in [None, *shop.graph]}
    assert counts == {13}
    box = architecture_explorer(shop, initial="registry")
    picker, summary, figure = box.children

    def highlighted_edges():
        return sum(len([x for x in t.x if x is not None]) // 2 for t in figure.data if t.line.width == 3)

    assert highlighted_edges() == len(shop.callers("registry")) + len(shop.callees("registry"))
    picker.value = "web"  # a client: one edge, to the gateway
    assert highlighted_edges() == 1
    assert "calls: gateway" in summary.value
    # the highlighted arrow follows the selection and points at the callee
    red = [a for a in figure.layout.annotations if a.arrowcolor == "#e41a1c"]
    at = {n: (x, y) for n, x, y in zip(figure.data[-1].text, figure.data[-1].x, figure.data[-1].y)}
    assert len(red) == 1 and (red[0].x, red[0].y) == at["gateway"]
    nodes = figure.data[-1]
    assert dict(zip(nodes.text, nodes.marker.color))["web"] == "#e41a1c"
