"""Regenerate the small shipped checkpoints that the app's presets and lessons load instantly.

    python checkpoints/make_checkpoints.py            # all of them (about a minute on 2 CPU cores)
    python checkpoints/make_checkpoints.py toy-poe    # only the named ones
    python checkpoints/make_checkpoints.py wells-physics   # lesson 5's well model (checkpoints/wells/)

Everything goes through the package API (load_dataset -> config_for_specs -> build_model ->
Trainer -> save_checkpoint) on the CPU with fixed seeds, so the files are reproducible.
"""
from __future__ import annotations

import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

import torch  # noqa: E402

from mmvae import Trainer, TrainConfig, build_model, config_for_specs, data_provenance, save_checkpoint  # noqa: E402
from mmvae.data import load_dataset  # noqa: E402

SMALL_MLP = {"type": "mlp", "hidden": [64, 64]}

# name -> dataset, dataset options, fusion, estimator, bound (default tight), K, epochs, latent dimension (default 2), private latent
# dimension per modality (default 0), title
PRESETS: dict[str, dict] = {
    "toy-poe-elbo": dict(dataset="toy", fusion="poe", estimator="elbo", K=1, epochs=40,
                         title="Toy, PoE, trained with the ELBO (K=1)"),
    "toy-poe": dict(dataset="toy", fusion="poe", estimator="dreg", K=10, epochs=40,
                    title="Toy, PoE, DReG K=10"),
    "toy-moe": dict(dataset="toy", fusion="moe", estimator="dreg", K=10, epochs=40,
                    title="Toy, MoE, DReG K=10"),
    "toy-mopoe": dict(dataset="toy", fusion="mopoe", estimator="dreg", K=10, epochs=40,
                      title="Toy, MoPoE, DReG K=10"),
    "toy3-mopoe": dict(dataset="toy", options={"n_modalities": 3}, fusion="mopoe", estimator="dreg", K=10,
                       epochs=40, title="Toy with three modalities, MoPoE, DReG K=10"),
    "digits-halves-poe": dict(dataset="digits-halves", fusion="poe", estimator="dreg", K=10, epochs=60,
                              title="Digit halves, PoE, DReG K=10"),
    "digits-halves-moe": dict(dataset="digits-halves", fusion="moe", estimator="dreg", K=10, epochs=60,
                              title="Digit halves, MoE, DReG K=10"),
    # lesson 4: with a 2-D latent two of the three encoders collapse (coherence given m1 or m2 at
    # chance, 0.10); an 8-D latent trained longer keeps every modality informative
    "digits-poly-mopoe": dict(dataset="digits-poly", fusion="mopoe", estimator="dreg", K=5, epochs=60, latent_dim=8,
                              title="Three styled digits, MoPoE, DReG K=5, 8-D latent"),
    # lesson 6: digits-poly-mopoe's networks, K, epochs and 8-D z plus a 4-D private latent w_m per modality,
    # trained as MMVAE+ (a mixture, MoE, on the looser bound). Its decoders learn to ignore w (swapping w moves
    # pixels by about 0.001 on average; so did MoPoE, other z / w sizes, estimators and 200 epochs): the
    # lesson says so, and its test checks it.
    "digits-poly-plus": dict(dataset="digits-poly", fusion="moe", estimator="dreg", bound="looser", K=5, epochs=60,
                             latent_dim=8, private_dim=4,
                             title="Three styled digits, MMVAE+ (MoE, looser bound), DReG K=5, 8-D shared + 4-D "
                                   "private latents"),
    "impedance-poe": dict(dataset="impedance", fusion="poe", estimator="dreg", K=10, epochs=40,
                          title="Impedance logs (AI, SI), PoE, DReG K=10"),
}

SEED = 0

# Impedance-well models (mmvae.impedance: physics-aware features, a rock-physics calibration line).
# They live in checkpoints/wells/, not beside the presets above: the generic pages list the
# top-level checkpoints, and these need the well workflow (a held-out well, depth, quantiles).
# name -> held-out well (never seen in training), ImpedanceConfig options, title
WELL_PRESETS: dict[str, dict] = {
    # lesson 5: trained on the four other shipped wells (upper 85% of each; deepest 15% for the
    # validation curve), as in benchmarks/impedance_wells.py
    "wells-physics": dict(held_out="25_11-24", config=dict(physics=True, latent_dim=2, fusion="poe", estimator="dreg",
                                                           K=10, epochs=20, stride=16, seed=SEED),
                          title="Four real wells, physics-aware features, PoE, DReG K=10"),
}
WELLS_DIR = os.path.join(HERE, "wells")


def make(name: str, spec: dict, folder: str = HERE) -> str:
    options = dict(spec.get("options", {}))
    bundle = load_dataset(spec["dataset"], seed=SEED, **options)
    scale = None if all(s.likelihood in ("gaussian", "laplace") for s in bundle.specs.values()) else 0.1
    config = config_for_specs(bundle.specs, latent_dim=spec.get("latent_dim", 2), fusion=spec["fusion"], network=SMALL_MLP,
                              likelihood_scale=scale, private_dim=spec.get("private_dim", 0))
    model = build_model(config, seed=SEED)
    train = TrainConfig(estimator=spec["estimator"], bound=spec.get("bound", "tight"), K=spec["K"], epochs=spec["epochs"],
                        seed=SEED,
                        device="cpu", eval_K=10)
    trainer = Trainer(model, bundle.train, bundle.val, train)
    trainer.fit()
    data_info = data_provenance(spec["dataset"], options, SEED, bundle.specs)
    path = os.path.join(folder, f"{name}.safetensors")
    save_checkpoint(path, model.to("cpu"), data_info, train.to_dict(), trainer.history.to_dict(),
                    {"title": spec["title"], "preset": name})
    return path


def make_well(name: str, spec: dict, folder: str = WELLS_DIR) -> str:
    """Train the impedance model on every shipped well but ``spec["held_out"]`` and save it with
    the held-out well's name (``data["split"]["held_out"]``), so a page can show that well."""
    from mmvae import impedance

    wells = impedance.shipped_wells()
    held = spec["held_out"]
    if held not in wells:
        raise SystemExit(f"{name}: unknown held-out well {held!r}; shipped wells: {', '.join(wells)}")
    train, val = [], []
    for w_name, well in wells.items():
        if w_name != held:
            parts = impedance.split_by_depth(well, (0.85, 0.15, 0.0))
            train.append(parts["train"])
            val.append(parts["val"])
    model = impedance.train(train, val, impedance.ImpedanceConfig(**spec["config"]))
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f"{name}.safetensors")
    impedance.save(model, path, sources=[w for w in wells if w != held],
                   split={"fractions": [0.85, 0.15, 0.0], "order": "top-down", "held_out": held,
                          "title": spec["title"]})
    return path


def main(names: list[str]) -> None:
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    for name in names or list(PRESETS) + list(WELL_PRESETS):
        if name not in PRESETS and name not in WELL_PRESETS:
            raise SystemExit(f"unknown preset {name!r}; choose from {', '.join(list(PRESETS) + list(WELL_PRESETS))}")
        t0 = time.perf_counter()
        path = make(name, PRESETS[name]) if name in PRESETS else make_well(name, WELL_PRESETS[name])
        print(f"{name:20s} {time.perf_counter() - t0:6.1f} s  {os.path.getsize(path) / 1024:7.1f} kB  {path}")


if __name__ == "__main__":
    main(sys.argv[1:])
