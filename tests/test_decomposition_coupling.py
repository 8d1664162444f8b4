"""The coupling formula against hand-computed values, and the article's numbers exactly."""

import pytest

from workbook.core.errors import ParameterError
from workbook.decomposition import CouplingModel, CouplingWeights, catalog_from_records, coupling_matrix, jaccard
from workbook.decomposition import load_catalog


def cap(name, entities, operations, deps=(), team="t1", complexity=1):
    return {"name": name, "description": "", "entities": list(entities), "operations": list(operations),
            "dependencies": list(deps), "team": team, "complexity": complexity}


@pytest.fixture
def trio():
    return catalog_from_records([
        cap("a", ["A", "B", "C"], ["x", "y"], team="t1"),
        cap("b", ["B", "C", "D"], ["y", "z"], team="t1"),
        cap("c", ["E"], ["x"], deps=["a"], team="t2"),
    ])


def test_jaccard_by_hand():
    assert jaccard(["A", "B", "C"], ["B", "C", "D"]) == 0.5
    assert jaccard(["x"], ["y"]) == 0.0
    assert jaccard([], []) == 0.0


def test_pair_without_dependency_same_team(trio):
    # data 2/4, functional = operations 1/3, same team 0.2
    expected = 0.4 * 0.5 + 0.4 * (1 / 3) + 0.2 * 0.2
    value = CouplingModel().pair(trio["a"], trio["b"])
    assert value == pytest.approx(0.37333333333, abs=1e-10)
    assert value == pytest.approx(expected, abs=1e-15)


def test_dependency_overrides_operation_similarity_and_is_symmetric(trio):
    model = CouplingModel()
    # a and c: no shared entity, c depends on a -> 0.8, different teams -> 0.8
    assert model.terms(trio["a"], trio["c"]) == {"data": 0.0, "functional": 0.8, "team": 0.8,
                                                 "coupling": pytest.approx(0.48)}
    assert model.pair(trio["c"], trio["a"]) == model.pair(trio["a"], trio["c"])
    # b and c: nothing shared, no dependency, different teams: only the team term
    assert model.pair(trio["b"], trio["c"]) == pytest.approx(0.2 * 0.8)


def test_matrix_is_symmetric_with_zero_diagonal(trio):
    m = coupling_matrix(trio)
    for i in range(3):
        assert m.values[i][i] == 0.0
        for j in range(3):
            assert m.values[i][j] == m.values[j][i]


def test_configurable_weights_and_team_values(trio):
    data_only = CouplingModel.from_weights(1.0, 0.0, 0.0)
    assert data_only.pair(trio["a"], trio["b"]) == 0.5
    conway = CouplingModel(same_team=0.8, different_team=0.2)
    assert conway.pair(trio["a"], trio["b"]) == pytest.approx(0.4 * 0.5 + 0.4 / 3 + 0.2 * 0.8)
    weaker_dependency = CouplingModel(dependency_coupling=0.5)
    assert weaker_dependency.pair(trio["a"], trio["c"]) == pytest.approx(0.4 * 0.5 + 0.2 * 0.8)


def test_article_five_matrix_is_the_articles_to_the_last_bit():
    cat = load_catalog("article_five")
    m = coupling_matrix(cat)
    # No entity or operation is shared and all teams differ, so a pair is either
    # "dependent" (0*0.4 + 0.8*0.4 + 0.8*0.2) or "independent" (0*0.4 + 0*0.4 + 0.8*0.2),
    # summed in the article's order. The article's own script printed these same floats.
    dependent = 0.0 * 0.4 + 0.8 * 0.4 + 0.8 * 0.2
    independent = 0.0 * 0.4 + 0.0 * 0.4 + 0.8 * 0.2
    assert repr(dependent) == "0.4800000000000001" and repr(independent) == "0.16000000000000003"
    dependent_pairs = {frozenset(p) for p in [("user_management", "order_processing"),
                                               ("user_management", "payment_processing"),
                                               ("user_management", "notification_service"),
                                               ("order_processing", "product_catalog"),
                                               ("order_processing", "payment_processing")]}
    for a, b, value in m.pairs():
        assert value == (dependent if frozenset((a, b)) in dependent_pairs else independent), (a, b)
    # the article's "average coupling": mean over ordered pairs, printed by the article as 0.32
    assert m.mean_off_diagonal() == pytest.approx((5 * 0.48 + 5 * 0.16) / 10)
    assert f"{m.mean_off_diagonal():.2f}" == "0.32"
    assert m.as_dict()["order_processing"]["payment_processing"] == dependent


@pytest.mark.parametrize("weights, name", [((0.5, 0.5, 0.5), "weights"), ((0.4, 0.4, 0.1), "weights"),
                                           ((-0.2, 0.6, 0.6), "weights.data"), ((0.5, 0.5, "x"), "weights.team")])
def test_bad_weights_are_refused_by_name(weights, name):
    with pytest.raises(ParameterError) as info:
        CouplingWeights(*weights)
    assert info.value.name == name
    if name == "weights":
        assert "sum to" in str(info.value)


def test_bad_team_value_is_refused():
    with pytest.raises(ParameterError, match="same_team"):
        CouplingModel(same_team=1.5)
