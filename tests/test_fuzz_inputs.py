"""Bad input, tried as a careless or hostile user would (issue #9).

1. A corpus of malformed files and option values (tests/fuzz_cases.py, generated here, nothing
   checked in) is played through the command line in ONE subprocess under an address-space limit
   (RLIMIT_AS) and a per-case time limit: every case ends in success or in its documented one-line
   ``mmvae: error:`` (exit 2), and the existing good checkpoint every failing run targets is
   unchanged byte for byte.
2. Property-based (Hypothesis) over npz contents and over option values: a DataError / one-line
   option error or success, nothing else, and option validation agrees with the range table.
3. NaN that appears only in validation is flagged in the history; temporary files are never
   listed as models and stale ones are cleaned safely.
"""
import contextlib
import io
import json
import os
import resource
import subprocess
import sys
from collections import Counter

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from mmvae import limits
from mmvae.cli import build_parser, main, validate_args
from mmvae.data import DataError, load_dataset
from mmvae.errors import MmvaeError
from tests.fuzz_cases import FAST, GOOD, RUNNER, make_corpus

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ADDRESS_SPACE = 3 * 2**30  # torch itself maps ~0.7 GB; the forged files ask for 3.5 GB to 80 GB
PER_CASE_S = 30


def _limit_memory():
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fuzz")
    good = folder / GOOD
    assert main(["train", "--data", "toy", "--data-option", "n=200", "--out", str(good), *FAST]) == 0
    return folder, good, make_corpus(str(folder), str(good))


