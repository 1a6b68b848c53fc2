"""Checkpoints: one ``.safetensors`` file with the weights and the full configuration as JSON.

Reading is header first and never unpickles anything: the JSON metadata and every tensor's
declared shape and dtype come from ``safetensors.safe_open`` (no tensor data read, no torch
needed for :func:`read_metadata`); the configuration is checked for structure and size
(:data:`mmvae.limits.RANGES`, at most ``mmvae.limits.current()["max_parameters"]`` parameters,
100 million by default) and the model it describes is built on torch's ``meta`` device (no
memory) to compare its parameter shapes with the file's *before* any real module is built.
Every failure is a one-line :class:`~mmvae.errors.CheckpointError` naming the file.

Writing is atomic: a temporary file ``.mmvae-tmp-HOST-PID-XXXX.part`` in the same folder, then
``os.replace``; it is removed on any exception or interrupt, and temporary files left by killed
processes (their PID no longer alive on this host) are removed by the next save into that folder.
Temporary files never end in ``.safetensors``, so nothing lists them as models
(:func:`list_checkpoints` is the helper that lists models). Weights that contain NaN or inf are
refused unless ``allow_nonfinite=True``.
"""
from __future__ import annotations

import json
import math
import os
import re
import socket
import stat
import tempfile
import time
from dataclasses import dataclass, field
from typing import Mapping

import torch
from torch import nn

from . import limits
from .errors import CheckpointError, ConfigError
from .model import ModelConfig, MultimodalVAE

FORMAT = "mmvae-checkpoint"
VERSION = "1"
RECORDS = ("config", "data", "train", "history", "extra")
_FLOAT_DTYPES = {"F16", "BF16", "F32", "F64"}


@dataclass
class Checkpoint:
    """A loaded checkpoint: the model and the JSON-able records saved beside it."""

    model: MultimodalVAE
    data: dict = field(default_factory=dict)  # dataset name, options, seed, modality specs
    train: dict = field(default_factory=dict)  # TrainConfig
    history: dict = field(default_factory=dict)  # History
    extra: dict = field(default_factory=dict)


# ------------------------------------------------------------------------------- temporary files
_TEMP_RE = re.compile(r"\.mmvae-tmp-([A-Za-z0-9]{1,64})-([0-9]{1,10})-[A-Za-z0-9_]{1,32}\.part")
_LEGACY_TEMP_RE = re.compile(r"\.tmp-[A-Za-z0-9_]{6,32}\.safetensors")  # what earlier versions wrote
LEGACY_TEMP_AGE_S = 3600.0  # legacy temporaries carry no PID: removed once this old


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9]", "", socket.gethostname())[:64] or "host"


def _temp_prefix() -> str:
    return f".mmvae-tmp-{_host()}-{os.getpid()}-"


def is_temp_file(name: str | os.PathLike) -> bool:
    """True for the name of a temporary file of :func:`save_checkpoint` (never a model)."""
    base = os.path.basename(os.fspath(name))
    return bool(_TEMP_RE.fullmatch(base) or _LEGACY_TEMP_RE.fullmatch(base))


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, OSError):
        return True  # exists (another user's) or cannot tell: keep the file
    return True


def clean_stale_temp_files(folder: str | os.PathLike) -> list[str]:
    """Remove temporary files that killed saves left in ``folder``: only regular files whose name
    matches our pattern, written on this host by a process that is no longer alive (legacy names
    without a PID: once older than :data:`LEGACY_TEMP_AGE_S`). Returns the removed paths."""
    folder = os.fspath(folder)
    removed = []
    try:
        names = os.listdir(folder)
    except OSError:
        return removed
    host, now = _host(), time.time()
    for name in names:
        m = _TEMP_RE.fullmatch(name)
        legacy = m is None and _LEGACY_TEMP_RE.fullmatch(name) is not None
        if m is None and not legacy:
            continue
        path = os.path.join(folder, name)
        try:
            st = os.lstat(path)
        except OSError:
            continue
        if not stat.S_ISREG(st.st_mode):
            continue
        stale = (now - st.st_mtime > LEGACY_TEMP_AGE_S) if legacy else (
            m.group(1) == host and not _pid_alive(int(m.group(2))))
        if stale:
            try:
                os.unlink(path)
                removed.append(path)
            except OSError:
                pass  # already gone (another process cleaned it) or not ours to remove
    return removed


