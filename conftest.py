"""Root pytest configuration, so plain ``pytest --nbval`` from the repository root works.

It fixes the hash seed and the plotly renderer *before* any kernel starts (kernels
inherit the environment), so every notebook output is reproducible. The sanitize file
is passed through ``addopts`` in pyproject.toml.
"""

import os
from pathlib import Path

os.environ["PYTHONHASHSEED"] = "0"
os.environ["PLOTLY_RENDERER"] = "plotly_mimetype"
os.environ.pop("VSCODE_PID", None)
os.environ.setdefault("WORKBOOK_TESTING", "1")

# Fixtures for system servers: one module per server under tests/fixtures/ (pytest allows
# pytest_plugins only in the root conftest).
pytest_plugins = [f"tests.fixtures.{p.stem}" for p in sorted((Path(__file__).parent / "tests" / "fixtures").glob("*.py"))
                  if p.stem != "__init__"]
