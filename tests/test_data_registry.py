import os
import numpy as np
import pytest
import torch

from mmvae.data import DATASETS, DataError, DatasetInfo, load_dataset

SMALL = {"toy": {}, "digits-halves": {}, "digits-poly": {}, "impedance": {"n": 200}, "wells": {}}


def _flat(d):
    return {k: v for k, v in d.modalities.items()}


@pytest.mark.parametrize("name", list(DATASETS))
def test_every_dataset_loads_as_documented(name):
    info = DATASETS[name]
    assert isinstance(info, DatasetInfo) and info.description and info.labels
    b = load_dataset(name, **SMALL[name])
    assert [m[0] for m in info.modalities] == b.modality_names
    for mname, shape, lik, unit in info.modalities:
        spec = b.specs[mname]
        assert spec.shape == tuple(shape) and spec.likelihood == lik and spec.unit == unit
        for split in (b.train, b.val, b.test):
            x = split.modalities[mname]
            assert x.dtype == torch.float32 and tuple(x.shape[1:]) == spec.shape
            assert torch.isfinite(x).all()
            if lik == "bernoulli":
                assert x.min() >= 0 and x.max() <= 1
    for split in (b.train, b.val, b.test):
        assert split.labels is not None and split.labels.dtype == torch.int64 and len(split) > 0


@pytest.mark.parametrize("name", list(DATASETS))
def test_reproducible_and_seed_dependent(name):
    a = load_dataset(name, seed=0, **SMALL[name])
    b = load_dataset(name, seed=0, **SMALL[name])
    c = load_dataset(name, seed=1, **SMALL[name])
    for k in a.modality_names:
        assert torch.equal(a.train.modalities[k], b.train.modalities[k])
        assert torch.equal(a.test.modalities[k], b.test.modalities[k])
    k = a.modality_names[0]
    assert a.test.modalities[k].shape != c.test.modalities[k].shape or not torch.equal(
        a.test.modalities[k], c.test.modalities[k])


def test_returned_tensors_are_fresh_copies():
    a = load_dataset("toy")
    a.train.modalities["x1"].zero_()
    a.extras["z"]["train"].zero_()
    b = load_dataset("toy")
    assert b.train.modalities["x1"].abs().sum() > 0
    assert b.extras["z"]["train"].abs().sum() > 0


@pytest.mark.parametrize("name", ["toy", "digits-halves", "impedance"])
def test_splits_disjoint(name):
    b = load_dataset(name, **SMALL[name])
    idx = b.extras["source_index"]
    tr, va, te = (set(np.asarray(idx[s]).tolist()) for s in ("train", "val", "test"))
    assert not (tr & va) and not (tr & te) and not (va & te)
    assert len(tr) == len(b.train) and len(te) == len(b.test)


def test_digits_halves_sizes_and_content():
    b = load_dataset("digits-halves")
    assert (len(b.train), len(b.val), len(b.test)) == (1077, 360, 360)
    assert b.label_names == [str(i) for i in range(10)]
    from sklearn.datasets import load_digits
    d = load_digits()
    i = int(b.extras["source_index"]["test"][0])
    img = torch.cat([b.test.modalities["top"][0, 0], b.test.modalities["bottom"][0, 0]], 0)
    torch.testing.assert_close(img, torch.tensor(d.images[i] / 16.0, dtype=torch.float32))
    assert int(b.test.labels[0]) == d.target[i]


@pytest.mark.parametrize("m", [3, 4, 5])
def test_digits_poly(m):
    b = load_dataset("digits-poly", n_modalities=m)
    from sklearn.datasets import load_digits
    target = load_digits().target
    assert b.modality_names == [f"m{i}" for i in range(m)]
    src = b.extras["source_index"]
    train_imgs = set(src["train"].ravel().tolist())
    assert not train_imgs & set(src["test"].ravel().tolist())
    assert not train_imgs & set(src["val"].ravel().tolist())
    for s, data in (("train", b.train), ("test", b.test)):
        t = src[s]
        assert t.shape == (len(data), m)
        assert all(len(set(row)) == m for row in t.tolist())  # different images in a tuple
        assert (target[t] == data.labels.numpy()[:, None]).all()  # same class
    # styles differ: mean intensity per modality differs
    means = [float(b.train.modalities[f"m{i}"].mean()) for i in range(m)]
    assert len({round(x, 2) for x in means}) == m


def test_unknown_name_and_option():
    with pytest.raises(DataError, match="toy.*digits-halves.*wells"):
        load_dataset("mnist")
    with pytest.raises(DataError, match=r"'n_mod'.*n_modalities"):
        load_dataset("toy", n_mod=3)
    with pytest.raises(DataError, match="n_modalities"):
        load_dataset("toy", n_modalities=7)
    with pytest.raises(DataError, match="n_modalities"):
        load_dataset("digits-poly", n_modalities=2)
    with pytest.raises(DataError, match="seismic"):
        load_dataset("impedance", seismic="maybe")
    with pytest.raises(DataError, match="valid options"):
        load_dataset("x.npz", window=3)


def test_npz_and_las_paths_dispatch(tmp_path):
    rng = np.random.default_rng(0)
    p = tmp_path / "mine.npz"
    np.savez(p, a=rng.normal(size=(50, 3)), b=rng.normal(size=(50, 4)), labels=np.arange(50) % 2)
    b = load_dataset(str(p), seed=1)
    assert set(b.specs) == {"a", "b"} and len(b.train) + len(b.val) + len(b.test) == 50
    from mmvae.data.las import P135_LAS
    w = load_dataset(P135_LAS, window=32, stride=32)
    assert set(w.specs) == {"AI", "SI"} and w.specs["AI"].shape == (32,)


def test_npz_and_las_option_types_are_checked(tmp_path):
    import numpy as np

    from mmvae.data import DataError, load_dataset
    from mmvae.data.las import load_las

    path = tmp_path / "d.npz"
    np.savez(path, a=np.arange(30.0).reshape(10, 3) * 10, b=np.ones((10, 2)))
    assert load_dataset(str(path), normalize="no").specs["a"].scale == 1.0
    assert load_dataset(str(path), normalize="yes").specs["a"].scale > 1.0
    with pytest.raises(DataError, match="option fractions"):
        load_dataset(str(path), fractions=0.5)
    las = os.path.join(os.path.dirname(__file__), "..", "mmvae", "data", "files", "P-135_out.LAS")
    with pytest.raises(DataError, match="curves must be"):
        load_las(las, curves=5)
    with pytest.raises(DataError, match="label_curve must be"):
        load_las(las, label_curve=5)
