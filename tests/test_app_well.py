"""The "Your well" page (app/views/well.py) under AppTest: a shipped well and an uploaded LAS train
in the background worker and show the depth plot, scores and the predicted LAS; bad files give a
one-line message; text from the file is never rendered as Markdown."""
from __future__ import annotations

import io
import os
import re
import time

import numpy as np
import pytest

pytest.importorskip("streamlit")
lasio = pytest.importorskip("lasio")
from streamlit.testing.v1 import AppTest  # noqa: E402

from mmvae.impedance import shipped_wells  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAGE = os.path.join(ROOT, "app", "views", "well.py")
TIMEOUT = 60  # torch imports exceed AppTest's default 3 s
JOB_LIMIT = 240  # seconds to wait for a background training job (a loaded 2-core machine)
EVIL_LINK, EVIL_IMAGE = "[x](http://evil)", "![](http://evil/i.png)"


def fresh() -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT)
    at.run(timeout=TIMEOUT)
    assert not at.exception, [e.value for e in at.exception]
    return at


def las_blob(n: int = 700, names=("DTCO", "DTSM", "DENS"), well_name: str = "TEST-1", skip: tuple = (),
             extra: tuple = ()) -> bytes:
    """A LAS 2.0 file (bytes) of the top ``n`` samples of shipped P-135: density 2.3 g/cm3 and the
    sonics that give its AI and SI exactly, plus GR and constant curves named in ``extra``; curves
    named in ``skip`` are left out."""
    w = shipped_wells()["P-135"].rows(0, n)
    rho = np.full(n, 2.3)
    values = {names[0]: (304.8 * rho / w.ai, "us/ft"), names[1]: (304.8 * rho / w.si, "us/ft"),
              names[2]: (rho, "g/cm3"), "GR": (np.full(n, 60.0), "gAPI"), **{k: (np.ones(n), "") for k in extra}}
    las = lasio.LASFile()
    las.well["WELL"].value = well_name
    las.append_curve("DEPT", w.depth, unit="m")
    for k, (v, u) in values.items():
        if k not in skip:
            las.append_curve(k, v, unit=u)
    buf = io.StringIO()
    las.write(buf, version=2.0, fmt="%.10g")
    return buf.getvalue().encode()


def upload(at: AppTest, name: str, blob: bytes) -> AppTest:
    at.radio(key="well_source").set_value("Upload a file")
    at.run(timeout=TIMEOUT)
    at.file_uploader(key="well_upload").set_value((name, blob, "application/octet-stream"))
    at.run(timeout=TIMEOUT)
    assert not at.exception, [e.value for e in at.exception]
    return at


def wait_job(at: AppTest) -> None:
    """Rerun the page until its background job has finished (at most JOB_LIMIT seconds)."""
    t0 = time.monotonic()
    while "well_job" in at.session_state:
        assert time.monotonic() - t0 < JOB_LIMIT, "the training job did not finish"
        time.sleep(0.5)
        at.run(timeout=TIMEOUT)


def train(at: AppTest, epochs: int = 1) -> dict:
    """Press Train with ``epochs`` and rerun until the background job has finished."""
    at.number_input(key="well_epochs").set_value(epochs)
    at.run(timeout=TIMEOUT)
    at.button(key="well_train").click()
    at.run(timeout=TIMEOUT)
    assert "well_job" in at.session_state or "well_result" in at.session_state
    wait_job(at)
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    return at.session_state["well_result"]


def errors(at: AppTest) -> str:
    return " | ".join(e.value for e in at.error)


def test_shipped_well_trains_plots_scores_and_downloads_las():
    at = fresh()
    assert at.selectbox(key="well_shipped").value == "P-135"
    r = train(at)
    # the depth plot: AI, measured SI, the P10-P90 band, P50 and the baseline along depth (down)
    spec = at.get("plotly_chart")[0].proto.spec
    for trace in ("AI measured", "SI measured", "predicted P10-P90", "predicted P50", "rock physics"):
        assert f'"name":"{trace}"' in spec, trace
    assert '"autorange":"reversed"' in spec
    # the scores beside it are the package's metrics of the test interval
    m = r["metrics"]
    shown = {x.label: x.value for x in at.metric}
    assert shown["RMSE of P50 (test)"] == f"{m['model']['rmse']:.3f}"
    assert shown["80% band coverage"] == f"{100 * m['coverage_80']:.0f} %"
    assert shown["50% band coverage"] == f"{100 * m['coverage_50']:.0f} %"
    table = at.dataframe[-1].value
    assert table["rock physics"].iloc[0] == pytest.approx(m["rock_physics"]["rmse"])
    lo, hi = r["intervals"]["test"]
    assert r["intervals"]["train"][1] < lo  # contiguous: the test interval lies below the training one
    # the predicted LAS, as handed to the download button, reads back with lasio
    assert [b.label for b in at.download_button] == ["Download the predicted LAS", "Download the model (.safetensors)"]
    las = lasio.read(io.StringIO(r["las"].decode()))
    np.testing.assert_allclose(las.index, r["depth"], rtol=1e-9)
    for curve, key in (("SI_P10", "p10"), ("SI_P50", "p50"), ("SI_P90", "p90"), ("SI_RP", "baseline"), ("AI", "ai")):
        np.testing.assert_allclose(las[curve], np.asarray(r[key], dtype=float), rtol=1e-8, equal_nan=True)
    p10, p90 = np.asarray(r["p10"], dtype=float), np.asarray(r["p90"], dtype=float)
    ok = np.isfinite(p10)
    assert ok.mean() > 0.9 and (p10[ok] <= p90[ok]).all()
    assert r["checkpoint"][8:].lstrip(b" ")[:1] == b"{"  # safetensors: 8-byte length, JSON header


