"""The Streamlit app under streamlit.testing.v1.AppTest: every page renders, main controls work."""
from __future__ import annotations

import os
import sys
import time

import pytest

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENTRY = os.path.join(ROOT, "app", "streamlit_app.py")
PAGES = ["train", "compare", "overlap", "bounds", "generation", "gradients", "embeddings", "lessons"]
UMAP_BEFORE = "umap" in sys.modules
TIMEOUT = 60  # torch imports and model evaluation exceed AppTest's default 3 s


def fresh(query: dict | None = None) -> AppTest:
    at = AppTest.from_file(ENTRY, default_timeout=TIMEOUT)
    if query:
        at.query_params.update(query)
    at.run(timeout=TIMEOUT)
    assert not at.exception, [e.value for e in at.exception]
    return at


def play_tiny_model(at: AppTest, **numbers) -> None:
    """Set a one-epoch, 200-sample setup (plus any other number inputs by key), press Play and
    wait until the job pool (app/jobs.py) has trained it and the session has taken the result."""
    for key, value in {"w_epochs": 1, "w_n_train": 200, **numbers}.items():
        at.number_input(key=key).set_value(value)
    at.run(timeout=TIMEOUT)
    at.button(key="btn_play").click()
    at.run(timeout=TIMEOUT)
    wait_for_training(at)


def wait_for_training(at: AppTest, deadline_s: float = 120) -> None:
    t0 = time.monotonic()
    while (at.session_state["run"] if "run" in at.session_state else {}).get("job"):
        assert time.monotonic() - t0 < deadline_s, "the training job did not finish"
        time.sleep(0.2)
        at.run(timeout=TIMEOUT)


