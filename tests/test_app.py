"""The Streamlit app under streamlit.testing.v1.AppTest: every page renders, main controls work."""
from __future__ import annotations

import os
import sys
import time

import pytest

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

os.environ["MMVAE_APP_WARM"] = "0"  # no background warm-up thread in AppTest (it would import umap-learn)
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENTRY = os.path.join(ROOT, "app", "streamlit_app.py")
PAGES = ["train", "compare", "overlap", "bounds", "generation", "gradients", "embeddings", "lessons", "style"]
UMAP_BEFORE = "umap" in sys.modules
TIMEOUT = 60  # torch imports and model evaluation exceed AppTest's default 3 s


# The page scripts live in app/views, not app/pages: a folder named "pages" beside the entry script
# puts Streamlit in its old multipage mode whenever a run starts on a page URL (a shared link to a
# fresh server, and every AppTest run after the first), which runs the page alone: no setup, no
# link, no sidebar. The sidebar assertions below fail if that folder comes back.


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
    broken = [i.value for i in at.info if "does not apply" in i.value]
    assert not broken, broken


SHIPPED = sorted(f[: -len(".safetensors")] for f in os.listdir(os.path.join(ROOT, "checkpoints"))
                 if f.endswith(".safetensors"))
MODEL_PAGES = ["overlap", "bounds", "generation", "gradients", "embeddings", "train"]


@pytest.mark.parametrize("name", SHIPPED)
def test_every_page_works_for_every_shipped_checkpoint(name):
    """Open the checkpoint with the model picker, then every page that shows the current model, and
    the fusion comparison of its dataset: no exception, no error, no view that could not be drawn."""
    at = fresh()
    at.switch_page("views/overlap.py")
    at.run(timeout=TIMEOUT)
    at.selectbox(key="overlap-picker").set_value(f"shipped: {name}")
    at.run(timeout=TIMEOUT)
    assert at.session_state["active"]["name"] == name
    for page in MODEL_PAGES:
        at.switch_page(f"views/{page}.py")
        at.run(timeout=TIMEOUT)
        no_errors(at)
        assert at.session_state["active"]["name"] == name, page
        assert at.get("plotly_chart"), f"{name}: page {page} drew no chart"
    at.switch_page("views/compare.py")
    at.run(timeout=TIMEOUT)
    at.selectbox(key="cmp_w_dataset").set_value(at.session_state["active"]["data"]["name"])
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
        at.switch_page(f"views/{page}.py")
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
    at.switch_page("views/compare.py")
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
    at.switch_page("views/overlap.py")
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


def test_link_text_is_shown_literally_never_as_markdown():
    at = fresh({"model": "[click](http://evil.example)", "dataset": "![x](http://evil.example/i.png)"})
    text = " ".join(w.value for w in at.warning)
    assert "\\[click\\]\\(http" in text and "\\!\\[x\\]" in text, text


def test_lesson_button_switches_page():
    at = fresh()
    at.switch_page("views/lessons.py")
    at.run(timeout=TIMEOUT)
    at.button(key="lesson-elbo-vs-iwae").click()
    at.run(timeout=TIMEOUT)
    no_errors(at)
    from app.lessons import LESSONS

    assert at.session_state["setup"]["lesson"] == "elbo-vs-iwae"
    assert at.session_state["active"]["name"] == LESSONS["elbo-vs-iwae"]["checkpoint"]
    assert at.title[0].value.startswith("Bound gaps")
    assert at.query_params["lesson"] in ("elbo-vs-iwae", ["elbo-vs-iwae"])


def test_generation_page_on_images_and_logs():
    for lesson in ("mopoe-three", "impedance"):
        at = fresh({"lesson": lesson})
        at.switch_page("views/generation.py")
        at.run(timeout=TIMEOUT)
        no_errors(at)


def test_pages_work_for_a_trained_model_with_a_3d_latent():
    """D > 2: ellipses in the diagnostics' 2-D projection, embeddings by PCA (auto)."""
    at = fresh()
    play_tiny_model(at, w_latent_dim=3)
    no_errors(at)
    assert at.session_state["active"]["model"].latent_dim == 3
    for page in ("overlap", "embeddings", "bounds", "generation"):
        at.switch_page(f"views/{page}.py")
        at.run(timeout=TIMEOUT)
        no_errors(at)
        assert at.get("plotly_chart"), page
    assert "umap" not in sys.modules or UMAP_BEFORE  # "auto" never imports umap-learn


# ------------------------------------------------------------------ small data on every page
VIEW_PAGES = ["overlap", "bounds", "generation", "gradients", "embeddings", "train", "compare"]


def visit_every_page(at: AppTest, name: str) -> None:
    for page in VIEW_PAGES:
        at.switch_page(f"views/{page}.py")
        at.run(timeout=TIMEOUT)
        no_errors(at)
        if page == "compare" and not at.get("plotly_chart"):
            at.button(key="cmp_train").click()  # the same setup under the three fusion rules
            at.run(timeout=TIMEOUT)
            no_errors(at)
        assert at.get("plotly_chart"), f"{name}: page {page} drew no chart"
        assert at.sidebar.get("toggle"), f"{name}: page {page} lost the sidebar"


