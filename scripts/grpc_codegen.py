"""Regenerate the gRPC Python modules from their .proto files (``make grpc``).

    python scripts/grpc_codegen.py            # rewrite workbook/transport/inventory_pb2*.py
    python scripts/grpc_codegen.py --check    # exit 1 if the committed files differ from a fresh run
    python scripts/grpc_codegen.py --out DIR  # write under DIR/workbook/transport/ instead

The proto is compiled with the repository root as the include path, so the generated
module imports ``workbook.transport.inventory_pb2`` by its package path. The output
depends on the installed grpcio-tools: the generated code then requires grpcio >= that
version and a protobuf runtime >= the protobuf it bundles (pyproject.toml declares both;
tests/test_grpc_codegen.py checks they agree).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTOS = ("workbook/transport/inventory.proto",)


def generated_files(proto: str) -> list[str]:
    """The repository-relative paths protoc writes for one proto."""
    stem = proto.removesuffix(".proto")
    return [f"{stem}_pb2.py", f"{stem}_pb2_grpc.py"]


def generate(out: Path, protos=PROTOS) -> list[Path]:
    """Compile ``protos`` into ``out`` (mirroring the repository layout); returns the files written."""
    out.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "grpc_tools.protoc", f"-I{ROOT}", f"--python_out={out}",
           f"--grpc_python_out={out}", *protos]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise SystemExit(f"protoc failed ({' '.join(cmd)}):\n{done.stderr}")
    return [out / f for proto in protos for f in generated_files(proto)]


def differences(protos=PROTOS) -> list[str]:
    """Repository-relative generated files whose committed text differs from a fresh run."""
    with tempfile.TemporaryDirectory() as tmp:
        generate(Path(tmp), protos)
        differ = []
        for proto in protos:
            for rel in generated_files(proto):
                fresh = (Path(tmp) / rel).read_text(encoding="utf-8")
                committed = ROOT / rel
                if not committed.exists() or committed.read_text(encoding="utf-8") != fresh:
                    differ.append(rel)
        return differ


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT, help="output root (default: the repository)")
    parser.add_argument("--check", action="store_true", help="compare with a fresh run, write nothing")
    args = parser.parse_args(argv)
    if args.check:
        differ = differences()
        if differ:
            print("out of date (run `make grpc`): " + ", ".join(differ))
            return 1
        print("generated gRPC code is up to date")
        return 0
    for path in generate(args.out.resolve()):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
