"""The app in a real Chromium: train a small model, toggle PoE/MoE, open the posterior overlap."""
from __future__ import annotations

import os

import pytest

from tests.app_server import ARTIFACTS, CHROMIUM, goto_page, launch, streamlit_server, wait_for_charts, wait_idle

pytestmark = pytest.mark.browser


def shot(page, name: str) -> None:
    os.makedirs(ARTIFACTS, exist_ok=True)
    page.screenshot(path=os.path.join(ARTIFACTS, f"{name}.png"), full_page=True)


def chart_count(page) -> int:
    return page.locator(".js-plotly-plot .main-svg").count()


def test_app_in_chromium():
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is missing")
    sync_api = pytest.importorskip("playwright.sync_api")
    with streamlit_server() as (url, _), sync_api.sync_playwright() as p:
        browser = launch(p)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(url)
            wait_for_charts(page)  # the first screen shows a shipped model's curves
            shot(page, "01-train-first-screen")

            epochs = page.get_by_role("spinbutton", name="Epochs (1-200)")
            epochs.fill("3")
            epochs.press("Enter")
            wait_idle(page)
            page.get_by_role("button", name="Play").click()
            page.get_by_text("epoch 3 of 3 (done)").wait_for(timeout=90_000)
            wait_for_charts(page)
            assert page.get_by_text("validation ELBO").count() >= 1
            shot(page, "02-train-done")

            goto_page(page, "Compare fusion rules")
            wait_for_charts(page, 2)
            shot(page, "03-compare-poe")
            page.get_by_test_id("stButtonGroup").get_by_text("MoE (mixture)", exact=True).click()
            page.get_by_text("Latent space (MOE)").wait_for(timeout=60_000)
            wait_for_charts(page, 2)
            shot(page, "04-compare-moe")

            goto_page(page, "Posterior overlap")
            wait_for_charts(page, 2)
            page.get_by_text("q(z | x1)").first.wait_for(timeout=60_000)
            wait_for_charts(page, 3)  # ellipses, the point picker and the overlap figures
            wait_idle(page)
            assert page.get_by_text("How different are the posteriors?").count() >= 1
            assert page.get_by_text("could not be drawn").count() == 0
            shot(page, "05-overlap")

            for title, name in (("Bound gaps", "06-bounds"), ("Cross-modal generation", "07-generation"),
                                ("Latent embeddings", "08-embeddings")):
                goto_page(page, title)
                wait_for_charts(page)
                wait_idle(page)
                shot(page, name)
            assert not errors, errors
            assert page.locator("[data-testid='stException']").count() == 0
        finally:
            browser.close()
