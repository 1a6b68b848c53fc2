"""Two students at once in a real Chromium (one browser, two contexts): each presses Play, the job
pool trains both, and each sees their own model (and its download) in the sidebar and on another
page, never the other's nor the shipped one. Crafted links render no link and fetch nothing."""
from __future__ import annotations

import os

import pytest

from tests.app_server import CHROMIUM, goto_page, launch, streamlit_server, wait_for_charts, wait_idle

pytestmark = pytest.mark.browser


def sidebar_text(page) -> str:
    return page.get_by_test_id("stSidebar").inner_text()


def test_two_students_each_see_their_own_model():
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is missing")
    sync_api = pytest.importorskip("playwright.sync_api")
    with streamlit_server() as (url, _), sync_api.sync_playwright() as p:
        browser = launch(p)
        try:
            students = {}
            for seed in (1, 2):
                context = browser.new_context(viewport={"width": 1400, "height": 1000})
                page = context.new_page()
                errors: list[str] = []
                page.on("pageerror", lambda e, errors=errors: errors.append(str(e)))
                page.goto(f"{url}/?seed={seed}")
                wait_for_charts(page)
                epochs = page.get_by_role("spinbutton", name="Epochs (1-200)")
                epochs.fill("3")
                epochs.press("Enter")
                wait_idle(page)
                students[seed] = (page, errors)
            for page, _ in students.values():  # both Plays before either finished
                page.get_by_role("button", name="Play").click()
            for seed, (page, errors) in students.items():
                page.get_by_text("epoch 3 of 3 (done)").wait_for(timeout=90_000)
                wait_idle(page)
                text = sidebar_text(page)
                assert f"seed {seed}" in text and "trained in this session" in text, text
                assert f"seed {3 - seed}" not in text and "shipped checkpoint" not in text, text
                goto_page(page, "Latent embeddings")
                wait_for_charts(page)
                wait_idle(page)
                text = sidebar_text(page)  # the current model of every page
                assert f"seed {seed}" in text and "trained in this session" in text, text
                assert f"seed {3 - seed}" not in text, text
                assert not errors, errors
                assert page.locator("[data-testid='stException']").count() == 0
                with page.expect_download(timeout=30_000) as download:
                    page.get_by_test_id("stSidebar").get_by_role("button", name="Download this model's checkpoint").click()
                assert f"seed-{seed}" in download.value.suggested_filename

            page = browser.new_page()
            requests: list[str] = []
            page.on("request", lambda r: requests.append(r.url))
            page.goto(f"{url}/?model=[x](http://evil)&dataset=![](http://evil/img.png)")
            wait_for_charts(page)
            wait_idle(page)
            page.get_by_text("Unknown model").first.wait_for(timeout=30_000)
            assert page.locator("a[href*='evil']").count() == 0
            assert page.locator("img[src*='evil']").count() == 0
            assert not [r for r in requests if "evil" in r and not r.startswith(url)], requests
            assert "[x](http://evil)" in page.get_by_test_id("stMain").inner_text()  # shown as plain text
        finally:
            browser.close()
