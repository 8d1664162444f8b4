"""Build the executed notebooks into a static HTML site (``make site``; ``make site NB=00_tour``).

    python scripts/build_site.py                  # every notebooks/NN_*.ipynb -> build/site/
    python scripts/build_site.py 00_tour --out DIR

Nothing is re-executed: the site shows the outputs as committed. Each chapter becomes
``NN_name.html`` (nbconvert's JupyterLab template plus a navigation bar: contents,
previous and next chapter) and ``index.html`` lists the chapters. A build of some
chapters (``NB=...``) is a site of those chapters only: older chapter pages are removed.

Plotly figures are stored as ``application/vnd.plotly.v1+json`` outputs, which nbconvert
does not render; each becomes a ``<div>`` plus a ``Plotly.newPlot`` call, and the page
loads ``plotly.min.js`` copied next to it from the installed plotly package, so figures
are interactive without network access. Widgets have no stored state (notebooks are
committed without it), so a widget output becomes a note saying to run the notebook.
MathJax still comes from nbconvert's CDN default: without network, formulas show as TeX.
"""

from __future__ import annotations

import argparse
import html
import json
import re
import shutil
import sys
from pathlib import Path

import nbformat
from nbconvert import HTMLExporter

from workbook.core.errors import WorkbookError

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
OUT = ROOT / "build" / "site"
TEMPLATES = Path(__file__).resolve().parent / "site_templates"
PLOTLY_MIME = "application/vnd.plotly.v1+json"
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
PLOTLY_JS = "plotly.min.js"
WIDGET_NOTE = ('<div class="site-widget-note">An interactive widget is here when the notebook runs: '
               'open it in JupyterLab (<code>make lab</code>).</div>')


class SiteError(WorkbookError):
    """A notebook cannot be found or read."""


def chapter_title(nb, fallback: str) -> str:
    """The first Markdown heading of the notebook, without its ``#`` marks."""
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            match = re.search(r"^#{1,6}\s+(.+?)\s*#*\s*$", cell.source, re.M)
            if match:
                return match.group(1).strip()
    return fallback


def _script_json(value) -> str:
    """JSON safe inside a <script> element (no ``</script>`` or ``<!--`` can end it)."""
    return json.dumps(value, separators=(",", ":")).replace("<", "\\u003c").replace(">", "\\u003e")


def plotly_html(figure: dict, div_id: str) -> str:
    """A div and the script that draws ``figure`` (a plotly MIME bundle: data, layout, config) into it."""
    config = {"responsive": True, **figure.get("config", {})}
    height = figure.get("layout", {}).get("height")
    style = f"height:{int(height)}px;" if isinstance(height, (int, float)) else "min-height:450px;"
    return (f'<div id="{div_id}" class="site-plotly" style="width:100%;{style}"></div>\n'
            f'<script type="text/javascript">Plotly.newPlot("{div_id}", {_script_json(figure.get("data", []))}, '
            f'{_script_json(figure.get("layout", {}))}, {_script_json(config)});</script>')


def render_rich_outputs(nb, stem: str) -> dict[str, int]:
    """Turn plotly and widget outputs into HTML nbconvert shows as is; returns what was converted."""
    counts = {"figures": 0, "widgets": 0}
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            data = output.get("data")
            if not data:
                continue
            if PLOTLY_MIME in data:
                counts["figures"] += 1
                output["data"] = {"text/html": plotly_html(data[PLOTLY_MIME], f"{stem}-figure-{counts['figures']}")}
            elif WIDGET_MIME in data:
                counts["widgets"] += 1
                output["data"] = {"text/html": WIDGET_NOTE}
    return counts


def _exporter() -> HTMLExporter:
    exporter = HTMLExporter(template_name="lab", extra_template_paths=[str(TEMPLATES)])
    exporter.template_file = "workbook_site.html.j2"
    return exporter