def list_checkpoints(folder: str | os.PathLike, include_diverged: bool = False) -> list[str]:
    """File names of the checkpoints in ``folder``, sorted: regular ``*.safetensors`` files that are
    not hidden, not temporary files and (unless asked) not ``*.diverged.safetensors``."""
    folder = os.fspath(folder)
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    return sorted(n for n in names
                  if n.endswith(".safetensors") and not n.startswith(".") and not is_temp_file(n)
                  and (include_diverged or not n.endswith(".diverged.safetensors"))
                  and os.path.isfile(os.path.join(folder, n)))


def diverged_path(path: str | os.PathLike) -> str:
    """``NAME.diverged.safetensors`` beside ``NAME.safetensors`` (where a diverged run may be kept)."""
    root, ext = os.path.splitext(os.fspath(path))
    return f"{root}.diverged{ext or '.safetensors'}"


def check_output_path(path: str | os.PathLike) -> str:
    """Check, before any work, that a checkpoint can be written at ``path``: not a directory, not a
    special file, its folder exists, is a folder and is writable (a temporary file is created and
    removed there). Returns the path; raises :class:`CheckpointError`."""
    path = os.fspath(path)
    if not path or path.endswith(os.sep):
        raise CheckpointError(f"{path!r}: an output path must name a file")
    if os.path.isdir(path):
        raise CheckpointError(f"{path}: is a directory; give a file name such as {os.path.join(path, 'model.safetensors')}")
    if os.path.lexists(path) and not os.path.isfile(path):
        raise CheckpointError(f"{path}: exists and is not a regular file")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.exists(folder):
        raise CheckpointError(f"{path}: the folder {folder} does not exist")
    if not os.path.isdir(folder):
        raise CheckpointError(f"{path}: {folder} is not a folder")
    try:
        fd, probe = tempfile.mkstemp(prefix=_temp_prefix(), suffix=".part", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise CheckpointError(f"{path}: cannot write in {folder} ({e.strerror or type(e).__name__})") from None
    return path


def weights_finite(model: nn.Module) -> bool:
    """True when every floating-point parameter and buffer of ``model`` is finite."""
    return all(bool(torch.isfinite(t).all()) for t in model.state_dict().values() if t.is_floating_point())


# ------------------------------------------------------------------------------------- writing
def save_checkpoint(
    path: str | os.PathLike,
    model: MultimodalVAE,
    data: Mapping | None = None,
    train: Mapping | None = None,
    history: Mapping | None = None,
    extra: Mapping | None = None,
    *,
    allow_nonfinite: bool = False,
) -> None:
    """Write ``model`` (weights and configuration) and the given records to ``path`` atomically.

    Raises :class:`CheckpointError` (and leaves ``path`` as it was) when the weights hold NaN or
    inf (unless ``allow_nonfinite``) or the file cannot be written."""
    from safetensors.torch import save

    path = os.fspath(path)
    if os.path.isdir(path):
        raise CheckpointError(f"{path}: is a directory; give a file name")
    if not allow_nonfinite and not weights_finite(model):
        raise CheckpointError(f"{path}: not saved: the model's weights contain NaN or inf")
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()}
    metadata = {
        "format": FORMAT,
        "version": VERSION,
        "config": json.dumps(model.config.to_dict()),
        "data": json.dumps(dict(data or {})),
        "train": json.dumps(dict(train or {})),
        "history": json.dumps(dict(history or {})),
        "extra": json.dumps(dict(extra or {})),
    }
    blob = save(tensors, metadata=metadata)
    try:
        write_atomic(path, blob)
    except OSError as e:
        raise CheckpointError(f"{path}: cannot write the checkpoint ({e.strerror or type(e).__name__})") from None


def _umask() -> int:
    """The process's file-mode mask, read without changing it (Linux /proc), else by the
    set-and-restore idiom."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_atomic(path: str | os.PathLike, blob: bytes) -> None:
    """Write ``blob`` to ``path`` atomically: a temporary file in the same folder (named by
    :func:`_temp_prefix`, so :func:`clean_stale_temp_files` removes those of killed processes, and
    never ending in ``.safetensors``), flushed to disk, then renamed over ``path``. On any error or
    interrupt the temporary file is removed and ``path`` is left as it was."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    tmp = None
    try:
        os.makedirs(folder, exist_ok=True)
        clean_stale_temp_files(folder)
        fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(), suffix=".part", dir=folder)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; give the usual permissions
        with os.fdopen(fd, "wb") as f:
            f.write(blob)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        tmp = None
    finally:
        if tmp is not None:  # an error or interrupt: remove the temporary file
            try:
                os.unlink(tmp)
            except OSError:
                pass


