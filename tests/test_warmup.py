"""The server's warm-up (app/warmup.py) lets a room's pages go first: UMAP's numba compilation,
which holds the GIL for seconds, starts only once no page run has started for QUIET_S seconds."""
from __future__ import annotations

from app import warmup


def test_umap_compilation_waits_until_no_page_has_run_for_quiet_s(monkeypatch):
    now = [100.0]
    runs_until = 110.0  # pages keep starting (one per fake second) until t = 110

    def sleep(s: float) -> None:
        now[0] += s
        if now[0] <= runs_until and now[0] == int(now[0]):
            warmup._LAST_RUN[0] = now[0]  # a page run called warmup.start()

    monkeypatch.setattr(warmup, "_LAST_RUN", [now[0]])
    warmup.wait_for_quiet(clock=lambda: now[0], sleep=sleep)
    assert warmup._LAST_RUN[0] == runs_until
    assert runs_until + warmup.QUIET_S <= now[0] <= runs_until + warmup.QUIET_S + 0.5


def test_start_records_each_page_run(monkeypatch):
    monkeypatch.setattr(warmup, "_LAST_RUN", [0.0])
    monkeypatch.setattr(warmup, "_start_once", lambda: None)  # no thread in this test
    warmup.start()
    assert warmup._LAST_RUN[0] > 0.0


def test_the_server_config_skips_per_run_gc_and_file_watching():
    """Measured with py-spy under benchmarks/load_test.py: Streamlit's full gc.collect after every
    script and fragment run and its per-session module walk cost more server time than the pages."""
    import os

    import pytest

    tomllib = pytest.importorskip("tomllib")  # Python 3.11+

    with open(os.path.join(os.path.dirname(warmup.__file__), "..", ".streamlit", "config.toml"), "rb") as f:
        config = tomllib.load(f)
    assert config["runner"]["postScriptGC"] is False
    assert config["server"]["fileWatcherType"] == "none"
