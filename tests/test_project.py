"""Project files agree with each other: dependencies, commands, CI."""

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
# conda-forge names that differ from PyPI's
CONDA_TO_PYPI = {"redis-py": "redis", "prometheus_client": "prometheus-client"}


def split(requirement):
    match = re.match(r"^\s*([A-Za-z0-9_.\-]+)\s*(.*)$", requirement)
    return match.group(1).lower().replace("_", "-"), match.group(2).replace(" ", "")


def pyproject_dependencies():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = project["dependencies"] + project["optional-dependencies"]["test"]
    return dict(split(r) for r in reqs)


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


def test_drift_detection_can_fail():
    assert split("prometheus_client >=0.20") == ("prometheus-client", ">=0.20")
    assert split("redis>=5.0") != split("redis>=4.0")


def test_readme_commands_exist_and_ci_runs_the_test_command():
    readme = (ROOT / "README.md").read_text()
    makefile = (ROOT / "Makefile").read_text()
    for target in ("lab", "test", "notebooks", "execute", "bench"):
        assert f"make {target}" in readme
        assert re.search(rf"^{target}:", makefile, re.M)
    assert "make test" in (ROOT / ".ci" / "run").read_text()