# ------------------------------------------------------------------------------------- reading
def _unreadable(path: str, e: BaseException) -> CheckpointError:
    first = str(e).splitlines()[0] if str(e) else type(e).__name__
    return CheckpointError(f"{path}: not a readable mmvae checkpoint (corrupt, truncated or another format: {first})")


def read_header(path: str | os.PathLike) -> tuple[dict[str, str], dict[str, tuple[tuple[int, ...], str]]]:
    """The metadata and ``{tensor name: (shape, safetensors dtype)}`` of a checkpoint, from its
    header alone (``safetensors.safe_open``; no tensor data is read, no torch needed)."""
    from safetensors import SafetensorError, safe_open

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        with safe_open(path, framework="numpy") as f:
            metadata = f.metadata() or {}
            shapes = {}
            for k in f.keys():
                s = f.get_slice(k)
                shapes[k] = (tuple(int(d) for d in s.get_shape()), str(s.get_dtype()))
    except (SafetensorError, OSError, ValueError, OverflowError, UnicodeDecodeError, MemoryError, TypeError) as e:
        raise _unreadable(path, e) from None
    if metadata.get("format") != FORMAT:
        raise CheckpointError(f"{path}: a safetensors file, but not an mmvae checkpoint (no mmvae metadata)")
    if metadata.get("version") != VERSION:
        raise CheckpointError(f"{path}: checkpoint version {metadata.get('version')!r} is not supported "
                              f"(this mmvae reads version {VERSION})")
    return metadata, shapes


def _records(path: str, metadata: Mapping[str, str]) -> dict[str, dict]:
    records = {}
    for k in RECORDS:
        try:
            value = json.loads(metadata.get(k) or "{}")
        except (ValueError, RecursionError) as e:
            raise CheckpointError(f"{path}: the checkpoint's '{k}' record is not valid JSON "
                                  f"({str(e).splitlines()[0] if str(e) else type(e).__name__})") from None
        if not isinstance(value, dict):
            raise CheckpointError(f"{path}: the checkpoint's '{k}' record must be a JSON object, "
                                  f"got {type(value).__name__}")
        records[k] = value
    _check_records(path, records)
    return records


def _is_int(v, lo: int, hi: int) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi


# record -> {field: (check, what it must be)}; fields are optional, but if present must be right
_RECORD_FIELDS = {
    "data": {"name": (lambda v: isinstance(v, str), "a string"),
             "options": (lambda v: isinstance(v, dict), "a JSON object"),
             "seed": (lambda v: _is_int(v, 0, 2**32 - 1), "an integer from 0 to 2**32 - 1"),
             "specs": (lambda v: isinstance(v, dict) and all(isinstance(x, dict) for x in v.values()),
                       "a JSON object of JSON objects")},
    "train": {k: (lambda v: v is None or _is_int(v, 1, 2**31), "a positive integer")
              for k in ("K", "epochs", "batch_size", "eval_K")},
    "history": {"records": (lambda v: isinstance(v, list) and all(isinstance(r, dict) for r in v),
                            "a list of JSON objects"),
                "stopped": (lambda v: v is None or isinstance(v, str), "a string or null")},
}


def _check_records(path: str, records: Mapping[str, dict]) -> None:
    for name, fields in _RECORD_FIELDS.items():
        for key, (ok, what) in fields.items():
            if key in records[name] and not ok(records[name][key]):
                raise CheckpointError(f"{path}: the checkpoint's '{name}' record has {key} = "
                                      f"{json.dumps(records[name][key])[:60]}; it must be {what}")


def read_metadata(path: str | os.PathLike) -> dict[str, dict]:
    """The JSON records of a checkpoint (``config``, ``data``, ``train``, ``history``, ``extra``)
    from its header alone: no tensor data read, no model built."""
    path = os.fspath(path)
    metadata, _ = read_header(path)
    return _records(path, metadata)