def test_every_malformed_input_ends_in_its_documented_error_within_bounded_memory(corpus):
    folder, good, cases = corpus
    before = good.read_bytes()
    env = {**os.environ, "PYTHONPATH": ROOT, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run([sys.executable, "-c", RUNNER], input=json.dumps([[c[1] for c in cases], PER_CASE_S]),
                          capture_output=True, text=True, cwd=folder, env=env, preexec_fn=_limit_memory,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    failures, counts = [], Counter()
    for (category, argv, expect), r in zip(cases, report["results"], strict=True):
        lines = [ln for ln in r["stderr"].strip().splitlines() if ln.strip()]
        last = lines[-1] if lines else ""
        if expect == "ok":
            good_case = r["rc"] == 0
        else:
            good_case = (r["rc"] == 2 and last.startswith("mmvae: error:") and expect in last
                         and "Traceback" not in r["stderr"] and len(last) < 500)
        counts[(category, "ok" if expect == "ok" else "error", good_case)] += 1
        if not good_case:
            failures.append(f"{category} {argv[:4]}...: rc={r['rc']!r}, expected {expect!r}, got {last!r}")
    summary = {f"{c}/{e}": n for (c, e, ok), n in sorted(counts.items()) if ok}
    print(f"\nfuzz corpus: {len(cases)} cases, {summary}, peak RSS {report['maxrss_mb']} MB, "
          f"slowest {max(r['seconds'] for r in report['results']):.1f} s")
    assert not failures, "\n".join(failures)
    assert good.read_bytes() == before, "a failing run changed the existing checkpoint"
    assert (folder / "fresh-npz.safetensors").exists() and (folder / "fresh-las.safetensors").exists()
    assert (folder / "good.diverged.safetensors").exists()
    leftovers = [n for n in os.listdir(folder) if n.startswith(".mmvae-tmp-") or n.startswith(".tmp-")]
    assert not leftovers


# ----------------------------------------------------------------------------- Hypothesis: npz
_KEYS = st.one_of(st.sampled_from(["x1", "AI", "m0", "top", "a.b", "training", "forward", "to", "labels", "a/b",
                                   "-x", "", "x" * 70, "é"]),
                  st.text(alphabet=st.characters(codec="ascii", exclude_characters="\x00/"), min_size=1, max_size=8))
_DTYPES = st.sampled_from([np.float64, np.float32, np.float16, np.int64, np.uint8, np.bool_, np.complex64])


@st.composite
def _npz_contents(draw):
    n = draw(st.integers(0, 12))
    keys = draw(st.lists(_KEYS, min_size=0, max_size=4, unique=True))
    arrays = {}
    for k in keys:
        rows = n if draw(st.booleans()) or k == "labels" else draw(st.integers(0, 12))
        shape = (rows, *draw(st.lists(st.integers(1, 3), min_size=0, max_size=3)))
        arrays[k] = draw(hnp.arrays(draw(_DTYPES), shape))  # NaN, inf, huge values included
    return arrays


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(arrays=_npz_contents())
def test_any_npz_contents_load_or_raise_a_data_error(tmp_path, arrays):
    path = tmp_path / "h.npz"
    np.savez(path, **arrays)
    try:
        bundle = load_dataset(str(path))
    except DataError as e:
        assert str(e).startswith(str(path)) and "\n" not in str(e)
        return
    # success: every modality is a finite float tensor under a usable name
    for name, x in bundle.train.modalities.items():
        assert name in arrays and torch.isfinite(x).all() and x.dtype == torch.float32
        assert not np.iscomplexobj(arrays[name])


# ------------------------------------------------------------------------- Hypothesis: options
_INTS = st.one_of(st.integers(-3, 20), st.integers(10**3, 10**12), st.sampled_from([0, 1, 1024, 1025, 10_000, 10_001]))
_DEVICES = st.sampled_from(["auto", "cpu", "meta", "cuda", "cuda:3", "xla", "mps", "cpu:0", "", "garbage"])


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(K=_INTS, latent=_INTS, hidden=st.lists(_INTS, min_size=1, max_size=20), eval_K=_INTS, batch=_INTS,
       device=_DEVICES)
def test_option_validation_agrees_with_the_range_table(tmp_path, K, latent, hidden, eval_K, batch, device):
    argv = ["train", "--out", str(tmp_path / "m.safetensors"), "-K", str(K), "--latent-dim", str(latent),
            "--hidden", ",".join(map(str, hidden)), "--eval-K", str(eval_K), "--batch-size", str(batch),
            "--device", device]
    inside = lambda key, v: limits.RANGES[key][0] <= v <= limits.RANGES[key][1]  # noqa: E731
    valid = (inside("K", K) and inside("latent_dim", latent) and all(inside("hidden", h) for h in hidden)
             and len(hidden) <= limits.RANGES["hidden_layers"][1] and inside("eval_K", eval_K)
             and inside("batch_size", batch) and device in ("auto", "cpu", "cpu:0"))
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            args = build_parser().parse_args(argv)
        validate_args(args)
    except SystemExit as e:  # argparse's format errors: one line, status 2
        assert e.code == 2 and not valid
        return
    except MmvaeError as e:
        assert not valid and "\n" not in str(e), str(e)
        return
    assert valid, argv


# --------------------------------------------------------------------- NaN only in validation
def test_nan_only_in_validation_is_flagged_in_the_history():
    from mmvae import MultimodalData, build_model, config_for_specs, fit
    from tests.helpers import small_multimodal_data

    train, val = small_multimodal_data(60)
    x = dict(val.modalities)
    x[next(iter(x))] = x[next(iter(x))].clone()
    x[next(iter(x))][0, 0] = 1e30  # finite data whose squared error overflows float32: the bound is -inf
    bad_val = MultimodalData(x, val.labels)
    specs = {k: type("S", (), {"name": k, "shape": tuple(v.shape[1:]), "likelihood": "gaussian", "kind": "vector"})()
             for k, v in train.modalities.items()}
    model = build_model(config_for_specs(specs, 2, network={"type": "mlp", "hidden": [8]}), seed=0)
    history = fit(model, train, bad_val, epochs=2, device="cpu")
    assert history.stopped is None
    assert [r["val_nonfinite"] for r in history.records] == [True, True] and history.val_nonfinite_epochs == [1, 2]
    clean = fit(build_model(model.config, seed=0), train, val, epochs=1, device="cpu")
    assert clean.records[0]["val_nonfinite"] is False and clean.val_nonfinite_epochs == []
