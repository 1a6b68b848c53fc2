"""The app in a real Chromium, as a workshop room uses it: a walkthrough of every page's controls
(a plotly point click and rapid changes included), every lesson link, and two students on
Gradient noise at once. Any exception box, error box or page error fails the test. Bounded: one
server for the module, every wait has a timeout."""
from __future__ import annotations

import os
import urllib.request

import pytest

from tests.app_server import ARTIFACTS, CHROMIUM, goto_page, launch, streamlit_server, wait_for_charts, wait_idle

pytestmark = pytest.mark.browser

LESSON_PAGES = {"elbo-vs-iwae": ("Bound gaps", "digits-halves-poe"), "why-dreg": ("Gradient noise", "digits-halves-poe"),
                "poe-vs-moe": ("Compare fusion rules", "toy-poe"),
                "mopoe-three": ("Cross-modal generation", "digits-poly-mopoe"),
                "impedance": ("Cross-modal generation", "impedance-poe")}


@pytest.fixture(scope="module")
def app():
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is missing")
    sync_api = pytest.importorskip("playwright.sync_api")
    old = os.environ.get("MMVAE_APP_WARM")
    os.environ["MMVAE_APP_WARM"] = "torch"  # warm torch at start; UMAP's compile would cost a core for minutes
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


def shot(page, name: str) -> None:
    os.makedirs(ARTIFACTS, exist_ok=True)
    page.screenshot(path=os.path.join(ARTIFACTS, f"{name}.png"), full_page=True)


def new_page(browser, errors: list):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
    return page


def assert_clean(page, errors: list, where: str) -> None:
    """No exception box, no error box, no JavaScript error, and the sidebar is still there."""
    wait_idle(page)
    page.get_by_text("Quick analyses").first.wait_for(timeout=90_000)  # the sidebar is drawn after the page
    wait_idle(page)
    exc = page.locator("[data-testid='stException']")
    assert exc.count() == 0, f"{where}: {exc.first.inner_text()[:800]}"
    err = page.locator("[data-testid='stAlertContentError']")
    assert err.count() == 0, f"{where}: {err.first.inner_text()[:800]}"
    assert not errors, f"{where}: {errors}"


def slider(page, label: str):
    return page.get_by_test_id("stSlider").filter(has_text=label).get_by_role("slider").first


def nudge(page, label: str, presses: int = 1, key: str = "ArrowRight") -> None:
    """Move a slider by keyboard, ``presses`` times in a row without waiting (rapid changes)."""
    s = slider(page, label)
    s.focus()
    for _ in range(presses):
        s.press(key)


def number(page, label: str, value: int) -> None:
    box = page.get_by_role("spinbutton", name=label)
    box.fill(str(value))
    box.press("Enter")


def click_first_point(page, key: str) -> None:
    """Click a data point of the plotly chart with Streamlit key ``key`` at its screen position
    (plotly handles clicks on its drag layer, by coordinates)."""
    plot = page.locator(f".st-key-{key} .js-plotly-plot")
    plot.wait_for(timeout=60_000)
    point = plot.locator(".scatterlayer .trace .points path").nth(3)
    point.scroll_into_view_if_needed()
    box = point.bounding_box()
    assert box is not None, f"no point drawn in {key}"
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)


def url_query(page) -> str:
    return page.url.split("?", 1)[1] if "?" in page.url else ""


