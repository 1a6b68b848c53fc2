"""Command line: ``python -m mmvae train ...`` and ``python -m mmvae evaluate CHECKPOINT``.

Every error a user can cause (a bad option value, a missing file, malformed data, a corrupt
checkpoint, a diverged run) prints one line ``mmvae: error: ...`` and exits with status 2; no
traceback unless ``--debug``. Options are checked before any work starts: argparse ``type=``
functions check the format, :data:`VALIDATORS` (one function per subcommand, over the parsed
namespace) check ranges against the central table :data:`mmvae.limits.RANGES`, devices and paths.
A new subcommand gets the common options (``--debug``, the limits) from :func:`add_common_options`
and registers its validator in :data:`VALIDATORS` and its function in :data:`COMMANDS`.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import signal
import sys
from typing import Callable, Sequence

from . import limits
from .distributions import CROSS_PRIVATE, LATENT_FAMILIES, LIKELIHOODS
from .errors import ConfigError, TrainingError
from .fusion import FUSIONS
from .networks import NETWORK_TYPES
from .objectives import BOUNDS, ESTIMATORS


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, not usage + message
        self.exit(2, f"mmvae: error: {message} (see '{self.prog} --help')\n")


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return v


def _positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not v > 0 or v == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return v


def _int_list(text: str) -> list[int]:
    try:
        values = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated positive integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected comma-separated positive integers, got {text!r}")
    return values


def _seed(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer from 0 to 2**32 - 1, got {text!r}") from None
    if not 0 <= v < 2**32:
        raise argparse.ArgumentTypeError(f"expected an integer from 0 to 2**32 - 1, got {text!r}")
    return v


def _scale(text: str) -> float | None:
    if text == "learned":
        return None
    return _positive_float(text)


def _fractions(text: str) -> tuple[float, float, float]:
    try:
        v = tuple(float(t) for t in text.split(","))
    except ValueError:
        v = ()
    if len(v) != 3 or min(v) < 0 or abs(sum(v) - 1) > 1e-6 or v[0] <= 0:
        raise argparse.ArgumentTypeError(f"expected three fractions TRAIN,VAL,TEST >= 0 summing to 1, got {text!r}")
    return v  # type: ignore[return-value]


def _quantiles(text: str) -> list[float]:
    try:
        v = [float(t) for t in text.split(",") if t.strip()]
    except ValueError:
        v = []
    if not v or min(v) <= 0 or max(v) >= 1:
        raise argparse.ArgumentTypeError(f"expected comma-separated levels in (0, 1), e.g. 0.1,0.5,0.9, got {text!r}")
    return v


def _key_value(text: str) -> tuple[str, object]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    key, value = text.split("=", 1)
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError:
        parsed = value
    return key.strip(), parsed


def _limit_help(key: str) -> str:
    lo, hi = limits.RANGES[key]
    return f"{lo:,} to {hi:,}"


def _common_parser() -> argparse.ArgumentParser:
    """Options every subcommand takes (see :func:`add_common_options`); SUPPRESS keeps a value given
    before the subcommand (``python -m mmvae --debug train ...``) from being reset by the subparser."""
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("limits and debugging")
    g.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                   help="show the Python traceback of an error instead of one line")
    g.add_argument("--max-data-gb", type=_positive_float, default=argparse.SUPPRESS, metavar="GB",
                   help=f"largest data set or data file read, as float32 (default: "
                        f"{limits.DEFAULTS['max_data_bytes'] / 2**30:g})")
    g.add_argument("--max-las-mb", type=_positive_float, default=argparse.SUPPRESS, metavar="MB",
                   help=f"largest LAS file read (default: {limits.DEFAULTS['max_las_bytes'] / 2**20:g}; "
                        "lasio needs about 30 times the file size in memory)")
    g.add_argument("--max-step-gb", type=_positive_float, default=argparse.SUPPRESS, metavar="GB",
                   help=f"largest estimated memory of one training or validation step (default: "
                        f"{limits.DEFAULTS['max_step_bytes'] / 2**30:g})")
    g.add_argument("--max-parameters", type=_positive_int, default=argparse.SUPPRESS, metavar="N",
                   help=f"largest model, built or loaded (default: {limits.DEFAULTS['max_parameters']:,})")
    return p


COMMON = _common_parser()


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m mmvae", description="Multimodal VAEs (PoE, MoE, MoPoE) with ELBO, IWAE, DReG and STL.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    t = sub.add_parser("train", help="train a model and save a checkpoint",
                       description="Train a multimodal VAE on a built-in dataset or your own file and save a checkpoint.")
    t.add_argument("--data", action="append", default=None,
                   help="built-in dataset name (see 'python -m mmvae datasets') or a path to a .npz (one array per "
                        "modality, optional 'labels') or .las file (default: toy). LAS files and well .npz files "
                        "(depth, AI, SI) train the impedance workflow: repeat --data or give a folder for several "
                        "wells, each split by depth with --depth-split")
    t.add_argument("--depth-split", type=_fractions, default=(0.7, 0.15, 0.15), metavar="TRAIN,VAL,TEST",
                   help="impedance wells: fractions of each well's valid samples, in contiguous depth intervals from "
                        "the top (training on top, testing on the deepest interval; default: 0.7,0.15,0.15)")
    t.add_argument("--physics", choices=("on", "off"), default="on",
                   help="impedance wells: model log-AI shape and the residual of log SI from rock physics "
                        "(Gardner + Castagna) so physics carries the trend (on), or AI and SI directly (off) "
                        "(default: on)")
    t.add_argument("--data-option", action="append", default=[], type=_key_value, metavar="KEY=VALUE",
                   help="dataset option, repeatable (e.g. n_modalities=3, window=64)")
    t.add_argument("--out", required=True, help="checkpoint path to write (.safetensors)")
    t.add_argument("--fusion", choices=FUSIONS, default="poe", help="how unimodal posteriors are fused (default: poe)")
    t.add_argument("--estimator", choices=ESTIMATORS, default="iwae",
                   help="objective / gradient estimator: elbo, iwae (plain), dreg (doubly reparameterised), stl (drops the score term: unbiased at K=1, where it trains the ELBO; biased for K>1) (default: iwae)")
    t.add_argument("-K", "--K", type=_positive_int, default=1, dest="K", help="importance samples per component (default: 1)")
    t.add_argument("--bound", choices=BOUNDS, default="tight", help="stratified mixture bound for moe/mopoe (default: tight)")
    t.add_argument("--latent-dim", type=_positive_int, default=2, help="latent dimension D (default: 2)")
    t.add_argument("--private-dim", type=int, default=0, metavar="D_W",
                   help="private latent w_m of this size for every modality beside the shared z (MMVAE+); "
                        "0: none (default: 0)")
    t.add_argument("--cross-private", choices=CROSS_PRIVATE, default="auxiliary",
                   help="where a posterior component does not encode modality m (and for cross-modal generation), "
                        "w_m comes from MMVAE+'s auxiliary prior with a learned scale (auxiliary) or the prior "
                        "(prior) (default: auxiliary)")
    t.add_argument("--latent", choices=LATENT_FAMILIES, default="gaussian",
                   help="prior and posterior family; laplace works with --fusion moe (default: gaussian)")
    t.add_argument("--network", choices=("auto",) + NETWORK_TYPES, default="auto",
                   help="encoder/decoder family; auto: mlp for vectors and images, conv1d for sequences (default: auto)")
    t.add_argument("--hidden", type=_int_list, default=None, help="hidden widths, e.g. 128,128 (mlp) or 128 (conv head)")
    t.add_argument("--channels", type=_int_list, default=None, help="conv channels, e.g. 16,32 (conv1d / conv2d)")
    t.add_argument("--likelihood", choices=LIKELIHOODS, default=None, help="override every modality's likelihood")
    t.add_argument("--likelihood-scale", type=_scale, default=None,
                   help="scale of Gaussian/Laplace likelihoods, a number or 'learned' (default: learned)")
    t.add_argument("--weight", action="append", default=[], type=_key_value, metavar="MODALITY=W",
                   help="likelihood weight of one modality, repeatable (default: 1 each)")
    t.add_argument("--epochs", type=_positive_int, default=20, help="passes over the training data (default: 20)")
    t.add_argument("--batch-size", type=_positive_int, default=128, help="minibatch size (default: 128)")
    t.add_argument("--lr", type=_positive_float, default=1e-3, help="Adam learning rate (default: 1e-3)")
    t.add_argument("--eval-K", type=_positive_int, default=None, help="K of the recorded IWAE(K) curves (default: K)")
    t.add_argument("--seed", type=_seed, default=0, help="seed for data, initial weights and sampling (default: 0)")
    t.add_argument("--device", default="auto", help="auto (cuda if available, else cpu), cpu or cuda (default: auto)")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.add_argument("--compile", action="store_true",
                   help="compile the training step once with torch.compile (pays off for long runs; the compile time is printed)")
    t.add_argument("--subsample", type=_positive_int, default=None,
                   help="moe/mopoe with elbo or --bound looser: sample this many random mixture components per data "
                        "point instead of all (unbiased, cheaper, noisier; default: all)")

    e = sub.add_parser("evaluate", help="bounds and diagnostics of a checkpoint on held-out data",
                       description="Evaluate a checkpoint: ELBO and IWAE(K) for a list of K on the test split of its "
                                   "dataset, or on every point of another file (--data). New data is standardised "
                                   "with the checkpoint's training statistics, never its own; log-likelihoods and "
                                   "bounds are in the data's own units (the JSON also gives the standardised ones).")
    e.add_argument("checkpoint", help="checkpoint path (.safetensors)")
    e.add_argument("--K", type=_int_list, default=[1, 10, 100], help="comma-separated K values (default: 1,10,100)")
    e.add_argument("--split", choices=("all", "train", "val", "test"), default=None,
                   help="which points to score: without --data a split of the checkpoint's dataset (default: test); "
                        "with --data FILE every point of FILE (default: all) or one split of it, cut as "
                        "'train --data FILE' with the same seed and options would cut it")
    e.add_argument("--fusion", choices=FUSIONS, default=None, help="evaluate with another fusion rule (default: the model's)")
    e.add_argument("--data", default=None, help="score other data with the same modalities: a .npz or .las file (all of "
                   "it is test data) or a built-in name (default: the checkpoint's dataset)")
    e.add_argument("--data-option", action="append", default=[], type=_key_value, metavar="KEY=VALUE",
                   help="option of the --data file, repeatable (e.g. fractions=[0.7,0.15,0.15] with --split test; "
                        "LAS window settings default to the checkpoint's)")
    e.add_argument("--seed", type=_seed, default=0, help="seed for sampling (default: 0)")
    e.add_argument("--device", default="auto", help="auto, cpu or cuda (default: auto)")
    e.add_argument("--json", action="store_true", help="print machine-readable JSON instead of a table")
    e.add_argument("--parts", default=None,
                   help="diagnostics to add, comma-separated from bounds,loglik,overlap,embedding,coherence,snr "
                        "or 'all' (default: none; the bound table only)")
    e.add_argument("--embedding", choices=("auto", "raw", "pca", "umap"), default="auto",
                   help="2-D view of the latent for the 'embedding' part: raw (needs D <= 2), pca, umap (takes "
                        "seconds) or auto (raw when D <= 2, else pca) (default: auto)")
    e.add_argument("--n-samples", type=_positive_int, default=None,
                   help="importance samples per data point for log-likelihoods (default: 1000); for impedance "
                        "checkpoints, posterior samples per window of the predictive (default: 32)")
    e.add_argument("--points", default=None,
                   help="data-point indices for the posterior overlap, e.g. 0,5,9 (default: the first 5)")

    pr = sub.add_parser("predict", help="predict SI with P10/P50/P90 along a well and write a LAS file",
                        description="Predict shear impedance from acoustic impedance along a well with an impedance "
                                    "checkpoint: the measured curves, AI, SI (when measured), the predicted quantiles "
                                    "SI_P10, SI_P50, SI_P90 (km/s*g/cm3) and the rock-physics baseline SI_RP, written "
                                    "as a LAS 2.0 file (atomically).")
    pr.add_argument("checkpoint", help="an impedance checkpoint (from 'train --data WELL.las')")
    pr.add_argument("--data", required=True, help="the well: a .las file or a well .npz (depth, AI[, SI])")
    pr.add_argument("--out", required=True, help="LAS file to write")
    pr.add_argument("--quantiles", type=_quantiles, default=[0.1, 0.5, 0.9],
                    help="predictive quantile levels (default: 0.1,0.5,0.9; P10, P50, P90 are always written)")
    pr.add_argument("--n-samples", type=_positive_int, default=32, help="posterior samples per window (default: 32)")
    pr.add_argument("--seed", type=_seed, default=0, help="seed for sampling (default: 0)")

    sub.add_parser("datasets", help="list the built-in datasets", description="List the built-in datasets.")

    # Every argument after `app` goes to `streamlit run` unparsed: no prefix characters, so that
    # "--server.port 8502" (and --help) reach Streamlit instead of argparse.
    a = sub.add_parser("app", add_help=False, prefix_chars="\0",
                       help="start the Streamlit app; further arguments go to 'streamlit run' "
                            "(e.g. --server.port 8502 --server.address 0.0.0.0)")
    a.add_argument("streamlit_args", nargs=argparse.REMAINDER)
    w = sub.add_parser("workshop", add_help=False, prefix_chars="\0",
                       help="start the app for a room: nginx in front of one or more app processes (app/workshop.py; "
                            "'mmvae workshop --help' lists its options)")
    w.add_argument("workshop_args", nargs=argparse.REMAINDER)
    return parser


# Options added to the parser built above (so the argument lines stay as they are): limits and
# --debug on every subcommand, the documented range of each capped option in its help.
RANGE_HELP = {"K": "K", "latent_dim": "latent_dim", "private_dim": "private_dim", "hidden": "hidden", "channels": "channels",
              "eval_K": "eval_K", "n_samples": "n_samples"}


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def add_common_options(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add :data:`COMMON`'s options to ``parser`` and each subcommand that parses options (one
    built with ``add_help=False``, such as a pass-through, is left alone), ``--save-diverged`` to
    ``train``, and the range from :data:`mmvae.limits.RANGES` to the help of each capped option."""
    commands = _subparsers(parser)
    for p in [parser, *commands.values()]:
        if not p.add_help:
            continue
        for action in COMMON._actions:
            p._add_action(action)
        for action in p._actions:
            key = RANGE_HELP.get(action.dest)
            if p is commands.get("evaluate") and action.dest == "K":
                key = "eval_Ks"
            if key and action.help and "range " not in action.help:
                layers = {"hidden": "hidden_layers", "channels": "conv_layers"}.get(key)
                action.help += f" (range {_limit_help(key)}" + (
                    f" each, at most {limits.RANGES[layers][1]} layers)" if layers else ")")
    if "train" in commands:
        commands["train"].add_argument(
            "--save-diverged", action="store_true",
            help="if training diverges, keep its last weights in NAME.diverged.safetensors beside --out "
                 "(never over --out); the command still fails")
    return parser


