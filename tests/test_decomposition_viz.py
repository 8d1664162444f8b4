"""Figure builders show the data they are given; the panel redraws live and reports bad input."""

import pytest

from workbook.decomposition import Grouping, catalog_from_records, coupling_matrix, decompose, load_catalog
from workbook.labs.ch01_decomposition.figures import (TEAM_RULES, DecompositionPanel, capability_graph_figure, heatmap_figure,
                                        service_graph_figure)


def cap(name, entities, deps=()):
    return {"name": name, "description": "", "entities": list(entities), "operations": [f"op_{name}"],
            "dependencies": list(deps), "team": "t", "complexity": 2}


@pytest.fixture
def tiny():
    return catalog_from_records([cap("x", ["X"], deps=["y"]), cap("y", ["Y"], deps=["z"]), cap("z", ["Z"])])


def test_heatmap_shows_the_matrix(tiny):
    m = coupling_matrix(tiny)
    fig = heatmap_figure(m)
    assert [list(r) for r in fig.data[0].z] == [[round(v, 4) for v in row] for row in m.values]
    assert tuple(fig.data[0].x) == m.names


def test_capability_graph_colours_each_service_and_marks_cut_edges(tiny):
    m = coupling_matrix(tiny)
    g = Grouping.of(tiny, [["x", "z"], ["y"]])
    fig = capability_graph_figure(tiny, m, g, edge_min=0.3)
    services = [t for t in fig.data if t.mode == "markers+text"]
    assert [t.name for t in services] == list(g.names)
    assert [list(t.text) for t in services] == [["x", "z"], ["y"]]
    across = fig.data[1]
    assert across.name == "across services (2)"           # x-y and y-z are cut, both 0.48
    again = capability_graph_figure(tiny, m, g, edge_min=0.3)
    assert again.to_plotly_json() == fig.to_plotly_json()  # seeded layout: identical


def test_service_graph_draws_cycle_arrows_red(tiny):
    cyclic = service_graph_figure(tiny, Grouping.of(tiny, [["x", "z"], ["y"]]))
    arrows = [a for a in cyclic.layout.annotations if a.showarrow]
    assert len(arrows) == 2 and all(a.arrowcolor == "#d62728" for a in arrows)
    chain = service_graph_figure(tiny, Grouping.of(tiny, [["x"], ["y"], ["z"]]))
    arrows = [a for a in chain.layout.annotations if a.showarrow]
    assert len(arrows) == 2 and all(a.arrowcolor == "#555" for a in arrows)


def test_panel_redraws_on_change_and_reports_bad_weights():
    shop = load_catalog("ecommerce")
    panel = DecompositionPanel(shop)
    first = panel.result
    assert first.grouping == decompose(shop).grouping
    assert len(panel.heatmap.data) == 1
    panel.set(w_data=0.5, w_functional=0.0, w_team=0.5, team_rule=list(TEAM_RULES)[1])
    assert panel.result.grouping != first.grouping
    assert panel.result.report["checks"]["ok"]
    services_drawn = [t for t in panel.capability_graph.data if t.mode == "markers+text"]
    assert len(services_drawn) == len(panel.result.grouping)
    before = panel.result
    panel.w_team.value = 0.9                                  # sums to 1.4: shown, not raised
    assert panel.error.startswith("ParameterError") and "sum to 1.4" in panel.error
    assert "sum to 1.4" in panel.status.value and panel.result is before
    panel.w_team.value = 0.5
    assert panel.error is None
    panel.set(method="article_greedy", threshold=0.3, w_data=0.4, w_functional=0.4, w_team=0.2,
              team_rule=list(TEAM_RULES)[0])
    assert panel.result.grouping == decompose(shop, method="article_greedy").grouping
