"""Chapter 6's exercise: the route table is judged on every request; the naive tables fail."""

import json
from pathlib import Path

import pytest

from workbook.core.verdict import Verdict
from workbook.labs.ch06_gateway import exercise

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "06_api_gateway.ipynb"


def test_the_model_answer_passes_every_request():
    verdict = exercise.check_route_table(exercise.model_answer())
    assert isinstance(verdict, Verdict) and verdict
    assert verdict.numbers == {"requests": len(exercise.REQUESTS), "wrong": 0}


def test_another_right_answer_passes_too():
    """The checker judges outcomes, not one spelling: users written with \\d, placed last."""
    table = [r for r in exercise.model_answer() if r["name"] != "users"]
    table.append({"name": "users", "path": r"/api/users(/\d+)?", "match": "regex", "methods": ["GET"]})
    assert exercise.check_route_table(table)


@pytest.mark.parametrize("name", list(exercise.naive_answers()))
def test_each_naive_table_is_rejected_with_a_hint(name):
    verdict = exercise.check_route_table(exercise.naive_answers()[name])
    assert not verdict
    assert verdict.numbers["wrong"] >= 1 and "instead of" in verdict.hint


def test_the_naive_tables_fail_where_they_should():
    naive = exercise.naive_answers()

    def failing(table):
        return {c.name for c in exercise.check_route_table(table).checks if not c.passed}

    assert failing(naive["prefix everywhere (users as a prefix beats the user-orders regex)"]) == {
        "GET /api/users/42/orders -> user-orders"}
    assert "GET /api/usersettings -> 404" in failing(naive["a regex that behaves like startswith ('/api/users.*')"])
    assert failing(naive["orders for any method (GET should be 405)"]) == {"GET /api/orders -> 405"}
    assert failing(naive["no exact route for /api/users/me"]) == {"GET /api/users/me -> profile"}
    assert "GET /api/public/%2e%2e/admin/keys -> admin" in failing(
        naive["no admin route (the dot segments are left to chance)"])


@pytest.mark.parametrize("answer, words", [
    ([], "non-empty list"),
    ("users: /api/users", "non-empty list"),
    ([{"name": "a"}], "route[0].path"),
    ([{"name": "a", "path": "/a", "match": "glob"}], "route[0] 'a'.match"),
    ([{"name": "a", "path": "/a", "methods": "GET"}], "route[0] 'a'.methods"),
    ([{"name": "a", "path": "/a", "verbs": ["GET"]}], "unknown field"),
    ([{"name": "a", "path": "/a/../b"}], "not normalised"),
    ([{"name": "a", "path": "/a"}, {"name": "b", "path": "(", "match": "regex"}], "route[1] 'b'.path"),
    ([{"name": "a", "path": "/a["}], "not allowed in a path"),
    ([{"name": "a", "path": "/a"}, {"name": "a", "path": "/b"}], "another route has this name"),
])
def test_bad_tables_are_rejected_naming_the_field(answer, words):
    verdict = exercise.check_route_table(answer)
    assert not verdict and words in str(verdict)


def test_decide_explains_each_outcome():
    from workbook.gateway import Router, RouteRule

    router = Router([RouteRule("a", "/a", "prefix", ("GET",))])
    assert exercise.decide(router, "GET", "/a/b")[0] == "a"
    assert exercise.decide(router, "POST", "/a")[0] == "405"
    assert exercise.decide(router, "GET", "/ab")[0] == "404"
    outcome, why = exercise.decide(router, "GET", "/a%00")
    assert outcome == "400" and "NUL" in why


def test_the_notebook_prefills_a_failing_table_and_shows_no_answer_above_it():
    nb = json.loads(NOTEBOOK.read_text())
    code = ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]
    assert "exercise.check_route_table(answer)" in code[-1]
    namespace = {}
    exec(code[-1].replace("print(exercise.check_route_table(answer))", ""), namespace)  # noqa: S102 - our own cell
    assert namespace["answer"] == exercise.starting_table()
    assert not exercise.check_route_table(namespace["answer"])
    for text in code[:-1]:
        assert "check_route_table" not in text and "model_answer" not in text and "naive_answers" not in text
        assert "/api/users/me" not in text and "user-orders" not in text
    printed = "".join("".join(o.get("text", "")) for c in nb["cells"] if c["cell_type"] == "code"
                      for o in c["outputs"])
    assert "FAIL: a route table" in printed and "PASS: a route table" not in printed
    assert "[0-9]+" not in printed  # the right regexes are never printed
