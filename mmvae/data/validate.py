"""Checks on data files and dataset options made *before* anything is loaded.

- :func:`check_npz`: reads each array's declared shape and dtype from its ``.npy`` header inside
  the zip (no array data is read) and refuses object (pickled), complex and non-numeric arrays,
  keys that cannot name a modality, arrays that declare more bytes than their zip entry holds, and
  a total float32 size above ``mmvae.limits.current()["max_data_bytes"]`` (2 GiB by default).
- :func:`check_las`: bounds a LAS file's size (32 MiB by default) and its header (at most
  :data:`mmvae.limits.MAX_LAS_HEADER_LINES` lines before ``~A``, each at most 64 KiB) by one
  streaming pass, so lasio never parses an unbounded header.
- :func:`check_dataset_options`: size options (``n``, ``dims``, ``length``, ``window`` ...) inside
  :data:`mmvae.limits.RANGES` and the dataset they would build under the data-size limit.
- :func:`check_modality_name`: a name the model can use as a module key.

Every failure is a :class:`~mmvae.errors.DataError` naming the file and the problem.
"""
from __future__ import annotations

import math
import os
import re
import zipfile
from functools import lru_cache
from typing import Any, Mapping

import numpy as np

from .. import limits
from ..errors import DataError

__all__ = ["check_npz", "npz_headers", "check_las", "check_dataset_options", "check_modality_name", "MODALITY_NAME"]

MODALITY_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_\-]{0,63}")


@lru_cache(maxsize=1)
def _reserved_names() -> frozenset[str]:
    """Attribute names of ``torch.nn.ModuleDict`` (``training``, ``forward``, ``keys`` ...): a
    modality with such a name cannot be a module key."""
    from torch import nn

    return frozenset(dir(nn.ModuleDict()))


def check_modality_name(name: object, where: str, error: type = DataError) -> str:
    """``name`` if it can name a modality (letters, digits, ``_``, ``-``; at most 64 characters;
    not an attribute of a torch module such as ``training``), else ``error`` naming ``where``."""
    if not isinstance(name, str) or not MODALITY_NAME.fullmatch(name):
        raise error(f"{where}: {name!r} cannot name a modality (use 1 to 64 letters, digits, '_' or '-', "
                    "not starting with '-')")
    if name in _reserved_names():
        raise error(f"{where}: {name!r} cannot name a modality (it is reserved by torch modules); rename it")
    return name


def _dtype_problem(dtype: np.dtype) -> str | None:
    if dtype.hasobject:
        return "is an object array (reading it would need unpickling, which mmvae never does)"
    if dtype.kind == "c":
        return "is complex; mmvae models real numbers (store the real and imaginary parts as two arrays)"
    if dtype.kind not in "biuf" or dtype.fields is not None or dtype.subdtype is not None:
        return f"is not numeric (dtype {dtype})"
    return None


def _read_npy_header(f) -> tuple[tuple[int, ...], np.dtype]:
    version = np.lib.format.read_magic(f)
    if version == (1, 0):
        shape, _, dtype = np.lib.format.read_array_header_1_0(f)
    elif version in ((2, 0), (3, 0)):
        shape, _, dtype = np.lib.format.read_array_header_2_0(f)
    else:
        raise ValueError(f"unsupported .npy format version {version}")
    return tuple(int(s) for s in shape), dtype


