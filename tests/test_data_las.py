import os
import zipfile

import numpy as np
import pytest
import torch

from mmvae.data import DataError, load_dataset, load_las, load_npz
from mmvae.data.las import P135_LAS, P135_NPZ, read_las

# curve order in the ~Curve section of P-135_out.LAS
CURVES = ["DEPT", "CALI", "DT", "DTS", "DPHI_SAN", "DPHI_LIM", "DPHI_DOL", "NPHI_SAN", "NPHI_LIM",
          "NPHI_DOL", "AMF", "AF90", "AF10", "AF20", "AF60", "AF30", "RXOZ", "GR", "POTA", "THOR",
          "URAN", "SP", "RHOB"]


def _rows_by_hand(depths):
    """Parse the wrapped ~Ascii section of the LAS file without lasio."""
    want = {round(d, 4) for d in depths}
    out = {}
    with open(P135_LAS, encoding="latin-1") as f:
        lines = f.read().split("~A", 1)[1].splitlines()[1:]
    tokens = " ".join(lines).split()
    vals = np.array(tokens, dtype=float).reshape(-1, len(CURVES))
    for row in vals:
        if round(row[0], 4) in want:
            out[round(row[0], 4)] = dict(zip(CURVES, row))
    return out


def test_shipped_files_exist():
    assert os.path.getsize(P135_LAS) < 2_000_000
    assert os.path.exists(P135_NPZ)
    assert os.path.exists(os.path.join(os.path.dirname(P135_LAS), "README.md"))


def test_las_reader_gives_documented_impedances():
    b = load_las(P135_LAS)
    depth = b.extras["depth"]["train"]
    picks = [(0, 0), (3, 17), (len(b.train) - 1, 63)]
    rows = _rows_by_hand([float(depth[i, j]) for i, j in picks])
    for i, j in picks:
        r = rows[round(float(depth[i, j]), 4)]
        ai = 304.8 / r["DT"] * r["RHOB"]
        si = 304.8 / r["DTS"] * r["RHOB"]
        got_ai = float(b.specs["AI"].to_physical(b.train.modalities["AI"][i, j]))
        got_si = float(b.specs["SI"].to_physical(b.train.modalities["SI"][i, j]))
        assert got_ai == pytest.approx(ai, rel=1e-5)
        assert got_si == pytest.approx(si, rel=1e-5)
    assert b.label_names is not None and set(b.train.labels.tolist()) == {0, 1}


def test_shipped_npz_matches_las():
    depth, data, units, _ = read_las(P135_LAS)
    with np.load(P135_NPZ) as f:
        d, ai, si, gr = f["depth"], f["AI"], f["SI"], f["GR"]
    assert units["DT"] == "us/ft" and units["RHOB"] == "g/cm3"
    i0 = int(np.argmin(np.abs(depth - d[0])))
    sl = slice(i0, i0 + len(d))
    np.testing.assert_allclose(ai, 304.8 / data["DT"][sl] * data["RHOB"][sl], rtol=1e-6)
    np.testing.assert_allclose(si, 304.8 / data["DTS"][sl] * data["RHOB"][sl], rtol=1e-6)
    np.testing.assert_allclose(gr, data["GR"][sl], rtol=1e-6)
    assert 250 < d[0] < 270 and 910 < d[-1] < 930 and len(d) > 4000


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_wells_test_windows_do_not_overlap_training(seed):
    b = load_dataset("wells", seed=seed)
    dep = b.extras["depth"]
    step = 0.1524
    for other in ("val", "test"):
        for lo, hi in zip(dep[other][:, 0], dep[other][:, -1]):
            overlap = (dep["train"][:, 0] <= hi + step / 2) & (dep["train"][:, -1] >= lo - step / 2)
            assert not overlap.any()
    # windows are contiguous depth samples
    np.testing.assert_allclose(np.diff(dep["train"], axis=1), step, atol=1e-3)
    assert len(b.test) >= 20 and len(b.train) >= 100
    assert float(b.train.modalities["AI"].mean()) == pytest.approx(0.0, abs=1e-4)


def test_wells_options():
    b = load_dataset("wells", window=32, stride=8)
    assert b.specs["AI"].shape == (32,) and b.train.modalities["SI"].shape[1] == 32
    with pytest.raises(DataError, match="too few samples|window"):
        load_dataset("wells", window=4000)


def _write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


SMALL_LAS = """~Version
VERS. 2.0 :
WRAP. NO :
~Well
STRT.M 100.0 :
STOP.M {stop} :
STEP.M 0.5 :
NULL. -999.25 :
~Curve
DEPT.M : depth
VP.m/s : P velocity
VS.m/s : S velocity
DEN.kg/m3 : density
GR.gAPI : gamma
~A
{rows}
"""


