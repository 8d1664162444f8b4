"""The breaker panel in a real browser: JupyterLab + headless Debian chromium via Playwright.

The test copies the chapter-2 notebook to a temporary directory (so JupyterLab's autosave
never touches the committed file), starts JupyterLab there on a free 127.0.0.1 port (token
disabled, its own process group, stopped by PID at the end), opens the notebook, runs all
cells, waits for the kernel to finish, finds the panel (CSS class ``breaker-panel``), types
a new failure rate into a slider's readout, and asserts that the figure and the printed
counts changed. A screenshot goes to ``build/sync_breaker_panel.png``.

Without chromium or Playwright it is skipped locally and fails under CI (``CI`` set).
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "notebooks" / "02_sync_communication.ipynb"
CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def missing(message: str):
    """Skip locally, fail under CI (the same rule as tests/conftest.py's missing_service)."""
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
    shutil.copy(NOTEBOOK, root / NOTEBOOK.name)
    # no "Would you like to get notified about news?" toast over the panel
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
            os.killpg(proc.pid, signal.SIGTERM)  # its own session: the server and the kernels it started
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
        log.close()


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.timeout(420)
def test_breaker_panel_reacts_to_a_slider(jupyterlab, tmp_path):
    from playwright.sync_api import sync_playwright

    shots = ROOT / "build"
    shots.mkdir(exist_ok=True)
    with sync_playwright() as p:
        # a fresh profile in tmp_path (Playwright passes it as --user-data-dir)
        browser = p.chromium.launch_persistent_context(str(tmp_path / "chromium"), executable_path=CHROMIUM,
                                                       args=FLAGS, headless=True, timeout=60_000,
                                                       viewport={"width": 1400, "height": 1000})
        try:
            page = browser.new_page()
            page.set_default_timeout(60_000)
            page.goto(f"{jupyterlab}/lab/tree/{NOTEBOOK.name}", wait_until="domcontentloaded")
            page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=120_000)
            # the kernel must be ready before "Run All" (its status shows "Idle")
            page.wait_for_function(
                "() => [...document.querySelectorAll('.jp-Toolbar-kernelStatus, .jp-StatusBar-TextItem')]"
                ".some(e => /Idle/.test(e.textContent || '') || /Idle/.test(e.getAttribute('title') || ''))",
                timeout=120_000)
            page.locator(".lm-MenuBar-item", has_text="Run").first.click()
            page.locator('.lm-Menu-item[data-command="runmenu:run-all"]').click()
            panel = page.locator(".breaker-panel")
            panel.wait_for(state="visible", timeout=180_000)
            # wait until no cell is still running ("[*]"), so the kernel answers the slider at once
            page.wait_for_function(
                "() => { const p = [...document.querySelectorAll('.jp-InputPrompt')].map(e => e.textContent);"
                " return p.length > 0 && !p.some(t => t.includes('*')) && p.filter(t => /\\[\\d+\\]/.test(t)).length > 20; }",
                timeout=240_000)
            panel.scroll_into_view_if_needed()
            line = panel.locator(".js-plotly-plot .scatterlayer .trace path.js-line").first
            line.wait_for(state="attached", timeout=60_000)
            before_path = line.get_attribute("d")
            summary = panel.locator(".breaker-panel-summary")
            before_text = summary.inner_text()
            readout = panel.locator(".breaker-panel-failure-rate .widget-readout")
            readout.click()
            page.keyboard.press("Control+A")
            page.keyboard.type("0.9")
            page.keyboard.press("Enter")
            page.wait_for_function(
                "([sel, old]) => { const e = document.querySelector(sel); return e && e.innerText !== old; }",
                arg=[".breaker-panel .breaker-panel-summary", before_text], timeout=60_000)
            page.wait_for_function(
                "([old]) => { const e = document.querySelector("
                "'.breaker-panel .js-plotly-plot .scatterlayer .trace path.js-line');"
                " return e && e.getAttribute('d') !== old; }", arg=[before_path], timeout=60_000)
            after_text = summary.inner_text()
            after_path = line.get_attribute("d")
            panel.screenshot(path=str(shots / "sync_breaker_panel.png"))
        finally:
            browser.close()
    assert after_text != before_text and after_path != before_path
    assert "rejected" in after_text and "opened" in after_text
