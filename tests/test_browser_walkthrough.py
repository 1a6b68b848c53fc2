"""Every control on every page, found in the DOM, in a real Chromium.

The controls are not listed here: on each page (the sidebar's links) the test collects every
Streamlit widget it finds by its ``data-testid`` (selectbox, multiselect, slider, number input,
checkbox / toggle, radio, segmented control, button, download button, file uploader, text input,
expander, tab, plotly chart, iframe), so a control added to a page later is exercised without
editing this file. Each one is changed and the run waited for. Sliders and number inputs also get
rapid changes (three in a row without waiting), after which the control must show the last value
sent; a number input is set to its minimum, stepped, then given its value back (epochs stay one
step above their minimum: quick training). A plotly chart
gets a click on one of its points. Radios and segmented controls are modes: after the rest of the
page, one new option of one of them is picked per round, and the next round walks the controls
that option shows (the upload box after "Upload a file", the MoE charts after "MoE"). Buttons
come last in a round; one that opens another page (a lesson) is followed back.

Any exception box, error box, JavaScript error or "Connection error" (a dead websocket) fails the
test, naming the page and control. Bounded: one server, one browser, every wait has a timeout, the
app is opened with a one-epoch setup (?epochs=1: Play trains quickly), and UMAP is never picked
(its first compile takes a core for minutes; tests/test_app.py covers it)."""
from __future__ import annotations

import os
import re
import time

import pytest

from tests.app_server import ARTIFACTS, app_in_chromium, wait_idle

try:
    from playwright.sync_api import Error as PlaywrightError
except ImportError:  # the tests skip without playwright
    PlaywrightError = Exception

pytestmark = pytest.mark.browser

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
UPLOAD = os.path.join(ROOT, "mmvae", "data", "files", "wells", "16_2-11A.npz")  # 53 kB: a real well
SKIP_OPTIONS = {"UMAP"}  # never picked: numba compiles for minutes on a busy 2-core machine
# text that is on screen while a job of this session still runs (the page polls until it is over)
LIVE_MARKERS = ("(training,", "waiting in the queue", "Training in a background process", "Training 3 model",
                "Training the models")

# Every control kind, by the data-testid Streamlit gives its outer element (1.4x-1.6x). A toggle is an
# stCheckbox; a segmented control and pills are an stButtonGroup.
CONTROL_KINDS = ("stSelectbox", "stMultiSelect", "stSlider", "stNumberInput", "stCheckbox", "stRadio",
                 "stButtonGroup", "stTextInput", "stFileUploader", "stExpander", "stTabs", "stPlotlyChart",
                 "stCustomComponentV1", "stIFrame", "stDownloadButton", "stButton")
BUTTONS_LAST = ("stDownloadButton", "stButton")
MODES = ("stRadio", "stButtonGroup")  # one new option per round, after the rest of the page
KEEP_AT_MINIMUM = ("Epochs",)  # number inputs left near their minimum after the test: quick training

COLLECT_JS = """(kinds) => {
  const roots = [document.querySelector('[data-testid="stMain"]'),
                 document.querySelector('[data-testid="stSidebarUserContent"]')].filter(Boolean);
  const selector = kinds.map(k => `[data-testid="${k}"]`).join(',');
  const out = [];
  for (const root of roots) {
    const count = {};
    root.querySelectorAll(selector).forEach(el => {  // document order
      const kind = el.dataset.testid;
      if (kind === 'stButton' && el.closest('[data-testid="stButtonGroup"]')) return;
      count[kind] = (count[kind] || 0) + 1;
      const holder = el.closest('[class*="st-key-"]');
      const key = holder ? [...holder.classList].find(c => c.startsWith('st-key-')) : null;
      const label = (el.querySelector('label, [data-testid="stWidgetLabel"], summary, button, [role="tab"]')
                     || el).innerText || '';
      out.push({kind, key, index: count[kind] - 1, sidebar: root.dataset.testid === 'stSidebarUserContent',
                label: label.split('\\n')[0].trim().slice(0, 60)});
    });
  }
  return out;
}"""


# --------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def app():
    with app_in_chromium() as (url, browser):
        yield url, browser


# --------------------------------------------------------------------------- checks
def cid(c: dict) -> tuple:
    """A control's identity across runs: its key, else its kind, label and position."""
    return (c["kind"], c["key"]) if c["key"] else (c["kind"], c["label"], c["index"], c["sidebar"])


