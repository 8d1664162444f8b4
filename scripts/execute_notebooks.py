"""Re-execute notebooks in place, the way nbval will re-run them.

Usage: python scripts/execute_notebooks.py [NAME ...]   (default: every notebook)

Each notebook runs in its own directory with PYTHONHASHSEED=0 and the plotly MIME
renderer; stored widget state is stripped so files stay small.
"""

import os
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"


def execute(path: Path) -> float:
    nb = nbformat.read(path, as_version=4)
    nb.metadata.pop("widgets", None)
    start = time.perf_counter()
    NotebookClient(nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}},
                   store_widget_state=False, record_timing=False).execute()
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:  # no wall-clock timestamps: a re-run of unchanged code leaves the file unchanged
        cell.metadata.pop("execution", None)
    nbformat.write(nb, path)
    return time.perf_counter() - start


def main(names):
    os.environ["PYTHONHASHSEED"] = "0"
    os.environ["PLOTLY_RENDERER"] = "plotly_mimetype"
    paths = sorted(NOTEBOOKS.glob("*.ipynb"))
    if names:
        paths = [p for p in paths if p.stem in names or p.name in names]
        if not paths:
            sys.exit(f"no notebook named {names} under {NOTEBOOKS}")
    for path in paths:
        print(f"{path.name}: executed in {execute(path):.1f} s", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
