"""Where the bundled data files are: one function, ``data_path``, for every reader of ``data/``.

The files live in ``data/`` at the top of the repository, where learners see them. A wheel
ships the same tree inside the package, as ``workbook/data/`` (``setup.py`` maps it), and
``importlib.resources`` finds it there, whatever directory Python runs from. In a checkout
(an editable install, or ``PYTHONPATH`` pointing at the repository) the package has no
``data`` directory and the repository's ``data/`` next to ``workbook/`` is used instead.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from workbook.core.errors import WorkbookError

_CHECKOUT_DATA = Path(__file__).resolve().parents[2] / "data"


class DataNotFound(WorkbookError, FileNotFoundError):
    """A bundled data file or directory is missing (``path`` is where it was looked for)."""

    def __init__(self, path: Path, parts: tuple[str, ...], available: list[str]):
        self.path, self.parts, self.available = path, parts, available
        shown = ", ".join(available) if available else "nothing"
        super().__init__(f"bundled data {'/'.join(parts)!r} not found at {path}: expected one of {shown}")


def data_root() -> Path:
    """The directory holding the bundled data: the installed package's, else the checkout's."""
    packaged = files("workbook").joinpath("data")
    if isinstance(packaged, Path) and packaged.is_dir():
        return packaged
    if _CHECKOUT_DATA.is_dir():
        return _CHECKOUT_DATA
    raise DataNotFound(_CHECKOUT_DATA, (), [])


def data_path(*parts: str) -> Path:
    """The path of a bundled data file or directory, e.g. ``data_path("tour", "architecture.yaml")``.

    Each part is one path component (no separators, no ``..``). Raises ``DataNotFound``,
    listing what the parent directory does hold, when the target does not exist.
    """
    for part in parts:
        if not isinstance(part, str) or not part or part in (".", "..") or "/" in part or "\\" in part:
            raise DataNotFound(Path(*map(str, parts)) if parts else Path(), tuple(map(str, parts)),
                               ["plain path components (no separators, '.' or '..')"])
    root = data_root()
    target = root.joinpath(*parts)
    if not target.exists():
        parent = target.parent
        available = sorted(p.name for p in parent.iterdir()) if parent.is_dir() else []
        raise DataNotFound(target, parts, available)
    return target
