"""The notebook conventions of CONTRIBUTING.md, checked on every notebook.

Structure checks are cheap and always run; the papermill runs re-execute each notebook
headless with a changed seed (it must pass) and with a bad seed (it must fail in the
validation cell with a ParameterError naming the parameter).
"""

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
IGNORE_MARKERS = ("# NBVAL_IGNORE_OUTPUT", "# NBVAL_SKIP")
IGNORE_TAGS = {"nbval-ignore-output", "nbval-skip", "skip"}


def load(path):
    return json.loads(path.read_text(encoding="utf-8"))


def code_cells(nb):
    return [c for c in nb["cells"] if c["cell_type"] == "code"]


def source(cell):
    return "".join(cell["source"])


def ignored(cell):
    if IGNORE_TAGS & set(cell.get("metadata", {}).get("tags", [])):
        return True
    return any(line.strip() in IGNORE_MARKERS for line in source(cell).splitlines())


def test_there_are_notebooks():
    assert [p.name for p in NOTEBOOKS][:1] == ["00_tour.ipynb"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_structure(path):
    nb = load(path)
    cells = code_cells(nb)
    assert "setup_notebook()" in source(cells[0]), "the first code cell must call setup_notebook()"
    assert "parameters" in cells[1].get("metadata", {}).get("tags", []), "the second code cell must be tagged 'parameters'"
    assert sum("parameters" in c.get("metadata", {}).get("tags", []) for c in cells) == 1
    assert "widgets" not in nb.get("metadata", {}), "stored widget state: re-execute with scripts/execute_notebooks.py"
    for i, cell in enumerate(cells):
        text = source(cell)
        if text.strip():
            assert cell["execution_count"] is not None, f"code cell {i} was not executed"
        assert not any(o["output_type"] == "error" for o in cell["outputs"]), f"code cell {i} stored an error"
        assert not text.rstrip().endswith(";"), f"code cell {i} ends with ';' (nbval does not suppress it)"
        assert "asyncio.run(" not in text and "clear_output(" not in text, f"code cell {i}"
    n_ignored = sum(ignored(c) for c in cells)
    assert n_ignored * 3 <= len(cells), f"{n_ignored} of {len(cells)} code cells are ignored by nbval (limit: a third)"
    for i, cell in enumerate(cells):
        if ignored(cell):
            assert i + 1 < len(cells) and not ignored(cells[i + 1]), (
                f"ignored code cell {i} must be followed by a checked cell printing the numbers behind it")


def test_the_structure_check_catches_violations(tmp_path):
    """The rules above can fail: a notebook with half its cells ignored is refused."""
    cells = [{"cell_type": "code", "source": "# NBVAL_IGNORE_OUTPUT\nx", "metadata": {}} for _ in range(2)]
    cells += [{"cell_type": "code", "source": "y", "metadata": {}} for _ in range(2)]
    assert sum(ignored(c) for c in cells) * 3 > len(cells)


def parameters_of(path):
    nb = load(path)
    namespace = {}
    exec(source(code_cells(nb)[1]), namespace)  # the parameters cell is plain assignments
    return {k: v for k, v in namespace.items() if not k.startswith("__")}


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_papermill_with_changed_and_bad_parameters(path, tmp_path):
    import papermill as pm

    params = parameters_of(path)
    assert "seed" in params, "every notebook has a 'seed' parameter"
    pm.execute_notebook(str(path), str(tmp_path / "changed.ipynb"), parameters={"seed": params["seed"] + 1},
                        cwd=str(path.parent), kernel_name="python3", progress_bar=False)
    with pytest.raises(pm.PapermillExecutionError) as info:
        pm.execute_notebook(str(path), str(tmp_path / "bad.ipynb"), parameters={"seed": -1},
                            cwd=str(path.parent), kernel_name="python3", progress_bar=False)
    assert info.value.ename == "ParameterError"
    assert "'seed'" in info.value.evalue
    bad = load(tmp_path / "bad.ipynb")
    failing = [i for i, c in enumerate(code_cells(bad)) if any(o["output_type"] == "error" for o in c["outputs"])]
    assert failing == [3], "the bad seed must fail in the validation cell, right after the injected parameters"


@pytest.mark.slow
def test_tour_rejects_bad_fanout_and_distribution(tmp_path):
    import papermill as pm

    path = ROOT / "notebooks" / "00_tour.ipynb"
    for params, name in (({"k_values": [1, -4]}, "'k_values[1]'"), ({"distribution": "pareto"}, "'distribution'")):
        with pytest.raises(pm.PapermillExecutionError) as info:
            pm.execute_notebook(str(path), str(tmp_path / "bad.ipynb"), parameters=params,
                                cwd=str(path.parent), kernel_name="python3", progress_bar=False)
        assert info.value.ename == "ParameterError" and name in info.value.evalue
