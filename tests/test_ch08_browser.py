"""The live RED dashboard of chapter 8 in a real browser: JupyterLab + headless chromium.

A two-cell notebook (``setup_notebook()``, then ``viz.dashboard_panel(seed=0)``) runs in
JupyterLab (``tests/fixtures/jupyterlab.py``); the test finds the panel (CSS class
``dashboard-panel``), runs the load for a minute, injects the ``errors`` fault from the
panel's toggle buttons, runs three more minutes, and asserts that the summary shows the
alert pending and then firing, and that the drawn lines changed. A screenshot goes to
``build/observability_dashboard_panel.png``.

Without chromium or Playwright it is skipped locally and fails under CI (``CI`` set).
"""

import pytest

from tests.fixtures.jupyterlab import SCREENSHOTS, run_all, wait_for_change

NOTEBOOK = "dashboard_panel.ipynb"
CELLS = ["from workbook.labs import setup_notebook\n\nsetup_notebook()\n"
         "from workbook.labs.ch08_observability import figures as viz", "viz.dashboard_panel(seed=0)"]
SUMMARY = ".dashboard-panel .dashboard-panel-summary"
LINES = ".dashboard-panel .js-plotly-plot .scatterlayer .trace path.js-line"


def _lines(page) -> str:
    return page.evaluate(f"() => [...document.querySelectorAll({LINES!r})].map(e => e.getAttribute('d')).join('|')")


def _step(page, panel, old: str) -> str:
    panel.locator(".dashboard-panel-step").click()
    wait_for_change(page, SUMMARY, old)
    return panel.locator(".dashboard-panel-summary").inner_text()


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.timeout(420)
def test_dashboard_panel_shows_the_alert_pending_then_firing(jupyterlab, browser_page):
    page = browser_page
    panel = run_all(page, jupyterlab({NOTEBOOK: CELLS}), NOTEBOOK, executed_cells=2, widget="dashboard-panel")
    summary = panel.locator(".dashboard-panel-summary")
    start = summary.inner_text()
    assert start.startswith("t=0 s")

    calm = _step(page, panel, start)
    calm_lines = _lines(page)
    panel.locator(".dashboard-panel-fault button", has_text="errors").click()
    wait_for_change(page, SUMMARY, calm)
    faulty = summary.inner_text()
    seen = [_step(page, panel, faulty)]
    for _ in range(2):
        seen.append(_step(page, panel, seen[-1]))
    lines = _lines(page)
    panel.screenshot(path=str(SCREENSHOTS / "observability_dashboard_panel.png"))
    assert calm.startswith("t=60 s fault=none") and "HighErrorRatio=inactive" in calm
    assert "next steps: fault=errors" in faulty
    assert any("HighErrorRatio=pending" in s for s in seen)
    assert seen[-1].startswith("t=240 s fault=errors") and "HighErrorRatio=firing" in seen[-1]
    assert lines != calm_lines