# ------------------------------------------------------------------------------ validation
DEVICE_TYPES = ("cpu", "cuda", "mps")


def check_device(text: str, option: str = "--device") -> str:
    """``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps``, and available here; anything else
    (``meta``, ``xla``, garbage) is a :class:`ConfigError`."""
    if text == "auto":
        return text
    import torch

    try:
        dev = torch.device(text)
    except (RuntimeError, TypeError, ValueError):
        raise ConfigError(f"{option}: unknown device {text!r}; use auto, cpu or cuda") from None
    if dev.type not in DEVICE_TYPES:
        raise ConfigError(f"{option}: device {text!r} cannot train or evaluate a model; use auto, cpu or cuda")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"{option}: device {text!r} was asked for but no CUDA GPU is available; use auto or cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ConfigError(f"{option}: device {text!r} does not exist ({torch.cuda.device_count()} GPU(s))")
    if dev.type == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise ConfigError(f"{option}: device {text!r} is not available here; use auto or cpu")
    return text


def _check_ints(args: argparse.Namespace, table: Sequence[tuple[str, str, str]]) -> None:
    """(attribute, option, RANGES key) rows: each given value (or each entry of a list) in range."""
    for attr, option, key in table:
        value = getattr(args, attr, None)
        if value is None:
            continue
        for v in value if isinstance(value, list) else [value]:
            limits.check_int(key, v, option)


