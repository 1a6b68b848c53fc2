import numpy as np
import pytest

from mmvae.data import load_dataset
from mmvae.data import rockphysics as rp
from mmvae.data.impedance import simulate_logs


def test_empirical_relations_known_values():
    assert rp.castagna_mudrock_vs(3.0) == pytest.approx(0.8621 * 3 - 1.1724)
    assert rp.greenberg_castagna_vs(3.0, "sandstone") == pytest.approx(0.80416 * 3 - 0.85588)
    assert rp.greenberg_castagna_vs(3.0, "shale") == pytest.approx(0.76969 * 3 - 0.86735)
    assert rp.greenberg_castagna_vs(5.0, "limestone") == pytest.approx(-0.05508 * 25 + 1.01677 * 5 - 1.03049)
    assert rp.gardner_density(2.0) == pytest.approx(1.741 * 2 ** 0.25)
    with pytest.raises(ValueError, match="lithology"):
        rp.greenberg_castagna_vs(3.0, "granite")


def test_gassmann_gas_effect():
    vp = np.array([2.6, 3.0, 3.6])
    vs = rp.greenberg_castagna_vs(vp, "sandstone")
    rho = rp.gardner_density(vp)
    vpg, vsg, rhog = rp.gas_sand_from_brine(vp, vs, rho)
    assert np.all(vpg < 0.95 * vp)  # strong Vp drop
    assert np.all((rhog < rho) & (rhog > rho - 0.25))  # density drops somewhat
    assert np.all((vsg > vs) & (vsg < 1.06 * vs))  # Vs rises slightly
    np.testing.assert_allclose(rhog * vsg**2, rho * vs**2, rtol=1e-12)  # shear modulus unchanged
    # substituting brine back gives the original rock
    phi = np.clip((2.65 - rho) / 1.6, 0.05, 0.4)
    k_mix = 1 / (0.7 / 0.05 + 0.3 / 2.7)
    back = rp.gassmann_fluid_substitution(vpg, vsg, rhog, phi, 37.0, k_mix, 0.7 * 0.2 + 0.3 * 1.05, 2.7, 1.05)
    np.testing.assert_allclose(back[0], vp, rtol=1e-9)


@pytest.mark.parametrize("freq", [15.0, 30.0, 50.0])
def test_ricker_peaks_at_its_frequency(freq):
    dt = 0.001
    w = rp.ricker(freq, dt, 201)
    assert w.argmax() == 100 and w.max() == pytest.approx(1.0)
    nfft = 1 << 16
    spec = np.abs(np.fft.rfft(w, nfft))
    f = np.fft.rfftfreq(nfft, dt)
    assert f[spec.argmax()] == pytest.approx(freq, abs=0.1)


def test_fatti_reflectivity_normal_incidence_and_sign():
    ai = np.array([[6.0, 8.0]])
    si = np.array([[3.0, 4.0]])
    rho = np.array([[2.2, 2.4]])
    r0 = rp.fatti_reflectivity(ai, si, rho, 0.0)
    assert r0[0, 0] == pytest.approx(0.5 * 2.0 / 7.0)  # R0 = dAI / (2 AI)
    r30 = rp.fatti_reflectivity(ai, si, rho, 30.0)
    t = np.deg2rad(30)
    k2 = 0.25
    expect = 0.5 * (1 + np.tan(t) ** 2) * 2 / 7 - 4 * k2 * np.sin(t) ** 2 * 1 / 3.5 - (
        0.5 * np.tan(t) ** 2 - 2 * k2 * np.sin(t) ** 2) * 0.2 / 2.3
    assert r30[0, 0] == pytest.approx(expect)


def test_angle_stacks_is_wavelet_at_interface():
    n = 64
    ai = np.full((1, n), 6.0); ai[0, 32:] = 8.0
    si = ai / 2.0
    rho = np.full((1, n), 2.3)
    st = rp.angle_stacks(ai, si, rho, angles=(0.0,), freq_hz=30.0, dt_s=0.002)
    assert st.shape == (1, 1, n)
    assert st[0, 0].argmax() == 32
    assert st[0, 0, 32] == pytest.approx(0.5 * 2 / 7, rel=1e-6)


def test_generated_logs_obey_rock_physics():
    s = simulate_logs(300, 64, seed=3)
    f, vp, vs, ai, si = s["facies"], s["vp"], s["vs"], s["ai"], s["si"]
    assert set(np.unique(f)) == {0, 1, 2, 3}
    ratio = vp / vs
    brine = (f == 0) | (f == 1) | (f == 3)
    assert ratio[brine].min() > 1.4 and ratio[brine].max() < 2.6
    assert 1.4 < ratio[f == 2].min() and ratio[f == 2].max() < ratio[f == 1].min() + 0.05
    assert np.all((s["rho"] > 1.9) & (s["rho"] < 2.9))
    assert np.corrcoef(ai.ravel(), si.ravel())[0, 1] > 0.9
    # Vp increases with depth (shale compaction trend)
    d = s["depth"][f == 0]
    assert np.corrcoef(d, vp[f == 0])[0, 1] > 0.5
    # gas sand vs brine sand at the same depth: lower AI and lower Vp/Vs
    vpb = 2.25 + 0.65 * s["depth"][f == 2] / 1000
    vsb = rp.greenberg_castagna_vs(vpb, "sandstone")
    rhob = rp.gardner_density(vpb)
    vpg, vsg, rhog = rp.gas_sand_from_brine(vpb, vsb, rhob)
    assert np.all(vpg * rhog < vpb * rhob) and np.all(vpg / vsg < vpb / vsb)
    assert np.median(ai[f == 2]) < np.median(ai[f == 1])
    assert np.median(ratio[f == 2]) < np.median(ratio[f == 1])


def test_impedance_dataset_physical_units_and_seismic():
    b = load_dataset("impedance", seed=1, n=300, seismic=True)
    assert set(b.specs) == {"AI", "SI", "seismic"}
    assert b.specs["seismic"].shape == (2, 64)
    ai = b.specs["AI"].to_physical(b.train.modalities["AI"]).numpy()
    assert 4.0 < ai.min() and ai.max() < 16.0
    # normalised with training statistics
    assert abs(float(b.train.modalities["AI"].mean())) < 1e-3
    assert float(b.train.modalities["AI"].std()) == pytest.approx(1.0, abs=1e-3)
    fac = b.extras["facies"]["train"]
    assert fac.shape == (len(b.train), 64)
    dom = np.stack([(fac == k).sum(1) for k in range(4)], 1).argmax(1)
    np.testing.assert_array_equal(dom, b.train.labels.numpy())
    assert b.extras["depth"]["test"].shape == (len(b.test), 64)
