"""Workshop lessons: a guided path of presets that load shipped checkpoints instantly."""
from __future__ import annotations

import streamlit as st

from app import links
from app.lessons import LESSONS

st.title("Workshop lessons")
st.markdown("A guided path through multimodal VAEs. Each lesson opens a trained model (no waiting) and the page "
            "to look at. The address bar then holds the whole setup: copy it to share the lesson.")
current = links.setup().get("lesson")
for lid, lesson in LESSONS.items():
    with st.container(border=True):
        st.subheader(lesson["title"] + ("  (open)" if lid == current else ""))
        st.markdown(lesson["text"])
        s = lesson["setup"]
        st.caption(f"Preset: {s['dataset']} data, {s['fusion'].upper()} fusion, {s['estimator'].upper()} K={s['K']}, "
                   f"model `{lesson['checkpoint']}`")
        if st.button("Open this lesson", key=f"lesson-{lid}", icon=":material/arrow_forward:"):
            links.apply_lesson(lid)
            st.switch_page(st.session_state["pages"][lesson["page"]], query_params=links.query())
if current:
    if st.button("Leave the lesson (show all controls)", key="lesson-leave"):
        links.leave_lesson()
        st.rerun()
