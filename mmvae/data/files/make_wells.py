"""Regenerate the shipped well arrays in mmvae/data/files/wells/ from the original files:

    python mmvae/data/files/make_wells.py SOURCE_FOLDER

SOURCE_FOLDER holds the FORCE 2020 LAS files (25_11-24.las, 31_3-4.las, "16_2-11 A.las") and the
Volve CSV 15_9-19.csv (see wells/README.md for where each comes from). Each output .npz holds
depth (m), AI, SI (km/s * g/cm3) and GR (API) as float32 over the interval from the first to the
last sample with DT, DTS and RHOB (gaps inside it are NaN). P-135 is shipped as p135_impedance.npz.
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", ".."))
from mmvae.data.well import Well, read_well  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "wells")
LAS = {"25_11-24": "25_11-24.las", "31_3-4": "31_3-4.las", "16_2-11A": "16_2-11 A.las"}


def _volve(path: str) -> Well:
    with open(path) as f:
        header = f.readline().strip().split(",")
    a = np.genfromtxt(path, delimiter=",", skip_header=2)
    a[a == -999] = np.nan
    col = {h.strip(): a[:, i] for i, h in enumerate(header)}
    vp, vs, rho = 304.8 / col["DT"], 304.8 / col["DTS"], col["RHOB"]
    return Well("15_9-19A", col["DEPTH"], vp * rho, vs * rho, "m", path, {"GR": (col["GR"], "API")})


def _save(well: Well, name: str) -> str:
    rows = np.flatnonzero(well.valid())
    w = well.rows(rows[0], rows[-1] + 1)
    gr = w.curves["GR"][0] if "GR" in w.curves else np.full(w.n, np.nan)
    out = os.path.join(OUT, f"{name}.npz")
    np.savez_compressed(out, depth=w.depth.astype(np.float32), AI=w.ai.astype(np.float32),
                        SI=w.si.astype(np.float32), GR=gr.astype(np.float32))
    return out


if __name__ == "__main__":
    src = sys.argv[1] if len(sys.argv) > 1 else "."
    os.makedirs(OUT, exist_ok=True)
    for name, f in LAS.items():
        print("wrote", _save(read_well(os.path.join(src, f)), name))
    print("wrote", _save(_volve(os.path.join(src, "15_9-19.csv")), "15_9-19A"))