def validate_train(args: argparse.Namespace) -> None:
    """Everything about ``train`` that can be checked before the data is read."""
    _check_ints(args, [("K", "-K", "K"), ("latent_dim", "--latent-dim", "latent_dim"),
                       ("private_dim", "--private-dim", "private_dim"),
                       ("eval_K", "--eval-K", "eval_K"), ("hidden", "--hidden", "hidden"),
                       ("channels", "--channels", "channels"), ("epochs", "--epochs", "epochs"),
                       ("batch_size", "--batch-size", "batch_size")])
    if args.hidden is not None:
        limits.check_int("hidden_layers", len(args.hidden), "the number of --hidden layers")
    if args.channels is not None:
        limits.check_int("conv_layers", len(args.channels), "the number of --channels layers")
    for name, w in args.weight:
        if isinstance(w, bool) or not isinstance(w, (int, float)) or not (w > 0 and math.isfinite(w)):
            raise ConfigError(f"--weight {name}={w!r}: the weight must be a positive number")
    check_device(args.device)
    from .checkpoint import check_output_path

    check_output_path(args.out)
    for data in args.data if isinstance(args.data, list) else [args.data]:
        if data and os.path.isfile(data) and os.path.exists(args.out) and os.path.samefile(data, args.out):
            raise ConfigError(f"--out {args.out} is the data file {data} itself; choose another name")


