"""The training job pool on Ray (app/jobs.py ``RayBackend``): a local Ray instance bound to
127.0.0.1, started by the test and stopped after."""
from __future__ import annotations

import pytest

from app import jobs
from tests.test_jobs import LONG, TINY, ended, wait_for


def test_ray_backend_runs_reports_and_cancels():
    """The same API on a local Ray instance bound to 127.0.0.1 (started here, stopped after)."""
    ray = pytest.importorskip("ray")
    if ray.is_initialized():
        pytest.skip("a Ray instance is already running in this process")
    try:
        backend = jobs.RayBackend("local", num_cpus=1, _node_ip_address="127.0.0.1", object_store_memory=80 * 2**20)
        pool = jobs.JobPool(backend)
        assert pool.workers == 1
        a = pool.submit("a", TINY)
        with pytest.raises(jobs.JobLimitError):
            pool.submit("a", TINY)
        b = pool.submit("b", LONG)
        assert pool.status(b).position in (1, 2)
        done = wait_for(pool, a, ended, 120)
        assert done.state == "done", done.error
        assert [r["epoch"] for r in done.result["history"]["records"]] == [1, 2, 3]
        wait_for(pool, b, lambda s: s.state == "running" and s.epoch >= 1, 60)  # progress from the actor
        pool.cancel(b)
        assert wait_for(pool, b, ended, 30).state == "cancelled"
        local = jobs.make_pool(workers=1, warm=False)
        try:  # same spec, same weights, whichever backend ran it
            lj = local.submit("a", TINY)
            assert wait_for(local, lj, ended).result["weights"] == done.result["weights"]
        finally:
            local.close()
        pool.close()
    finally:
        ray.shutdown()