def npz_headers(source, where: str, dataset: bool = False) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """Each array's declared (shape, dtype) of an ``.npz`` given as a path or a binary file object,
    read from the ``.npy`` headers alone (no array data is read), after refusing what could not be
    loaded safely and boundedly: too many entries, entries that are not ``.npy`` arrays, repeated
    keys, unreadable headers, object (pickled), complex or non-numeric dtypes, arrays that declare
    more bytes than their zip entry holds, and a total float32 size above the data-size limit.
    ``dataset``: also the rules of a dataset file (keys that can name a modality, at least 3
    samples, at most (C, H, W) per sample)."""
    cap = limits.current()["max_data_bytes"]
    try:
        archive = zipfile.ZipFile(source)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as e:
        raise DataError(f"{where}: not a readable .npz file ({type(e).__name__}: {e})") from None
    total = 0
    headers: dict[str, tuple[tuple[int, ...], np.dtype]] = {}
    with archive:
        infos = archive.infolist()
        if len(infos) > limits.MAX_ARRAYS:
            raise DataError(f"{where}: holds {len(infos)} entries; at most {limits.MAX_ARRAYS} arrays are read")
        for info in infos:
            if not info.filename.endswith(".npy"):
                raise DataError(f"{where}: entry {info.filename!r} is not a .npy array (save the file with numpy.savez)")
            key = info.filename[:-4]
            if key in headers:
                raise DataError(f"{where}: array {key!r} appears twice")
            if dataset and key != "labels":
                check_modality_name(key, f"{where}: array key")
            try:
                with archive.open(info) as f:
                    shape, dtype = _read_npy_header(f)
            except DataError:
                raise
            except Exception as e:  # zlib.error, ValueError, SyntaxError, zipfile errors ...
                raise DataError(f"{where}: array {key!r} has an unreadable .npy header ({type(e).__name__}: "
                                f"{str(e).splitlines()[0] if str(e) else ''})") from None
            problem = _dtype_problem(dtype)
            if problem:
                raise DataError(f"{where}: array {key!r} {problem}")
            if dataset:
                if len(shape) == 0 or shape[0] == 0:
                    raise DataError(f"{where}: array {key!r} has no samples (shape {shape})")
                if shape[0] < 3:
                    raise DataError(f"{where}: array {key!r} has {shape[0]} sample(s); at least 3 are needed "
                                    "(train, validation and test)")
                if len(shape) - 1 > limits.RANGES["shape_axes"][1]:
                    raise DataError(f"{where}: array {key!r} has {len(shape)} axes; at most "
                                    f"{limits.RANGES['shape_axes'][1] + 1} (samples and up to (C, H, W)) are supported")
            count = math.prod(shape)
            declared = count * dtype.itemsize
            if declared > info.file_size:
                raise DataError(f"{where}: array {key!r} declares shape {shape} ({declared:,} bytes) but its entry "
                                f"holds {info.file_size:,} bytes (truncated or forged)")
            total += count * max(dtype.itemsize, 4)  # loaded as float32 (or wider)
            if total > cap:
                raise DataError(f"{where}: the arrays need {total / 2**30:.2f} GiB or more as float32, above the "
                                f"limit of {cap / 2**30:.2f} GiB (raise it with --max-data-gb)")
            headers[key] = (shape, dtype)
    return headers


def check_npz(path: str | os.PathLike) -> None:
    """Validate a dataset ``.npz`` file from its headers alone (see the module docstring)."""
    path = os.fspath(path)
    npz_headers(path, path, dataset=True)


def check_las(path: str | os.PathLike) -> None:
    """Bound a LAS file's size and header before lasio parses it (see the module docstring)."""
    path = os.fspath(path)
    cap = limits.current()["max_las_bytes"]
    size = os.path.getsize(path)
    if size > cap:
        raise DataError(f"{path}: {size / 2**20:.1f} MiB, above the LAS size limit of {cap / 2**20:.0f} MiB "
                        "(raise it with --max-las-mb)")
    max_lines, max_line = limits.MAX_LAS_HEADER_LINES, limits.MAX_LAS_LINE_BYTES
    with open(path, "rb") as f:
        for n in range(max_lines + 1):
            line = f.readline(max_line + 1)
            if not line:
                raise DataError(f"{path}: no ~A (data) section; not a complete LAS file")
            if len(line) > max_line:
                raise DataError(f"{path}: header line {n + 1} is longer than {max_line:,} bytes")
            if line.lstrip()[:2].upper() == b"~A":
                return
    raise DataError(f"{path}: the LAS header has more than {max_lines:,} lines before the ~A (data) section")


def _numbers(value: Any) -> list[float] | None:
    values = value if isinstance(value, (list, tuple)) else [value]
    out = []
    for v in values:
        if isinstance(v, bool):
            return None
        try:
            out.append(float(v))
        except (TypeError, ValueError):
            return None  # not a number: the dataset's own option check reports it
    return out


def check_dataset_options(name: str, options: Mapping[str, Any]) -> None:
    """Size options inside :data:`mmvae.limits.RANGES`, and the dataset they ask for (samples x
    numbers per sample, as float32) under the data-size limit."""
    for key, value in options.items():
        if key not in limits.RANGES or key not in ("n", "dims", "length", "window", "stride", "n_blocks",
                                                   "n_modalities"):
            continue
        numbers = _numbers(value)
        if numbers is None:
            continue
        lo, hi = limits.RANGES[key]
        for v in numbers:
            if not math.isfinite(v) or v > hi:
                raise DataError(f"option {key}={value!r} for {name!r} is above the limit of {hi:,} "
                                "(see README 'Bad input')")
    n = _numbers(options.get("n", 0)) or [0]
    per_sample = 0.0
    if "dims" in options:
        dims = _numbers(options["dims"]) or [0]
        m = _numbers(options.get("n_modalities", 2)) or [2]
        per_sample = sum(dims) * (m[0] if len(dims) == 1 else 1)
    elif "length" in options:
        per_sample = (_numbers(options["length"]) or [0])[0] * 4  # AI, SI and two angle stacks
    cap = limits.current()["max_data_bytes"]
    if n[0] * per_sample * 4 > cap:
        raise DataError(f"options {dict(options)!r} for {name!r} ask for {n[0] * per_sample * 4 / 2**30:.2f} GiB "
                        f"of data, above the limit of {cap / 2**30:.2f} GiB (raise it with --max-data-gb)")