def no_errors(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    broken = [w.value for w in at.warning if "could not be drawn" in w.value]
    broken += [i.value for i in at.info if "not available" in i.value]
    assert not broken, broken


SHIPPED = sorted(f[: -len(".safetensors")] for f in os.listdir(os.path.join(ROOT, "checkpoints"))
                 if f.endswith(".safetensors"))
MODEL_PAGES = ["overlap", "bounds", "generation", "gradients", "embeddings", "train"]


@pytest.mark.parametrize("name", SHIPPED)
def test_every_page_works_for_every_shipped_checkpoint(name):
    """Open the checkpoint with the model picker, then every page that shows the current model, and
    the fusion comparison of its dataset: no exception, no error, no view that could not be drawn."""
    at = fresh()
    at.switch_page("pages/overlap.py")
    at.run(timeout=TIMEOUT)
    at.selectbox(key="overlap-picker").set_value(f"shipped: {name}")
    at.run(timeout=TIMEOUT)
    assert at.session_state["active"]["name"] == name
    for page in MODEL_PAGES:
        at.switch_page(f"pages/{page}.py")
        at.run(timeout=TIMEOUT)
        no_errors(at)
        assert at.session_state["active"]["name"] == name, page
        assert at.get("plotly_chart"), f"{name}: page {page} drew no chart"
    at.switch_page("pages/compare.py")
    at.run(timeout=TIMEOUT)
    at.selectbox(key="w_dataset").set_value(at.session_state["active"]["data"]["name"])
    at.run(timeout=TIMEOUT)
    no_errors(at)


def test_first_screen_shows_a_shipped_model_without_training():
    at = fresh()
    no_errors(at)
    assert "trainer" not in at.session_state
    assert at.session_state["active"]["source"] == "shipped"
    assert at.title[0].value.startswith("Train")


def test_every_page_renders():
    at = fresh()
    for page in PAGES:
        at.switch_page(f"pages/{page}.py")
        at.run(timeout=TIMEOUT)
        no_errors(at)
        assert at.title and at.title[0].value, f"page {page} drew no title"


def test_train_one_epoch_with_play_then_step_and_reset():
    at = fresh()
    play_tiny_model(at, w_epochs=2)
    no_errors(at)
    run = at.session_state["run"]
    assert run["state"] == "done" and len(run["records"]) == 2
    assert at.session_state["active"]["source"] == "trained"
    at.number_input(key="w_epochs").set_value(3)  # a new setup: Step trains its first epoch and pauses
    at.run(timeout=TIMEOUT)
    at.button(key="btn_step").click()
    at.run(timeout=TIMEOUT)
    wait_for_training(at)
    no_errors(at)
    run = at.session_state["run"]
    assert run["state"] == "paused" and len(run["records"]) == 1
    at.button(key="btn_play").click()  # Play continues the paused model to the epoch cap
    at.run(timeout=TIMEOUT)
    wait_for_training(at)
    run = at.session_state["run"]
    assert run["state"] == "done" and len(run["records"]) == 3
    assert at.session_state["active"]["history"]["records"] == run["records"]
    at.button(key="btn_reset").click()
    at.run(timeout=TIMEOUT)
    no_errors(at)
    assert "run" not in at.session_state


def test_changing_K_updates_setup_and_url():
    at = fresh()
    at.number_input(key="w_K").set_value(25)
    at.run(timeout=TIMEOUT)
    no_errors(at)
    assert at.session_state["setup"]["K"] == 25
    assert at.query_params["K"] == ["25"] or at.query_params["K"] == "25"


def test_toggle_fusion_rule_on_compare_page():
    at = fresh()
    at.switch_page("pages/compare.py")
    at.run(timeout=TIMEOUT)
    no_errors(at)
    control = at.segmented_control(key="cmp_fusion")
    options = list(control.options)
    assert len(options) >= 2
    for value in ("moe", "poe"):
        at.segmented_control(key="cmp_fusion").set_value(value)
        at.run(timeout=TIMEOUT)
        no_errors(at)
        assert at.session_state["cmp_fusion"] == value


def test_overlap_point_slider_and_fusion():
    at = fresh()
    at.switch_page("pages/overlap.py")
    at.run(timeout=TIMEOUT)
    at.slider(key="overlap_point").set_value(7)
    at.run(timeout=TIMEOUT)
    no_errors(at)
    at.segmented_control(key="overlap_fusion").set_value("moe")
    at.run(timeout=TIMEOUT)
    no_errors(at)


def test_link_with_lesson_opens_its_checkpoint_and_hides_controls():
    at = fresh({"lesson": "impedance"})
    no_errors(at)
    assert at.session_state["active"]["name"] == "impedance-poe"
    assert at.session_state["setup"]["dataset"] == "impedance"
    keys = [w.key for w in at.selectbox]
    assert "w_dataset" not in keys  # the lesson hides the dataset control


def test_bad_link_values_are_capped_with_a_message():
    at = fresh({"K": "5000", "fusion": "nonsense"})
    assert at.session_state["setup"]["K"] == 100
    text = " ".join(w.value for w in at.warning)
    assert "5000" in text and "nonsense" in text


def test_lesson_button_switches_page():
    at = fresh()
    at.switch_page("pages/lessons.py")
    at.run(timeout=TIMEOUT)
    at.button(key="lesson-elbo-vs-iwae").click()
    at.run(timeout=TIMEOUT)
    no_errors(at)
    assert at.session_state["setup"]["lesson"] == "elbo-vs-iwae"
    assert at.session_state["active"]["name"] == "toy-poe-elbo"


def test_generation_page_on_images_and_logs():
    for lesson in ("mopoe-three", "impedance"):
        at = fresh({"lesson": lesson})
        at.switch_page("pages/generation.py")
        at.run(timeout=TIMEOUT)
        no_errors(at)


def test_pages_work_for_a_trained_model_with_a_3d_latent():
    """D > 2: ellipses in the diagnostics' 2-D projection, embeddings by PCA (auto)."""
    at = fresh()
    play_tiny_model(at, w_latent_dim=3)
    no_errors(at)
    assert at.session_state["active"]["model"].latent_dim == 3
    for page in ("overlap", "embeddings", "bounds", "generation"):
        at.switch_page(f"pages/{page}.py")
        at.run(timeout=TIMEOUT)
        no_errors(at)
        assert at.get("plotly_chart"), page
    assert "umap" not in sys.modules or UMAP_BEFORE  # "auto" never imports umap-learn