def test_walkthrough_every_page(app):
    url, browser = app
    errors: list[str] = []
    page = new_page(browser, errors)
    page.goto(url)
    wait_for_charts(page)
    assert_clean(page, errors, "first screen")

    # Train: the setup, rapid changes, Play
    for label, value, param in (("Epochs (1-200)", 2, "epochs=2"), ("K (1-100)", 5, "K=5"), ("K (1-100)", 7, "K=7")):
        number(page, label, value)  # each change lands in the link before the next (typing into a box that
        page.wait_for_function(f"location.href.includes('&{param}&')", timeout=60_000)  # is re-rendering can
        #                                          lose keys; the sliders below test rapid changes)
    assert "K=7" in url_query(page) and "epochs=2" in url_query(page), page.url
    page.get_by_role("button", name="Play").click()
    page.get_by_text("epoch 2 of 2 (done)").wait_for(timeout=120_000)
    assert_clean(page, errors, "train")
    shot(page, "01-train")

    # Compare: the setup survives the visit; K=7 has no shipped model, so train the three here
    goto_page(page, "Compare fusion rules")
    wait_idle(page)
    assert "K=7" in url_query(page), page.url
    page.get_by_role("button", name="Train 3 model(s)").click()
    page.get_by_text("Latent space (POE)").wait_for(timeout=180_000)
    for rule, title in (("MoE (mixture)", "MOE"), ("MoPoE (mixture of products)", "MOPOE")):
        page.get_by_test_id("stButtonGroup").get_by_text(rule, exact=True).click()
        page.get_by_text(f"Latent space ({title})").wait_for(timeout=60_000)
    assert_clean(page, errors, "compare")
    shot(page, "02-compare")
    goto_page(page, "Train")
    wait_idle(page)
    assert page.get_by_role("spinbutton", name="K (1-100)").input_value() == "7", "Compare reset the setup"

    # Posterior overlap: a plotly point click, the slider, the fusion rule
    goto_page(page, "Posterior overlap")
    page.get_by_text("How different are the posteriors?").first.wait_for(timeout=90_000)
    assert_clean(page, errors, "overlap")  # the run is over: the click below starts a new one
    page.get_by_text("Point #0 ").first.wait_for(timeout=60_000)  # the ellipses' title names the point
    click_first_point(page, "overlap-embedding")
    page.wait_for_function("document.body.textContent.includes('Point #')"
                           " && !document.body.textContent.includes('Point #0 ')", timeout=60_000)
    assert_clean(page, errors, "overlap after a point click")
    nudge(page, "Test data point", 3)
    page.get_by_test_id("stButtonGroup").get_by_text("MoE (mixture)", exact=True).click()
    assert_clean(page, errors, "overlap")
    shot(page, "03-overlap")

    # Bound gaps: repeats, test points, one point's weights
    goto_page(page, "Bound gaps")
    wait_for_charts(page, 2)
    nudge(page, "Repeats (error bars)", 1, "ArrowLeft")
    nudge(page, "Test data point", 2)
    assert_clean(page, errors, "bounds")
    assert page.get_by_text("Importance weights of one data point").count() >= 1
    shot(page, "04-bounds")

    # Cross-modal generation: the test point, conditioning on the other modality
    goto_page(page, "Cross-modal generation")
    wait_for_charts(page)
    nudge(page, "Test point", 4)
    assert_clean(page, errors, "generation")
    shot(page, "05-generation")

    # Gradient noise: rapid changes of the draws
    goto_page(page, "Gradient noise")
    wait_for_charts(page)
    nudge(page, "Gradient draws per K", 3)  # three changes in a row: the page must end on the last one
    wait_for_charts(page)
    assert_clean(page, errors, "gradients")
    page.get_by_text("from 25 gradient draws").wait_for(timeout=60_000)  # 10 + 3 steps of 5
    assert page.get_by_text("On this chart").count() >= 1
    shot(page, "06-gradients")

    # Latent embeddings: projection, colour, and the latent explorer's click-to-decode
    goto_page(page, "Latent embeddings")
    wait_for_charts(page, 3)
    page.get_by_text("PCA", exact=True).click()
    wait_idle(page)
    page.get_by_text("modality encoded", exact=True).click()
    wait_idle(page)
    page.get_by_text("raw z", exact=True).click()
    wait_for_charts(page, 3)
    page.get_by_text("Decoded at z = (0.0, 0.0)").first.wait_for(timeout=60_000)
    assert_clean(page, errors, "embeddings before the click")  # the run is over: the chart stays put
    click_first_point(page, "explore-plane")
    page.wait_for_function("!document.body.textContent.includes('Decoded at z = (0.0, 0.0)')", timeout=60_000)
    nudge(page, "z1", 5)
    assert_clean(page, errors, "embeddings")
    shot(page, "07-embeddings")

    # Workshop lessons: each button opens its page, model and link
    for lesson, (title, model) in LESSON_PAGES.items():
        goto_page(page, "Workshop lessons")
        wait_idle(page)
        page.locator(f".st-key-lesson-{lesson} button").click()
        page.wait_for_function(f"document.querySelector('h1') && document.querySelector('h1').innerText.startsWith({title!r})",
                               timeout=60_000)
        wait_idle(page)
        assert f"lesson={lesson}" in url_query(page) and f"model={model}" in url_query(page), page.url
        assert_clean(page, errors, f"lesson {lesson}")
    page.close()


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
    assert page.get_by_text(model.split("-")[0], exact=False).count() >= 1
    assert_clean(page, errors, f"link ?lesson={lesson}")
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
