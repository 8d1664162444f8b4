"""Run every ``benchmarks/bench_*.py`` module's ``run()`` and write benchmarks/RESULTS.md.

Usage: python -m benchmarks [NAME ...]   e.g. ``python -m benchmarks virtual_time``.
Sections of modules not run this time are kept from the previous RESULTS.md.
"""

import datetime
import importlib
import os
import platform
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "RESULTS.md"


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}, Python {platform.python_version()}"


def previous_sections() -> dict[str, str]:
    if not RESULTS.exists():
        return {}
    parts = re.split(r"(?m)^<!-- bench: (\w+) -->\n", RESULTS.read_text())
    return {parts[i]: parts[i + 1].rstrip() + "\n" for i in range(1, len(parts) - 1, 2)}


def main(names):
    available = sorted(p.stem[len("bench_"):] for p in HERE.glob("bench_*.py"))
    chosen = names or available
    unknown = set(chosen) - set(available)
    if unknown:
        sys.exit(f"unknown benchmark(s) {sorted(unknown)}; available: {available}")
    sections = previous_sections()
    stamp = f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC on {machine()}"
    for name in chosen:
        print(f"== {name}", flush=True)
        text = importlib.import_module(f"benchmarks.bench_{name}").run()
        print(text, flush=True)
        sections[name] = f"_Measured {stamp}._\n\n{text.rstrip()}\n"
    body = "# Benchmark results\n\nWritten by `python -m benchmarks` (`make bench`); each section says when and where.\n\n"
    for name in sorted(sections):
        body += f"<!-- bench: {name} -->\n{sections[name]}\n"
    RESULTS.write_text(body)
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main(sys.argv[1:])
