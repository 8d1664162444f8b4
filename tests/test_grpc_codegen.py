"""The committed gRPC modules are what ``make grpc`` generates, and the declared versions fit them."""

import importlib.util
import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TRANSPORT = ROOT / "workbook" / "transport"


def _codegen():
    spec = importlib.util.spec_from_file_location("grpc_codegen", ROOT / "scripts" / "grpc_codegen.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _minimum(requirement_name: str) -> tuple[int, ...]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for req in project["dependencies"]:
        match = re.fullmatch(rf"{re.escape(requirement_name)}\s*>=\s*([0-9.]+)", req.strip())
        if match:
            return tuple(int(x) for x in match.group(1).split("."))
    raise AssertionError(f"pyproject.toml declares no {requirement_name}>=X in project.dependencies")


def generated_versions() -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(grpcio, protobuf) minimum versions the committed generated code checks at import."""
    grpc_text = (TRANSPORT / "inventory_pb2_grpc.py").read_text()
    grpc_version = re.search(r"GRPC_GENERATED_VERSION = '([0-9.]+)'", grpc_text).group(1)
    pb_text = (TRANSPORT / "inventory_pb2.py").read_text()
    call = re.search(r"ValidateProtobufRuntimeVersion\(\s*_runtime_version\.Domain\.PUBLIC,\s*(\d+),\s*(\d+),\s*(\d+),",
                     pb_text)
    return tuple(int(x) for x in grpc_version.split(".")), tuple(int(x) for x in call.groups())


@pytest.mark.timeout(120)
def test_regenerating_into_a_temporary_directory_gives_the_committed_files(tmp_path):
    codegen = _codegen()
    written = codegen.generate(tmp_path)
    assert [p.relative_to(tmp_path).as_posix() for p in written] == [
        "workbook/transport/inventory_pb2.py", "workbook/transport/inventory_pb2_grpc.py"]
    for path in written:
        rel = path.relative_to(tmp_path)
        assert path.read_text() == (ROOT / rel).read_text(), (
            f"{rel} differs from what the installed grpcio-tools generates: run `make grpc` and commit")


@pytest.mark.timeout(120)
def test_the_check_mode_reports_a_stale_file(tmp_path, monkeypatch, capsys):
    codegen = _codegen()
    fake_root = tmp_path / "repo"
    (fake_root / "workbook" / "transport").mkdir(parents=True)
    proto = "workbook/transport/inventory.proto"
    (fake_root / proto).write_text((ROOT / proto).read_text())
    codegen.generate(fake_root)
    monkeypatch.setattr(codegen, "ROOT", fake_root)
    assert codegen.main(["--check"]) == 0
    stale = fake_root / "workbook" / "transport" / "inventory_pb2_grpc.py"
    stale.write_text(stale.read_text().replace("GRPC_GENERATED_VERSION = '", "GRPC_GENERATED_VERSION = '0"))
    assert codegen.main(["--check"]) == 1
    assert "inventory_pb2_grpc.py" in capsys.readouterr().out


def test_declared_minimum_versions_are_what_the_generated_code_requires():
    grpc_needed, protobuf_needed = generated_versions()
    assert _minimum("grpcio") == grpc_needed, f"declare grpcio>={'.'.join(map(str, grpc_needed))}"
    assert _minimum("protobuf") == protobuf_needed, f"declare protobuf>={'.'.join(map(str, protobuf_needed))}"


def test_the_installed_runtimes_satisfy_the_generated_code():
    import grpc
    from google.protobuf import __version__ as protobuf_version

    grpc_needed, protobuf_needed = generated_versions()
    as_tuple = lambda v: tuple(int(x) for x in re.findall(r"\d+", v)[:3])  # noqa: E731
    assert as_tuple(grpc.__version__) >= grpc_needed
    assert as_tuple(protobuf_version) >= protobuf_needed
    from workbook.transport import inventory_pb2_grpc  # noqa: F401  (its own version checks pass)
