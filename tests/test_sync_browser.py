"""The breaker panel in a real browser: JupyterLab + headless Debian chromium via Playwright.

The chapter-2 notebook is copied to a temporary directory and opened in JupyterLab
(``tests/fixtures/jupyterlab.py``); all cells run; the test finds the panel (CSS class
``breaker-panel``), types a new failure rate into a slider's readout, and asserts that the
figure and the printed counts changed. A screenshot goes to ``build/sync_breaker_panel.png``.

Without chromium or Playwright it is skipped locally and fails under CI (``CI`` set).
"""

import pytest

from tests.fixtures.jupyterlab import ROOT, SCREENSHOTS, run_all, type_into_readout, wait_for_change

NOTEBOOK = ROOT / "notebooks" / "02_sync_communication.ipynb"
LINE = ".breaker-panel .js-plotly-plot .scatterlayer .trace path.js-line"


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.timeout(420)
def test_breaker_panel_reacts_to_a_slider(jupyterlab, browser_page):
    page = browser_page
    url = jupyterlab({NOTEBOOK.name: NOTEBOOK})
    panel = run_all(page, url, NOTEBOOK.name, executed_cells=21, widget="breaker-panel")
    line = panel.locator(".js-plotly-plot .scatterlayer .trace path.js-line").first
    line.wait_for(state="attached", timeout=60_000)
    before_path = line.get_attribute("d")
    summary = panel.locator(".breaker-panel-summary")
    before_text = summary.inner_text()
    type_into_readout(page, panel.locator(".breaker-panel-failure-rate"), "0.9")
    wait_for_change(page, ".breaker-panel .breaker-panel-summary", before_text)
    wait_for_change(page, LINE, before_path, attribute="d")
    after_text, after_path = summary.inner_text(), line.get_attribute("d")
    panel.screenshot(path=str(SCREENSHOTS / "sync_breaker_panel.png"))
    assert after_text != before_text and after_path != before_path
    assert "rejected" in after_text and "opened" in after_text