def validate_evaluate(args: argparse.Namespace) -> None:
    """Everything about ``evaluate`` that can be checked before the checkpoint is read."""
    _check_ints(args, [("K", "--K", "eval_Ks"), ("n_samples", "--n-samples", "n_samples")])
    if len(args.K) > 32:
        raise ConfigError(f"--K: at most 32 values, got {len(args.K)}")
    check_device(args.device)
    if args.points:
        try:
            points = [int(t) for t in args.points.split(",") if t.strip()]
        except ValueError:
            raise ConfigError(f"--points: expected comma-separated integer indices, got {args.points!r}") from None
        limits.check_int("points", len(points), "the number of --points")
        if any(p < 0 for p in points):
            raise ConfigError(f"--points: indices must be >= 0, got {args.points!r}")


VALIDATORS: dict[str, Callable[[argparse.Namespace], None]] = {
    "train": validate_train,
    "evaluate": validate_evaluate,
}


def validate_args(args: argparse.Namespace) -> None:
    """Run the subcommand's validator (raises :class:`ConfigError` and friends, one line each)."""
    check = VALIDATORS.get(args.command)
    if check is not None:
        check(args)


def check_training_size(config, batch_size: int, K: int, eval_K: int) -> None:
    """Before training: the model under the parameter limit (counted on the meta device) and the
    estimated memory of one training and one validation step under ``max_step_bytes``.

    Estimate: latent samples per step (batch x K x mixture components, or MVAE's M + 1 terms for
    PoE) times the numbers each decoder makes per sample (its hidden widths and its output),
    4 bytes each, times 3 (forward values, gradients, temporaries)."""
    from .checkpoint import expected_state

    cap = limits.current()["max_parameters"]
    n_params = sum(math.prod(shape) for shape, _ in expected_state(config).values())
    if n_params > cap:
        raise ConfigError(f"the model would have {n_params:,} parameters, above the limit of {cap:,} "
                          "(use smaller --hidden / --channels / --latent-dim, or raise --max-parameters)")
    M = len(config.modalities)
    components = {"poe": M + 1, "moe": M, "mopoe": 2**M - 1}[config.fusion]
    per_sample = config.latent_dim + M * config.private_dim
    for m in config.modalities:
        hidden = m.network.get("hidden", [128, 128])
        hidden = hidden if isinstance(hidden, (list, tuple)) else [hidden] + list(m.network.get("channels", [16, 32]))
        per_sample += math.prod(m.shape) * 2 + sum(int(h) for h in hidden)
    cap = limits.current()["max_step_bytes"]
    for what, batch, k in (("training", batch_size, K), ("validation", 512, eval_K)):
        need = batch * k * components * per_sample * 4 * 3
        if need > cap:
            raise ConfigError(f"one {what} step would need about {need / 2**30:.1f} GiB (batch {batch} x K {k} x "
                              f"{components} components), above the limit of {cap / 2**30:g} GiB; use a smaller "
                              f"{'--batch-size or -K' if what == 'training' else '--eval-K'}, or raise --max-step-gb")


