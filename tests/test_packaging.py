"""The data files are found through the package, so an installed wheel works from any directory.

``data/`` stays at the top of the repository; ``setup.py`` ships it in the wheel as
``workbook/data/`` and ``workbook.core.resources.data_path`` finds it with
``importlib.resources``, falling back to the checkout's ``data/``.
"""

import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap
import zipfile
from pathlib import Path

import pytest

import workbook
from workbook.core.errors import WorkbookError
from workbook.core.resources import DataNotFound, data_path, data_root

ROOT = Path(__file__).resolve().parent.parent
# what a wheel is built from (copied, so the build never writes build/ into the checkout)
SOURCES = ("workbook", "data", "pyproject.toml", "setup.py", "README.md")


def test_in_a_checkout_the_repository_data_directory_is_used():
    assert data_root() == ROOT / "data"
    assert data_path("tour", "architecture.yaml") == ROOT / "data" / "tour" / "architecture.yaml"
    assert data_path("decomposition").is_dir()


def test_the_catalog_finds_its_files_through_data_path():
    from workbook.decomposition import DATA_DIR
    assert DATA_DIR == data_path("decomposition")


def test_a_missing_data_file_is_a_clear_error():
    with pytest.raises(DataNotFound) as info:
        data_path("tour", "nowhere.yaml")
    message = str(info.value)
    assert "tour/nowhere.yaml" in message and "architecture.yaml" in message
    assert isinstance(info.value, WorkbookError) and isinstance(info.value, FileNotFoundError)


@pytest.mark.parametrize("parts", [("..", "pyproject.toml"), ("tour/architecture.yaml",), ("",), ("tour", ".")])
def test_data_path_takes_plain_components_only(parts):
    with pytest.raises(DataNotFound, match="plain path components"):
        data_path(*parts)


def _copy_sources(dest: Path) -> None:
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for name in SOURCES:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=ignore)
        else:
            shutil.copy(src, dest / name)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    src = tmp_path_factory.mktemp("src")
    out = tmp_path_factory.mktemp("wheel")
    _copy_sources(src)
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "--no-build-isolation",
                    "--quiet", "-w", str(out)], check=True, timeout=120, capture_output=True)
    (built,) = out.glob("workbook-*.whl")
    return built


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_the_wheel_holds_every_data_file_and_the_grpc_sources(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {"workbook/data/" + p.relative_to(ROOT / "data").as_posix()
                for p in (ROOT / "data").rglob("*") if p.is_file()}
    assert expected and expected <= names, sorted(expected - names)
    assert {"workbook/transport/inventory.proto", "workbook/transport/inventory_pb2.py",
            "workbook/core/resources.py"} <= names
    assert not any(n.startswith(("data/", "tests/", "notebooks/")) for n in names)


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_an_installed_wheel_loads_the_shop_and_the_catalogs_from_outside_the_repository(wheel, tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=60)
    python = venv / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True, timeout=30).stdout.strip())
    # the dependencies come from this environment's site-packages, added *after* the scratch
    # venv's own (a path line in a .pth: the .pth files there, an editable install's finder
    # included, are not run, so the checkout is invisible)
    (site / "zz_workbook_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index",
                    "--quiet", str(wheel)], check=True, timeout=120, capture_output=True)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    code = textwrap.dedent("""
        import workbook
        from workbook.core.resources import data_path, data_root
        from workbook.decomposition import DATA_DIR, load_catalog
        from workbook.shop import load_architecture
        arch = load_architecture(data_path("tour", "architecture.yaml"))
        print("package", workbook.__file__)
        print("root", data_root())
        print("catalog_dir", DATA_DIR)
        print("services", len(arch.graph))
        print("capabilities", len(load_catalog("seed_five")), len(load_catalog("ecommerce")))
    """)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    done = subprocess.run([str(python), "-c", code], cwd=outside, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = dict(line.split(" ", 1) for line in done.stdout.splitlines())
    installed = site / "workbook"
    assert Path(lines["package"]).parent == installed, "the scratch venv imported the checkout, not the wheel"
    assert Path(lines["root"]) == installed / "data"
    assert Path(lines["catalog_dir"]) == installed / "data" / "decomposition"
    assert int(lines["services"]) > 5
    assert lines["capabilities"] == "5 24"
    assert str(ROOT) not in done.stdout
    assert Path(workbook.__file__).parent == ROOT / "workbook"  # this process still runs the checkout
