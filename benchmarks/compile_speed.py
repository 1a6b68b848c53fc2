"""Compiled vs eager training steps vs the floor, interleaved in one process.

    python benchmarks/compile_speed.py [--cases poe:elbo:1,moe:dreg:10,mopoe:elbo:1] [--rounds 15] [--steps 20]
                                       [--backend inductor] [--batch 128]

Task: digits-halves (``mmvae.data.load_dataset``), encoders and decoders MLP 32-128-128, latent
dimension 8, batch 128, Adam lr 1e-3, one torch thread. For each case ``fusion:estimator:K``
three runs of the same number of steps take turns, round after round (floor, eager, compiled,
floor, eager, compiled, ...), so a load that changes over time hits all three alike:

* **floor**: the same encoders and decoders, plain forward and backward on the rows a step of
  this fusion rule processes (each encoder on the B data rows; each decoder on as many latent
  rows as the objective decodes for it: 2KB for PoE's MVAE terms, CKB for a mixture of C
  components), a squared-error loss, and the same fused Adam step;
* **eager**: ``Trainer._step`` (the objective's noise, forward, backward, finite flag, Adam);
* **compiled**: the same with ``compile=True`` (``torch.compile`` of the loss; compiled once
  before the rounds, the compile time is printed).

Printed per case: the median over rounds of the per-round ratios eager / floor, compiled / floor
and eager / compiled, with their min and max over rounds. Times on a shared machine move; the
ratios of interleaved runs move much less.
"""
from __future__ import annotations

import argparse
import copy
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402

import mmvae  # noqa: E402
from mmvae.data import load_dataset  # noqa: E402
from mmvae.objectives import noise_slots  # noqa: E402
from mmvae.training import Trainer, TrainConfig  # noqa: E402


def _decoded_rows(fusion: str, M: int, K: int, B: int) -> dict[int, int]:
    """Latent rows each decoder (by modality position) sees in one step of the objective."""
    if fusion == "poe":
        return {m: (2 if M > 1 else 1) * K * B for m in range(M)}
    return {m: noise_slots(fusion, M) * K * B for m in range(M)}


class Floor:
    """The same networks, plain forward + backward on the same rows, the same Adam step."""

    def __init__(self, model, batches, fusion, K, B):
        self.model = model
        self.batches = batches
        self.rows = _decoded_rows(fusion, len(model.names), K, B)
        self.z = {m: torch.randn(r, model.latent_dim) for m, r in self.rows.items()}
        params = list(model.parameters())
        self.opt = torch.optim.Adam(params, lr=1e-3, fused=True)
        self.i = 0

    def step(self):
        x = self.batches[self.i % len(self.batches)]
        self.i += 1
        loss = 0.0
        for m, name in enumerate(self.model.names):
            loc, log_scale = self.model.encoders[name](x[name])
            out = self.model.decoders[name](self.z[m])
            loss = loss + loc.square().sum() + log_scale.square().sum() + out.square().sum()
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()


def _time(fn, steps: int) -> float:
    t0 = time.perf_counter()
    for _ in range(steps):
        fn()
    return time.perf_counter() - t0


def run_case(data, fusion, estimator, K, args):
    config = mmvae.config_for_specs(data.specs, latent_dim=8, fusion=fusion, network={"type": "mlp", "hidden": [128, 128]})
    base = mmvae.build_model(config, seed=0)
    B = args.batch
    train = data.train
    batches = [train.subset(slice(i, i + B)).modalities for i in range(0, train.n - B + 1, B)]
    opts = dict(estimator=estimator, K=K, batch_size=B, device="cpu", seed=0)
    eager = Trainer(copy.deepcopy(base), train, None, TrainConfig(**opts))
    compiled = Trainer(copy.deepcopy(base), train, None, TrainConfig(**opts, compile=args.backend))
    floor = Floor(copy.deepcopy(base), batches, fusion, K, B)
    counters = {"eager": 0, "compiled": 0}

    def stepper(trainer, name):
        def step():
            trainer._step(batches[counters[name] % len(batches)])
            counters[name] += 1
        return step

    runs = {"floor": floor.step, "eager": stepper(eager, "eager"), "compiled": stepper(compiled, "compiled")}
    t0 = time.perf_counter()
    runs["compiled"]()  # compile
    compile_s = time.perf_counter() - t0
    for fn in runs.values():  # warm up
        _time(fn, 5)
    ratios = {"eager/floor": [], "compiled/floor": [], "eager/compiled": []}
    for _ in range(args.rounds):
        t = {name: _time(fn, args.steps) for name, fn in runs.items()}
        ratios["eager/floor"].append(t["eager"] / t["floor"])
        ratios["compiled/floor"].append(t["compiled"] / t["floor"])
        ratios["eager/compiled"].append(t["eager"] / t["compiled"])
    floor_ms = 1e3 * t["floor"] / args.steps
    parts = [f"{k} {statistics.median(v):.2f}x [{min(v):.2f}-{max(v):.2f}]" for k, v in ratios.items()]
    print(f"{fusion:5s} {estimator:4s} K={K:<3d} compile {compile_s:6.1f} s | floor {floor_ms:6.2f} ms/step | "
          + " | ".join(parts), flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cases", default="poe:elbo:1,moe:dreg:10,mopoe:elbo:1,moe:iwae:1")
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--backend", default="inductor")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)  # the floor's fixed latent rows only
    data = load_dataset("digits-halves", seed=0)
    print(f"torch {torch.__version__}, {args.threads} thread(s), batch {args.batch}, {args.rounds} rounds x "
          f"{args.steps} steps, backend {args.backend}; medians of per-round ratios [min-max]")
    for case in args.cases.split(","):
        fusion, estimator, K = case.split(":")
        run_case(data, fusion, estimator, int(K), args)


if __name__ == "__main__":
    main()