def check_before_training(args: argparse.Namespace, specs: dict, config, options: dict) -> None:
    """Everything that could fail once training has run, checked before it starts: modality names,
    the MoPoE subset count, the model and step sizes, and the records stored in the checkpoint."""
    from .data.validate import check_modality_name

    for name in specs:  # names from any loader (npz keys, LAS curves) must be usable as module keys
        check_modality_name(name, f"{args.data}: modality")
    if config.fusion == "mopoe":
        limits.check_int("mopoe_modalities", len(config.modalities), "the number of modalities of a MoPoE model")
    check_training_size(config, args.batch_size, args.K, args.eval_K or args.K)
    try:
        json.dumps([options, {k: s.to_dict() for k, s in specs.items()}, config.to_dict()])
    except (TypeError, ValueError) as e:
        raise ConfigError(f"the options cannot be stored in the checkpoint ({e})") from None


def save_result(args: argparse.Namespace, model, data_info: dict, train_info: dict, history) -> None:
    """Save a finished run to ``--out``, unless it diverged (stopped on NaN / inf, or non-finite
    weights): then ``--out`` is left as it was, the last weights go to NAME.diverged.safetensors
    if ``--save-diverged``, and :class:`TrainingError` is raised. NaN / inf in validation alone is
    a warning (the run is saved)."""
    from .checkpoint import diverged_path, save_checkpoint, weights_finite

    bad = history.val_nonfinite_epochs
    if bad:
        print(f"mmvae: warning: the validation ELBO or IWAE was NaN or inf at epoch(s) "
              f"{', '.join(map(str, bad[:10]))}{' ...' if len(bad) > 10 else ''}", file=sys.stderr)
    problem = history.stopped or (None if weights_finite(model) else "training ended with NaN or inf weights")
    if problem:
        kept = ""
        if getattr(args, "save_diverged", False):
            path = diverged_path(args.out)
            save_checkpoint(path, model, data_info, train_info, history.to_dict(), {"diverged": problem},
                            allow_nonfinite=True)
            kept = f"; its last weights are in {path}"
        raise TrainingError(f"training diverged ({problem}); {args.out} was not written{kept}"
                            + ("" if kept else " (--save-diverged keeps the last weights)"))
    save_checkpoint(args.out, model, data_info, train_info, history.to_dict())


def _train(args: argparse.Namespace) -> int:
    from .distributed import from_environment

    dist = from_environment(args.device)  # None unless started by torchrun with N > 1
    try:
        return _train_in(args, dist)
    finally:
        if dist is not None:
            dist.close()


