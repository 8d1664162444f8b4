"""The exercise checker accepts a correct decomposition and rejects the article's grouping."""

import pytest

from workbook.decomposition import CouplingModel, Grouping, decompose, load_catalog
from workbook.labs.ch01_decomposition.exercise import Target, check_grouping

CONWAY_DATA = CouplingModel.from_weights(0.5, 0.0, 0.5, same_team=0.8, different_team=0.2)


@pytest.fixture(scope="module")
def shop():
    return load_catalog("ecommerce")


@pytest.mark.parametrize("name", ["article_five", "ecommerce"])
def test_article_grouping_is_rejected(name):
    cat = load_catalog(name)
    verdict = check_grouping(cat, decompose(cat, method="article_greedy").grouping)
    assert not verdict.passed
    assert any(r.startswith("modularity") for r in verdict.reasons)
    assert str(verdict).startswith("FAIL")


def test_article_grouping_of_the_shop_fails_every_check(shop):
    verdict = check_grouping(shop, decompose(shop, method="article_greedy").grouping)
    assert [name for name, ok, _ in ((c.name, c.passed, c.detail) for c in verdict.checks) if not ok] == [
        "no ownership conflicts", "no cyclic dependencies", "service sizes", "modularity"]


def test_clustering_with_the_articles_model_is_rejected_despite_good_modularity(shop):
    verdict = check_grouping(shop, decompose(shop, method="louvain", seed=0).grouping)
    failed = {name for name, ok, _ in ((c.name, c.passed, c.detail) for c in verdict.checks) if not ok}
    assert "modularity" not in failed
    assert {"no ownership conflicts", "no cyclic dependencies"} <= failed


@pytest.mark.parametrize("method", ["louvain", "greedy_modularity"])
def test_a_correct_answer_is_accepted(shop, method):
    verdict = check_grouping(shop, decompose(shop, CONWAY_DATA, method, seed=0).grouping)
    assert verdict.passed, str(verdict)
    assert verdict.reasons == []
    assert str(verdict).startswith("PASS")


def test_a_hand_made_answer_is_accepted(shop):
    groups = [["customer_accounts", "customer_profiles"], ["product_catalog", "product_search", "product_reviews"],
              ["pricing", "promotions"], ["shopping_cart", "checkout", "order_management"],
              ["payment_processing", "fraud_detection"], ["tax_calculation", "invoicing"],
              ["inventory", "warehouse_fulfilment", "shipping"], ["notification", "marketing_campaigns"],
              ["loyalty"], ["recommendations"], ["customer_support"], ["analytics_reporting"], ["returns_refunds"]]
    assert check_grouping(shop, Grouping.of(shop, groups)).passed


def test_moving_one_capability_breaks_it_for_the_right_reason(shop):
    groups = [["customer_accounts", "customer_profiles"], ["product_catalog", "product_search", "product_reviews"],
              ["pricing", "promotions"], ["shopping_cart", "checkout", "order_management"],
              ["payment_processing"], ["fraud_detection"], ["tax_calculation", "invoicing"],
              ["inventory", "warehouse_fulfilment", "shipping"], ["notification", "marketing_campaigns"],
              ["loyalty"], ["recommendations"], ["customer_support"], ["analytics_reporting"], ["returns_refunds"]]
    verdict = check_grouping(shop, Grouping.of(shop, groups))
    assert not verdict.passed
    assert len(verdict.reasons) == 1
    assert verdict.reasons[0].startswith("no ownership conflicts") and "Transaction" in verdict.reasons[0]


def test_modularity_bar_is_part_of_the_verdict(shop):
    answer = decompose(shop, CONWAY_DATA, "louvain").grouping
    assert not check_grouping(shop, answer, Target(min_modularity=0.9)).passed
    assert check_grouping(shop, answer, Target(min_modularity=0.1)).passed