def _int_list(value: object, name: str, count_key: str, item_key: str) -> list[int]:
    if not isinstance(value, list):
        raise ConfigError(f"{name} must be a list of integers, got {value!r}")
    limits.check_int(name, len(value), f"the number of entries of {name}", count_key)
    return [limits.check_int(name, v, name, item_key) for v in value]


def check_config(config: object) -> ModelConfig:
    """A :class:`ModelConfig` from a checkpoint's ``config`` record, after checking its structure
    and every size against :data:`mmvae.limits.RANGES` (raises :class:`ConfigError`)."""
    from .data.validate import check_modality_name

    if not isinstance(config, dict):
        raise ConfigError(f"expected a JSON object, got {type(config).__name__}")
    d = dict(config)
    mods = d.get("modalities")
    if not isinstance(mods, list) or not mods:
        raise ConfigError("'modalities' must be a non-empty list")
    limits.check_int("modalities", len(mods), "the number of modalities")
    if "latent_dim" in d:
        d["latent_dim"] = limits.check_int("latent_dim", d["latent_dim"], "latent_dim")
    if "private_dim" in d:  # absent in checkpoints written before private latents: 0
        d["private_dim"] = limits.check_int("private_dim", d["private_dim"], "private_dim")
    if d.get("fusion") == "mopoe":
        limits.check_int("mopoe_modalities", len(mods), "the number of modalities of a MoPoE model")
    checked = []
    for m in mods:
        if not isinstance(m, dict):
            raise ConfigError(f"each modality must be a JSON object, got {m!r:.80}")
        m = dict(m)
        check_modality_name(m.get("name"), "modality name", error=ConfigError)
        shape = _int_list(m.get("shape"), f"shape of {m['name']!r}", "shape_axes", "features")
        limits.check_int("features", math.prod(shape), f"numbers per sample of {m['name']!r}")
        m["shape"] = shape
        net = m.get("network", {"type": "mlp", "hidden": [128, 128]})
        if not isinstance(net, dict) or not isinstance(net.get("type", "mlp"), str):
            raise ConfigError(f"network of {m['name']!r} must be a JSON object with a 'type', got {net!r:.80}")
        net = dict(net)
        kind = net.get("type", "mlp")
        if kind == "mlp" and "hidden" in net:
            net["hidden"] = _int_list(net["hidden"], f"hidden widths of {m['name']!r}", "hidden_layers", "hidden")
        elif kind in ("conv1d", "conv2d"):
            if "channels" in net:
                net["channels"] = _int_list(net["channels"], f"channels of {m['name']!r}", "conv_layers", "channels")
            if "hidden" in net:
                net["hidden"] = limits.check_int("hidden", net["hidden"], f"hidden width of {m['name']!r}")
        m["network"] = net
        checked.append(m)
    d["modalities"] = checked
    try:
        return ModelConfig.from_dict(d)
    except (ValueError, TypeError, KeyError) as e:
        raise ConfigError(str(e).splitlines()[0] if str(e) else type(e).__name__) from None


def expected_state(
    config: ModelConfig,
    encoders: Mapping[str, nn.Module] | None = None,
    decoders: Mapping[str, nn.Module] | None = None,
) -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
    """``{name: (shape, dtype)}`` of the state dict of the model ``config`` describes, built on
    torch's meta device (no memory is allocated for built-in networks)."""
    with torch.device("meta"):
        model = MultimodalVAE(config, encoders=encoders, decoders=decoders)
    return {k: (tuple(v.shape), v.dtype) for k, v in model.state_dict().items()}


def _check_fit(path: str, expected: dict, found: dict) -> None:
    missing, unexpected = sorted(set(expected) - set(found)), sorted(set(found) - set(expected))
    if missing or unexpected:
        parts = ([f"missing {missing[:3]}{' ...' if len(missing) > 3 else ''}"] if missing else []) + (
            [f"unexpected {unexpected[:3]}{' ...' if len(unexpected) > 3 else ''}"] if unexpected else [])
        raise CheckpointError(f"{path}: the weights do not fit the saved configuration ({'; '.join(parts)})")
    for k, (shape, dtype) in expected.items():
        f_shape, f_dtype = found[k]
        if f_shape != shape:
            raise CheckpointError(f"{path}: the weights do not fit the saved configuration (tensor {k!r} has "
                                  f"shape {list(f_shape)}, the configuration needs {list(shape)})")
        if dtype.is_floating_point and f_dtype not in _FLOAT_DTYPES:
            raise CheckpointError(f"{path}: the weights do not fit the saved configuration (tensor {k!r} is "
                                  f"{f_dtype}, expected a floating-point dtype)")


