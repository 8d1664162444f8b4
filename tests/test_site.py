"""``make site``: the executed notebooks as a static HTML site with live plotly figures.

The unit tests build small synthetic notebooks (fast, independent of the chapters'
content); one test builds a real chapter; the browser test opens a page with every
request that is not a local file blocked, as on a machine without network.
"""

import importlib.util
import json
import os
import re
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
PLOTLY_MIME = "application/vnd.plotly.v1+json"


def _site():
    spec = importlib.util.spec_from_file_location("build_site", ROOT / "scripts" / "build_site.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


site = _site()


def figure(title):
    return {"data": [{"type": "scatter", "x": [1, 2, 3], "y": [3, 1, 2], "name": "</script><b>x"}],
            "layout": {"title": {"text": title}, "height": 300}}


def chapter(path: Path, title: str, with_widget=False) -> Path:
    cells = [new_markdown_cell(f"# {title}\n\nSome text."),
             new_code_cell("fig.show()", outputs=[new_output("display_data", data={PLOTLY_MIME: figure(title)})]),
             new_code_cell("print(1)", outputs=[new_output("stream", name="stdout", text="1\n")])]
    if with_widget:
        cells.append(new_code_cell("panel", outputs=[new_output("display_data", data={
            "application/vnd.jupyter.widget-view+json": {"model_id": "abc", "version_major": 2, "version_minor": 0},
            "text/plain": "VBox(children=(...))"})]))
    nbformat.write(new_notebook(cells=cells), path)
    return path


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    src = tmp_path_factory.mktemp("nbs")
    out = tmp_path_factory.mktemp("site")
    books = [chapter(src / "00_first.ipynb", "Chapter zero"), chapter(src / "01_second.ipynb", "Chapter one", True),
             chapter(src / "02_third.ipynb", "Chapter two")]
    summary = site.build_site(books, out)
    return out, summary


def nav_links(page: Path) -> dict[str, list[str]]:
    text = page.read_text()
    return {kind: re.findall(rf'<a class="site-{kind}" href="([^"]+)"', text) for kind in ("index", "prev", "next")}


def test_every_chapter_gets_a_page_an_index_and_the_local_plotly_js(built):
    out, summary = built
    assert sorted(p.name for p in out.iterdir()) == ["00_first.html", "01_second.html", "02_third.html",
                                                       "index.html", "plotly.min.js"]
    assert summary["figures"] == 3 and summary["widgets"] == 1
    assert (out / "plotly.min.js").stat().st_size > 1_000_000
    index = (out / "index.html").read_text()
    assert re.findall(r'<a href="([^"]+)">([^<]+)</a>', index) == [
        ("00_first.html", "Chapter zero"), ("01_second.html", "Chapter one"), ("02_third.html", "Chapter two")]


def test_previous_and_next_link_the_chapters_in_order(built):
    out, _ = built
    assert nav_links(out / "00_first.html") == {"index": ["index.html"] * 2, "prev": [], "next": ["01_second.html"] * 2}
    assert nav_links(out / "01_second.html") == {"index": ["index.html"] * 2, "prev": ["00_first.html"] * 2,
                                                 "next": ["02_third.html"] * 2}
    assert nav_links(out / "02_third.html") == {"index": ["index.html"] * 2, "prev": ["01_second.html"] * 2,
                                                "next": []}


def test_figures_become_plotly_calls_and_pages_need_no_network(built):
    out, _ = built
    page = (out / "01_second.html").read_text()
    assert '<script src="plotly.min.js"></script>' in page
    calls = re.findall(r'Plotly\.newPlot\("([^"]+)", (\[.*?\]), (\{.*?\}), (\{.*?\})\);</script>', page)
    assert [c[0] for c in calls] == ["01_second-figure-1"]
    data = json.loads(calls[0][1])
    assert data[0]["name"] == "</script><b>x"  # escaped in the page, intact once parsed
    assert "</script><b>x" not in page
    assert PLOTLY_MIME not in page
    assert "site-widget-note" in page and "VBox(children" not in page
    # nothing the figures or the layout need comes from the network (MathJax is the documented exception)
    external = set(re.findall(r'<(?:script|link)[^>]+(?:src|href)="(https?://[^"]+)"', page))
    assert {u for u in external if "mathjax" not in u.lower()} == set()
    assert "require.js" not in page


def test_a_rebuild_drops_pages_of_chapters_it_does_not_list(tmp_path):
    books = [chapter(tmp_path / "00_a.ipynb", "A"), chapter(tmp_path / "01_b.ipynb", "B")]
    out = tmp_path / "site"
    site.build_site(books, out)
    (out / "notes.html").write_text("mine")
    site.build_site(books[1:], out)
    assert sorted(p.name for p in out.glob("*.html")) == ["01_b.html", "index.html", "notes.html"]


def test_unknown_notebook_names_are_refused_with_the_known_ones():
    with pytest.raises(site.SiteError, match="'99_nothing' not found: expected one of .*00_tour"):
        site.resolve(["99_nothing"])
    assert site.resolve(["00_tour"]) == [ROOT / "notebooks" / "00_tour.ipynb"]


def test_a_real_chapter_shows_every_stored_figure(tmp_path):
    nb_path = ROOT / "notebooks" / "00_tour.ipynb"
    stored = sum(PLOTLY_MIME in o.get("data", {}) for c in nbformat.read(nb_path, 4).cells for o in c.get("outputs", []))
    summary = site.build_site([nb_path], tmp_path)
    page = (tmp_path / "00_tour.html").read_text()
    assert stored > 0 and summary["figures"] == stored == page.count("Plotly.newPlot(")
    assert nav_links(tmp_path / "00_tour.html") == {"index": ["index.html"] * 2, "prev": [], "next": []}


def missing(message: str):
    if os.environ.get("CI"):
        pytest.fail(f"CI is set, so a missing browser dependency is a failure: {message}", pytrace=False)
    pytest.skip(message)


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.timeout(240)
def test_a_page_renders_its_figures_offline_and_its_links_work(tmp_path):
    if not Path(CHROMIUM).exists():
        missing(f"{CHROMIUM} not found (apt-get install chromium chromium-driver)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing("playwright is not installed (pip install playwright)")
    out = tmp_path / "site"
    site.build_site([ROOT / "notebooks" / "00_tour.ipynb"], out)
    blocked, errors = [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True, timeout=60_000)
        try:
            page = browser.new_page(viewport={"width": 1300, "height": 900})
            page.set_default_timeout(60_000)
            # offline: every request that is not a local file is refused
            page.route(re.compile(r"^(?!file:).*"), lambda route: (blocked.append(route.request.url), route.abort()))
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto((out / "00_tour.html").as_uri(), wait_until="load")
            plot = page.locator(".js-plotly-plot").first
            plot.wait_for(state="attached")
            svg = plot.locator("svg.main-svg").first
            svg.wait_for(state="attached")
            traces = page.locator(".js-plotly-plot .scatterlayer .trace").count()
            figures = page.locator(".js-plotly-plot").count()
            page.screenshot(path=str(tmp_path / "page.png"))
            page.locator("nav.site-nav-top a.site-index").click()
            page.wait_for_url("**/index.html")
            chapters = page.locator("ol.site-chapters a")
            assert chapters.count() == 1
            chapters.first.click()
            page.wait_for_url("**/00_tour.html")
            page.locator(".js-plotly-plot svg.main-svg").first.wait_for(state="attached")
        finally:
            browser.close()
    assert figures == page_figures(out / "00_tour.html") and traces > 0
    assert errors == [], errors
    assert all("mathjax" in u.lower() or "cdnjs" in u.lower() for u in blocked), blocked


def page_figures(page: Path) -> int:
    return page.read_text().count("Plotly.newPlot(")
