"""Checkpoints: exact round trip, atomic writes, clear errors for bad files, nothing unpickled."""
import os
import pickle

import pytest
import torch
from safetensors.torch import save_file

from mmvae import CheckpointError, ModalityConfig, ModelConfig, build_model, fit, load_checkpoint, save_checkpoint
from tests.helpers import small_multimodal_data


@pytest.fixture()
def trained(tmp_path):
    mods = [ModalityConfig("a", (3,), likelihood_scale=None, network={"type": "mlp", "hidden": [16]}),
            ModalityConfig("b", (3,), likelihood="laplace", network={"type": "mlp", "hidden": [16]})]
    model = build_model(ModelConfig(mods, latent_dim=3, fusion="mopoe"))
    train, val = small_multimodal_data(100)
    history = fit(model, train, val, epochs=1, K=2, estimator="dreg", device="cpu")
    path = tmp_path / "model.safetensors"
    save_checkpoint(path, model, {"name": "test"}, {"K": 2}, history.to_dict())
    return model, path, val


def test_round_trip_reproduces_outputs_exactly(trained):
    model, path, val = trained
    ckpt = load_checkpoint(path)
    assert ckpt.model.config.to_dict() == model.config.to_dict()
    assert ckpt.data == {"name": "test"} and ckpt.train == {"K": 2} and len(ckpt.history["records"]) == 1
    model.eval()
    x = val.subset(slice(0, 10)).modalities
    for fusion in ("poe", "moe", "mopoe"):
        p1, p2 = model.posterior(x, fusion), ckpt.model.posterior(x, fusion)
        assert torch.equal(p1.loc, p2.loc) and torch.equal(p1.log_scale, p2.log_scale)
    g1, g2 = model.generate({"a": x["a"]}), ckpt.model.generate({"a": x["a"]})
    assert all(torch.equal(g1[k], g2[k]) for k in g1)
    assert torch.equal(model.likelihoods["a"].scale(), ckpt.model.likelihoods["a"].scale())


def test_writes_are_atomic_and_leave_no_temporary_files(trained):
    model, path, _ = trained
    save_checkpoint(path, model)  # overwrite in place
    assert sorted(os.listdir(path.parent)) == ["model.safetensors"]


@pytest.mark.parametrize("fails_at", ["fsync", "replace"])
def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary_file(trained, monkeypatch, fails_at):
    """An exception mid-save (disk full while flushing, or the final rename refused) must leave the
    previous checkpoint byte for byte and no temporary file beside it."""
    model, path, _ = trained
    before = path.read_bytes()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)  # the new save would differ from the old file

    def boom(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, fails_at, boom)
    with pytest.raises(CheckpointError, match="No space left"):  # one line naming the file and the cause
        save_checkpoint(path, model)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert sorted(os.listdir(path.parent)) == ["model.safetensors"]
    load_checkpoint(path)  # still a readable checkpoint


@pytest.mark.parametrize("corruption", ["truncated", "garbage", "pickle", "empty", "flipped_header"])
def test_corrupt_files_give_a_clear_error(trained, tmp_path, corruption):
    _, path, _ = trained
    blob = path.read_bytes()
    bad = tmp_path / f"{corruption}.safetensors"
    if corruption == "truncated":
        bad.write_bytes(blob[: len(blob) // 2])
    elif corruption == "garbage":
        bad.write_bytes(os.urandom(2000))
    elif corruption == "pickle":
        bad.write_bytes(pickle.dumps({"state_dict": {"w": [1, 2, 3]}}))
    elif corruption == "empty":
        bad.write_bytes(b"")
    else:
        bad.write_bytes(blob[:8] + b"}" + blob[9:])
    with pytest.raises(CheckpointError, match="not a readable mmvae checkpoint"):
        load_checkpoint(bad)


def test_torch_pickle_files_are_never_unpickled(tmp_path):
    marker = tmp_path / "executed"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    bad = tmp_path / "evil.pt"
    torch.save({"x": Evil()}, bad)
    with pytest.raises(CheckpointError):
        load_checkpoint(bad)
    assert not marker.exists()


def test_foreign_and_mismatched_files(trained, tmp_path):
    _, path, _ = trained
    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(3)}, foreign)
    with pytest.raises(CheckpointError, match="not an mmvae checkpoint"):
        load_checkpoint(foreign)
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "missing.safetensors")
    # right metadata, wrong weights
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        meta = f.metadata()
    mismatched = tmp_path / "mismatched.safetensors"
    save_file({"w": torch.zeros(3)}, mismatched, metadata=meta)
    with pytest.raises(CheckpointError, match="do not fit"):
        load_checkpoint(mismatched)


def test_invalid_saved_configuration_is_a_checkpoint_error(trained, tmp_path):
    import json

    from safetensors import safe_open

    _, path, _ = trained
    with safe_open(str(path), "pt") as f:
        meta = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    config = json.loads(meta["config"])
    config_before = json.loads(meta["config"])
    config["modalities"][0]["network"]["hidden"] = [-5]
    meta["config"] = json.dumps(config)
    bad = tmp_path / "bad-config.safetensors"
    save_file(tensors, bad, metadata=meta)
    with pytest.raises(CheckpointError, match="configuration is invalid"):
        load_checkpoint(bad)
    assert load_checkpoint(path, device="auto").model.config.to_dict() == config_before


def test_data_provenance_rebuilds_the_training_data(tmp_path):
    """The one data record (CLI, app, shipped checkpoints): JSON in the file, and enough for
    evaluation.scoring_data to rebuild the very same test split."""
    from mmvae import config_for_specs, data_provenance
    from mmvae.cli import main
    from mmvae.data import load_dataset
    from mmvae.evaluation import scoring_data

    bundle = load_dataset("toy", seed=3, n=120, nonlinear=True)
    record = data_provenance("toy", {"n": 120, "nonlinear": True}, 3, bundle.specs)
    model = build_model(config_for_specs(bundle.specs, network={"type": "mlp", "hidden": [8]}))
    save_checkpoint(tmp_path / "m.safetensors", model, record)
    ckpt = load_checkpoint(tmp_path / "m.safetensors")
    assert ckpt.data == record and ckpt.data["specs"]["x1"]["shape"] == [5]
    again, meta, _ = scoring_data(ckpt)  # the checkpoint's own dataset: its test split
    assert meta["split"] == "test"
    for k in bundle.test.modalities:
        assert torch.equal(again.modalities[k], bundle.test.modalities[k].to(again.modalities[k].dtype))
    # the CLI writes the same record
    out = tmp_path / "cli.safetensors"
    assert main(["train", "--data", "toy", "--data-option", "n=120", "--seed", "3", "--epochs", "1", "--hidden", "8",
                 "--out", str(out), "--quiet", "--device", "cpu"]) == 0
    toy = load_dataset("toy", seed=3, n=120)
    assert load_checkpoint(out).data == data_provenance("toy", {"n": 120}, 3, toy.specs)


def test_loading_a_checkpoint_leaves_the_global_rng_alone(trained):
    """The modules built before the weights are loaded draw from a throwaway generator."""
    _, path, _ = trained
    before = torch.random.get_rng_state()
    load_checkpoint(path)
    assert torch.equal(torch.random.get_rng_state(), before)