def _train_in(args: argparse.Namespace, dist) -> int:
    import torch

    from .checkpoint import data_provenance, save_checkpoint
    from .data import load_dataset
    from .model import build_model, config_for_specs
    from .training import fit

    main = dist is None or dist.is_main  # rank 0 prints and writes the checkpoint
    options = dict(args.data_option)
    data = args.data or ["toy"]
    if _is_well_data(data, options):
        if args.private_dim:
            raise ConfigError("--private-dim is not available for impedance wells (their model has a shared latent only)")
        return _train_wells(args, data, options)
    if len(data) > 1:
        raise ValueError("several --data are for impedance wells (.las or well .npz files) only")
    args.data = data[0]
    bundle = load_dataset(args.data, seed=args.seed, **options)
    _check_writable(args.out)
    specs = bundle.specs
    if args.likelihood:
        from dataclasses import replace

        specs = {k: replace(s, likelihood=args.likelihood) for k, s in specs.items()}
    network = None
    if args.network != "auto" or args.hidden or args.channels:
        kind = args.network if args.network != "auto" else "mlp"
        network = {"type": kind}
        if kind == "mlp":
            network["hidden"] = args.hidden or [128, 128]
        else:
            network["channels"] = args.channels or [16, 32]
            network["hidden"] = (args.hidden or [128])[0]
    config = config_for_specs(specs, args.latent_dim, args.latent, args.fusion, network, args.likelihood_scale,
                              args.private_dim, args.cross_private)
    weights = dict(args.weight)
    unknown = set(weights) - {m.name for m in config.modalities}
    if unknown:
        raise ValueError(f"--weight names unknown modalities {sorted(unknown)}; this dataset has {bundle.modality_names}")
    for m in config.modalities:
        if m.name in weights:
            m.weight = float(weights[m.name])
    check_before_training(args, specs, config, options)
    model = build_model(config, seed=args.seed)
    if main:
        ranks = f", {dist.world_size} processes ({dist.device.type})" if dist is not None else ""
        print(f"training {args.fusion} / {args.estimator} (K={args.K}) on {bundle.name}: "
              f"{bundle.train.n} train, {bundle.val.n} validation samples, modalities {bundle.modality_names}{ranks}",
              file=sys.stderr)
    history = fit(model, bundle.train, bundle.val, estimator=args.estimator, K=args.K, bound=args.bound,
                  epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed, device=args.device,
                  eval_K=args.eval_K, progress=main and not args.quiet, compile=args.compile,
                  subsample=args.subsample, distributed=dist)
    if not main:
        return 0  # rank 0 alone reports and writes the checkpoint
    if history.compile_seconds is not None:
        print(f"compiled the training step in {history.compile_seconds:.1f} s (first step included)", file=sys.stderr)
    data_info = data_provenance(args.data, options, args.seed, specs)
    train_info = {"estimator": args.estimator, "K": args.K, "bound": args.bound, "epochs": args.epochs,
                  "batch_size": args.batch_size, "lr": args.lr, "seed": args.seed, "eval_K": args.eval_K,
                  "subsample": args.subsample}
    save_result(args, model.to(torch.device("cpu")), data_info, train_info, history)
    last = history.records[-1] if history.records else {}
    summary = ", ".join(f"{k} {last[k]:.3f}" for k in ("val_elbo", "val_iwae") if k in last)
    print(f"saved {args.out}" + (f" ({summary})" if summary else ""))
    return 0


def _is_well_data(data: list[str], options: dict) -> bool:
    """LAS files, folders and well .npz files (with 'depth' and 'AI') go to the impedance workflow,
    unless curves are chosen by hand (then a LAS file is a generic multimodal dataset)."""
    import os
    import zipfile

    if "curves" in options or "impedance" in options:
        return False

    def well_like(p: str) -> bool:
        if os.path.isdir(p) or p.lower().endswith(".las"):
            return True
        if p.lower().endswith(".npz") and os.path.isfile(p) and zipfile.is_zipfile(p):
            with zipfile.ZipFile(p) as z:
                names = set(z.namelist())
            return {"depth.npy", "AI.npy", "SI.npy"} <= names
        return False

    return all(well_like(p) for p in data)


def _check_writable(path: str) -> None:
    """Fail before the work, not after it, when ``path`` cannot be written."""
    import os

    folder = os.path.dirname(os.path.abspath(path)) or "."
    while not os.path.exists(folder):
        folder = os.path.dirname(folder)
    if os.path.isdir(path):
        raise ValueError(f"--out {path} is a folder; give a file name")
    if not os.access(folder, os.W_OK):
        raise ValueError(f"--out {path}: cannot write in {folder}")


def _train_wells(args: argparse.Namespace, data: list[str], options: dict) -> int:
    from . import impedance as imp

    unknown = set(options) - {"window", "stride"}
    if unknown:
        raise ValueError(f"unknown --data-option(s) {sorted(unknown)} for impedance wells; valid: window, stride")
    paths = imp.find_wells(data)
    wells = [imp.read_well(p) for p in paths]  # every check before training
    _check_writable(args.out)
    network = {"type": args.network if args.network != "auto" else "conv1d"}
    if network["type"] == "mlp":
        network["hidden"] = args.hidden or [128, 128]
    else:
        network["channels"] = args.channels or [16, 32]
        network["hidden"] = (args.hidden or [64])[0]
    cfg = imp.ImpedanceConfig(physics=args.physics == "on", window=int(options.get("window", 64)),
                              stride=int(options.get("stride", 8)), latent_dim=args.latent_dim, fusion=args.fusion,
                              estimator=args.estimator, K=args.K, epochs=args.epochs, batch_size=args.batch_size,
                              lr=args.lr, seed=args.seed, network=network)
    tr, va, split = [], [], {"fractions": list(args.depth_split), "order": "top-down", "test": {}}
    for p, w in zip(paths, wells):
        parts = imp.split_by_depth(w, args.depth_split)
        if "train" not in parts:
            raise ValueError(f"{p}: the depth split leaves no training interval")
        tr.append(parts["train"])
        va += [parts["val"]] if "val" in parts else []
        if "test" in parts:
            split["test"][p] = [float(parts["test"].depth[0]), float(parts["test"].depth[-1])]
    print(f"training impedance model (physics {args.physics}) on {len(wells)} well(s): "
          + ", ".join(f"{w.name} {t.depth[0]:g}-{t.depth[-1]:g} {w.depth_unit}" for w, t in zip(wells, tr)),
          file=sys.stderr)
    model = imp.train(tr, va, cfg, device=args.device, progress=not args.quiet)
    imp.save(model, args.out, paths, split)
    print(f"saved {args.out} (test intervals: "
          + (", ".join(f"{k} {a:g}-{b:g}" for k, (a, b) in split["test"].items()) or "none") + ")")
    return 0


