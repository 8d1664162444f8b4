"""The load-balancer panel of chapter 5 in a real browser: JupyterLab + headless chromium.

A two-cell notebook (``setup_notebook()``, then ``viz.balancer_panel(seed=0)``) is written
to a temporary directory; JupyterLab is started there on a free 127.0.0.1 port (token
disabled, its own process group, stopped by PID); Playwright opens the notebook, runs all
cells, finds the panel (CSS class ``balancer-panel``), types a longer stall into the stall
slider's readout, then picks another stalled instance in the drop-down, and asserts that
the printed summary and the drawn bars changed each time. A screenshot goes to
``build/discovery_balancer_panel.png``.

Without chromium or Playwright it is skipped locally and fails under CI (``CI`` set).
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
NOTEBOOK = "balancer_panel.ipynb"
CELLS = ["from workbook.labs import setup_notebook\n\nsetup_notebook()\n"
         "from workbook.labs.ch05_discovery import figures as viz", "viz.balancer_panel(seed=0)"]


def missing(message: str):
    if os.environ.get("CI"):
        pytest.fail(f"CI is set, so a missing browser dependency is a failure: {message}", pytrace=False)
    pytest.skip(message)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_server(url: str, proc: subprocess.Popen, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"JupyterLab exited early with code {proc.returncode}")
        try:
            with urllib.request.urlopen(url + "/api/status", timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"JupyterLab did not answer at {url} within {timeout:g} s")


def write_notebook(path: Path) -> None:
    cells = [{"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [], "source": src}
             for src in CELLS]
    path.write_text(json.dumps({"cells": cells, "metadata": {"kernelspec": {"name": "python3", "language": "python",
                                                                             "display_name": "Python 3"}},
                                "nbformat": 4, "nbformat_minor": 5}))


@pytest.fixture
def jupyterlab(tmp_path):
    if not Path(CHROMIUM).exists():
        missing(f"{CHROMIUM} not found (apt-get install chromium chromium-driver)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing("playwright is not installed (pip install playwright)")
    root = tmp_path / "lab"
    root.mkdir()
    write_notebook(root / NOTEBOOK)
    news = tmp_path / "settings" / "@jupyterlab" / "apputils-extension"
    news.mkdir(parents=True)
    (news / "notification.jupyterlab-settings").write_text('{"fetchNews": "false"}')
    port = free_port()
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"), JUPYTER_CONFIG_DIR=str(tmp_path / "config"),
               PYTHONHASHSEED="0", PLOTLY_RENDERER="plotly_mimetype")
    log = open(tmp_path / "jupyterlab.log", "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", f"--ServerApp.port={port}", "--ServerApp.ip=127.0.0.1",
         "--ServerApp.port_retries=0", "--IdentityProvider.token=", "--ServerApp.password=",
         "--ServerApp.disable_check_xsrf=True", f"--ServerApp.root_dir={root}",
         f"--LabApp.workspaces_dir={tmp_path / 'workspaces'}", f"--LabApp.user_settings_dir={tmp_path / 'settings'}"]
        + (["--allow-root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []),
        cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        try:
            wait_for_server(url, proc)
        except (RuntimeError, TimeoutError) as exc:
            log.flush()
            tail = (tmp_path / "jupyterlab.log").read_text(errors="replace")[-2000:]
            pytest.fail(f"{exc}; JupyterLab log ends with:\n{tail}", pytrace=False)
        yield url
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
        log.close()


def _type_into(page, panel, name: str, value: str) -> None:
    readout = panel.locator(f".balancer-panel-{name} .widget-readout")
    readout.click()
    page.keyboard.press("Control+A")
    page.keyboard.type(value)
    page.keyboard.press("Enter")


def _bars(panel) -> str:
    return "|".join(panel.locator(".js-plotly-plot .barlayer .trace path").evaluate_all(
        "els => els.map(e => e.getAttribute('d'))"))


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.timeout(420)
def test_balancer_panel_redraws_when_the_stall_changes(jupyterlab, tmp_path):
    from playwright.sync_api import sync_playwright

    shots = ROOT / "build"
    shots.mkdir(exist_ok=True)
    summary_sel = ".balancer-panel .balancer-panel-summary"
    with sync_playwright() as p:
        browser = p.chromium.launch_persistent_context(str(tmp_path / "chromium"), executable_path=CHROMIUM,
                                                       args=FLAGS, headless=True, timeout=60_000,
                                                       viewport={"width": 1400, "height": 1100})
        try:
            page = browser.new_page()
            page.set_default_timeout(60_000)
            page.goto(f"{jupyterlab}/lab/tree/{NOTEBOOK}", wait_until="domcontentloaded")
            page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=120_000)
            page.wait_for_function(
                "() => [...document.querySelectorAll('.jp-Toolbar-kernelStatus, .jp-StatusBar-TextItem')]"
                ".some(e => /Idle/.test(e.textContent || '') || /Idle/.test(e.getAttribute('title') || ''))",
                timeout=120_000)
            page.locator(".lm-MenuBar-item", has_text="Run").first.click()
            page.locator('.lm-Menu-item[data-command="runmenu:run-all"]').click()
            panel = page.locator(".balancer-panel")
            panel.wait_for(state="visible", timeout=180_000)
            page.wait_for_function(
                "() => { const p = [...document.querySelectorAll('.jp-InputPrompt')].map(e => e.textContent);"
                " return p.length > 0 && !p.some(t => t.includes('*'))"
                " && p.filter(t => /\\[\\d+\\]/.test(t)).length >= 2; }",
                timeout=240_000)
            panel.scroll_into_view_if_needed()
            panel.locator(".js-plotly-plot .barlayer .trace path").first.wait_for(state="attached", timeout=60_000)
            first_text, first_bars = panel.locator(".balancer-panel-summary").inner_text(), _bars(panel)
            assert first_text.startswith("fast 10 ms, slow 30 ms, fast-1 stalls 0.5 s")

            _type_into(page, panel, "stall-s", "1.5")
            page.wait_for_function("([sel, old]) => { const e = document.querySelector(sel);"
                                   " return e && e.innerText !== old; }", arg=[summary_sel, first_text])
            page.wait_for_function(
                "(old) => [...document.querySelectorAll('.balancer-panel .js-plotly-plot .barlayer .trace path')]"
                ".map(e => e.getAttribute('d')).join('|') !== old", arg=first_bars)
            longer_text, longer_bars = panel.locator(".balancer-panel-summary").inner_text(), _bars(panel)

            panel.locator(".balancer-panel-stalled select").select_option("slow-1")
            page.wait_for_function("([sel, old]) => { const e = document.querySelector(sel);"
                                   " return e && e.innerText !== old; }", arg=[summary_sel, longer_text])
            slow_text = panel.locator(".balancer-panel-summary").inner_text()
            slow_bars = _bars(panel)
            panel.screenshot(path=str(shots / "discovery_balancer_panel.png"))
        finally:
            browser.close()
    assert "fast-1 stalls 1.5 s" in longer_text and longer_bars != first_bars
    assert "slow-1 stalls 1.5 s" in slow_text
    assert "highest round_robin" in longer_text
