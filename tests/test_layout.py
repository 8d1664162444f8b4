"""The import rules that keep the library by concept and the labs by chapter (README, Layout)."""

from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path

import pytest

import workbook

ROOT = Path(workbook.__file__).parent
PLOTTING = ("plotly", "ipywidgets", "anywidget", "IPython", "matplotlib", "networkx.drawing")


def _modules():
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        yield ".".join(parts), path


def _imports(path: Path) -> set[str]:
    """Every module a file imports, at the top or inside a function."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
    return found


def _under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


MODULES = list(_modules())


def test_the_rules_see_every_module():
    names = [m for m, _ in MODULES]
    assert "workbook.resilience.breaker" in names and "workbook.labs.ch02_sync.experiments" in names
    assert len(names) > 60


@pytest.mark.parametrize("module,path", MODULES, ids=[m for m, _ in MODULES])
def test_import_rules(module, path):
    imports = _imports(path)
    wb = {i for i in imports if _under(i, "workbook")}
    if _under(module, "workbook.core"):
        outside = sorted(i for i in wb if not _under(i, "workbook.core"))
        assert not outside, f"{module}: core imports only core, not {outside}"
    if not _under(module, "workbook.labs"):
        labs = sorted(i for i in wb if _under(i, "workbook.labs"))
        assert not labs, f"{module}: the library never imports a lab ({labs})"
        plotting = sorted(i for i in imports if any(_under(i, p) for p in PLOTTING))
        assert not plotting, f"{module}: pattern code imports no plotting or widget library ({plotting})"
    else:
        parts = module.split(".")
        if len(parts) >= 3 and parts[2].startswith("ch"):
            own = ".".join(parts[:3])
            other = sorted(i for i in wb if _under(i, "workbook.labs") and len(i.split(".")) >= 3
                           and i.split(".")[2].startswith("ch") and not _under(i, own))
            assert not other, f"{module}: a lab never imports another lab ({other})"


def test_rule_checker_catches_a_violation(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    import plotly.graph_objects as go\n    from workbook.labs.ch02_sync import figures\n")
    imports = _imports(bad)
    assert "plotly.graph_objects" in imports and "workbook.labs.ch02_sync.figures" in imports


@pytest.mark.parametrize("package", sorted(
    m.name for m in pkgutil.iter_modules(workbook.__path__, "workbook.") if m.ispkg and m.name != "workbook.labs"))
def test_library_packages_export_a_complete_all(package):
    mod = importlib.import_module(package)
    exported = getattr(mod, "__all__", None)
    assert exported, f"{package} has no __all__"
    assert len(exported) == len(set(exported)), f"{package}.__all__ repeats a name"
    missing = [n for n in exported if not hasattr(mod, n)]
    assert not missing, f"{package}.__all__ names what it does not define: {missing}"
    public = {n for n, v in vars(mod).items() if not n.startswith("_") and getattr(v, "__module__", "").startswith(package)}
    assert public <= set(exported), f"{package} imports public names it does not export: {sorted(public - set(exported))}"


def test_no_two_library_packages_export_the_same_name():
    owner: dict[str, str] = {}
    clashes = []
    for m in pkgutil.iter_modules(workbook.__path__, "workbook."):
        if not m.ispkg or m.name == "workbook.labs":
            continue
        for name in importlib.import_module(m.name).__all__:
            if name in owner:
                clashes.append(f"{name}: {owner[name]} and {m.name}")
            owner.setdefault(name, m.name)
    assert not clashes, clashes


def test_every_exception_derives_from_the_root_error():
    from workbook.core.errors import WorkbookError
    strays = []
    for m in pkgutil.walk_packages(workbook.__path__, "workbook."):
        mod = importlib.import_module(m.name)
        for name, value in vars(mod).items():
            if (isinstance(value, type) and issubclass(value, BaseException) and value.__module__ == m.name
                    and not issubclass(value, WorkbookError)):
                strays.append(f"{m.name}.{name}")
    assert not strays, f"exceptions not derived from WorkbookError: {strays}"


# The exercise modules of the labs share one small interface on purpose (each chapter's
# tests ask its exercise for the naive answers it must reject and for a model answer).
SHARED_LAB_INTERFACE = {"naive_answers", "model_answer"}


def test_no_two_modules_define_the_same_public_name():
    """A name means one thing across the workbook: no ``panel_text`` in two labs, no two ``Retry``."""
    owners: dict[str, list[str]] = {}
    for module, path in MODULES:
        if path.name.endswith(("_pb2.py", "_pb2_grpc.py")):  # generated gRPC code
            continue
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and not node.name.startswith("_"):
                owners.setdefault(node.name, []).append(module)
    clashes = {name: mods for name, mods in owners.items() if len(mods) > 1 and name not in SHARED_LAB_INTERFACE}
    assert not clashes, f"public names defined in more than one module: {clashes}"
    for name in SHARED_LAB_INTERFACE:
        assert all(".labs.ch" in m and m.endswith(".exercise") for m in owners.get(name, [])), name
