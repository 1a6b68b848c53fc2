"""The workshop's guided path: each lesson is a preset (setup + shipped checkpoint + page) with
a few sentences on what to change and what to notice."""
from __future__ import annotations

LESSONS: dict[str, dict] = {
    "elbo-vs-iwae": {
        "title": "1. ELBO vs IWAE",
        "page": "bounds",
        "checkpoint": "toy-poe-elbo",
        "setup": {"dataset": "toy", "fusion": "poe", "estimator": "elbo", "K": 1, "seed": 0},
        "hide": ["dataset", "fusion"],
        "text": (
            "The toy data has an exact log-likelihood, so we can see how tight each bound is. "
            "On **Bound gaps**, the ELBO is the lowest curve and IWAE(K) climbs towards the exact "
            "log p(x) as K grows. Then open the lesson's second model (trained with DReG, K=10) on the "
            "Train page's model list and compare: training with more samples leaves a smaller gap."
        ),
    },
    "why-dreg": {
        "title": "2. Why DReG?",
        "page": "gradients",
        "checkpoint": "toy-poe",
        "setup": {"dataset": "toy", "fusion": "poe", "estimator": "dreg", "K": 10, "seed": 0},
        "hide": ["dataset"],
        "text": (
            "With the plain IWAE gradient the encoder's signal-to-noise ratio *falls* as K grows, so "
            "more samples make the encoder learn worse. On **Gradient noise**, compare the encoder "
            "curves of IWAE, DReG and STL: DReG keeps the encoder's SNR growing with K while the "
            "decoder curves barely differ."
        ),
    },
    "poe-vs-moe": {
        "title": "3. PoE vs MoE",
        "page": "compare",
        "checkpoint": "toy-poe",
        "setup": {"dataset": "toy", "fusion": "poe", "estimator": "dreg", "K": 10, "seed": 0},
        "hide": ["dataset", "estimator"],
        "text": (
            "A product of experts (PoE) multiplies the unimodal posteriors, so the fused posterior is "
            "sharper than either; a mixture (MoE) averages them, so it is as wide as the vaguest one. "
            "Toggle the fusion rule on **Compare fusion rules** and on **Posterior overlap**: watch the "
            "fused ellipse shrink inside the unimodal ones for PoE and cover both for MoE."
        ),
    },
    "mopoe-three": {
        "title": "4. MoPoE with three modalities",
        "page": "generation",
        "checkpoint": "digits-poly-mopoe",
        "setup": {"dataset": "digits-poly", "fusion": "mopoe", "estimator": "dreg", "K": 5, "seed": 0},
        "hide": ["dataset", "fusion"],
        "text": (
            "MoPoE mixes the products of every subset of modalities, so it can use one, two or all "
            "three digits. On **Cross-modal generation**, condition on one styled digit, then on two: "
            "the generated digits of the other styles should keep the same class, and usually look "
            "cleaner with more evidence."
        ),
    },
    "impedance": {
        "title": "5. The impedance case",
        "page": "generation",
        "checkpoint": "impedance-poe",
        "setup": {"dataset": "impedance", "fusion": "poe", "estimator": "dreg", "K": 10, "seed": 0},
        "hide": ["dataset"],
        "text": (
            "Two well logs, acoustic (AI) and shear (SI) impedance, share one latent. On **Cross-modal "
            "generation**, condition on AI and predict SI: compare the model's log with the true one "
            "and with the rock-physics baseline. Gas sands are where the two logs disagree most."
        ),
    },
}
