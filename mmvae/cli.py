"""Command line: ``python -m mmvae train ...`` and ``python -m mmvae evaluate CHECKPOINT``.

Every error a user can cause (a bad option value, a missing file, malformed data, a corrupt
checkpoint) prints one line ``mmvae: error: ...`` and exits with status 2; no traceback.
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Sequence

from .distributions import LATENT_FAMILIES, LIKELIHOODS
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
                   help="objective / gradient estimator: elbo, iwae (plain), dreg (doubly reparameterised), stl (default: iwae)")
    t.add_argument("-K", "--K", type=_positive_int, default=1, dest="K", help="importance samples per component (default: 1)")
    t.add_argument("--bound", choices=BOUNDS, default="tight", help="stratified mixture bound for moe/mopoe (default: tight)")
    t.add_argument("--latent-dim", type=_positive_int, default=2, help="latent dimension D (default: 2)")
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
    e.add_argument("--embedding", choices=("auto", "raw", "pca", "umap"), default=None,
                   help="2-D view of the latent for the 'embedding' part: raw (needs D = 2), pca, umap (takes "
                        "seconds) or auto (raw when D = 2, else umap); when not given: raw when D = 2, else pca")
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
    return parser


def _train(args: argparse.Namespace) -> int:
    import torch

    from .checkpoint import save_checkpoint
    from .data import load_dataset
    from .model import build_model, config_for_specs
    from .training import fit

    options = dict(args.data_option)
    data = args.data or ["toy"]
    if _is_well_data(data, options):
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
    config = config_for_specs(specs, args.latent_dim, args.latent, args.fusion, network, args.likelihood_scale)
    weights = dict(args.weight)
    unknown = set(weights) - {m.name for m in config.modalities}
    if unknown:
        raise ValueError(f"--weight names unknown modalities {sorted(unknown)}; this dataset has {bundle.modality_names}")
    for m in config.modalities:
        if m.name in weights:
            m.weight = float(weights[m.name])
    model = build_model(config, seed=args.seed)
    print(f"training {args.fusion} / {args.estimator} (K={args.K}) on {bundle.name}: "
          f"{bundle.train.n} train, {bundle.val.n} validation samples, modalities {bundle.modality_names}", file=sys.stderr)
    history = fit(model, bundle.train, bundle.val, estimator=args.estimator, K=args.K, bound=args.bound,
                  epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed, device=args.device,
                  eval_K=args.eval_K, progress=not args.quiet)
    data_info = {"name": args.data, "options": options, "seed": args.seed,
                 "specs": {k: s.to_dict() for k, s in specs.items()}}
    train_info = {"estimator": args.estimator, "K": args.K, "bound": args.bound, "epochs": args.epochs,
                  "batch_size": args.batch_size, "lr": args.lr, "seed": args.seed, "eval_K": args.eval_K}
    save_checkpoint(args.out, model.to(torch.device("cpu")), data_info, train_info, history.to_dict())
    last = history.records[-1] if history.records else {}
    if history.stopped:
        print(f"mmvae: warning: {history.stopped}", file=sys.stderr)
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
    import torch

    from .checkpoint import load_checkpoint
    from .evaluation import evaluate_checkpoint

    from .training import resolve_device

    device = resolve_device(args.device)
    ckpt = load_checkpoint(args.checkpoint, device=device)
    torch.manual_seed(args.seed)
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


def main(argv: Sequence[str] | None = None) -> int:
    from .checkpoint import CheckpointError
    from .data import DataError

    args = build_parser().parse_args(argv)
    try:
        return {"train": _train, "evaluate": _evaluate, "predict": _predict,
                "datasets": _datasets}[args.command](args)
    except (ValueError, DataError, CheckpointError, FileNotFoundError, PermissionError, IsADirectoryError) as e:
        print(f"mmvae: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("mmvae: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
