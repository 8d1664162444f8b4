"""Project files agree with each other: dependencies, commands, CI."""

import ast
import json
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
# conda-forge names that differ from PyPI's
CONDA_TO_PYPI = {"redis-py": "redis", "prometheus_client": "prometheus-client"}
# declared, but used otherwise than by an import: why
NOT_IMPORTED = {
    "jupyterlab": "runs the notebooks (make lab)",
    "anywidget": "plotly's go.FigureWidget, used by the labs, imports it",
    "nbval": "pytest plugin (pytest --nbval)",
    "pytest-timeout": "pytest plugin (timeout in pyproject.toml)",
    "grpcio-tools": "scripts/grpc_codegen.py runs it as python -m grpc_tools.protoc",
}
# of those, the ones the package needs at run time (the others are tooling: the test extra)
RUNTIME_NOT_IMPORTED = ("jupyterlab", "anywidget")
# top-level names that are this repository's own code
LOCAL = {"workbook", "tests", "benchmarks", "scripts", "conftest", "setup"}


def split(requirement):
    match = re.match(r"^\s*([A-Za-z0-9_.\-]+)\s*(.*)$", requirement)
    return match.group(1).lower().replace("_", "-"), match.group(2).replace(" ", "")


def pyproject_dependencies(*groups):
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    groups = groups or ("runtime", "test")
    reqs = [r for g in groups for r in (project["dependencies"] if g == "runtime"
                                          else project["optional-dependencies"][g])]
    return dict(split(r) for r in reqs)


def normalize(name):
    return re.sub(r"[-_.]+", "-", name).lower()


def imported_top_levels(paths):
    """Top-level module names imported by the Python files (and notebook code cells) given."""
    found = {}
    for path in paths:
        if path.suffix == ".ipynb":
            cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
            lines = ["".join(c["source"]).splitlines() for c in cells if c["cell_type"] == "code"]
            # IPython magics and shell escapes are not Python
            source = "\n".join(line for cell in lines for line in cell if not line.lstrip().startswith(("%", "!")))
        else:
            source = path.read_text(encoding="utf-8")
        for node in ast.walk(ast.parse(source)):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                found.setdefault(name.split(".")[0], set()).add(str(path.relative_to(ROOT)))
    return {m: f for m, f in found.items() if m not in sys.stdlib_module_names and m not in LOCAL}


def distributions_of(modules):
    """module -> the installed distributions (normalized names) that provide it."""
    provided = packages_distributions()
    return {m: {normalize(d) for d in provided.get(m, [])} for m in modules}


def undeclared(imports, declared):
    return {m: sorted(files)[:3] for m, files in imports.items()
            if not distributions_of([m])[m] & set(declared)}


def unused(declared, imports, exempt=tuple(NOT_IMPORTED)):
    used = set().union(*distributions_of(imports).values()) if imports else set()
    return sorted(d for d in declared if d not in used and d not in exempt)


LIBRARY = sorted((ROOT / "workbook").rglob("*.py")) + sorted((ROOT / "notebooks").glob("*.ipynb"))
TOOLING = (sorted((ROOT / "tests").rglob("*.py")) + sorted((ROOT / "scripts").rglob("*.py"))
           + sorted((ROOT / "benchmarks").rglob("*.py")) + [ROOT / "conftest.py", ROOT / "setup.py"])


def environment_dependencies():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    deps = {}
    for item in env["dependencies"]:
        if isinstance(item, dict) or item.startswith(("python", "pip")):
            continue
        name, spec = split(item)
        deps[CONDA_TO_PYPI.get(name, name).replace("_", "-")] = spec
    return deps


def test_environment_yml_and_pyproject_declare_the_same_dependencies():
    py, conda = pyproject_dependencies(), environment_dependencies()
    assert sorted(set(py) - set(conda)) == [], "in pyproject.toml but not in environment.yml"
    assert sorted(set(conda) - set(py)) == [], "in environment.yml but not in pyproject.toml"
    assert {k: v for k, v in py.items() if conda[k] != v} == {}, "version specifiers differ"


def test_required_dependencies_are_declared():
    py = pyproject_dependencies()
    for name in ("jupyterlab", "ipywidgets", "anywidget", "plotly", "networkx", "aiohttp", "pyyaml",
                 "pytest", "nbval", "papermill", "hypothesis"):
        assert name in py


def test_every_runtime_dependency_is_used_by_the_package_or_the_notebooks():
    runtime = pyproject_dependencies("runtime")
    assert unused(runtime, imported_top_levels(LIBRARY), RUNTIME_NOT_IMPORTED) == [], (
        "declared but imported nowhere by the package or the notebooks: remove it, or move it to the test extra")


def test_every_third_party_import_of_the_package_and_notebooks_is_a_runtime_dependency():
    runtime = pyproject_dependencies("runtime")
    assert undeclared(imported_top_levels(LIBRARY), runtime) == {}, "imported but not in project.dependencies"


def test_every_test_dependency_is_used_and_every_tooling_import_declared():
    declared = pyproject_dependencies()
    tooling = imported_top_levels(TOOLING)
    assert undeclared(tooling, declared) == {}, "tests/scripts/benchmarks import what is not declared"
    test_only = pyproject_dependencies("test")
    assert unused(test_only, tooling) == [], "test dependency imported nowhere: remove it"


def test_the_reasons_for_declared_but_not_imported_dependencies_hold():
    declared = pyproject_dependencies()
    assert set(NOT_IMPORTED) <= set(declared), "NOT_IMPORTED names something no longer declared"
    labs = "".join(p.read_text(encoding="utf-8") for p in (ROOT / "workbook" / "labs").rglob("*.py"))
    assert "FigureWidget" in labs, "anywidget is declared for go.FigureWidget, which no lab uses any more"
    assert "--nbval" in (ROOT / "Makefile").read_text()
    assert "timeout" in tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    assert "grpc_tools" in (ROOT / "scripts" / "grpc_codegen.py").read_text()


def test_the_usage_checks_can_fail(tmp_path):
    assert unused({"jupyterlab": "", "pyjwt": ">=2.8"}, {"yaml": {"x.py"}}) == ["pyjwt"]
    assert unused({"grpcio-tools": ">=1.85.1"}, {"grpc": {"x.py"}}, RUNTIME_NOT_IMPORTED) == ["grpcio-tools"]
    assert list(undeclared({"yaml": {"x.py"}, "networkx": {"y.py"}}, {"networkx": ""})) == ["yaml"]
    module = ROOT / "build" / "_probe_imports.py"
    module.parent.mkdir(exist_ok=True)
    module.write_text("import os\nimport yaml.constructor\nfrom workbook import core\nfrom . import x\n")
    try:
        assert set(imported_top_levels([module])) == {"yaml"}
    finally:
        module.unlink()


def test_drift_detection_can_fail():
    assert split("prometheus_client >=0.20") == ("prometheus-client", ">=0.20")
    assert split("redis>=5.0") != split("redis>=4.0")


def test_readme_commands_exist_and_ci_runs_the_test_command():
    readme = (ROOT / "README.md").read_text()
    makefile = (ROOT / "Makefile").read_text()
    for target in ("lab", "test", "notebooks", "execute", "bench", "grpc", "site"):
        assert f"make {target}" in readme
        assert re.search(rf"^{target}:", makefile, re.M)
    assert "make test" in (ROOT / ".ci" / "run").read_text()
