"""kill -9 during checkpoint saves (issue #9): the real file always loads, and no temporary file
survives the next save into the folder; temporaries of live processes are left alone.

One controller subprocess imports mmvae once, then (bounded loop) forks a writer that saves an
18 MB model over and over, SIGKILLs it after a random pause, reaps it and loads the real file.
"""
import json
import os
import subprocess
import sys

from mmvae.checkpoint import clean_stale_temp_files, is_temp_file, list_checkpoints

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KILLS = 12

CONTROLLER = r"""
import json, os, random, signal, sys, time
import torch
torch.set_num_threads(1)
from mmvae import ModalityConfig, ModelConfig, build_model, load_checkpoint, save_checkpoint
from mmvae.checkpoint import is_temp_file
folder, kills = sys.argv[1], int(sys.argv[2])
real = os.path.join(folder, "real.safetensors")
mods = [ModalityConfig(n, (64,), network={"type": "mlp", "hidden": [1024, 1024]}) for n in ("a", "b")]
model = build_model(ModelConfig(mods, latent_dim=4), seed=0)
save_checkpoint(real, model)
rng = random.Random(0)
loads, temps_seen = 0, 0
for i in range(kills):
    pid = os.fork()
    if pid == 0:  # the writer: save until killed
        try:
            while True:
                save_checkpoint(real, model, extra={"i": i})
        finally:
            os._exit(0)
    time.sleep(rng.uniform(0.02, 0.25))
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    load_checkpoint(real)  # raises if the real file was ever broken
    loads += 1
    temps_seen += sum(is_temp_file(n) for n in os.listdir(folder))
temps_before = sorted(n for n in os.listdir(folder) if is_temp_file(n))
save_checkpoint(real, model)  # the next save cleans what the killed writers left
temps_after = sorted(n for n in os.listdir(folder) if is_temp_file(n))
print(json.dumps({"loads": loads, "temps_seen": temps_seen, "before": temps_before, "after": temps_after}))
"""


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_kill_9_never_breaks_the_real_file_and_the_next_save_cleans_up(tmp_path):
    from mmvae.checkpoint import _host

    # a temporary file of a process that died for sure, so cleaning is always exercised
    stale = tmp_path / f".mmvae-tmp-{_host()}-{_dead_pid()}-abcd1234.part"
    stale.write_bytes(b"half a checkpoint")
    env = {**os.environ, "PYTHONPATH": ROOT, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run([sys.executable, "-c", CONTROLLER, str(tmp_path), str(KILLS)], capture_output=True,
                          text=True, env=env, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    print(f"\nkill -9: {out['loads']} kills, real file loaded after each; temporary files seen "
          f"{out['temps_seen']}, before the next save {len(out['before'])}, after {len(out['after'])}")
    assert out["loads"] == KILLS
    assert not stale.exists() and out["after"] == []
    assert list_checkpoints(tmp_path) == ["real.safetensors"]


def test_temporary_files_of_live_processes_and_other_files_are_kept(tmp_path):
    from mmvae.checkpoint import _host

    live = tmp_path / f".mmvae-tmp-{_host()}-{os.getpid()}-live0001.part"       # this process is alive
    other_host = tmp_path / f".mmvae-tmp-otherhost-{_dead_pid()}-zzzz0001.part"  # cannot tell: keep
    dead = tmp_path / f".mmvae-tmp-{_host()}-{_dead_pid()}-dead0001.part"
    lookalike = tmp_path / "notes.mmvae-tmp.part"
    legacy_new = tmp_path / ".tmp-abcdefgh.safetensors"  # old-style name, recent: may be a live save
    for p in (live, other_host, dead, lookalike, legacy_new):
        p.write_bytes(b"x")
    (tmp_path / "model.safetensors").write_bytes(b"x")
    (tmp_path / "model.diverged.safetensors").write_bytes(b"x")
    removed = clean_stale_temp_files(tmp_path)
    assert removed == [str(dead)]
    assert live.exists() and other_host.exists() and lookalike.exists() and legacy_new.exists()
    old = os.path.getmtime(legacy_new) - 2 * 3600
    os.utime(legacy_new, (old, old))
    assert clean_stale_temp_files(tmp_path) == [str(legacy_new)]
    # temporaries are never models, whatever lists the folder
    assert list_checkpoints(tmp_path) == ["model.safetensors"]
    assert list_checkpoints(tmp_path, include_diverged=True) == ["model.diverged.safetensors", "model.safetensors"]
    assert is_temp_file(live.name) and not is_temp_file("model.safetensors") and not live.name.endswith(".safetensors")


def test_an_interrupt_or_error_mid_save_leaves_no_temporary_file_and_the_old_file_intact(tmp_path, monkeypatch):
    import pytest

    from mmvae import CheckpointError, ModalityConfig, ModelConfig, build_model, save_checkpoint

    model = build_model(ModelConfig([ModalityConfig(n, (3,), network={"type": "mlp", "hidden": [4]})
                                     for n in ("a", "b")]))
    path = tmp_path / "m.safetensors"
    save_checkpoint(path, model)
    before = path.read_bytes()
    for exc, expected in ((KeyboardInterrupt(), KeyboardInterrupt), (OSError(28, "No space left on device"),
                                                                     CheckpointError)):
        def fail(*args, exc=exc):
            raise exc
        monkeypatch.setattr(os, "replace", fail)
        with pytest.raises(expected):
            save_checkpoint(path, model, extra={"new": True})
        monkeypatch.undo()
        assert path.read_bytes() == before and os.listdir(tmp_path) == ["m.safetensors"]
    with torch_no_nan(model):
        with pytest.raises(CheckpointError, match="NaN or inf"):
            save_checkpoint(path, model)
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["m.safetensors"]


class torch_no_nan:
    """Put a NaN into the model's first weight for the block (a diverged model)."""

    def __init__(self, model):
        self.p = next(model.parameters())

    def __enter__(self):
        import torch

        with torch.no_grad():
            self.old = self.p.detach().clone()
            self.p.view(-1)[0] = float("nan")

    def __exit__(self, *exc):
        import torch

        with torch.no_grad():
            self.p.copy_(self.old)


def test_sigterm_during_training_exits_cleanly_and_writes_nothing(tmp_path):
    import signal

    env = {**os.environ, "PYTHONPATH": ROOT, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    out = tmp_path / "m.safetensors"
    proc = subprocess.Popen([sys.executable, "-m", "mmvae", "train", "--data", "toy", "--data-option", "n=300",
                             "--epochs", "100000", "--quiet", "--hidden", "8", "--out", str(out)],
                            stderr=subprocess.PIPE, text=True, env=env)
    try:
        first = proc.stderr.readline()  # "training ..." is printed once the data and model are ready
        assert first.startswith("training"), first
        proc.send_signal(signal.SIGTERM)
        rest = proc.communicate(timeout=60)[1]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130 and "mmvae: interrupted" in rest and "Traceback" not in rest, rest
    assert os.listdir(tmp_path) == []
