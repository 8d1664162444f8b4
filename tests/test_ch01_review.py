"""Chapter 1 review fixes: the checker returns the core Verdict and rejects the naive
groupings; names say "article" where they meant the source article; services are named
after their core capability; figures make their point (blocks, clusters, two-way arrows)."""

import math

import pytest

from workbook.core import Verdict
from workbook.decomposition import (METHODS, CouplingModel, Grouping, article_greedy_grouping, core_capability,
                                    coupling_matrix, decompose, load_catalog, service_cycles,
                                    service_dependency_graph)
from workbook.labs.ch01_decomposition.exercise import check_grouping
from workbook.labs.ch01_decomposition.figures import (TEAM_RULES, capability_graph_figure, capability_positions,
                                                      describe_heatmap, heatmap_figure, service_graph_figure)

HAND_MADE = [["customer_accounts", "customer_profiles"], ["product_catalog", "product_search", "product_reviews"],
             ["pricing", "promotions"], ["shopping_cart", "checkout", "order_management"],
             ["payment_processing", "fraud_detection"], ["tax_calculation", "invoicing"],
             ["inventory", "warehouse_fulfilment", "shipping"], ["notification", "marketing_campaigns"],
             ["loyalty"], ["recommendations"], ["customer_support"], ["analytics_reporting"], ["returns_refunds"]]


@pytest.fixture(scope="module")
def shop():
    return load_catalog("ecommerce")


def test_checker_returns_the_core_verdict(shop):
    verdict = check_grouping(shop, Grouping.of(shop, HAND_MADE))
    assert isinstance(verdict, Verdict) and verdict.passed
    assert str(verdict).startswith("PASS: 13 services of 'ecommerce'")
    assert verdict.numbers["modularity"] >= 0.15


def test_articles_greedy_grouping_is_rejected(shop):
    verdict = check_grouping(shop, article_greedy_grouping(shop, coupling_matrix(shop), 0.3))
    assert not verdict and len(verdict.failures) == 4


def test_everything_in_one_service_is_rejected(shop):
    verdict = check_grouping(shop, Grouping.of(shop, [shop.names]))
    # no conflicts and no cycles (nothing crosses a boundary), but far too large and no structure
    assert not verdict
    assert {c.name for c in verdict.failures} == {"service sizes", "modularity"}


def test_one_service_per_capability_is_rejected(shop):
    verdict = check_grouping(shop, Grouping.of(shop, [[n] for n in shop.names]))
    assert not verdict
    assert {"no ownership conflicts", "modularity"} <= {c.name for c in verdict.failures}


def test_the_prefilled_notebook_answer_is_rejected(shop):
    same, different = TEAM_RULES[list(TEAM_RULES)[0]]
    model = CouplingModel.from_weights(0.4, 0.4, 0.2, same_team=same, different_team=different)
    assert not check_grouping(shop, decompose(shop, model, "louvain", seed=0).grouping)


def test_something_that_is_not_a_grouping_is_rejected_not_raised(shop):
    verdict = check_grouping(shop, [["customer_accounts"]])
    assert not verdict and "expected a Grouping" in str(verdict)


def test_seed_means_the_random_seed_only():
    assert "article_greedy" in METHODS and not any("seed" in m for m in METHODS)
    assert all("seed" not in rule for rule in TEAM_RULES)
    assert "inverse Conway" in list(TEAM_RULES)[1]
    five = load_catalog("article_five")
    assert five.name == "article_five" and load_catalog("seed_five") == five  # the old name still loads
    assert article_greedy_grouping(five, coupling_matrix(five)).method.startswith("article's greedy")


def test_services_are_named_after_their_core_capability_whatever_the_order(shop):
    g = Grouping.of(shop, HAND_MADE)
    # checkout is tied to the cart (Cart), to order management (Order, OrderItem, a call): the core
    assert core_capability(shop, ["shopping_cart", "checkout", "order_management"]) == "checkout"
    assert "checkout-service" in g.names and "shopping-cart-service" not in g.names
    again = Grouping.of(shop.reversed(), HAND_MADE)
    assert set(again.names) == set(g.names)


def test_heatmap_is_ordered_by_service_with_blocks(shop):
    g = Grouping.of(shop, HAND_MADE)
    m = coupling_matrix(shop, CouplingModel.from_weights(0.5, 0.5, 0.0))
    fig = heatmap_figure(m, "Shop", grouping=g)
    assert list(fig.data[0].x) == [n for members in g.services for n in members]
    assert len(fig.layout.shapes) == len(g)
    assert "13 services (red blocks) hold" in fig.layout.title.text
    assert "of the total coupling inside services" in describe_heatmap(m, grouping=g)
    assert list(heatmap_figure(m).data[0].x) == list(m.names)  # without a grouping: catalogue order


def test_capability_graph_places_each_service_apart(shop):
    g = decompose(shop, CouplingModel.from_weights(0.5, 0.0, 0.5, same_team=0.8, different_team=0.2)).grouping
    m = coupling_matrix(shop)
    pos = capability_positions(m, 0, g)
    centres = [(sum(pos[n][0] for n in s) / len(s), sum(pos[n][1] for n in s) / len(s)) for s in g.services]
    for k, members in enumerate(g.services):
        for n in members:  # every capability is nearer its own service's centre than any other
            d = [math.dist(pos[n], c) for c in centres]
            assert d.index(min(d)) == k
    fig = capability_graph_figure(shop, m, g)
    assert "strong pairs" in fig.layout.title.text


def test_service_graph_two_way_arrows_do_not_overlap(shop):
    g = decompose(shop, method="louvain", seed=0).grouping
    graph = service_dependency_graph(shop, g)
    pairs = [(u, v) for u, v in graph.edges if graph.has_edge(v, u)]
    assert pairs and service_cycles(shop, g)
    fig = service_graph_figure(shop, g)
    arrows = [a for a in fig.layout.annotations if a.showarrow]
    segments = {((a.ax, a.ay), (a.x, a.y)) for a in arrows}
    for (start, end) in segments:  # no arrow is the exact reverse of another
        assert (end, start) not in segments
    assert "dependency cycle" in fig.layout.title.text
