"""Regenerate p135_impedance.npz from P-135_out.LAS (needs lasio): python mmvae/data/files/make_p135.py"""
from mmvae.data.las import make_p135_npz

if __name__ == "__main__":
    print("wrote", make_p135_npz())
