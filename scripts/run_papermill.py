"""Execute notebooks headless with papermill into build/papermill/ (never collected by pytest).

Usage:
  python scripts/run_papermill.py                              every notebook, default parameters
  python scripts/run_papermill.py --notebook 00_tour -p k_max 16 -p seed 7
  python scripts/run_papermill.py --notebook 00_tour -y '{"k_values": [1, 2, 4]}'

``-p NAME VALUE`` values are parsed as YAML (numbers stay numbers); ``-y`` takes a
YAML/JSON mapping. Parameters apply to the selected notebook(s).
"""

import argparse
import os
import sys
import time
from pathlib import Path

import papermill as pm
import yaml

ROOT = Path(__file__).resolve().parent.parent


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--notebook", action="append", help="notebook name (stem), repeatable; default: all")
    parser.add_argument("-p", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"))
    parser.add_argument("-y", default=None, help="parameters as a YAML mapping")
    parser.add_argument("--out", default=str(ROOT / "build" / "papermill"))
    args = parser.parse_args(argv)
    params = dict(yaml.safe_load(args.y) or {}) if args.y else {}
    params.update({name: yaml.safe_load(value) for name, value in args.p})
    books = sorted((ROOT / "notebooks").glob("*.ipynb"))
    if args.notebook:
        books = [b for b in books if b.stem in args.notebook or b.name in args.notebook]
        if not books:
            sys.exit(f"no notebook named {args.notebook}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("PYTHONHASHSEED", "0")
    os.environ.setdefault("PLOTLY_RENDERER", "plotly_mimetype")
    failed = 0
    for book in books:
        start = time.perf_counter()
        try:
            pm.execute_notebook(str(book), str(out / book.name), parameters=params, cwd=str(book.parent),
                                kernel_name="python3", progress_bar=False)
            print(f"{book.name}: ok in {time.perf_counter() - start:.1f} s -> {out / book.name}")
        except pm.PapermillExecutionError as exc:
            failed += 1
            print(f"{book.name}: FAILED in cell {exc.exec_count}: {exc.ename}: {exc.evalue}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