def test_wells_on_every_page():
    """48 test windows: sliders whose minimum would equal their maximum are replaced by a caption."""
    at = fresh()
    at.selectbox(key="w_dataset").set_value("wells")
    at.run(timeout=TIMEOUT)
    play_tiny_model(at)
    no_errors(at)
    assert at.session_state["active"]["data"]["name"] == "wells"
    visit_every_page(at, "wells")


def tiny_npz_entry(path: str) -> dict:
    """A model trained for one epoch on a 40-sample .npz of two modalities (6 test points), as
    the app's session entry of a trained model."""
    import numpy as np

    import mmvae
    from app import state
    from mmvae.data import load_dataset

    rng = np.random.default_rng(0)
    z = rng.standard_normal((40, 2))
    np.savez(path, a=np.tanh(z @ [[1.0, 0.3, 0.2], [0.1, 1.0, -0.4]]), b=z[:, :1] * 2 + 0.1,
             labels=(z[:, 0] > 0).astype(np.int64))
    bundle = load_dataset(path, seed=0)
    model = mmvae.build_model(mmvae.config_for_specs(bundle.specs, latent_dim=2, fusion="poe",
                                                     network={"type": "mlp", "hidden": [8]}), seed=0)
    history = mmvae.fit(model, bundle.train, bundle.val, estimator="elbo", K=1, epochs=1, batch_size=16, seed=0)
    data_info = {"name": path, "options": {}, "seed": 0, "specs": {k: s.to_dict() for k, s in bundle.specs.items()}}
    return state.trained_entry(model, data_info, {"estimator": "elbo", "K": 1}, history.to_dict(), "tiny npz")


def test_tiny_npz_on_every_page(tmp_path):
    at = fresh()
    at.session_state["active"] = tiny_npz_entry(str(tmp_path / "tiny.npz"))
    visit_every_page(at, "tiny npz")


# ------------------------------------------------------------------ setup and links
def test_setup_survives_every_page_and_compare_controls_act():
    at = fresh()
    for key, value in {"w_K": 7, "w_latent_dim": 3, "w_epochs": 2}.items():
        at.number_input(key=key).set_value(value)
    at.selectbox(key="w_estimator").set_value("iwae")
    at.run(timeout=TIMEOUT)
    wanted = {"K": 7, "latent_dim": 3, "epochs": 2, "estimator": "iwae", "dataset": "toy"}
    for page in ("compare", "bounds", "train", "compare", "lessons", "train"):
        at.switch_page(f"views/{page}.py")
        at.run(timeout=TIMEOUT)
        no_errors(at)
        assert {k: at.session_state["setup"][k] for k in wanted} == wanted, page
        assert at.query_params["K"] in ("7", ["7"]), page
    assert at.number_input(key="w_K").value == 7 and at.number_input(key="w_epochs").value == 2
    # Compare: IWAE K=7 has no shipped model, so it offers to train that setup, and does
    at.switch_page("views/compare.py")
    at.run(timeout=TIMEOUT)
    assert at.sidebar.get("toggle"), "a page waiting for models still draws the sidebar"
    at.button(key="cmp_train").click()
    at.run(timeout=TIMEOUT)
    no_errors(at)
    shown = at.session_state["active"]
    assert shown["source"] == "trained" and shown["train"]["estimator"] == "iwae" and shown["train"]["K"] == 7
    assert shown["model"].latent_dim == 3
    # ... and its K control acts even where shipped models exist (DReG K=10 on toy)
    at.selectbox(key="cmp_w_estimator").set_value("dreg")
    at.number_input(key="cmp_w_K").set_value(10)
    at.session_state["setup"]["latent_dim"] = 2  # the shipped models' (set on the Train page)
    at.run(timeout=TIMEOUT)
    assert at.session_state["active"]["source"] == "shipped"
    at.number_input(key="cmp_w_K").set_value(3)
    at.run(timeout=TIMEOUT)
    assert at.session_state["setup"]["K"] == 3
    assert at.button(key="cmp_train"), "a K without a shipped model must offer training"


def _lesson_ids():
    from app.lessons import LESSONS

    return list(LESSONS)


@pytest.mark.parametrize("lesson_id", _lesson_ids())
def test_every_lesson_link_opens_its_page_model_and_url(lesson_id):
    from app.lessons import LESSONS

    lesson = LESSONS[lesson_id]
    at = fresh({"lesson": lesson_id})
    no_errors(at)
    titles = {"train": "Train", "compare": "Compare", "overlap": "Posterior", "bounds": "Bound", "generation": "Cross",
              "gradients": "Gradient", "embeddings": "Latent", "well": "Your well", "style": "Swap style"}
    assert at.title[0].value.startswith(titles[lesson["page"]]), at.title[0].value
    assert at.session_state["active"]["name"] == lesson["checkpoint"]
    q = {k: (v[0] if isinstance(v, list) else v) for k, v in at.query_params.items()}
    assert q["lesson"] == lesson_id and q["model"] == lesson["checkpoint"]
    assert all(q[k] == str(v) for k, v in lesson["setup"].items()), q


