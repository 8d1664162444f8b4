"""Chapter 4's exercise: the checker accepts a right quorum choice and rejects each naive one."""

import json
from pathlib import Path

import pytest

from workbook.labs.ch04_data.exercise import check_quorum_choice

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "04_data_management.ipynb"


def failed(verdict):
    return [c.name for c in verdict.failures]


@pytest.mark.parametrize("r,w", [(3, 3), (2, 4), (4, 2)])
def test_abd_with_quorums_that_just_overlap_passes(r, w):
    v = check_quorum_choice({"n": 5, "r": r, "w": w, "mode": "abd"}, histories=6)
    assert v.passed, str(v)
    assert v.numbers["read_p50_ms"] > 0


def test_r1_w1_is_rejected_for_stale_reads():
    v = check_quorum_choice({"n": 5, "r": 1, "w": 1, "mode": "plain"}, histories=6)
    assert not v.passed
    assert "a read after a completed write sees it" in failed(v)
    assert "read returned None after write(1) completed" in str(v)


def test_plain_majority_quorums_are_rejected_for_new_then_old():
    v = check_quorum_choice({"n": 5, "r": 3, "w": 3, "mode": "plain"}, histories=6)
    assert failed(v) == ["no new-then-old while a write is in flight"]
    assert "reader a got 1, then reader b got None" in str(v)


@pytest.mark.parametrize("r,w", [(5, 1), (1, 5), (5, 5)])
def test_a_quorum_of_all_replicas_is_rejected_as_unavailable(r, w):
    v = check_quorum_choice({"n": 5, "r": r, "w": w, "mode": "abd"}, histories=4)
    assert "works with one replica down" in failed(v)


def test_larger_quorums_than_needed_are_rejected():
    v = check_quorum_choice({"n": 5, "r": 4, "w": 4, "mode": "abd"}, histories=4)
    assert failed(v) == ["quorums just overlap (R + W = N + 1): no larger than needed"]


def test_abd_with_quorums_that_do_not_overlap_is_rejected():
    v = check_quorum_choice({"n": 5, "r": 2, "w": 2, "mode": "abd"}, histories=4)
    assert "a read after a completed write sees it" in failed(v)


@pytest.mark.parametrize("answer,words", [
    (None, "must be a dict"), ({"n": 5, "r": 3, "w": 3}, "missing mode"),
    ({"n": 4, "r": 3, "w": 2, "mode": "abd"}, "n must stay 5"),
    ({"n": 5, "r": 6, "w": 1, "mode": "abd"}, "'r'"), ({"n": 5, "r": 3, "w": 3, "mode": "paxos"}, "mode must be"),
])
def test_bad_answers_are_rejected_by_name(answer, words):
    v = check_quorum_choice(answer)
    assert not v.passed and failed(v) == ["answer can be judged"] and words in str(v)


def _cells():
    nb = json.loads(NOTEBOOK.read_text(encoding="utf-8"))
    return [c for c in nb["cells"] if c["cell_type"] == "code"]


def test_the_notebooks_prefilled_answer_fails_and_no_right_answer_is_shown_above_it():
    cells = _cells()
    idx = next(i for i, c in enumerate(cells) if "check_quorum_choice(my_choice" in "".join(c["source"]))
    namespace = {}
    exec("".join(cells[idx]["source"]).split("\nprint(")[0], namespace)
    assert not check_quorum_choice(namespace["my_choice"], histories=4).passed
    out = "".join("".join(o.get("text", "")) + json.dumps(o.get("data", {}))
                  for c in cells[:idx] for o in c["outputs"])
    src = "".join("".join(c["source"]) for c in cells[:idx])
    for r, w in ((3, 3), (2, 4), (4, 2)):
        assert f"N=5, R={r}, W={w}" not in out and f"N=5 R={r} W={w}" not in out
        assert f"Quorum(5, {r}, {w})" not in src