def _evaluate_wells(args: argparse.Namespace, ckpt) -> dict:
    """Scores of an impedance checkpoint: on --data (every depth sample, or --split of it) or on
    the held-out test intervals of its training wells."""
    from . import impedance as imp

    model = imp.load(ckpt)
    info = ckpt.data
    if args.data is not None:
        items = [(p, None) for p in imp.find_wells([args.data])]
    else:
        items = [(p, tuple(iv)) for p, iv in (info.get("split", {}).get("test") or {}).items()]
        if not items:
            raise ValueError("the checkpoint has no held-out test interval; score another well with --data")
    split = args.split or ("all" if args.data is not None else "test")
    rows = []
    for path, interval in items:
        well = imp.read_well(path)
        if interval is not None and split == "test":
            well = well.interval(*interval)
        elif split != "all":
            parts = imp.split_by_depth(well, tuple(info.get("split", {}).get("fractions", (0.7, 0.15, 0.15))))
            if split not in parts:
                raise ValueError(f"{path}: the depth split has no {split} interval")
            well = parts[split]
        pred = imp.predict(model, well, n_samples=args.n_samples or 32, seed=args.seed)
        m = imp.metrics(pred)
        m.update({"well": well.name, "source": path, "top": float(well.depth[0]), "base": float(well.depth[-1]),
                  "depth_unit": well.depth_unit, "split": split})
        rows.append(m)
    return {"model": {"kind": imp.KIND, "fusion": model.model.fusion, "latent_dim": model.model.latent_dim,
                      "physics": model.config.physics, "trained_on": model.wells, "train": ckpt.train},
            "units": {"si": "km/s*g/cm3", "normalization": model.normalizer.to_dict(),
                      "statistics_from": "the checkpoint (the model's training windows)",
                      "features": "log AI minus window mean; log SI - log SI_rock-physics(AI)" if model.config.physics
                      else "AI and SI"},
            "impedance": rows}


def _predict(args: argparse.Namespace) -> int:
    from . import impedance as imp
    from .checkpoint import load_checkpoint

    model = imp.load(load_checkpoint(args.checkpoint))
    well = imp.read_well(args.data, require_si=False)  # predicting SI where it was not measured
    _check_writable(args.out)
    pred = imp.predict(model, well, quantiles=args.quantiles, n_samples=args.n_samples, seed=args.seed)
    imp.write_las(pred, args.out)
    line = f"wrote {args.out}: {well.name}, {well.n} depth samples, {int((pred.n_components > 0).sum())} predicted"
    if well.si is not None and well.valid().any():
        m = imp.metrics(pred)
        line += (f"; RMSE {m['model']['rmse']:.3f} vs rock physics {m['rock_physics']['rmse']:.3f} "
                 f"(ratio {m['rmse_ratio']:.2f}), P10-P90 coverage {m['coverage_80']:.2f}")
    print(line)
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from .checkpoint import load_checkpoint
    from .evaluation import evaluate_checkpoint

    from .training import resolve_device

    device = resolve_device(args.device)
    ckpt = load_checkpoint(args.checkpoint, device=device)
    from .impedance import is_impedance

    if is_impedance(ckpt):
        from .diagnostics.report import jsonable

        report = _evaluate_wells(args, ckpt)
        if args.json:
            print(json.dumps(jsonable(report), indent=2))
        else:
            print(f"{args.checkpoint}: SI from AI (km/s*g/cm3), physics-aware features "
                  f"{'on' if report['model']['physics'] else 'off'}")
            print(f"{'well':<14}{'interval':>20}{'n':>7}{'RMSE':>8}{'RMSE_RP':>9}{'ratio':>7}{'bias':>8}"
                  f"{'cov80':>7}{'CRPS':>7}")
            for r in report["impedance"]:
                print(f"{r['well']:<14}{r['top']:>9.1f}-{r['base']:<9.1f}{r['n']:>7}{r['model']['rmse']:>8.3f}"
                      f"{r['rock_physics']['rmse']:>9.3f}{r['rmse_ratio']:>7.2f}{r['model']['bias']:>8.3f}"
                      f"{r['coverage_80']:>7.2f}{r['crps']:>7.3f}")
        return 0
    points = None
    if args.points:
        try:
            points = [int(t) for t in args.points.split(",") if t.strip()]
        except ValueError:
            raise ValueError(f"--points: expected comma-separated integer indices, got {args.points!r}") from None
    if args.data_option and args.data is None:
        raise ValueError("--data-option needs --data")
    report = evaluate_checkpoint(ckpt, Ks=args.K, split=args.split, fusion=args.fusion, data=args.data, seed=args.seed,
                                 parts=args.parts, n_samples=args.n_samples or 1000, points=points,
                                 embedding_method=args.embedding, data_options=dict(args.data_option))
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"{args.checkpoint}: {report['model']['fusion']} model on {report['data']['name']} "
              f"({report['data']['split']} split, {report['data']['n']} samples), evaluated with {report['fusion']} fusion")
        print("nats per data point in the data's own units (log-densities of the unstandardised data, "
              f"= standardised figures + log_jacobian {report['units']['log_jacobian']:.4f})")
        print(f"{'K':>6} {'ELBO':>12} {'IWAE(K)':>12}")
        for row in report["bounds"]:
            print(f"{row['K']:>6} {row['elbo']:>12.4f} {row['iwae']:>12.4f}")
        if "diagnostics" in report:
            print(f"diagnostics ({', '.join(report['diagnostics']['parts'])}): add --json to print them")
    return 0