class Walk:
    """One browser tab walking the app; ``where`` names the page and control for error messages."""

    def __init__(self, page):
        self.page = page
        self.visited: dict[tuple, set] = {}  # options picked per radio / segmented control
        self.errors: list[str] = []
        self.where = "start"
        self.done: list[str] = []
        page.on("pageerror", lambda e: self.errors.append(f"page error at {self.where}: {e}"))

    def settle(self, timeout_ms: int = 120_000) -> None:
        """Wait until the run (and any job this session started) is over."""
        page = self.page
        wait_idle(page, timeout_ms=timeout_ms, start_ms=400)
        markers = repr(list(LIVE_MARKERS))
        page.wait_for_function(f"!{markers}.some(m => document.body.innerText.includes(m))", timeout=timeout_ms)
        wait_idle(page, timeout_ms=timeout_ms, start_ms=200)

    def check(self) -> None:
        """No exception, error box, JavaScript error or dead websocket; the sidebar is drawn."""
        page = self.page
        self.settle()
        page.get_by_text("Quick analyses").first.wait_for(timeout=60_000)
        exc = page.locator("[data-testid='stException']")
        assert exc.count() == 0, f"{self.where}: {exc.first.inner_text()[:800]}"
        err = page.locator("[data-testid='stAlertContentError']")
        assert err.count() == 0, f"{self.where}: {err.first.inner_text()[:800]}"
        assert page.get_by_text("Connection error").count() == 0, f"{self.where}: the websocket died"
        assert not self.errors, self.errors

    # ----------------------------------------------------------------- navigation
    def title(self) -> str:
        return self.page.evaluate("document.querySelector('h1') ? document.querySelector('h1').innerText : ''")

    def goto(self, nav_text: str) -> None:
        self.page.get_by_test_id("stSidebarNav").get_by_text(nav_text, exact=True).click()
        self.page.wait_for_function(
            f"document.querySelector('h1') && document.querySelector('h1').innerText.includes({nav_text.split()[0]!r})"
            f" || (document.querySelector('h1') && location.pathname.length > 1)", timeout=60_000)
        self.settle()

    # ----------------------------------------------------------------- controls
    def collect(self) -> list[dict]:
        return self.page.evaluate(COLLECT_JS, list(CONTROL_KINDS))

    def locate(self, c: dict):
        root = self.page.get_by_test_id("stSidebarUserContent" if c["sidebar"] else "stMain")
        if c["key"]:
            return root.locator(f'[class~="{c["key"]}"]').locator(f'[data-testid="{c["kind"]}"]').first
        loc = root.locator(f'[data-testid="{c["kind"]}"]')
        if c["label"]:
            loc = loc.filter(has_text=c["label"])
        return loc.first

    def exercise(self, c: dict) -> bool:
        """Change the control; False if it is gone (an earlier change replaced it: the next round
        collects what replaced it)."""
        for attempt in range(2):
            el = self.locate(c)
            if el.count() == 0 or not el.is_visible():
                return False
            try:
                el.scroll_into_view_if_needed()
                break
            except PlaywrightError:  # redrawn between finding and scrolling: find it again
                if attempt:
                    raise
                self.settle()
        getattr(self, "do_" + c["kind"][2:].lower())(el, c)
        return True

    def do_selectbox(self, el, c) -> None:
        el.click()
        options = self.page.get_by_role("option")
        options.first.wait_for(timeout=10_000)
        texts = options.all_inner_texts()
        current = {line.strip() for line in el.inner_text().splitlines()}
        pick = next((i for i, t in enumerate(texts) if t.strip() and t.strip() not in current
                     and t.strip() not in SKIP_OPTIONS), None)
        if pick is None:
            self.page.keyboard.press("Escape")
            return
        options.nth(pick).click()

    def do_multiselect(self, el, c) -> None:
        tags = el.locator('button[aria-label^="Remove "]')
        if tags.count() > 1:  # remove one chosen value (keep at least one), then add one
            tags.last.click()
            self.check()
            el = self.locate(c)
        el.locator("input").first.click()
        options = self.page.get_by_role("option")
        try:
            options.first.wait_for(timeout=5_000)
        except Exception:  # noqa: BLE001 - every option is chosen already
            self.page.keyboard.press("Escape")
            return
        texts = [t.strip() for t in options.all_inner_texts()]
        pick = next((i for i, t in enumerate(texts) if t and t != "Select all" and t not in SKIP_OPTIONS), None)
        if pick is not None:
            options.nth(pick).click()
        self.page.keyboard.press("Escape")

    def do_slider(self, el, c) -> None:
        thumb = el.get_by_role("slider").first
        raw = [thumb.get_attribute(a) for a in ("aria-valuenow", "aria-valuemin", "aria-valuemax")]
        if None in raw:  # no numeric value (a select slider): move it one step and back
            thumb.focus()
            thumb.press("ArrowRight")
            self.check()
            self.locate(c).get_by_role("slider").first.press("ArrowLeft")
            return
        now, lo, hi = (float(v) for v in raw)
        if hi <= lo:
            return
        sign = 1 if now < hi else -1
        thumb.focus()
        thumb.press("ArrowRight" if sign > 0 else "ArrowLeft")
        self.check()
        thumb = self.locate(c).get_by_role("slider").first
        start = float(thumb.get_attribute("aria-valuenow"))
        step = abs(start - now)
        expect = start
        thumb.focus()
        for s in (sign, sign, -sign):  # rapid changes, no wait: the page must end on the last value
            thumb.press("ArrowRight" if s > 0 else "ArrowLeft")
            expect = min(hi, max(lo, expect + s * step))
        self.settle()
        end = float(self.locate(c).get_by_role("slider").first.get_attribute("aria-valuenow"))
        assert abs(end - expect) <= 1e-6 * max(1.0, abs(expect)), \
            f"{self.where}: slider at {end} after rapid changes from {start}; expected {expect}"

    def do_numberinput(self, el, c) -> None:
        box = el.locator("input")
        original = box.input_value()
        lo, hi, step = (box.get_attribute(a) for a in ("min", "max", "step"))
        if lo is not None:  # the smallest value ...
            box.fill(str(int(float(lo))) if float(lo).is_integer() else lo)
            box.press("Enter")
            self.check()
        if lo is not None and hi is not None and float(hi) - float(lo) >= 2 * float(step or 1):
            el = self.locate(c)
            start = el.locator("input").input_value()
            up, down = el.get_by_test_id("stNumberInputStepUp"), el.get_by_test_id("stNumberInputStepDown")
            up.click()
            up.click()  # ... rapid changes: up, up, down without waiting; the page must end one step up
            down.click()
            self.check()
            shown = self.locate(c).locator("input").input_value()
            assert float(shown) == float(start) + float(step or 1), \
                f"{self.where}: {shown} after up, up, down from {start} (step {step})"
        if c["label"].startswith(KEEP_AT_MINIMUM):
            return
        box = self.locate(c).locator("input")  # ... and back to the value it had: later pages see the setup
        box.fill(original)
        box.press("Enter")

    def do_checkbox(self, el, c) -> None:
        el.locator("label").first.click()  # on, then back: both states drawn, the setting restored
        self.check()
        self.locate(c).locator("label").first.click()

    def options_of(self, el, c) -> list:
        """(option locator, text, selected) of a radio or segmented control."""
        if c["kind"] == "stRadio":
            opts = el.locator("label:has(input[type=radio])")
            return [(opts.nth(i), opts.nth(i).inner_text().strip(), opts.nth(i).locator("input").is_checked())
                    for i in range(opts.count())]
        opts = el.locator("button")
        return [(opts.nth(i), opts.nth(i).inner_text().strip(),
                 "Active" in (opts.nth(i).get_attribute("data-testid") or "")) for i in range(opts.count())]

    def unvisited(self, el, c) -> list:
        seen = self.visited.setdefault(cid(c), set())
        opts = self.options_of(el, c)
        seen.update(t for _, t, on in opts if on)  # the option shown on arrival counts as visited
        return [(o, t) for o, t, on in opts if not on and t not in seen and t not in SKIP_OPTIONS and o.is_enabled()]

    def do_radio(self, el, c) -> None:
        """Pick the next option not picked before (one per round: each view it opens is walked)."""
        todo = self.unvisited(el, c)
        if todo:
            o, t = todo[0]
            self.visited[cid(c)].add(t)
            o.click()

    do_buttongroup = do_radio

    def do_textinput(self, el, c) -> None:
        box = el.locator("input")
        box.fill("a walkthrough <b>x</b> [y](z)")
        box.press("Enter")

    def do_fileuploader(self, el, c) -> None:
        el.locator("input[type=file]").set_input_files(UPLOAD)

    def do_expander(self, el, c) -> None:
        el.locator("summary").first.click()

    def do_tabs(self, el, c) -> None:
        tabs = el.get_by_role("tab")
        for i in range(tabs.count()):
            tabs.nth(i).click()

    def do_plotlychart(self, el, c) -> None:
        """Click a data point. On a chart that selects points (plotly's clickmode has "select"),
        the page must change: a selection that does nothing is a control that does nothing."""
        points = el.locator(".scatterlayer .trace .points path")
        selects = el.evaluate("e => (e.querySelector('.js-plotly-plot')._fullLayout.clickmode || '')"
                              ".includes('select')")
        main = self.page.get_by_test_id("stMain")
        self.page.mouse.move(1, 1)
        before = main.inner_text()
        for i in range(3, min(points.count(), 12)):  # not the first points: one of them may be selected already
            point = points.nth(i)
            point.scroll_into_view_if_needed()
            box = point.bounding_box()
            if box and box["width"] > 0:
                self.page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
                break
        else:
            assert not selects, f"{self.where}: no point to click on a chart that selects points"
            return
        if selects:
            self.check()
            self.page.mouse.move(1, 1)  # no hover label: it would count as a change
            self.page.wait_for_function("!document.querySelector('.hoverlayer .hovertext')", timeout=5_000)
            assert main.inner_text() != before, f"{self.where}: a click on a point changed nothing"

    def do_customcomponentv1(self, el, c) -> None:
        box = el.bounding_box()
        if box and box["width"] > 20 and box["height"] > 20:
            self.page.mouse.click(box["x"] + box["width"] / 3, box["y"] + box["height"] / 3)

    do_iframe = do_customcomponentv1

    def do_downloadbutton(self, el, c) -> None:
        button = el.locator("button").first
        if button.is_disabled():
            return
        with self.page.expect_download(timeout=60_000) as d:
            button.click()
        path = d.value.path()
        assert path and os.path.getsize(path) > 0, f"{self.where}: an empty download"

    def do_button(self, el, c) -> None:
        button = el.locator("button").first
        if button.is_disabled():
            return
        button.click()


