"""Start the Streamlit app as a subprocess on a free port and drive /usr/bin/chromium
(shared by tests/test_browser.py and benchmarks/app_timings.py)."""
from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
ARTIFACTS = os.path.join(ROOT, "tests", "artifacts")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def streamlit_server(timeout: float = 60.0, script: str = "app/streamlit_app.py"):
    """Yield (base_url, seconds until the server answered) of ``script`` (default: the app) on
    127.0.0.1; the server is stopped afterwards."""
    port = free_port()
    cmd = [sys.executable, "-m", "streamlit", "run", str(script), "--server.headless", "true",
           "--server.port", str(port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false"]
    path = os.pathsep.join(p for p in (ROOT, os.environ.get("PYTHONPATH")) if p)  # a script outside app/ imports it too
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", OMP_NUM_THREADS="1", PYTHONPATH=path)
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        while True:
            if proc.poll() is not None:
                out = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
                raise RuntimeError(f"streamlit exited with {proc.returncode}:\n{out[-3000:]}")
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.perf_counter() - t0 > timeout:
                raise TimeoutError("streamlit did not answer within the timeout")
            time.sleep(0.1)
        yield url, time.perf_counter() - t0
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def launch(playwright):
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


@contextlib.contextmanager
def app_in_chromium():
    """(url, browser): the app on 127.0.0.1 with torch warmed at start (UMAP's compile would cost a
    core for minutes; ``MMVAE_APP_WARM`` is restored afterwards) and one Chromium; the test is
    skipped without Chromium or Playwright."""
    import pytest

    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is missing")
    sync_api = pytest.importorskip("playwright.sync_api")
    old = os.environ.get("MMVAE_APP_WARM")
    os.environ["MMVAE_APP_WARM"] = "torch"
    try:
        with streamlit_server() as (url, _), sync_api.sync_playwright() as p:
            browser = launch(p)
            try:
                yield url, browser
            finally:
                browser.close()
    finally:
        if old is None:
            os.environ.pop("MMVAE_APP_WARM", None)
        else:
            os.environ["MMVAE_APP_WARM"] = old


def wait_for_charts(page, n: int = 1, timeout_ms: int = 60_000) -> None:
    """Wait until at least n plotly charts have drawn their SVG."""
    page.wait_for_function(
        f"document.querySelectorAll('.js-plotly-plot .main-svg').length >= {n}", timeout=timeout_ms)


RUNNING_JS = ("(() => { const w = document.querySelector('[data-testid=\"stStatusWidget\"]');"
              " return !!w && (w.innerText.includes('Running') || w.innerText.includes('Stop')); })()")


def wait_idle(page, timeout_ms: int = 60_000, start_ms: int = 600) -> None:
    """Wait until Streamlit has finished the current run: first give a run just requested up to
    ``start_ms`` to start (the status widget shows 'Running' / 'Stop'), then wait until it is gone."""
    try:
        page.wait_for_function(RUNNING_JS, timeout=start_ms)
    except Exception:  # noqa: BLE001 - the run was over before we looked, or none was requested
        pass
    page.wait_for_function(f"!{RUNNING_JS}", timeout=timeout_ms)


def goto_page(page, title: str) -> None:
    page.get_by_test_id("stSidebarNav").get_by_text(title, exact=True).click()
    page.wait_for_function(f"document.querySelector('h1') && document.querySelector('h1').innerText.includes({title.split()[0]!r})",
                           timeout=60_000)