def _datasets(_: argparse.Namespace) -> int:
    from .data import DATASETS

    for name, info in DATASETS.items():
        print(f"{name:16s} {info.description}")
    return 0


def _app_script(name: str) -> str:
    """The absolute path of ``app/NAME`` in the checkout. The app lives in the repository beside the
    package (an editable install), not inside the package."""
    import os

    script = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "app", name)
    if not os.path.isfile(script):
        raise FileNotFoundError(f"the app is not part of the installed package ({script} is missing): install a "
                                f"checkout of the repository with 'pip install -e .', or run app/{name} in one")
    return script


def _app(args: argparse.Namespace) -> int:
    """``mmvae app ARGS`` = ``python -m streamlit run <checkout>/app/streamlit_app.py ARGS``, with
    this interpreter and the script's absolute path, so it works from any directory."""
    return _become([sys.executable, "-m", "streamlit", "run", _app_script("streamlit_app.py"), *args.streamlit_args])


def _workshop(args: argparse.Namespace) -> int:
    """``mmvae workshop ARGS`` = ``python <checkout>/app/workshop.py ARGS``: nginx in front of one or
    more app processes."""
    return _become([sys.executable, _app_script("workshop.py"), *args.workshop_args])


def _become(cmd: list[str]) -> int:
    import os

    sys.stdout.flush()
    sys.stderr.flush()
    if os.name == "posix":  # become the server: signals (Ctrl-C, a test's terminate) reach Streamlit itself
        os.execv(sys.executable, cmd)
    import subprocess

    return subprocess.call(cmd)


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "train": _train,
    "evaluate": _evaluate,
    "predict": _predict,
    "datasets": _datasets,
    "app": _app,
    "workshop": _workshop,
}


def _one_line(e: BaseException) -> str:
    if isinstance(e, OSError) and e.strerror:
        return f"{e.filename}: {e.strerror}" if e.filename else e.strerror
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def _limit_overrides(args: argparse.Namespace) -> dict:
    out = {}
    if hasattr(args, "max_data_gb"):
        out["max_data_bytes"] = max(1, int(args.max_data_gb * 2**30))
    if hasattr(args, "max_las_mb"):
        out["max_las_bytes"] = max(1, int(args.max_las_mb * 2**20))
    if hasattr(args, "max_step_gb"):
        out["max_step_bytes"] = max(1, int(args.max_step_gb * 2**30))
    if hasattr(args, "max_parameters"):
        out["max_parameters"] = args.max_parameters
    return out


def _terminate(signum, frame):  # SIGTERM unwinds like Ctrl-C, so temporary files are removed
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    args = add_common_options(build_parser()).parse_args(argv)
    debug = getattr(args, "debug", False)
    previous = None
    try:
        previous = signal.signal(signal.SIGTERM, _terminate)
    except ValueError:  # not the main thread: leave signals alone
        pass
    try:
        with limits.raised(**_limit_overrides(args)):
            validate_args(args)
            return COMMANDS[args.command](args)
    except (ValueError, OSError) as e:  # every MmvaeError is a ValueError
        if debug:
            raise
        print(f"mmvae: error: {_one_line(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("mmvae: interrupted", file=sys.stderr)
        return 130
    except Exception as e:
        if debug:
            raise
        print(f"mmvae: internal error: {type(e).__name__}: {_one_line(e)} (a bug: please report it with the "
              "output of --debug)", file=sys.stderr)
        return 1
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
