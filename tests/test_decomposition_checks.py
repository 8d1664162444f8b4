"""Metrics and checks on small crafted catalogues whose answers are worked out by hand."""

import json

import pytest

from workbook.core.errors import ParameterError
from workbook.decomposition import (CouplingModel, Grouping, SizeRule, build_report, catalog_from_records,
                                    coupling_matrix, format_report, grouping_metrics, load_catalog,
                                    ownership_conflicts, article_greedy_grouping, service_cycles,
                                    service_dependency_graph, size_violations)


def cap(name, entities, deps=(), complexity=2, team="t"):
    return {"name": name, "description": "", "entities": list(entities), "operations": [f"op_{name}"],
            "dependencies": list(deps), "team": team, "complexity": complexity}


STRUCTURAL = CouplingModel.from_weights(0.5, 0.5, 0.0)


@pytest.fixture
def pairs():
    # a->b and c->d, nothing else shared: under STRUCTURAL, coupling(a,b) = coupling(c,d) = 0.4, others 0
    return catalog_from_records([cap("a", ["A"]), cap("b", ["B"], deps=["a"]),
                                 cap("c", ["C"]), cap("d", ["D"], deps=["c"])])


def test_metrics_of_the_natural_split(pairs):
    m = coupling_matrix(pairs, STRUCTURAL)
    g = Grouping.of(pairs, [["a", "b"], ["c", "d"]])
    got = grouping_metrics(pairs, m, g)
    # modularity = sum_c [L_c/m - (d_c/2m)^2] = 2 * (0.4/0.8 - (0.8/1.6)^2) = 0.5
    assert got.modularity == pytest.approx(0.5)
    assert got.cohesion == pytest.approx(0.4) and got.intra_pairs == 2
    assert got.cross_coupling == 0.0 and got.cross_pairs == 4
    assert got.cross_service_dependencies == 0 and got.dependencies == 2


def test_metrics_of_the_wrong_split(pairs):
    m = coupling_matrix(pairs, STRUCTURAL)
    got = grouping_metrics(pairs, m, Grouping.of(pairs, [["a", "c"], ["b", "d"]]))
    assert got.modularity == pytest.approx(2 * (0 - 0.25))
    assert got.cohesion == 0.0
    assert got.cross_coupling == pytest.approx(0.8 / 4)
    assert got.cross_service_dependencies == 2


def test_singletons_have_no_cohesion_and_one_service_no_cross(pairs):
    m = coupling_matrix(pairs, STRUCTURAL)
    alone = grouping_metrics(pairs, m, Grouping.of(pairs, [["a"], ["b"], ["c"], ["d"]]))
    assert alone.cohesion is None and alone.intra_pairs == 0
    whole = grouping_metrics(pairs, m, Grouping.of(pairs, [["a", "b", "c", "d"]]))
    assert whole.cross_coupling is None and whole.modularity == pytest.approx(0.0)


def test_ownership_conflict_found_and_named():
    cat = catalog_from_records([cap("x", ["E1", "E2"]), cap("y", ["E2"]), cap("z", ["E3"])])
    assert ownership_conflicts(cat, Grouping.of(cat, [["x", "y"], ["z"]])) == []
    conflicts = ownership_conflicts(cat, Grouping.of(cat, [["x"], ["y", "z"]]))
    assert conflicts == [{"entity": "E2", "services": {"x-service": ["x"], "y-service": ["y"]}}]


def test_cycle_between_services_found_with_its_calls():
    # x -> y -> z has no cycle, but putting x and z together makes {x,z} -> {y} -> {x,z}
    cat = catalog_from_records([cap("x", ["X"], deps=["y"]), cap("y", ["Y"], deps=["z"]), cap("z", ["Z"])])
    assert service_cycles(cat, Grouping.of(cat, [["x"], ["y"], ["z"]])) == []
    assert service_cycles(cat, Grouping.of(cat, [["x", "y", "z"]])) == []
    cycles = service_cycles(cat, Grouping.of(cat, [["x", "z"], ["y"]]))
    assert cycles == [{"services": ["x-service", "y-service"],
                       "example_cycle": ["x-service", "y-service", "x-service"],
                       "calls": ["x -> y", "y -> z"]}]


def test_three_service_cycle():
    cat = catalog_from_records([cap("p", ["P"], deps=["q"]), cap("q", ["Q"], deps=["r"]),
                                cap("r", ["R"], deps=["p"]), cap("s", ["S"], deps=["p"])])
    cycles = service_cycles(cat, Grouping.of(cat, [["p"], ["q"], ["r"], ["s"]]))
    assert len(cycles) == 1
    assert cycles[0]["services"] == ["p-service", "q-service", "r-service"]
    assert cycles[0]["example_cycle"] == ["p-service", "q-service", "r-service", "p-service"]


def test_service_dependency_graph_counts_calls():
    cat = catalog_from_records([cap("x", ["X"], deps=["z"]), cap("y", ["Y"], deps=["z"]), cap("z", ["Z"])])
    graph = service_dependency_graph(cat, Grouping.of(cat, [["x", "y"], ["z"]]))
    assert list(graph.edges(data=True)) == [("x-service", "z-service", {"calls": ["x -> z", "y -> z"], "weight": 2})]


def test_size_rule():
    cat = catalog_from_records([cap("big1", ["A"], complexity=6), cap("big2", ["B"], complexity=5),
                                cap("tiny", ["C"], complexity=1), cap("m1", ["D"], complexity=1),
                                cap("m2", ["E"], complexity=1), cap("m3", ["F"], complexity=1)])
    rule = SizeRule(min_complexity=2, max_complexity=10, max_capabilities=2)
    found = size_violations(cat, Grouping.of(cat, [["big1", "big2"], ["tiny"], ["m1", "m2", "m3"]]), rule)
    assert [(v["service"], v["problem"]) for v in found] == [
        ("big1-service", "too large: total complexity 11 > 10"),
        ("tiny-service", "too small: total complexity 1 < 2"),
        ("m1-service", "too large: 3 capabilities > 2"),
    ]
    assert size_violations(cat, Grouping.of(cat, [["big1"], ["big2"], ["tiny", "m1"], ["m2", "m3"]]), rule) == []
    with pytest.raises(ParameterError, match="min_complexity"):
        SizeRule(min_complexity=20, max_complexity=10)


def test_report_is_json_and_honest_about_the_articles_score():
    cat = load_catalog("article_five")
    m = coupling_matrix(cat)
    g = article_greedy_grouping(cat, m)
    report = build_report(cat, m, g)
    text = json.dumps(report)
    assert "coupling_score" not in text
    # the article's "coupling_score" of its first service (user management + product catalog) was (3 + 4) / 2: mean complexity
    assert report["services"][0]["mean_complexity"] == 3.5
    assert report["summary"]["cross_service_dependencies"] == 5
    assert report["checks"]["ownership_conflicts"] == [] and report["checks"]["cycles"] == []
    assert json.loads(text) == report
    printed = format_report(report)
    assert "3 services" in printed and "ownership conflicts: 0" in printed
    assert "cross-service dependencies 5/5" in printed


def test_report_flags_everything_on_the_articles_grouping_of_the_shop():
    cat = load_catalog("ecommerce")
    m = coupling_matrix(cat)
    report = build_report(cat, m, article_greedy_grouping(cat, m))
    checks = report["checks"]
    assert checks["ownership_conflicts"] and checks["cycles"] and checks["size_violations"]
    assert not checks["ok"]
    json.dumps(report)