def test_model_link_is_kept_and_opens_that_model():
    at = fresh({"model": "impedance-poe"})
    no_errors(at)
    assert at.session_state["active"]["name"] == "impedance-poe"
    at.switch_page("views/bounds.py")
    at.run(timeout=TIMEOUT)
    assert at.query_params["model"] in ("impedance-poe", ["impedance-poe"])


def test_quick_analyses_stays_off_across_pages():
    at = fresh()
    at.sidebar.toggle(key="quick").set_value(False)
    at.run(timeout=TIMEOUT)
    for page in ("lessons", "train"):
        at.switch_page(f"views/{page}.py")
        at.run(timeout=TIMEOUT)
        assert at.session_state["quick"] is False


# ------------------------------------------------------------------ shared models, real errors
def test_gradient_snr_never_touches_the_shared_model(monkeypatch):
    """Two sessions computing gradient SNR on one cached shipped model at once crashed the server:
    backend.gradient_snr must hand the diagnostics a private copy, every time."""
    import threading

    import mmvae
    from app import backend
    from mmvae import diagnostics
    from mmvae.data import load_dataset

    shared = mmvae.load_checkpoint(os.path.join(ROOT, "checkpoints", "toy-poe.safetensors")).model
    before = [p.detach().clone() for p in shared.parameters()]
    seen = []
    real = diagnostics.gradient_snr
    monkeypatch.setattr(diagnostics, "gradient_snr", lambda model, *a, **k: seen.append(model) or real(model, *a, **k))
    batch = {k: v[:16] for k, v in load_dataset("toy", seed=0).train.modalities.items()}
    errors = []

    def run():
        try:
            backend.gradient_snr(shared, batch, [1, 3], ["iwae", "dreg"], repeats=3)
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert len(seen) == 2 and all(m is not shared for m in seen) and seen[0] is not seen[1]
    assert all(p.grad is None for p in shared.parameters())
    assert all(torch_equal(a, p) for a, p in zip(before, shared.parameters()))


def torch_equal(a, b) -> bool:
    import torch

    return bool(torch.equal(a, b.detach()))


def test_a_real_error_is_not_disguised_as_unavailable():
    from app import backend, widgets

    assert widgets.safe(lambda: (_ for _ in ()).throw(backend.Unavailable("no labels"))) is None
    with pytest.raises(ZeroDivisionError):
        widgets.safe(lambda: 1 / 0)


def test_private_latent_size_is_a_setup_control_link_and_job_option():
    """The Train page's "Private latent per modality" control, its link value (validated and
    clamped) and the job it trains: a model with that private_dim (MMVAE+)."""
    at = fresh({"dataset": "toy", "fusion": "moe", "private_dim": "3"})
    no_errors(at)
    assert at.session_state["setup"]["private_dim"] == 3
    assert at.number_input(key="w_private_dim").value == 3
    q = {k: (v[0] if isinstance(v, list) else v) for k, v in at.query_params.items()}
    assert q["private_dim"] == "3"
    at.number_input(key="w_private_dim").set_value(2).run(timeout=TIMEOUT)
    assert at.session_state["setup"]["private_dim"] == 2
    clamped = fresh({"private_dim": "99"})
    assert clamped.session_state["setup"]["private_dim"] == 8
    assert fresh().session_state["setup"]["private_dim"] == 0

    from app import jobs, state

    spec = state.training_spec({**state.DEFAULT_SETUP, "fusion": "moe", "private_dim": 2, "epochs": 1})
    trainer = jobs.build_trainer({**spec, "n_train": 64, "n_val": 32, "n_monitor": 32})[0]
    assert trainer.model.private_dim == 2 and trainer.model.fusion == "moe"


def test_a_model_with_private_latents_trained_on_the_train_page_works_on_every_page():
    """Play with a private latent per modality (MoE, digit halves: images, labels, coherence), then
    every page, the Swap style page included, draws with that session model and no error."""
    at = fresh({"dataset": "digits-halves", "fusion": "moe"})
    play_tiny_model(at, w_private_dim=2)
    entry = at.session_state["active"]
    assert entry["source"] != "shipped"
    assert entry["model"].private_dim == 2 and entry["model"].fusion == "moe"
    visit_every_page(at, "private latents")
    at.switch_page("views/style.py")
    at.run(timeout=TIMEOUT)
    no_errors(at)
    assert at.get("plotly_chart") or at.get("imgs") or at.get("image"), "Swap style drew nothing"
