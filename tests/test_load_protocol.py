"""The protocol-level load test's client (benchmarks/load_test_protocol.py) against a real server:
a teacher first, then two students at once: both get a chart; one presses Play and sees its own trained model on two pages, the
other still sees the shipped model. Keeps the client from rotting when Streamlit or the app changes."""
from __future__ import annotations

import asyncio
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))

from load_test_protocol import SIDEBAR, Student  # noqa: E402
from tests.app_server import streamlit_server  # noqa: E402


async def two_students(url: str) -> tuple[dict, dict, Student]:
    start = asyncio.Event()
    # as in the load tests, a teacher opens the app first (Train, then Latent embeddings): on a server
    # that just started, a page drawing a plotly figure while another thread imports pandas can meet
    # a partially imported pandas (reported to the lead; not what this test guards)
    start.set()
    teacher = await Student(url, 4100, 45.0).run_student(start, 0.0, lambda: None)
    assert teacher["errors"] == [], teacher["errors"]
    start = asyncio.Event()
    a, b = Student(url, 4101, 45.0), Student(url, 4102, 45.0)
    tasks = [asyncio.create_task(a.run_student(start, 0.0, lambda: None)),
             asyncio.create_task(b.run_student(start, 0.0, lambda: None, play=False))]
    start.set()
    out_a, out_b = await asyncio.gather(*tasks)
    return out_a, out_b, b


def test_protocol_students_chart_play_and_own_model():
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    with streamlit_server() as (url, _):
        out_a, out_b, b = asyncio.run(two_students(url))
    assert out_a["errors"] == [] and out_b["errors"] == [], (out_a["errors"], out_b["errors"])
    assert out_a["first_chart_s"] > 0 and out_b["first_chart_s"] > 0
    assert "trained_s" in out_a and "trained_s" not in out_b
    # a's sidebar on Latent embeddings names a's model, trained in a's session
    assert "seed 4101" in out_a["model"] and "trained in this session" in out_a["model"], out_a["model"]
    # b did not train: its sidebar shows the shipped model, never a's
    side_b = b.texts(SIDEBAR)
    assert "trained in this session" not in side_b and "4101" not in side_b, side_b