def test_uploaded_las_preselects_curves_and_trains():
    blob = las_blob()
    at = upload(fresh(), "my well.las", blob)
    assert not at.error, errors(at)
    assert at.selectbox(key="well_curve_p").value == "DTCO"
    assert at.selectbox(key="well_curve_s").value == "DTSM"
    assert at.selectbox(key="well_curve_density").value == "DENS"
    assert any("File: my well.las" in t.value for t in at.text)
    r = train(at)
    assert r["name"] == "my well"
    w = shipped_wells()["P-135"].rows(0, 700)
    np.testing.assert_allclose(r["ai"], w.ai, rtol=1e-7)  # the page read the uploaded sonic and density
    assert np.isfinite(np.asarray(r["p50"], dtype=float)).mean() > 0.9


def test_las_without_shear_sonic_lists_its_curves():
    at = upload(fresh(), "no_dts.las", las_blob(skip=("DTSM",)))
    msg = errors(at)
    assert "S-wave sonic" in msg and "DTCO, DENS, GR" in msg, msg
    assert not at.button  # nothing to train


def test_oversized_upload_is_refused_before_parsing():
    blob = b"~" + b" " * (50 * 2**20)  # one byte over 50 MB
    at = upload(fresh(), "big.las", blob)
    msg = errors(at)
    assert "the limit is 50 MB" in msg and "50.0 MB" in msg, msg
    assert not at.dataframe  # not parsed: no curve table


@pytest.mark.parametrize("name, blob, expected", [
    ("garbage.las", np.random.default_rng(0).bytes(4000), "not a LAS file"),
    ("notes.las", b"hello, this is not a well log\n" * 20, "not a LAS file"),
    ("garbage.npz", b"PK\x03\x04" + np.random.default_rng(1).bytes(500), "not a readable .npz file"),
], ids=["binary-las", "text-las", "garbage-npz"])
def test_bad_file_gives_one_line_message(name, blob, expected):
    at = upload(fresh(), name, blob)
    assert len(at.error) == 1
    msg = at.error[0].value
    assert expected in msg and name in msg and "\n" not in msg, msg


def test_error_in_the_background_job_is_a_message():
    """A training interval too short for one window: the worker's DataError is shown, the page stays up."""
    at = upload(fresh(), "short.las", las_blob(120))
    at.slider(key="well_train_pct").set_value(20)
    at.slider(key="well_val_pct").set_value(0)
    at.run(timeout=TIMEOUT)
    at.button(key="well_train").click()
    at.run(timeout=TIMEOUT)
    wait_job(at)
    assert not at.exception, [e.value for e in at.exception]
    assert "complete window(s)" in errors(at), errors(at)
    assert at.button(key="well_train")  # still there: change the split and train again


def _outside_code_spans(text: str) -> str:
    return re.sub(r"(`+)(.*?)\1", "", text)


def test_markdown_in_file_and_curve_names_is_plain_text():
    """A file named like a Markdown link and curves named like a Markdown link and image (a LAS
    mnemonic stops at '.' and ':'): shown literally (st.text, a dataframe, code spans), never in
    Markdown where they would render."""
    evil_curves = ("[x](//evil)", "![](//evil/i)")
    blob = las_blob(skip=("DTSM",), extra=evil_curves, well_name=EVIL_IMAGE)
    at = upload(fresh(), f"{EVIL_LINK}.las", blob)
    assert any(f"File: {EVIL_LINK}.las" in t.value for t in at.text), [t.value for t in at.text]
    table = list(at.dataframe[0].value["curve"])
    for c in evil_curves:
        assert c.upper() in table, table
        assert c.upper() in errors(at)  # listed as an available curve in the one-line message
    markdown = [e.value for kind in ("markdown", "caption", "error", "warning", "info", "success", "title",
                                     "subheader") for e in getattr(at, kind)]
    markdown += [w.label for w in list(at.selectbox) + list(at.radio) + list(at.button) + list(at.file_uploader)]
    assert any("evil" in md.lower() for md in markdown)  # the message does show them ...
    for md in markdown:
        assert "evil" not in _outside_code_spans(md).lower(), md  # ... but only inside code spans


@pytest.mark.browser
def test_upload_in_chromium(tmp_path):
    """A real browser: upload a LAS with set_input_files, train one epoch, see the depth plot."""
    from tests.app_server import CHROMIUM, launch, streamlit_server, wait_for_charts, wait_idle

    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is missing")
    sync_api = pytest.importorskip("playwright.sync_api")
    nav = tmp_path / "nav.py"  # the page alone, as the app's navigation will run it
    nav.write_text(f"import streamlit as st\nst.navigation([st.Page({PAGE!r}, title='Your well')]).run()\n")
    with streamlit_server(script=str(nav)) as (url, _):
        with sync_api.sync_playwright() as p:
            browser = launch(p)
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                page.goto(url)
                page.get_by_text("Upload a file").click()
                wait_idle(page)
                page.locator("[data-testid='stFileUploaderDropzoneInput']").set_input_files(
                    files=[{"name": "browser well.las", "mimeType": "text/plain", "buffer": las_blob(500)}])
                page.get_by_text("File: browser well.las").wait_for(timeout=60_000)
                epochs = page.get_by_role("spinbutton", name="Epochs")
                epochs.fill("1")
                epochs.press("Enter")
                wait_idle(page)
                page.get_by_role("button", name="Train and predict").click()
                page.get_by_text("Prediction along depth").wait_for(timeout=JOB_LIMIT * 1000)
                wait_for_charts(page)
                assert page.get_by_text("Results for well browser well").count() == 1
                assert page.locator("[data-testid='stAlertContentError']").count() == 0
            finally:
                browser.close()