def _small_las(tmp_path, n=200, null_at=()):
    rows = []
    for i in range(n):
        vp, vs, den = 3000 + i, 1500 + i, 2300.0
        if i in null_at:
            vp = -999.25
        rows.append(f"{100 + 0.5 * i:.1f} {vp} {vs} {den} {50 + (i % 40)}")
    return _write(tmp_path, "small.las", SMALL_LAS.format(stop=100 + 0.5 * (n - 1), rows="\n".join(rows)))


def test_byo_las_velocity_units_and_nulls(tmp_path):
    p = _small_las(tmp_path, null_at=(5,))
    b = load_las(p, window=16, stride=8, n_blocks=3)
    ai = b.specs["AI"].to_physical(b.train.modalities["AI"]).numpy()
    dep = b.extras["depth"]["train"]
    i = (dep - 100) / 0.5
    np.testing.assert_allclose(ai, (3000 + i) / 1000 * 2.3, rtol=1e-5)
    for s in ("train", "val", "test"):  # the window with the null at sample 5 is dropped
        assert not ((b.extras["depth"][s][:, 0] <= 102.5) & (b.extras["depth"][s][:, -1] >= 102.5)).any()
    c = load_las(p, curves={"gamma": "gr", "vel": "VP"}, window=16, stride=8, n_blocks=3)
    assert list(c.specs) == ["gamma", "vel"]


def test_las_errors(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        load_las(str(tmp_path / "missing.las"))
    g = tmp_path / "garbage.las"
    g.write_bytes(os.urandom(3000))
    with pytest.raises(DataError, match="garbage.las.*not a"):
        load_las(str(g))
    t = _write(tmp_path, "text.las", "hello world\nthis is not a log\n")
    with pytest.raises(DataError, match="text.las.*not a"):
        load_las(t)
    with pytest.raises(DataError, match=r"no curve 'NOPE'.*available curves: CALI, DT, DTS"):
        load_las(P135_LAS, curves={"x": "NOPE", "gr": "GR"})
    p = _small_las(tmp_path, n=20)
    with pytest.raises(DataError, match="small.las.*(too few|need at least)"):
        load_las(p, window=16)
    q = _write(tmp_path, "noshear.las", SMALL_LAS.replace("VS.m/s : S velocity", "SP.mV : sp").format(
        stop=104.5, rows="\n".join(f"{100 + 0.5 * i:.1f} 3000 1 2300 60" for i in range(10))))
    with pytest.raises(DataError, match="noshear.las.*S-wave.*available curves: VP, SP, DEN, GR"):
        load_las(q)


def test_npz_errors(tmp_path):
    rng = np.random.default_rng(0)
    with pytest.raises(DataError, match="no such file"):
        load_npz(tmp_path / "nope.npz")
    p = tmp_path / "bad_len.npz"
    np.savez(p, a=rng.normal(size=(10, 2)), b=rng.normal(size=(11, 2)))
    with pytest.raises(DataError, match="bad_len.npz.*different numbers"):
        load_npz(p)
    p = tmp_path / "nan.npz"
    a = rng.normal(size=(10, 2)); a[3, 1] = np.nan
    np.savez(p, a=a, b=rng.normal(size=(10, 2)))
    with pytest.raises(DataError, match="nan.npz.*'a'.*NaN"):
        load_npz(p)
    p = tmp_path / "obj.npz"
    np.savez(p, a=np.array([{"x": 1}] * 10, dtype=object), b=rng.normal(size=(10, 2)))
    with pytest.raises(DataError, match="obj.npz"):
        load_npz(p)
    p = tmp_path / "notzip.npz"
    p.write_bytes(b"this is not a zip archive at all" * 10)
    with pytest.raises(DataError, match="notzip.npz.*not a readable"):
        load_npz(p)
    p = tmp_path / "one.npz"
    np.savez(p, a=rng.normal(size=(10, 2)))
    with pytest.raises(DataError, match="at least 2"):
        load_npz(p)
    p = tmp_path / "labels.npz"
    np.savez(p, a=rng.normal(size=(10, 2)), b=rng.normal(size=(10, 2)), labels=np.arange(9))
    with pytest.raises(DataError, match="labels"):
        load_npz(p)
    p = tmp_path / "empty.npz"
    with zipfile.ZipFile(p, "w"):
        pass
    with pytest.raises(DataError, match="empty.npz"):
        load_npz(p)