def walk_page(w: Walk, nav_text: str, sidebar: bool, rounds: int = 6) -> list[str]:
    """Exercise every control of one page and return their names. Each round changes every control
    not seen before (buttons last), then picks one new option of one mode control (radio,
    segmented control: "Upload a file", "MoE", another view), so the next round walks what that
    option shows; the sidebar's controls too when ``sidebar``."""
    w.goto(nav_text)
    w.where = f"{nav_text}: on arrival"
    w.check()
    path = w.page.url.split("?")[0]
    seen: set[tuple] = set()
    names = []

    def run(c: dict) -> None:
        name = f"{c['kind']} {c['key'] or repr(c['label'])}"
        w.where = f"{nav_text}: {name}"
        t0 = time.monotonic()
        done = w.exercise(c)
        w.check()
        if done:
            seen.add(cid(c))
            names.append(f"{name} {time.monotonic() - t0:.1f}s")
        if w.page.url.split("?")[0] != path:  # the control opened another page (a lesson): come back
            w.goto(nav_text)

    for _ in range(rounds):
        controls = [c for c in w.collect() if (sidebar or not c["sidebar"])]
        fresh = [c for c in controls if cid(c) not in seen and c["kind"] not in MODES]
        fresh.sort(key=lambda c: c["kind"] in BUTTONS_LAST)  # buttons last (stable: document order otherwise)
        for c in fresh:
            run(c)
        mode = next((c for c in controls if c["kind"] in MODES and w.locate(c).count()
                     and w.unvisited(w.locate(c), c)), None)
        if mode is None and not fresh:
            break
        if mode is not None:
            run(mode)
    return names


