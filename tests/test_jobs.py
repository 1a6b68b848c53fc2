"""The training job pool (app/jobs.py): local worker processes and Ray, same API.

A job runs, reports progress, can be cancelled and paused (and resumes exactly), the per-session
limit holds, the queue is first in first out, and 10 jobs submitted at once give bit-identical
weights to the same job run alone."""
from __future__ import annotations

import threading
import time

import pytest

from app import jobs

TINY = {"dataset": "toy", "seed": 3, "fusion": "poe", "estimator": "dreg", "K": 4, "latent_dim": 2,
        "epochs": 3, "n_train": 256, "n_val": 64}
LONG = dict(TINY, epochs=200, n_train=2000)  # cancelled long before it ends
DEADLINE_S = 90


def wait_for(pool, job_id, predicate, deadline_s: float = DEADLINE_S):
    t0 = time.monotonic()
    while True:
        status = pool.status(job_id)
        if predicate(status):
            return status
        assert time.monotonic() - t0 < deadline_s, f"job {job_id} stuck in {status}"
        time.sleep(0.05)


def ended(status) -> bool:
    return status.state not in jobs.STATES_ACTIVE


@pytest.fixture(scope="module")
def pool():
    p = jobs.make_pool(workers=2)
    yield p
    p.close()


def test_a_job_runs_and_returns_weights_and_history(pool):
    job = pool.submit("alice", TINY)
    status = wait_for(pool, job, ended)
    assert status.state == "done", status.error
    assert status.epoch == 3 and [r["epoch"] for r in status.records] == [1, 2, 3]
    result = status.result
    assert [r["epoch"] for r in result["history"]["records"]] == [1, 2, 3]
    assert result["cpu_s"] > 0
    model = jobs.model_from_result(result)
    assert model.fusion == "poe" and model.latent_dim == 2
    pool.forget(job)
    assert pool.status(job) is None


def test_progress_cancel_limit_and_fifo_queue(pool):
    a = pool.submit("a", LONG)
    b = pool.submit("b", LONG)
    with pytest.raises(jobs.JobLimitError):
        pool.submit("a", TINY)  # one active job per session
    c = pool.submit("c", TINY)
    d = pool.submit("d", TINY)
    # two workers: a and b run and report epochs while c and d wait, in order
    wait_for(pool, a, lambda s: s.state == "running" and s.epoch >= 2)
    wait_for(pool, b, lambda s: s.state == "running" and s.epoch >= 1)
    sc, sd = pool.status(c), pool.status(d)
    assert (sc.state, sc.position, sd.state, sd.position) == ("queued", 1, "queued", 2)
    assert sc.eta_s is not None and sd.eta_s >= sc.eta_s > 0
    pool.cancel(d)  # a queued job never runs
    assert pool.status(d).state == "cancelled"
    pool.cancel(a)  # a running job stops within a step or so
    assert wait_for(pool, a, ended, 30).state == "cancelled"
    assert wait_for(pool, c, lambda s: s.state != "queued", 30).state in ("running", "done")
    pool.cancel(b)
    assert wait_for(pool, b, ended, 30).state == "cancelled"
    assert wait_for(pool, c, ended).state == "done"
    for j in (a, b, c, d):
        pool.forget(j)
    assert pool.submit("a", TINY)  # the session may train again


def test_pause_then_resume_equals_an_uninterrupted_run(pool):
    spec = dict(TINY, epochs=6, seed=5)
    alone = pool.submit("solo", spec)
    reference = wait_for(pool, alone, ended).result
    job = pool.submit("p", spec)
    wait_for(pool, job, lambda s: s.epoch >= 1)
    pool.pause(job)
    paused = wait_for(pool, job, ended)
    assert paused.state == "paused" and 1 <= paused.epoch < 6, (paused.state, paused.epoch)
    resumed = pool.submit("p", dict(spec, resume=paused.result["resume"]))
    final = wait_for(pool, resumed, ended)
    assert final.state == "done" and final.epoch == 6
    assert final.result["weights"] == reference["weights"]
    assert final.result["history"]["records"][-1]["val_iwae"] == reference["history"]["records"][-1]["val_iwae"]


def test_ten_sessions_at_once_give_the_result_of_one_alone(pool):
    spec = dict(TINY, seed=11, epochs=2)
    alone = pool.submit("alone", spec)
    reference = wait_for(pool, alone, ended).result
    ids: list[str] = []
    lock = threading.Lock()

    def student(i: int) -> None:
        job = pool.submit(f"student-{i}", spec)
        with lock:
            ids.append(job)

    threads = [threading.Thread(target=student, args=(i,)) for i in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    results = [wait_for(pool, j, ended).result for j in ids]
    assert len(results) == 10
    for r in results:
        assert r["state"] == "done"
        assert r["weights"] == reference["weights"]  # bit-identical safetensors bytes
        assert r["history"]["records"][-1]["val_iwae"] == reference["history"]["records"][-1]["val_iwae"]
    other = pool.submit("alone", dict(spec, seed=12))
    assert wait_for(pool, other, ended).result["weights"] != reference["weights"]  # the test can tell seeds apart



@pytest.mark.parametrize("initializer", ["app.jobs:init_worker", "app.well_jobs:worker_init"])
def test_workers_train_at_a_lower_cpu_priority_than_the_server(initializer, monkeypatch):
    """The Streamlit process draws every page of the room: the job pool's workers and the "Your
    well" page's worker must not take the CPU first (niceness MMVAE_JOB_NICE, default 10)."""
    import importlib
    import multiprocessing
    import os
    from concurrent.futures import ProcessPoolExecutor

    parent = os.getpriority(os.PRIO_PROCESS, 0)
    if parent >= 19:
        pytest.skip("this test already runs at the lowest priority")
    monkeypatch.setenv("MMVAE_JOB_NICE", "7")
    module, name = initializer.split(":")
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"),
                             initializer=getattr(importlib.import_module(module), name)) as ex:
        from app.jobs import plain_main

        with plain_main():  # an earlier AppTest in this process may have left its script as __main__
            future = ex.submit(os.getpriority, os.PRIO_PROCESS, 0)
        niceness = future.result(timeout=DEADLINE_S)
    assert niceness == min(19, parent + 7)