def _read_checked(path: str, encoders=None, decoders=None) -> tuple[ModelConfig, dict[str, dict]]:
    """Header, records and configuration checked against each other and the limits: nothing big
    is allocated before this returns."""
    metadata, found = read_header(path)
    records = _records(path, metadata)
    try:
        config = check_config(records["config"])
    except ConfigError as e:
        raise CheckpointError(f"{path}: the checkpoint's configuration is invalid ({e})") from None
    cap = limits.current()["max_parameters"]
    declared = sum(math.prod(s) for s, _ in found.values())
    if declared > cap:
        raise CheckpointError(f"{path}: the file declares {declared:,} weights, above the limit of {cap:,} "
                              "(raise it with --max-parameters)")
    try:
        expected = expected_state(config, encoders, decoders)
    except (ValueError, TypeError, KeyError, IndexError, RuntimeError, ZeroDivisionError) as e:
        raise CheckpointError(f"{path}: the checkpoint's configuration is invalid "
                              f"({str(e).splitlines()[0] if str(e) else type(e).__name__})") from None
    n_params = sum(math.prod(s) for s, _ in expected.values())
    if n_params > cap:
        raise CheckpointError(f"{path}: the configuration asks for {n_params:,} parameters, above the limit of "
                              f"{cap:,} (raise it with --max-parameters)")
    _check_fit(path, expected, found)
    return config, records


def read_checkpoint_file(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Read tensors and metadata, with a clear :class:`CheckpointError` for anything unreadable
    (the header is checked first; see the module docstring)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = os.fspath(path)
    metadata, found = read_header(path)
    cap = limits.current()["max_parameters"]
    if sum(math.prod(s) for s, _ in found.values()) > cap:
        raise CheckpointError(f"{path}: the file declares more than {cap:,} weights (raise it with --max-parameters)")
    try:
        tensors = load_file(path)
    except (SafetensorError, OSError, ValueError, MemoryError) as e:
        raise _unreadable(path, e) from None
    return tensors, metadata


def load_checkpoint(
    path: str | os.PathLike,
    device: str | torch.device = "cpu",
    encoders: Mapping[str, nn.Module] | None = None,
    decoders: Mapping[str, nn.Module] | None = None,
) -> Checkpoint:
    """Rebuild the model saved in ``path`` and load its weights (pass your own modules if it used
    custom encoders and decoders). The configuration is checked against the weights' declared
    shapes and the parameter limit before any module is built."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = os.fspath(path)
    config, records = _read_checked(path, encoders, decoders)
    try:
        # the initial weights are overwritten: draw them from a throwaway generator, not the global RNG
        model = MultimodalVAE(config, encoders=encoders, decoders=decoders, generator=torch.Generator())
    except (ValueError, TypeError, KeyError, RuntimeError) as e:
        raise CheckpointError(f"{path}: the checkpoint's configuration is invalid ({e})") from None
    try:
        tensors = load_file(path)
    except (SafetensorError, OSError, ValueError, MemoryError) as e:
        raise _unreadable(path, e) from None
    try:
        model.load_state_dict(tensors, strict=True)
    except RuntimeError as e:
        raise CheckpointError(f"{path}: the weights do not fit the saved configuration "
                              f"({str(e).splitlines()[0]})") from None
    from .training import resolve_device

    model.to(resolve_device(device)).eval()
    return Checkpoint(model, records["data"], records["train"], records["history"], records["extra"])


def data_provenance(name: str, options: Mapping | None, seed: int, specs: Mapping) -> dict:
    """The ``data`` record of a checkpoint: what ``load_dataset(name, seed=seed, **options)``
    needs to rebuild the training data (``mmvae.evaluation.scoring_data`` does), and each
    modality's spec (shape, likelihood, unit, standardising shift and scale) as JSON. The one
    builder used by ``mmvae train``, the app and ``checkpoints/make_checkpoints.py``."""
    return {"name": str(name), "options": dict(options or {}), "seed": int(seed),
            "specs": {k: s.to_dict() for k, s in specs.items()}}
