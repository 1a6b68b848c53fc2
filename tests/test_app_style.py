"""The "Swap style (private latents)" page under AppTest: the grid for a model with private latents,
a plain sentence (no grid, no error) for one without, and the coherence comparison for both."""
from __future__ import annotations

import pytest

pytest.importorskip("streamlit")

from tests.test_app import TIMEOUT, fresh, no_errors  # noqa: E402


def open_style(name: str):
    at = fresh()
    at.switch_page("views/style.py")
    at.run(timeout=TIMEOUT)
    at.selectbox(key="style-picker").set_value(f"shipped: {name}")
    at.run(timeout=TIMEOUT)
    no_errors(at)
    assert at.session_state["active"]["name"] == name
    return at


def test_lesson_6_link_opens_the_style_page_with_coherence_and_the_swap_grid():
    from app.lessons import LESSONS

    lesson = LESSONS["shared-not-enough"]
    at = fresh({"lesson": "shared-not-enough"})
    no_errors(at)
    assert at.title[0].value.startswith("Swap style"), at.title[0].value
    assert at.session_state["active"]["name"] == lesson["checkpoint"] == "digits-poly-plus"
    q = {k: (v[0] if isinstance(v, list) else v) for k, v in at.query_params.items()}
    assert q["lesson"] == "shared-not-enough" and q["model"] == lesson["checkpoint"]
    assert all(q[k] == str(v) for k, v in lesson["setup"].items()), q
    assert at.selectbox(key="style-compare").value == "digits-poly-mopoe"  # the same data, shared z only
    assert len(at.get("plotly_chart")) == 2  # coherence bars + the swap grid
    assert not any("no private latents" in c.value for c in at.caption)
    at.selectbox(key="style-target").set_value("m0")
    at.run(timeout=TIMEOUT)
    no_errors(at)
    at.multiselect(key="style-given-m0").set_value(["m1", "m2"])
    at.run(timeout=TIMEOUT)
    no_errors(at)
    assert len(at.get("plotly_chart")) == 2
    assert any("inferred from m1 + m2" in c.value for c in at.caption)


def test_style_page_says_a_shared_only_model_has_no_style_to_swap():
    at = open_style("digits-poly-mopoe")
    assert any("no private latents" in c.value for c in at.caption)
    assert len(at.get("plotly_chart")) == 1  # the coherence bars only
