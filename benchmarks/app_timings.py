"""Timings of the Streamlit app in a real Chromium (medians over repeats).

    python benchmarks/app_timings.py [--repeats 3]

1. command -> first page with a chart (server start + first render; targets < 5 s after the
   first import, i.e. the warm repeats),
2. a lesson preset's pictures appear (shipped checkpoint, no training),
3. training the toy to a useful model (20 epochs, DReG K=10; target < 10 s),
4. switching the fusion rule between cached models redraws (target < 1 s).

Then (unless --no-shots) a screenshot tour: the analysis pages of a shipped digits and impedance
model (opened by a ``?model=`` link), saved to tests/artifacts/tour-<model>-<page>.png.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from playwright.sync_api import sync_playwright  # noqa: E402

from tests.app_server import (ARTIFACTS, goto_page, launch, streamlit_server, wait_for_charts,  # noqa: E402
                              wait_idle)

TOUR_MODELS = ("digits-poly-mopoe", "digits-halves-moe", "impedance-poe")
TOUR_PAGES = (("overlap", "Posterior overlap", 3), ("bounds", "Bound gaps", 1),
              ("generation", "Cross-modal generation", 1), ("embeddings", "Latent embeddings", 1),
              ("gradients", "Gradient noise", 1))


def one_round(p) -> dict[str, float]:
    out = {}
    t0 = time.perf_counter()
    with streamlit_server() as (url, _):
        browser = launch(p)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(url)
            wait_for_charts(page)
            out["first page with a chart (s)"] = time.perf_counter() - t0

            t = time.perf_counter()
            page.goto(f"{url}/?lesson=poe-vs-moe")  # a preset link: new session, shipped checkpoint
            goto_page(page, "Compare fusion rules")
            wait_for_charts(page, 2)
            out["lesson preset pictures (s)"] = time.perf_counter() - t

            goto_page(page, "Train")
            epochs = page.get_by_role("spinbutton", name="Epochs (1-200)")
            epochs.fill("20")
            epochs.press("Enter")
            wait_idle(page)
            t = time.perf_counter()
            page.get_by_role("button", name="Play").click()
            page.get_by_text("epoch 20 of 20 (done)").wait_for(timeout=120_000)
            out["train toy 20 epochs (s)"] = time.perf_counter() - t
            val = page.locator("[data-testid='stMetricValue']").first.inner_text()
            out["validation ELBO after training"] = float(val)

            goto_page(page, "Compare fusion rules")
            wait_for_charts(page, 2)
            wait_idle(page)
            group = page.get_by_test_id("stButtonGroup")
            switches = []
            for label, title in (("MoE (mixture)", "MOE"), ("PoE (product)", "POE")) * 2:
                group.get_by_text(label, exact=True).click()  # warm the cache on the first pass
                page.get_by_text(f"Latent space ({title})").wait_for(timeout=60_000)
                wait_idle(page)
            for label, title in (("MoE (mixture)", "MOE"), ("PoE (product)", "POE")) * 2:
                t = time.perf_counter()
                group.get_by_text(label, exact=True).click()
                page.get_by_text(f"Latent space ({title})").wait_for(timeout=60_000)
                wait_for_charts(page, 2)
                switches.append(time.perf_counter() - t)
            out["switch fusion rule, cached (s)"] = statistics.median(switches)
        finally:
            browser.close()
    return out


def tour(p, models=TOUR_MODELS, pages=TOUR_PAGES) -> dict[str, float]:
    """Screenshots of the analysis pages of shipped models; returns seconds per page drawn."""
    os.makedirs(ARTIFACTS, exist_ok=True)
    out = {}
    with streamlit_server() as (url, _):
        browser = launch(p)
        try:
            # tall: Streamlit scrolls inside its main block, so a full-page shot holds only the viewport
            page = browser.new_page(viewport={"width": 1400, "height": 2200})
            for model in models:
                page.goto(f"{url}/?model={model}")
                wait_for_charts(page)
                for slug, title, n_charts in pages:
                    t = time.perf_counter()
                    goto_page(page, title)
                    wait_for_charts(page, n_charts)
                    wait_idle(page)
                    out[f"{model} {slug} (s)"] = time.perf_counter() - t
                    assert page.locator("[data-testid='stException']").count() == 0, (model, slug)
                    page.screenshot(path=os.path.join(ARTIFACTS, f"tour-{model}-{slug}.png"), full_page=True)
        finally:
            browser.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-shots", action="store_true", help="skip the screenshot tour")
    args = ap.parse_args()
    rounds = []
    with sync_playwright() as p:
        for r in range(args.repeats):
            rounds.append(one_round(p))
            print(f"round {r + 1}: " + ", ".join(f"{k} {v:.2f}" for k, v in rounds[-1].items()), flush=True)
        shots = {} if args.no_shots else tour(p)
    print("\nmedians over", args.repeats, "rounds (the first round includes cold imports):")
    for k in rounds[0]:
        print(f"  {k:36s} {statistics.median(r[k] for r in rounds):8.2f}")
    if shots:
        print(f"\nscreenshot tour (first visit of each page, cold caches), PNGs in {ARTIFACTS}:")
        for k, v in shots.items():
            print(f"  {k:36s} {v:8.2f}")


if __name__ == "__main__":
    main()
