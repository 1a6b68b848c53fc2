"""The workshop's guided path: each lesson is a preset (setup + shipped checkpoint + page) with
a few sentences on what to change and what to notice."""
from __future__ import annotations

LESSONS: dict[str, dict] = {
    "elbo-vs-iwae": {
        "title": "1. ELBO vs IWAE",
        "page": "bounds",
        "checkpoint": "digits-halves-poe",
        "setup": {"dataset": "digits-halves", "fusion": "poe", "estimator": "dreg", "K": 10, "seed": 0, "private_dim": 0},
        "hide": ["dataset", "fusion"],
        "text": (
            "Two halves of real handwritten digits, fused by a product of experts. On **Bound gaps** the ELBO "
            "stays flat as K grows, while IWAE(K) starts at the ELBO (K = 1) and climbs towards the dotted line, "
            "this model's own log p(x) estimated with many importance samples: the gap closes with K, and no "
            "bound passes log p(x). Below the chart, the importance weights of one digit show why: IWAE averages "
            "the weights before the log. Then pick a **toy** model: its green dashed line is the exact log p(x) "
            "of the *true* model that generated the toy data, not of the trained model, so a gap to it remains "
            "at every K: that gap is the trained model's own error."
        ),
    },
    "why-dreg": {
        "title": "2. Why DReG?",
        "page": "gradients",
        "checkpoint": "digits-halves-poe",
        "setup": {"dataset": "digits-halves", "fusion": "poe", "estimator": "dreg", "K": 10, "seed": 0, "private_dim": 0},
        "hide": ["dataset"],
        "text": (
            "With the plain IWAE gradient the encoder's signal-to-noise ratio *falls* as K grows, so more "
            "samples make the encoder learn worse (Rainforth et al. 2018). DReG (Tucker et al. 2018) removes "
            "the noisy score term. On **Gradient noise**, with this PoE model (its posterior is one Gaussian), "
            "compare the encoder curves: IWAE's falls with K, DReG's rises, and the decoder curves rise for "
            "all. Then pick **toy-mopoe**, a mixture: DReG for mixtures keeps score terms, and there its encoder "
            "SNR falls with K too. The sentence under the chart always says what the chart shows."
        ),
    },
    "poe-vs-moe": {
        "title": "3. PoE vs MoE",
        "page": "compare",
        "checkpoint": "toy-poe",
        "setup": {"dataset": "toy", "fusion": "poe", "estimator": "dreg", "K": 10, "seed": 0, "private_dim": 0},
        "hide": ["dataset", "estimator"],
        "text": (
            "A product of experts (PoE) multiplies the unimodal posteriors, so the fused posterior is "
            "sharper than either; a mixture (MoE) averages them, so it keeps both. Toggle the fusion rule on "
            "**Compare fusion rules**, then open **Posterior overlap** and switch the fusion rule drawn: for PoE "
            "the red fused ellipse sits inside the blue unimodal ones; for MoE the fused posterior *is* the two "
            "blue ellipses (each red band lies under a blue line), and MoPoE adds their product as a third part."
        ),
    },
    "mopoe-three": {
        "title": "4. MoPoE with three modalities",
        "page": "generation",
        "checkpoint": "digits-poly-mopoe",
        "setup": {"dataset": "digits-poly", "fusion": "mopoe", "estimator": "dreg", "K": 5, "seed": 0, "private_dim": 0},
        "hide": ["dataset", "fusion"],
        "text": (
            "Three images of the same digit class, each in its own style. MoPoE mixes the products of every "
            "subset of modalities, so it can generate from one, two or all three. On **Cross-modal generation**, "
            "condition on one styled digit at a time and read the coherence (the share of generated digits of the "
            "other styles that keep the input's class; chance is 0.10): from the plain (m0) or inverted (m1) digit "
            "it is far above chance, from the textured one (m2) alone it is the weakest, near chance: this small "
            "model learnt little of the class from that style. Now give m2 *together* with another digit: MoPoE "
            "fuses the pair and coherence rises. Compare with the classifiers' accuracy on real digits, the ceiling."
        ),
    },
    "impedance": {
        "title": "5. The impedance case",
        "page": "well",
        "checkpoint": "impedance-poe",
        "well_model": "wells-physics",  # checkpoints/wells/: the physics-aware model shown on "Your well"
        "setup": {"dataset": "impedance", "fusion": "poe", "estimator": "dreg", "K": 10, "seed": 0, "private_dim": 0},
        "hide": ["dataset"],
        "text": (
            "Predict shear impedance (SI) from acoustic impedance (AI) on a real well the model never saw. "
            "**Your well** opens on a physics-aware model trained on four other real wells: rock physics (Gardner "
            "density, Castagna's mudrock line, calibrated on the training wells) carries the trend, and the VAE "
            "models what the formula misses, from the shape of the AI log. Along the held-out well compare the "
            "predicted P50 and its P10-P90 band with the measured SI and the formula. The page reads its verdict "
            "from this well's own numbers: the model's error against the formula's, and the share of measured "
            "samples inside the band (a calibrated band holds four in five). Then open **Cross-modal generation** "
            "with the plain VAE of the two logs themselves (no physics, trained on random blocks of one well): "
            "its page gives its own ratio to the formula, read from that checkpoint."
        ),
    },
}

LESSONS["shared-not-enough"] = {
    "title": "6. Why a shared latent is not enough",
    "page": "style",
    "checkpoint": "digits-poly-plus",
    "setup": {"dataset": "digits-poly", "fusion": "moe", "estimator": "dreg", "K": 5, "seed": 0, "private_dim": 4},
    "hide": ["dataset", "fusion"],
    "text": (
        "Lesson 4's model (MoPoE) has one shared latent z for three digits that share only their class, so z "
        "must also hold each image's own style. This model adds a private latent w_m per modality beside z and "
        "is trained as MMVAE+: a mixture (MoE) on the looser bound, with the same networks, K, epochs and size "
        "of z. On **Swap style** the bars compare the two. Given the inverted (m1) or the textured (m2) digit "
        "alone this model keeps the class far more often; from m2 alone the shared-only model is near chance. "
        "Given the plain digit (m0) alone, or a pair, neither model wins every time. Now the grid: each row "
        "keeps the z of one test digit, each column takes the private w of another image. Along a row the "
        "pictures barely change: this small model learnt to ignore w, and the class follows the row. So here "
        "the gain in the bars does not come from w but from the mixture training, which makes the z of each "
        "single digit reconstruct the other two."
    ),
}
