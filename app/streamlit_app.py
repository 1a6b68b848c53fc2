"""mmvae workshop app: ``python -m streamlit run app/streamlit_app.py`` from the repo root."""
from __future__ import annotations

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:  # a fresh clone works without installing the package
    sys.path.insert(0, ROOT)

import streamlit as st  # noqa: E402

try:  # Streamlit's server (uvicorn + Starlette) sends its static files with Starlette's FileResponse
    from starlette.responses import FileResponse
except ImportError:  # another server: nothing to tune
    FileResponse = None
# Every student's browser fetches the frontend's scripts on its first visit, plotly's 4.7 MB one with
# the first chart (7.5 MB in all). Starlette reads and sends a file in 64 KiB chunks, each a thread
# hop and a socket write on the server's one Python thread: with 30 students arriving at once py-spy
# found these chunks at about half of the server's CPU before their first charts (README, "Protocol-
# level load test"). 1 MiB chunks send the same bytes with 16 times fewer hops.
if FileResponse is not None and getattr(FileResponse, "chunk_size", 0) < 1 << 20:
    FileResponse.chunk_size = 1 << 20

# torch, mmvae and the diagnostics are imported lazily (app/state.py, app/backend.py): the first
# page draws the shipped model's saved curves before they load. The icon is a local file: the
# page never fetches anything from another host.
ICON = os.path.join(ROOT, "app", "static", "icon.png")
st.set_page_config(page_title="mmvae: multimodal VAEs", page_icon=ICON, layout="wide")

from app import links, state, warmup, widgets  # noqa: E402

# The pages are in app/views, deliberately not app/pages: Streamlit treats a "pages" folder beside the
# entry script as its old multipage mode and, on a fresh server opened at a page's URL (a shared
# link), runs that page alone, without this script: no setup, no link handling, no sidebar.
PAGES = {
    "train": st.Page("views/train.py", title="Train", icon=":material/model_training:", default=True),
    "compare": st.Page("views/compare.py", title="Compare fusion rules", icon=":material/compare:"),
    "overlap": st.Page("views/overlap.py", title="Posterior overlap", icon=":material/join_inner:"),
    "bounds": st.Page("views/bounds.py", title="Bound gaps", icon=":material/stacked_line_chart:"),
    "generation": st.Page("views/generation.py", title="Cross-modal generation", icon=":material/swap_horiz:"),
    "gradients": st.Page("views/gradients.py", title="Gradient noise", icon=":material/graphic_eq:"),
    "embeddings": st.Page("views/embeddings.py", title="Latent embeddings", icon=":material/scatter_plot:"),
    "style": st.Page("views/style.py", title="Swap style (private latents)", icon=":material/palette:"),
    "lessons": st.Page("views/lessons.py", title="Workshop lessons", icon=":material/school:"),
    "well": st.Page("views/well.py", title="Your well", icon=":material/oil_barrel:"),
}
st.session_state["pages"] = PAGES
warmup.start()  # once per server: torch and numba (UMAP) compile in a background thread

goto = links.init_session()
page = st.navigation({"Explore": [PAGES[k] for k in ("train", "compare", "overlap", "bounds", "generation",
                                                     "gradients", "embeddings", "style")],
                      "Workshop": [PAGES["lessons"]], "Geophysics": [PAGES["well"]]})
if goto is not None and page is PAGES["train"] and goto != "train":
    st.switch_page(PAGES[goto], query_params=links.query())  # ?lesson=... opens the lesson's page

for note in st.session_state.pop("url_notes", []):
    st.warning(widgets.plain(note), icon=":material/link:")  # link values are shown literally, never as Markdown

# "Quick analyses" is a widget in the sidebar, drawn after the page: keep its value in a plain
# session key so a run that stops early (st.stop, an error) cannot reset it.
QUICK_KEY = "_quick_choice"
st.session_state["quick"] = st.session_state.get(QUICK_KEY, state.quick())


def remember_quick() -> None:
    st.session_state[QUICK_KEY] = st.session_state["quick"]


def sidebar() -> None:
    with st.sidebar:
        entry = links.current_model()
        st.markdown("#### Current model")
        st.caption(widgets.model_caption(entry))
        widgets.checkpoint_download(entry, key="sidebar-ckpt")
        st.toggle("Quick analyses", key="quick", on_change=remember_quick,
                  help="Fewer samples, repeats and data points, so every page answers in about a second. Switch "
                       "off for the diagnostics' full settings (slower, smaller error bars).")
        st.caption(f"Device: {state.device()}. Share this page and setup: copy the address bar.")


try:
    page.run()
finally:  # also after st.stop() or an error on the page: the sidebar and the link stay right
    try:
        sidebar()
        links.sync_url()
    finally:
        state.end_turn()  # the page's turn (state.wait_turn), always given back
