"""Diagnostics of trained multimodal VAEs: the numbers and arrays the app draws, each a function
of a model and data, vectorised over samples and data points.

* :mod:`.likelihood` -- importance-sampled log p(x_S), conditionals, effective sample size;
* :mod:`.bounds` -- the chain ELBO <= IWAE(K) <= log p(x) (exact on the linear toy);
* :mod:`.overlap` -- unimodal vs fused posteriors: parameters, 2-D views, BC, KL, prior kept;
* :mod:`.embeddings` -- 2-D embeddings of posterior means (raw / PCA / UMAP, cached);
* :mod:`.generation` -- cross-modal generation, coherence, impedance RMSE vs rock physics;
* :mod:`.gradients` -- gradient SNR per estimator and K;
* :mod:`.style` -- private latents (MMVAE+): keep the shared z of one example, take w_t of another;
* :mod:`.report` -- all of it as one JSON-able report;
* :mod:`.rng` -- the explicit ``torch.Generator`` each of them samples from (never the global one).
"""
from .bounds import DEFAULT_KS, bound_gaps, exact_log_likelihood_fn
from .embeddings import clear_embedding_cache, embed_2d, latent_embedding, latent_means, umap_cached
from .generation import (classifier_accuracy, coherence, coherence_of, generate, impedance_si_rmse,
                         modality_classifiers, prior_samples, rock_physics_si, train_classifier)
from .gradients import gradient_snr
from .style import swap_style
from .likelihood import (LogLikelihood, conditional_log_likelihood, effective_sample_size,
                         estimate_log_likelihood)
from .overlap import (bhattacharyya_coefficient, gaussian_kl, kl_to_prior, mc_kl, posterior_overlap, project_2d,
                      symmetric_kl)

__all__ = [
    "DEFAULT_KS", "LogLikelihood", "bhattacharyya_coefficient", "bound_gaps", "classifier_accuracy",
    "clear_embedding_cache", "coherence", "coherence_of", "conditional_log_likelihood", "effective_sample_size",
    "embed_2d", "estimate_log_likelihood", "exact_log_likelihood_fn", "gaussian_kl", "generate", "gradient_snr",
    "impedance_si_rmse", "kl_to_prior", "latent_embedding", "latent_means", "mc_kl", "modality_classifiers",
    "posterior_overlap", "prior_samples", "project_2d", "rock_physics_si", "swap_style", "symmetric_kl",
    "train_classifier",
    "umap_cached",
]
