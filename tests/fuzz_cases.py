"""Malformed-input corpus for tests/test_fuzz_inputs.py, generated on the fly (nothing is checked in),
and the runner that plays many command-line cases in ONE subprocess under an address-space limit.

``make_corpus(folder)`` writes the files and returns ``[(category, argv, expect)]`` where ``expect``
is ``"ok"`` or a substring of the one-line ``mmvae: error:`` the case must end in. Every failing
``train`` case writes to ``good.safetensors``, an existing good checkpoint that must not change.
"""
from __future__ import annotations

import io
import json
import os
import pickle
import struct
import zipfile

import numpy as np

GOOD = "good.safetensors"
FAST = ["--epochs", "1", "--quiet", "--hidden", "8", "--batch-size", "64"]


def _npy_header(shape, descr="<f8") -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": descr, "fortran_order": False, "shape": tuple(shape)})
    return buf.getvalue()  # magic string and header


def _zip(path, members: dict[str, bytes]) -> None:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        for name, blob in members.items():
            z.writestr(name, blob)


def _forge_sizes(path, declared_size: int) -> None:
    """Patch every central-directory entry's uncompressed size: the zip now *claims* to hold
    ``declared_size`` bytes per array (what a hostile file can do)."""
    blob = bytearray(open(path, "rb").read())
    i = blob.find(b"PK\x01\x02")
    while i != -1:
        struct.pack_into("<I", blob, i + 24, declared_size)
        i = blob.find(b"PK\x01\x02", i + 4)
    open(path, "wb").write(bytes(blob))


def _las(path, curves=("DT", "DTS", "RHOB"), rows=400, header_lines=0, long_line=0, data=True) -> None:
    rng = np.random.default_rng(0)
    units = {"DT": "us/ft", "DTS": "us/ft", "RHOB": "g/cm3", "GR": "gAPI"}
    lines = ["~Version information", " VERS. 2.0 :", " WRAP. NO :", "~Well", " STRT.m 1000.0 :",
             f" STOP.m {1000 + 0.5 * (rows - 1):.1f} :", " STEP.m 0.5 :", " NULL. -999.25 :"]
    lines += [f" X{i:06d}. {i} : filler" for i in range(header_lines)]
    if long_line:
        lines.append(" LONG. " + "x" * long_line + " :")
    lines += ["~Curve information", " DEPT.m : depth"] + [f" {c}.{units.get(c, '')} : {c}" for c in curves]
    if data:
        lines.append("~A")
        base = {"DT": 90.0, "DTS": 160.0, "RHOB": 2.4, "GR": 60.0}
        for r in range(rows):
            vals = [1000 + 0.5 * r] + [base.get(c, 1.0) * (1 + 0.05 * rng.standard_normal()) for c in curves]
            lines.append(" ".join(f"{v:.4f}" for v in vals))
    open(path, "w").write("\n".join(lines) + "\n")


