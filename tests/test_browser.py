"""The app in a real Chromium, as a workshop room uses it: every lesson link (page, lesson, model and
setup in the address bar and in the widgets), and two students on Gradient noise at once. Any
exception box, error box or page error fails the test. Bounded: one server for the module, every
wait has a timeout. Every control of every page: tests/test_browser_walkthrough.py."""
from __future__ import annotations

import json
import os
import struct
import urllib.request

import pytest

from tests.app_server import ARTIFACTS, app_in_chromium, goto_page, wait_for_charts, wait_idle

pytestmark = pytest.mark.browser

from app.lessons import LESSONS  # noqa: E402

PAGE_TITLES = {"bounds": "Bound gaps", "gradients": "Gradient noise", "compare": "Compare fusion rules",
               "generation": "Cross-modal generation", "overlap": "Posterior overlap", "embeddings": "Latent embeddings",
               "train": "Train", "well": "Your well", "style": "Swap style"}
LESSON_PAGES = {lid: (PAGE_TITLES[lesson["page"]], lesson["checkpoint"]) for lid, lesson in LESSONS.items()}
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def checkpoint_title(name: str) -> str:
    """The title a shipped checkpoint carries (what the sidebar names), from its header alone."""
    with open(os.path.join(ROOT, "checkpoints", f"{name}.safetensors"), "rb") as f:
        (length,) = struct.unpack("<Q", f.read(8))
        meta = json.loads(f.read(length))["__metadata__"]
    return json.loads(meta["extra"])["title"]


@pytest.fixture(scope="module")
def app():
    with app_in_chromium() as (url, browser):
        yield url, browser


def shot(page, name: str) -> None:
    os.makedirs(ARTIFACTS, exist_ok=True)
    page.screenshot(path=os.path.join(ARTIFACTS, f"{name}.png"), full_page=True)


def new_page(browser, errors: list):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
    return page


def assert_clean(page, errors: list, where: str) -> None:
    """No exception box, no error box, no dead websocket, no JavaScript error, and the sidebar is
    still there."""
    wait_idle(page)
    page.get_by_text("Quick analyses").first.wait_for(timeout=90_000)  # the sidebar is drawn after the page
    wait_idle(page)
    exc = page.locator("[data-testid='stException']")
    assert exc.count() == 0, f"{where}: {exc.first.inner_text()[:800]}"
    err = page.locator("[data-testid='stAlertContentError']")
    assert err.count() == 0, f"{where}: {err.first.inner_text()[:800]}"
    assert page.get_by_text("Connection error").count() == 0, f"{where}: the websocket died"
    assert not errors, f"{where}: {errors}"


def slider(page, label: str):
    return page.get_by_test_id("stSlider").filter(has_text=label).get_by_role("slider").first


def nudge(page, label: str, presses: int = 1, key: str = "ArrowRight") -> None:
    """Move a slider by keyboard, ``presses`` times in a row without waiting (rapid changes)."""
    s = slider(page, label)
    s.focus()
    for _ in range(presses):
        s.press(key)


def url_query(page) -> str:
    return page.url.split("?", 1)[1] if "?" in page.url else ""


@pytest.mark.parametrize("lesson", list(LESSON_PAGES))
def test_every_lesson_link(app, lesson):
    url, browser = app
    title, model = LESSON_PAGES[lesson]
    errors: list[str] = []
    page = new_page(browser, errors)
    page.goto(f"{url}/?lesson={lesson}")
    page.wait_for_function(f"document.querySelector('h1') && document.querySelector('h1').innerText.startsWith({title!r})",
                           timeout=90_000)
    wait_for_charts(page)
    q = url_query(page)
    assert f"lesson={lesson}" in q and f"model={model}" in q, page.url
    assert all(f"{k}={v}" in q.split("&") for k, v in LESSONS[lesson]["setup"].items()), (q, LESSONS[lesson]["setup"])
    assert f"/{LESSONS[lesson]['page']}" in page.url.split("?")[0], page.url
    assert_clean(page, errors, f"link ?lesson={lesson}")  # the run is over: the sidebar is drawn
    sidebar = page.get_by_test_id("stSidebar").inner_text()
    assert checkpoint_title(model) in sidebar, sidebar  # the sidebar names the lesson's model
    shot(page, f"lesson-{lesson}")
    goto_page(page, "Train")  # the lesson's setup is in the widgets
    wait_idle(page)
    s = LESSONS[lesson]["setup"]
    from playwright.sync_api import expect

    expect(page.get_by_role("spinbutton", name="K (1-100)")).to_have_value(str(s["K"]), timeout=15_000)
    assert_clean(page, errors, f"link ?lesson={lesson}, then Train")
    page.close()


def test_two_students_on_gradient_noise_at_once(app):
    """Two sessions computing gradient SNR on the same shared shipped model at once (this crashed
    the whole server: a shared model's gradients written from two threads)."""
    url, browser = app
    errors: list[str] = []
    pages = [new_page(browser, errors) for _ in range(2)]
    for p in pages:
        p.goto(f"{url}/gradients?model=digits-halves-poe")
    for p in pages:
        wait_for_charts(p, timeout_ms=120_000)
    for _ in range(2):  # both change the draws, rapidly, at the same time
        for p in pages:
            nudge(p, "Gradient draws per K", 2)
    for i, p in enumerate(pages):
        wait_for_charts(p, timeout_ms=120_000)
        assert_clean(p, errors, f"student {i}")
    with urllib.request.urlopen(f"{url}/_stcore/health", timeout=5) as r:
        assert r.status == 200  # the server is alive
    for p in pages:
        p.close()