def _nav(index: int, chapters: list[dict]) -> dict:
    nav = {"index": "index.html", "prev": None, "next": None}
    if index > 0:
        nav["prev"] = {"href": chapters[index - 1]["href"], "title": chapters[index - 1]["title"]}
    if index + 1 < len(chapters):
        nav["next"] = {"href": chapters[index + 1]["href"], "title": chapters[index + 1]["title"]}
    return nav


def index_html(chapters: list[dict]) -> str:
    items = "\n".join(f'  <li><a href="{html.escape(c["href"])}">{html.escape(c["title"])}</a> '
                      f'<span class="site-file">{html.escape(c["source"])}</span></li>' for c in chapters)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8" />
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<title>The microservice patterns workbook</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 50rem; margin: 2rem auto; padding: 0 1rem; line-height: 1.5; }}
.site-chapters li {{ margin: 0.4rem 0; }}
.site-file {{ color: #666; font-family: monospace; font-size: 0.85em; margin-left: 0.5rem; }}
</style>
</head>
<body>
<h1>The microservice patterns workbook</h1>
<p>The chapters as executed (outputs as committed). Figures are interactive; widgets need
the notebook running in JupyterLab (<code>make lab</code>).</p>
<ol class="site-chapters">
{items}
</ol>
</body>
</html>
"""


def resolve(names: list[str]) -> list[Path]:
    """Notebook paths from names (``00_tour``, ``00_tour.ipynb`` or a path); all chapters when empty."""
    if not names:
        found = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
        if not found:
            raise SiteError(f"no notebooks NN_name.ipynb in {NOTEBOOKS}")
        return found
    paths = []
    for name in names:
        path = Path(name)
        if not path.suffix:
            path = path.with_suffix(".ipynb")
        if not path.exists():
            path = NOTEBOOKS / path.name
        if not path.exists():
            known = ", ".join(p.stem for p in sorted(NOTEBOOKS.glob("*.ipynb")))
            raise SiteError(f"notebook {name!r} not found: expected one of {known}")
        paths.append(path)
    return paths


def build_site(notebooks: list[Path], out: Path = OUT) -> dict:
    """Write ``out/index.html``, one page per notebook and ``plotly.min.js``; returns a summary."""
    out.mkdir(parents=True, exist_ok=True)
    import plotly

    shutil.copy(Path(plotly.__file__).parent / "package_data" / PLOTLY_JS, out / PLOTLY_JS)
    books = []
    for path in notebooks:
        try:
            nb = nbformat.read(path, as_version=4)
        except (OSError, ValueError) as exc:
            raise SiteError(f"{path}: cannot read the notebook: {exc}") from None
        books.append((path, nb))
    chapters = [{"href": f"{p.stem}.html", "title": chapter_title(nb, p.stem), "source": p.name} for p, nb in books]
    exporter = _exporter()
    summary = {"pages": [], "figures": 0, "widgets": 0}
    for i, (path, nb) in enumerate(books):
        counts = render_rich_outputs(nb, path.stem)
        resources = {"metadata": {"name": chapters[i]["title"]},
                     "site": {**_nav(i, chapters), "plotly": PLOTLY_JS}}
        body, _ = exporter.from_notebook_node(nb, resources=resources)
        page = out / chapters[i]["href"]
        page.write_text(body, encoding="utf-8")
        summary["pages"].append(page)
        summary["figures"] += counts["figures"]
        summary["widgets"] += counts["widgets"]
    (out / "index.html").write_text(index_html(chapters), encoding="utf-8")
    # a chapter page from an earlier build that this one does not list (renamed, removed, NB=...)
    current = {c["href"] for c in chapters}
    for stale in out.glob("[0-9][0-9]_*.html"):
        if stale.name not in current:
            stale.unlink()
    return summary


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", help="names such as 00_tour (default: every chapter)")
    parser.add_argument("--out", type=Path, default=OUT, help=f"output directory (default: {OUT})")
    args = parser.parse_args(argv)
    try:
        summary = build_site(resolve(args.notebooks), args.out)
    except SiteError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{len(summary['pages'])} chapter page(s), {summary['figures']} figure(s), {summary['widgets']} widget "
          f"note(s) -> {args.out / 'index.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