def make_corpus(folder: str, good_checkpoint: str) -> list[tuple[str, list[str], str]]:
    """Write the malformed files into ``folder`` and return the cases (see the module docstring)."""
    from safetensors import safe_open
    from safetensors.torch import save_file
    import torch

    j = lambda name: os.path.join(folder, name)  # noqa: E731
    cases: list[tuple[str, list[str], str]] = []
    rng = np.random.default_rng(0)

    def train(data, *extra):
        return ["train", "--data", data, "--out", GOOD, *FAST, *extra]

    # ------------------------------------------------------------------ npz files
    a, b = rng.normal(size=(120, 3)), rng.normal(size=(120, 2))
    np.savez(j("ok.npz"), left=a, right=b, labels=np.arange(120) % 3)
    cases.append(("npz", ["train", "--data", j("ok.npz"), "--out", "fresh-npz.safetensors", *FAST], "ok"))
    _zip(j("huge_declared.npz"), {"a.npy": _npy_header((10**6, 10**4)) + b"\0" * 4096,
                                  "b.npy": _npy_header((10**6, 10**4)) + b"\0" * 4096})
    cases.append(("npz", train(j("huge_declared.npz")), "truncated or forged"))
    # declares 3.5 GB per array and a zip that claims to hold it: only the size limit stops it
    big = (10**5, 4375)  # 3.5e9 bytes as float64
    _zip(j("huge_forged.npz"), {"a.npy": _npy_header(big) + b"\0" * 4096, "b.npy": _npy_header(big) + b"\0" * 4096})
    _forge_sizes(j("huge_forged.npz"), 4_000_000_000)
    cases.append(("npz", train(j("huge_forged.npz")), "above the limit"))
    np.savez(j("small_for_cap.npz"), a=rng.normal(size=(2000, 50)), b=rng.normal(size=(2000, 50)))
    cases.append(("npz", train(j("small_for_cap.npz"), "--max-data-gb", "0.0001"), "above the limit"))
    obj = np.empty((120, 1), dtype=object)
    obj[:, 0] = [{"x": i} for i in range(120)]
    np.savez(j("pickled.npz"), a=obj, b=b)
    cases.append(("npz", train(j("pickled.npz")), "unpickling"))
    for key, label in (("a.b", "dot"), ("training", "training"), ("forward", "forward"), ("keys", "keys"),
                       ("-x", "dash"), ("x" * 80, "long"), ("a b", "space"), ("\u00e9t\u00e9", "unicode")):
        np.savez(j(f"key_{label}.npz"), **{key: a, "right": b})
        cases.append(("npz", train(j(f"key_{label}.npz")), "cannot name a modality"))
    np.savez(j("complex.npz"), left=a + 1j, right=b)
    cases.append(("npz", train(j("complex.npz")), "complex"))
    for bad, label in ((np.nan, "nan"), (np.inf, "inf")):
        x = a.copy()
        x[5, 1] = bad
        np.savez(j(f"{label}.npz"), left=x, right=b)
        cases.append(("npz", train(j(f"{label}.npz")), "NaN or inf"))
    np.savez(j("strings.npz"), left=np.array([["a"]] * 120), right=b)
    cases.append(("npz", train(j("strings.npz")), "not numeric"))
    np.savez(j("struct.npz"), left=np.zeros(120, dtype=[("x", "f4"), ("y", "f4")]), right=b)
    cases.append(("npz", train(j("struct.npz")), "not numeric"))
    np.savez(j("lengths.npz"), left=a, right=b[:100])
    cases.append(("npz", train(j("lengths.npz")), "different numbers of samples"))
    np.savez(j("one.npz"), left=a)
    cases.append(("npz", train(j("one.npz")), "at least 2"))
    np.savez(j("scalar.npz"), left=np.float64(3.0), right=b)
    cases.append(("npz", train(j("scalar.npz")), "no samples"))
    np.savez(j("empty_axis.npz"), left=np.zeros((0, 3)), right=np.zeros((0, 2)))
    cases.append(("npz", train(j("empty_axis.npz")), "no samples"))
    np.savez(j("sixd.npz"), left=np.zeros((4, 1, 1, 1, 1, 2)), right=np.zeros((4, 2)))
    cases.append(("npz", train(j("sixd.npz")), "axes"))
    np.savez(j("labels.npz"), left=a, right=b, labels=np.full(120, 0.5))
    cases.append(("npz", train(j("labels.npz")), "integers"))
    _zip(j("member.npz"), {"notes.txt": b"hello", "a.npy": _npy_header((2, 2)) + b"\0" * 32})
    cases.append(("npz", train(j("member.npz")), "not a .npy array"))
    _zip(j("badheader.npz"), {"a.npy": b"\x93NUMPY\x01\x00\x10\x00{'descr': oops}   \n", "b.npy": b"xx"})
    cases.append(("npz", train(j("badheader.npz")), "unreadable .npy header"))
    open(j("garbage.npz"), "wb").write(os.urandom(3000))
    cases.append(("npz", train(j("garbage.npz")), "not a readable .npz"))
    blob = open(j("ok.npz"), "rb").read()
    open(j("truncated.npz"), "wb").write(blob[: len(blob) // 2])
    cases.append(("npz", train(j("truncated.npz")), "not a readable .npz"))
    open(j("empty.npz"), "wb").write(b"")
    cases.append(("npz", train(j("empty.npz")), "not a readable .npz"))
    os.mkdir(j("folder.npz"))
    cases.append(("npz", train(j("folder.npz")), "has no .las or .npz files"))  # a folder is a set of wells
    cases.append(("npz", train(j("missing.npz")), "no such file"))
    cases.append(("npz", train(j("ok.npz"), "--data-option", "likelihood=bernoulli"), "outside [0, 1]"))
    cases.append(("npz", train(j("ok.npz"), "--data-option", "fractions=0.5"), "option fractions"))

    # ------------------------------------------------------------------ LAS files
    _las(j("ok.las"))
    cases.append(("las", ["train", "--data", j("ok.las"), "--out", "fresh-las.safetensors", *FAST,
                          "--data-option", "window=16", "--data-option", "stride=8"], "ok"))
    _las(j("huge_header.las"), header_lines=200_000, rows=10)
    cases.append(("las", train(j("huge_header.las")), "more than 10,000 lines"))
    _las(j("long_line.las"), long_line=200_000, rows=10)
    cases.append(("las", train(j("long_line.las")), "longer than"))
    _las(j("no_dts.las"), curves=("DT", "RHOB", "GR"))
    cases.append(("las", train(j("no_dts.las")), "available"))
    _las(j("no_data.las"), data=False)
    cases.append(("las", train(j("no_data.las")), "no ~A"))
    _las(j("too_big.las"))
    cases.append(("las", train(j("too_big.las"), "--max-las-mb", "0.01"), "above the LAS size limit"))
    open(j("binary.las"), "wb").write(os.urandom(5000).replace(b"~", b"_"))
    cases.append(("las", train(j("binary.las")), "LAS"))
    _las(j("short.las"), rows=6)
    cases.append(("las", train(j("short.las")), "need at least 64"))

    # ------------------------------------------------------------------ checkpoints
    with safe_open(good_checkpoint, "pt") as f:
        meta = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    good_blob = open(good_checkpoint, "rb").read()

    def evaluate(path, *extra):
        return ["evaluate", path, "--K", "1,2", *extra]

    cases.append(("checkpoint", evaluate(good_checkpoint), "ok"))
    open(j("truncated.safetensors"), "wb").write(good_blob[: len(good_blob) // 2])
    cases.append(("checkpoint", evaluate(j("truncated.safetensors")), "not a readable mmvae checkpoint"))
    open(j("garbage.safetensors"), "wb").write(os.urandom(4000))
    cases.append(("checkpoint", evaluate(j("garbage.safetensors")), "not a readable mmvae checkpoint"))
    open(j("empty.safetensors"), "wb").write(b"")
    cases.append(("checkpoint", evaluate(j("empty.safetensors")), "not a readable mmvae checkpoint"))
    open(j("hugeheader.safetensors"), "wb").write(struct.pack("<Q", 2**62) + b"{}")
    cases.append(("checkpoint", evaluate(j("hugeheader.safetensors")), "not a readable mmvae checkpoint"))
    open(j("pickled.safetensors"), "wb").write(pickle.dumps({"state_dict": {"w": [1, 2, 3]}}))
    cases.append(("checkpoint", evaluate(j("pickled.safetensors")), "not a readable mmvae checkpoint"))
    torch.save({"w": torch.zeros(3)}, j("torch.pt"))
    cases.append(("checkpoint", evaluate(j("torch.pt")), "not a readable mmvae checkpoint"))
    save_file({"w": torch.zeros(3)}, j("foreign.safetensors"))
    cases.append(("checkpoint", evaluate(j("foreign.safetensors")), "not an mmvae checkpoint"))
    os.mkdir(j("dir.safetensors"))
    cases.append(("checkpoint", evaluate(j("dir.safetensors")), "no such checkpoint"))

    def variant(name, expect, config=None, records=None, new_tensors=None):
        m = dict(meta)
        if config is not None:
            c = json.loads(meta["config"])
            config(c)
            m["config"] = json.dumps(c)
        m.update(records or {})
        save_file(new_tensors if new_tensors is not None else tensors, j(name), metadata=m)
        cases.append(("checkpoint", evaluate(j(name)), expect))

    def net(key, value):
        return lambda c: [mod["network"].__setitem__(key, value) for mod in c["modalities"]]

    variant("huge_features.safetensors", "above the limit", lambda c: c["modalities"][0].__setitem__("shape", [10_000_000]))
    variant("many_hidden.safetensors", "entries of hidden", net("hidden", [16] * 17))
    variant("wide_hidden.safetensors", "above the limit", net("hidden", [16_384, 16_384, 16_384]))
    variant("huge_latent.safetensors", "must be from", lambda c: c.__setitem__("latent_dim", 10**9))
    variant("big_latent.safetensors", "do not fit", lambda c: c.__setitem__("latent_dim", 1000))
    variant("conv_empty.safetensors", "entries of channels", lambda c: [mod.__setitem__(
        "network", {"type": "conv1d", "channels": [], "hidden": 8}) for mod in c["modalities"]])
    variant("hidden_str.safetensors", "must be a list", net("hidden", "128"))
    variant("hidden_neg.safetensors", "must be from", net("hidden", [-5]))
    variant("bad_name.safetensors", "cannot name a modality", lambda c: c["modalities"][0].__setitem__("name", "a.b"))
    variant("shape_float.safetensors", "must be an integer", lambda c: c["modalities"][0].__setitem__("shape", [2.5]))
    variant("no_mods.safetensors", "modalities", lambda c: c.__setitem__("modalities", []))
    variant("mods_dict.safetensors", "modalities", lambda c: c.__setitem__("modalities", {"a": 1}))
    variant("data_list.safetensors", "must be a JSON object", records={"data": "[1, 2, 3]"})
    variant("config_str.safetensors", "must be a JSON object", records={"config": '"poe"'})
    variant("config_bad_json.safetensors", "not valid JSON", records={"config": "{nope"})
    variant("history_deep.safetensors", "not valid JSON", records={"history": "[" * 50_000 + "]" * 50_000})
    variant("version.safetensors", "not supported", records={"version": "99"})
    data = json.loads(meta["data"])
    variant("data_options.safetensors", "must be a JSON object", records={"data": json.dumps({**data, "options": [1]})})
    variant("data_name.safetensors", "must be a string", records={"data": json.dumps({**data, "name": 5})})
    variant("data_seed.safetensors", "must be an integer", records={"data": json.dumps({**data, "seed": 10**30})})
    variant("data_size.safetensors", "above the limit", records={"data": json.dumps({**data, "options": {"n": 10**12}})})
    variant("history_records.safetensors", "must be a list", records={"history": json.dumps({"records": 5})})
    variant("int_weights.safetensors", "floating-point", new_tensors={k: v.to(torch.int32) if v.is_floating_point()
                                                                      else v for k, v in tensors.items()})
    variant("missing_tensor.safetensors", "do not fit", new_tensors=dict(list(tensors.items())[1:]))

    # ------------------------------------------------------------------ options
    opt = lambda *extra: ["train", "--data", "toy", "--data-option", "n=200", "--out", GOOD, *FAST, *extra]  # noqa: E731
    for extra, expect in (
        (["-K", "1000000000"], "-K must be from"), (["-K", "0"], "positive integer"),
        (["--latent-dim", "100000000"], "--latent-dim must be from"), (["--hidden", "1000000000"], "--hidden must be"),
        (["--hidden", ",".join(["8"] * 40)], "--hidden layers"), (["--channels", "0"], "positive integers"),
        (["--eval-K", "1000000000"], "--eval-K must be from"), (["--batch-size", "2000000"], "--batch-size must be from"),
        (["--batch-size", "100000", "-K", "1000"], "--max-step-gb"),
        (["--hidden", "16384,16384,16384"], "--max-parameters"),
        (["--device", "meta"], "cannot train"), (["--device", "nonsense"], "unknown device"),
        (["--device", "cuda:99"], "cuda"), (["--data-option", "n=1e12"], "above the limit"),
        (["--data-option", "dims=100000"], "above the limit"), (["--data-option", "n=-5"], "option n"),
        (["--data-option", "n_modalities=3", "--fusion", "mopoe", "--weight", "x9=2"], "unknown modalities"),
        (["--weight", "x1=-1"], "positive number"), (["--weight", "x1=nan"], "positive number"),
        (["--lr", "nan"], "positive number"), (["--lr", "inf"], "positive number"),
        (["--likelihood-scale", "-1"], "positive number"), (["--seed", "-1"], "--seed"),
        (["--max-data-gb", "-1"], "positive number"), (["--fusion", "sum"], "invalid choice"),
    ):
        cases.append(("options", opt(*extra), expect))
    open(j("afile"), "w").write("x")
    for out, expect in ((os.path.join(j("afile"), "m.safetensors"), "is not a folder"),
                        (folder, "is a directory"), (j(os.path.join("nodir", "m.safetensors")), "does not exist"),
                        (j("ok.npz"), "is the data file")):
        args = ["train", "--data", j("ok.npz") if "data file" in expect else "toy", "--out", out, *FAST]
        cases.append(("output path", args, expect))
    for extra, expect in ((["--n-samples", "1000000000"], "--n-samples must be"), (["--K", "0"], "positive integers"),
                          (["--K", "1000000000"], "--K must be"), (["--points", "-1"], "indices must be >= 0"),
                          (["--points", "a,b"], "--points"), (["--device", "meta"], "cannot train")):
        cases.append(("options", evaluate(good_checkpoint, *extra), expect))

    # ------------------------------------------------------------------ divergence
    cases.append(("divergence", opt("--lr", "1e30"), "training diverged"))
    cases.append(("divergence", opt("--lr", "1e30", "--save-diverged"), "good.diverged.safetensors"))
    return cases


# The runner: executed by ``python -c`` in one subprocess (see tests/test_fuzz_inputs.py).
RUNNER = r"""
import contextlib, io, json, resource, signal, sys, time
class CaseTimeout(BaseException):
    pass
def on_alarm(signum, frame):
    raise CaseTimeout()
signal.signal(signal.SIGALRM, on_alarm)
from mmvae.cli import main
cases, per_case_s = json.load(sys.stdin)
results = []
for argv in cases:
    err, out = io.StringIO(), io.StringIO()
    t0 = time.perf_counter()
    signal.alarm(per_case_s)
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
            rc = main(argv)
    except CaseTimeout:
        rc = "timeout"
    except SystemExit as e:
        rc = e.code
    except BaseException as e:
        rc = "raised " + type(e).__name__ + ": " + str(e)[:200]
    finally:
        signal.alarm(0)
    results.append({"rc": rc, "stderr": err.getvalue()[-2000:], "seconds": time.perf_counter() - t0})
print(json.dumps({"results": results, "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024}))
"""