def test_every_control_on_every_page(app):
    url, browser = app
    page = browser.new_page(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    w = Walk(page)
    page.goto(f"{url}/?epochs=1")  # Play and Compare's training: one epoch each
    page.get_by_test_id("stSidebarNav").wait_for(timeout=90_000)
    w.check()
    links = page.get_by_test_id("stSidebarNav").locator("a").all_inner_texts()
    nav = [t.strip().splitlines()[-1].strip() for t in links if t.strip()]  # a link's text: its icon's name, its title
    assert len(nav) >= 8, nav
    t0 = time.monotonic()
    report = {}
    for i, title in enumerate(nav):
        report[title] = walk_page(w, title, sidebar=i == 0)  # the sidebar is the same on every page
        print(title, f"{time.monotonic() - t0:.0f} s", report[title], flush=True)
        os.makedirs(ARTIFACTS, exist_ok=True)
        page.screenshot(path=os.path.join(ARTIFACTS, f"walk-{re.sub('[^a-z]+', '-', title.lower())}.png"),
                        full_page=True)
    kinds = {n.split()[0] for names in report.values() for n in names}
    # the app has at least these kinds somewhere: if none is found, the DOM changed and the test is blind
    for kind in ("stSelectbox", "stSlider", "stNumberInput", "stCheckbox", "stRadio", "stButtonGroup",
                 "stButton", "stDownloadButton", "stPlotlyChart", "stMultiSelect", "stFileUploader"):
        assert kind in kinds, (kind, report)
    for k, v in report.items():
        print(k, v)
    print({k: len(v) for k, v in report.items()}, f"{time.monotonic() - t0:.0f} s")
    page.close()


def test_drag_the_latent_marker_and_every_modality_is_decoded_live(app):
    """Drag the explorer's marker with the mouse: while the button is held the decodings follow it,
    and what the page shows at the final grid point is the model's decoding there."""
    import mmvae
    from mmvae.data import load_dataset

    url, browser = app
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    w = Walk(page)
    page.goto(f"{url}/embeddings?model=toy-poe")
    frame_el = page.locator("[data-testid='stMain'] iframe").first
    frame_el.wait_for(timeout=90_000)
    w.where = "latent explorer"
    w.check()
    frame_el.scroll_into_view_if_needed()
    frame = frame_el.element_handle().content_frame()
    frame.wait_for_function("window.explorerShown !== undefined", timeout=30_000)
    first = frame.evaluate("window.explorerShown")
    box = frame.locator("#plane").bounding_box()  # page coordinates
    assert box is not None
    # the plane's drawing area is the canvas less a 34-pixel margin (of 360) on each side
    m = 34 / 360 * box["width"]

    def at(fx: float, fy: float) -> tuple[float, float]:
        return box["x"] + m + fx * (box["width"] - 2 * m), box["y"] + m + fy * (box["height"] - 2 * m)

    page.mouse.move(*at(0.5, 0.5))
    page.mouse.down()
    seen = []
    for fx, fy in ((0.6, 0.45), (0.75, 0.3), (0.9, 0.1)):
        page.mouse.move(*at(fx, fy), steps=5)
        seen.append(frame.evaluate("window.explorerShown"))  # the button is still held: live while dragging
    page.mouse.up()
    cells = [tuple(s["cell"]) for s in [first] + seen]
    assert len(set(cells)) == len(cells), cells  # every stop of the drag showed a new grid point
    for a, b in zip(seen, seen[1:]):
        assert a["values"] != b["values"]
    last = seen[-1]
    assert last["z"][0] > first["z"][0] and last["z"][1] > first["z"][1], (first, last)  # right and up
    ckpt = mmvae.load_checkpoint(os.path.join(ROOT, "checkpoints", "toy-poe.safetensors"))
    specs = load_dataset(ckpt.data["name"], seed=int(ckpt.data.get("seed", 0))).specs
    import numpy as np
    import torch

    with torch.no_grad():
        params = ckpt.model.decode(torch.tensor([last["z"]], dtype=torch.float32), list(ckpt.model.names))
    for name, p in params.items():
        want = specs[name].to_physical(ckpt.model.likelihoods[name].mean(p)[0].numpy())
        np.testing.assert_allclose(last["values"][name], want[:8], rtol=1e-4, atol=1e-5, err_msg=name)
    # the arrow keys move the marker one grid step
    frame.locator("#plane").press("ArrowLeft")
    assert frame.evaluate("window.explorerShown")["cell"] == [last["cell"][0] - 1, last["cell"][1]]
    w.check()
    page.close()
