"""The first page's server-side ordering for a room (app/state.py ``wait_turn``/``end_turn``, and
the static-file chunk size set in app/streamlit_app.py): every run gives its turn back."""
from __future__ import annotations

import os
import threading

import pytest

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

os.environ["MMVAE_APP_WARM"] = "0"  # no background warm-up thread in AppTest
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENTRY = os.path.join(ROOT, "app", "streamlit_app.py")


def free_turns() -> int:
    """How many turns can be taken now without waiting (all given back afterwards)."""
    from app import state

    taken = 0
    while state._PAGE_TURNS.acquire(blocking=False):
        taken += 1
    for _ in range(taken):
        state._PAGE_TURNS.release()
    return taken


def test_a_turn_is_held_once_per_run_and_given_back():
    from app import state

    seen = {}

    def run() -> None:
        state.wait_turn()
        state.wait_turn()  # a second call in the same run takes no second turn
        seen["during"] = free_turns()
        state.end_turn()
        state.end_turn()  # giving back twice releases once
        seen["after"] = free_turns()

    t = threading.Thread(target=run)
    t.start()
    t.join(timeout=30)
    assert seen == {"during": state.PAGE_TURNS - 1, "after": state.PAGE_TURNS}


def test_app_runs_give_their_turns_back():
    """Train page runs (the first page, a Reset that reruns it, and another page) leave every turn free."""
    from app import state

    at = AppTest.from_file(ENTRY, default_timeout=60)
    at.run(timeout=60)
    assert not at.exception, [e.value for e in at.exception]
    assert len(at.get("plotly_chart")) >= 1  # the first chart was drawn before the page's turn
    assert free_turns() == state.PAGE_TURNS
    at.button(key="btn_reset").click().run(timeout=60)  # st.rerun inside the fragment
    assert not at.exception, [e.value for e in at.exception]
    assert free_turns() == state.PAGE_TURNS
    at.switch_page("views/compare.py").run(timeout=60)
    assert not at.exception, [e.value for e in at.exception]
    assert free_turns() == state.PAGE_TURNS


def test_static_files_go_out_in_large_chunks():
    starlette = pytest.importorskip("starlette.responses")
    at = AppTest.from_file(ENTRY, default_timeout=60)
    at.run(timeout=60)
    assert starlette.FileResponse.chunk_size == 1 << 20


@pytest.mark.parametrize("name", ["toy-poe", "toy-moe"])
def test_first_chart_is_the_opened_checkpoints_saved_curves(name):
    """The first chart's figure is built once per server (state._shipped_curves): each session, in
    whichever order, still sees the saved curves of the checkpoint its link opened."""
    import json

    from app import figures, state

    at = AppTest.from_file(ENTRY, default_timeout=60)
    at.query_params["model"] = name
    at.run(timeout=60)
    assert not at.exception, [e.value for e in at.exception]
    h = state.shipped_header(name)
    fig, _ = figures.training_curves(h["history"]["records"], h["train"].get("eval_K") or h["train"].get("K", 1))
    shown = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert [t["y"] for t in shown["data"]] == [list(t.y) for t in fig.data]
