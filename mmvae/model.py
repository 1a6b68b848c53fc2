"""The multimodal VAE: one encoder and decoder per modality over one shared latent z, and
optionally one private latent w_m per modality (MMVAE+, Palumbo, Daunhawer & Vogt, ICLR 2023).

With ``private_dim`` D_w > 0 the latent is u = [z | w_1 | ... | w_M] (D + M D_w numbers, modalities
in model order), the prior p(u) is the standard prior over all of u, and decoder m reads
cat(z, w_m). Every posterior is a distribution over u (see :mod:`mmvae.fusion`): a component that
does not encode x_m draws w_m from r_m, the prior or MMVAE+'s auxiliary prior
r_m = N(0, diag(sigma_m^2)) (Laplace for Laplace latents) with a learned sigma_m (``cross_private``).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Mapping, Sequence

import torch
from torch import Tensor, nn

from .distributions import (CROSS_PRIVATE, LATENT_FAMILIES, LIKELIHOODS, LOG_SCALE_MAX, LOG_SCALE_MIN, Likelihood,
                            check_choice, standard_noise, standard_prior)
from .fusion import FUSIONS, Posterior, fuse, private_components, subset_mask, subsets_for
from .networks import build_networks, default_network


@dataclass
class ModalityConfig:
    """One modality: its name, per-sample shape, likelihood and network.

    ``likelihood_scale``: fixed scale of a Gaussian / Laplace likelihood, or ``None`` (default) to
    learn it.
    ``weight``: multiplies this modality's log-likelihood in every objective.
    ``network``: a built-in spec (see :mod:`mmvae.networks`) or ``{"type": "custom"}`` when the
    encoder and decoder are passed to :class:`MultimodalVAE` directly.
    """

    name: str
    shape: tuple[int, ...]
    likelihood: str = "gaussian"
    likelihood_scale: float | None = None
    weight: float = 1.0
    network: dict = field(default_factory=lambda: {"type": "mlp", "hidden": [128, 128]})

    def __post_init__(self) -> None:
        self.shape = tuple(int(s) for s in self.shape)
        check_choice(self.likelihood, LIKELIHOODS, "likelihood")
        if not self.name or not isinstance(self.name, str):
            raise ValueError("a modality needs a non-empty name")


@dataclass
class ModelConfig:
    """Everything needed to rebuild a model (it is stored as JSON in every checkpoint).

    ``private_dim``: D_w, the size of every modality's private latent w_m (0: none, the shared z
    alone; checkpoints written before the option load as 0). ``cross_private``: r_m, the
    distribution of w_m in a posterior component that does not encode x_m and in cross-modal
    generation: ``"auxiliary"`` (MMVAE+'s auxiliary prior, zero mean and a learned scale per
    dimension) or ``"prior"`` (the prior itself).
    """

    modalities: list[ModalityConfig]
    latent_dim: int = 2
    latent: str = "gaussian"
    fusion: str = "poe"
    private_dim: int = 0
    cross_private: str = "auxiliary"

    def __post_init__(self) -> None:
        self.modalities = [m if isinstance(m, ModalityConfig) else ModalityConfig(**m) for m in self.modalities]
        check_choice(self.latent, LATENT_FAMILIES, "latent family")
        check_choice(self.fusion, FUSIONS, "fusion rule")
        if len(self.modalities) < 1:
            raise ValueError("a model needs at least one modality")
        names = [m.name for m in self.modalities]
        if len(set(names)) != len(names):
            raise ValueError(f"modality names must be unique, got {names}")
        if not (isinstance(self.latent_dim, int) and self.latent_dim >= 1):
            raise ValueError(f"latent_dim must be a positive integer, got {self.latent_dim!r}")
        if isinstance(self.private_dim, bool) or not (isinstance(self.private_dim, int) and self.private_dim >= 0):
            raise ValueError(f"private_dim must be an integer >= 0 (0: no private latents), got {self.private_dim!r}")
        check_choice(self.cross_private, CROSS_PRIVATE, "cross_private")
        if self.latent == "laplace" and self.fusion != "moe":
            raise ValueError(f"fusion {self.fusion!r} needs Gaussian latents (a product of Laplace experts "
                             "has no closed form); use fusion='moe' with latent='laplace'")

    def to_dict(self) -> dict:
        d = asdict(self)
        for m in d["modalities"]:
            m["shape"] = list(m["shape"])
        return d

    @classmethod
    def from_dict(cls, d: Mapping) -> "ModelConfig":
        d = dict(d)
        d["modalities"] = [ModalityConfig(**m) for m in d["modalities"]]
        return cls(**d)


@dataclass
class Experts:
    """Unimodal expert parameters of the present modalities: loc and log_scale are (M, B, D + D_w),
    the shared expert in the first D, the private posterior q(w_m | x_m) in the last D_w."""

    names: list[str]
    loc: Tensor
    log_scale: Tensor

    def select(self, names: Sequence[str]) -> "Experts":
        """The experts of ``names`` only (a slice, without a copy, for one modality)."""
        idx = [self.names.index(n) for n in names]
        if idx == list(range(idx[0], idx[0] + len(idx))):
            span = slice(idx[0], idx[0] + len(idx))
            return Experts(list(names), self.loc[span], self.log_scale[span])
        return Experts(list(names), self.loc[idx], self.log_scale[idx])


class MultimodalVAE(nn.Module):
    """Encoders q~(z | x_m), decoders p(x_m | z), a fixed standard prior and a fusion rule; with
    ``config.private_dim`` > 0 also q(w_m | x_m), decoders p(x_m | z, w_m) and the auxiliary priors
    r_m (module docstring).

    Pass ``encoders`` / ``decoders`` (dicts by modality name) to use your own modules; see
    :mod:`mmvae.networks` for the contract they keep. ``generator``: draw the built-in networks'
    initial weights from it (else from the global RNG).
    """

    def __init__(
        self,
        config: ModelConfig,
        encoders: Mapping[str, nn.Module] | None = None,
        decoders: Mapping[str, nn.Module] | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        self.config = config
        self.names = [m.name for m in config.modalities]
        self.specs = {m.name: m for m in config.modalities}
        encoders, decoders = dict(encoders or {}), dict(decoders or {})
        unknown = sorted((set(encoders) | set(decoders)) - set(self.names))
        if unknown:
            raise ValueError(f"encoders / decoders given for unknown modalities {unknown}; this model has {self.names}")
        enc, dec, lik = {}, {}, {}
        for m in config.modalities:
            if m.name in encoders or m.name in decoders:
                if m.name not in encoders or m.name not in decoders:
                    given, missing = ("encoder", "decoder") if m.name in encoders else ("decoder", "encoder")
                    raise ValueError(f"modality {m.name!r}: a custom {given} needs a custom {missing} too "
                                     f"(pass both encoders={{...}} and decoders={{...}})")
                enc[m.name], dec[m.name] = encoders[m.name], decoders[m.name]
            elif m.network.get("type") == "custom":
                raise ValueError(f"modality {m.name!r} uses a custom network: pass its encoder and decoder modules")
            else:
                enc[m.name], dec[m.name] = build_networks(m.network, m.shape, config.latent_dim,
                                                          prior_product=config.latent == "gaussian",
                                                          generator=generator, private_dim=config.private_dim)
            lik[m.name] = Likelihood(m.likelihood, len(m.shape), m.likelihood_scale, m.weight)
        self.encoders = nn.ModuleDict(enc)
        self.decoders = nn.ModuleDict(dec)
        self.likelihoods = nn.ModuleDict(lik)
        if config.private_dim and config.cross_private == "auxiliary" and len(self.names) > 1:
            # log sigma_m of MMVAE+'s auxiliary prior r_m = family(0, sigma_m), (M, D_w); starts at the prior.
            # (With one modality every component encodes it: no r_m is ever used, so none is learned.)
            self.aux_log_scale = nn.Parameter(torch.zeros(len(self.names), config.private_dim))
        # the subset masks of the model's own rule and of PoE (MVAE's terms) for every number of
        # present modalities, kept on the model's device (not saved: they follow from the config)
        if config.latent == "gaussian":
            for rule in dict.fromkeys((config.fusion, "poe")):
                for n in range(1, len(self.names) + 1):
                    self.register_buffer(f"mask_{rule}_{n}", subset_mask(subsets_for(rule, n), n), persistent=False)

    # ------------------------------------------------------------------ properties
    @property
    def latent_dim(self) -> int:
        return self.config.latent_dim

    @property
    def private_dim(self) -> int:
        """D_w, the size of each modality's private latent (0: none)."""
        return self.config.private_dim

    @property
    def total_dim(self) -> int:
        """Size of u = [z | w_1 | ... | w_M]: latent_dim + M * private_dim."""
        return self.config.latent_dim + len(self.names) * self.config.private_dim

    @property
    def family(self) -> str:
        return self.config.latent

    @property
    def fusion(self) -> str:
        return self.config.fusion

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def prior(self):
        """The standard prior p(u) over all ``total_dim`` latent numbers (p(z) without private
        latents), on the model's device and in its floating-point dtype."""
        param = next(self.parameters())
        return standard_prior(self.family, self.total_dim, device=param.device, dtype=param.dtype)

    def aux_log_scales(self) -> Tensor:
        """log sigma_m of r_m for every modality, (M, D_w): learned (``auxiliary``) or 0 (``prior``)."""
        if hasattr(self, "aux_log_scale"):
            return self.aux_log_scale
        param = next(self.parameters())
        return param.new_zeros(len(self.names), self.private_dim)

    def split(self, u: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """u (..., total_dim) -> (z (..., latent_dim), {name: w_m (..., private_dim)}), views of u."""
        D, Dw = self.latent_dim, self.private_dim
        if u.shape[-1] != self.total_dim:
            raise ValueError(f"expected a latent of size {self.total_dim} on the last axis, got {tuple(u.shape)}")
        return u[..., :D], {n: u[..., D + i * Dw: D + (i + 1) * Dw] for i, n in enumerate(self.names)}

    def join(self, z: Tensor, w: Mapping[str, Tensor] | None = None) -> Tensor:
        """The inverse of :meth:`split`: z (..., latent_dim) and every modality's w_m (..., private_dim)
        -> u (..., total_dim)."""
        if not self.private_dim:
            return z
        w = w or {}
        missing = [n for n in self.names if n not in w]
        if missing:
            raise ValueError(f"join needs the private latent of every modality; missing {missing}")
        return torch.cat([z, *(w[n] for n in self.names)], -1)

    # ------------------------------------------------------------------ checks
    def check_inputs(self, x: Mapping[str, Tensor]) -> None:
        """Raise a ValueError naming the problem for unknown modalities, wrong shapes, NaN or inf."""
        if not isinstance(x, Mapping) or not x:
            raise ValueError(f"give the data as a dict of modality name -> tensor; this model has {self.names}")
        batch = None
        for name, v in x.items():
            if name not in self.specs:
                raise ValueError(f"unknown modality {name!r}; this model has {self.names}")
            if not isinstance(v, Tensor):
                raise ValueError(f"modality {name!r}: expected a torch.Tensor, got {type(v).__name__}")
            shape = self.specs[name].shape
            if tuple(v.shape[1:]) != shape:
                raise ValueError(f"modality {name!r}: expected shape (batch, {', '.join(map(str, shape))}), "
                                 f"got {tuple(v.shape)}")
            if batch is not None and v.shape[0] != batch:
                raise ValueError(f"modalities have different batch sizes ({batch} and {v.shape[0]} for {name!r})")
            batch = v.shape[0]
            if not torch.isfinite(v).all():
                raise ValueError(f"modality {name!r} contains NaN or inf values")
            dtype = next(self.parameters()).dtype
            if v.dtype != dtype:
                raise ValueError(f"modality {name!r} is {v.dtype} but the model is {dtype}: convert the data "
                                 f"(e.g. x.to({dtype}))")
            if self.specs[name].likelihood in ("bernoulli", "continuous_bernoulli") and v.numel() and (
                    v.min() < 0 or v.max() > 1):
                raise ValueError(f"modality {name!r} has values outside [0, 1] ({float(v.min()):g} to "
                                 f"{float(v.max()):g}), which its {self.specs[name].likelihood} likelihood cannot model")

    # ------------------------------------------------------------------ inference
    def encode(self, x: Mapping[str, Tensor], validate: bool = True) -> Experts:
        """Expert parameters of the modalities present in ``x`` (in model order)."""
        if validate:
            self.check_inputs(x)
        names = [n for n in self.names if n in x]
        outs = [self.encoders[n](x[n]) for n in names]
        loc = torch.stack([o[0] for o in outs])  # (M_present, B, D + D_w)
        log_scale = torch.stack([o[1] for o in outs])
        if loc.shape[-1] != self.latent_dim + self.private_dim:
            raise ValueError(f"the encoders return {loc.shape[-1]} numbers per latent, expected latent_dim + "
                             f"private_dim = {self.latent_dim + self.private_dim}")
        return Experts(names, loc, log_scale)

    def fuse_shared(self, experts: Experts, fusion: str | None = None,
                    subsets: Sequence[Sequence[str]] | None = None) -> Posterior:
        """The fused posterior q(z | x_S) of the shared latent alone, (C, B, latent_dim)."""
        return self._fuse(experts, fusion, subsets)[0]

    def _fuse(self, experts: Experts, fusion: str | None, subsets) -> tuple[Posterior, Tensor | None]:
        """q(z | x_S) and its (C, M_present) subset mask (None: build it from the subsets)."""
        fusion = fusion or self.fusion
        pos = mask = None
        if subsets is not None:
            index = {n: i for i, n in enumerate(experts.names)}
            missing = {n for s in subsets for n in s} - set(index)
            if missing:
                raise ValueError(f"subsets name modalities that are not in the data: {sorted(missing)}")
            pos = [tuple(sorted(index[n] for n in s)) for s in subsets]
        elif self.family == "gaussian":
            mask = getattr(self, f"mask_{fusion}_{len(experts.names)}", None)
        D = self.latent_dim
        shared = fuse(self.family, experts.names, experts.loc[..., :D], experts.log_scale[..., :D], fusion, pos, mask)
        return shared, mask

    def fuse(self, experts: Experts, fusion: str | None = None, subsets: Sequence[Sequence[str]] | None = None
             ) -> Posterior:
        """The fused posterior of ``experts`` under ``fusion`` (default: the model's rule), or the
        mixture over the PoEs of exactly ``subsets`` (lists of modality names); over u (C, B,
        total_dim) when the model has private latents (:func:`mmvae.fusion.private_components`)."""
        shared, mask = self._fuse(experts, fusion, subsets)
        if not self.private_dim:
            return shared
        if mask is None:
            index = {n: i for i, n in enumerate(experts.names)}
            mask = subset_mask([tuple(index[n] for n in s) for s in shared.subsets], len(experts.names),
                               experts.loc.device)
        w_loc, w_log_scale = self.private_part(experts, mask)
        return Posterior(self.family, torch.cat([shared.loc, w_loc], -1), torch.cat([shared.log_scale, w_log_scale], -1),
                         shared.subsets)

    def private_part(self, experts: Experts, mask: Tensor) -> tuple[Tensor, Tensor]:
        """The private part (loc, log_scale), each (C, B, M * D_w), of components whose subsets
        ``mask`` (C, M_present) marks over ``experts.names``: w_m from q(w_m | x_m) in its
        subsets, from r_m elsewhere (and for every modality absent from ``experts``)."""
        D, Dw, M = self.latent_dim, self.private_dim, len(self.names)
        w_loc, w_log_scale = experts.loc[..., D:], experts.log_scale[..., D:]  # (M_present, B, Dw)
        if len(experts.names) < M:  # place the present modalities in model order; absent rows are never read
            pos = torch.tensor([self.names.index(n) for n in experts.names], device=mask.device)
            full = mask.new_zeros(mask.shape[0], M)
            full[:, pos] = mask
            mask = full
            w_loc = w_loc.new_zeros(M, *w_loc.shape[1:]).index_copy(0, pos, w_loc)
            w_log_scale = w_log_scale.new_zeros(M, *w_log_scale.shape[1:]).index_copy(0, pos, w_log_scale)
        return private_components(mask, w_loc, w_log_scale, self.aux_log_scales())

    def posterior(
        self,
        x: Mapping[str, Tensor],
        fusion: str | None = None,
        subsets: Sequence[Sequence[str]] | None = None,
        validate: bool = True,
    ) -> Posterior:
        """The fused posterior q(u | x_S) of the modalities present in ``x``, (C, B, total_dim):
        q(z | x_S) without private latents; with them, component c also holds w_m ~ q(w_m | x_m)
        for m in its subset and w_m ~ r_m for every other modality (present or not).

        ``subsets`` (lists of modality names) replaces the rule's components by the PoEs of
        exactly those subsets (a MoPoE over them).
        """
        return self.fuse(self.encode(x, validate), fusion, subsets)

    # ------------------------------------------------------------------ generation
    def decode(self, z: Tensor, names: Sequence[str] | None = None) -> dict[str, Tensor]:
        """Decoder outputs (likelihood locations) for latents ``z`` = u of shape (..., total_dim):
        decoder m reads cat(z, w_m) (z alone without private latents)."""
        if z.shape[-1] != self.total_dim:
            raise ValueError(f"decode expects latents of size {self.total_dim} on the last axis, got {tuple(z.shape)}"
                             + (" (decode_shared takes the shared z alone)" if self.private_dim else ""))
        lead = z.shape[:-1]
        flat = z.reshape(-1, z.shape[-1])  # (N, total_dim)
        D, Dw = self.latent_dim, self.private_dim
        out = {}
        for n in names or self.names:
            i = self.names.index(n)
            if not Dw:
                inp = flat
            elif i == 0:  # [z | w_1] is a leading slice: no copy
                inp = flat[:, :D + Dw]
            else:
                inp = torch.cat([flat[:, :D], flat[:, D + i * Dw: D + (i + 1) * Dw]], -1)  # (N, D + Dw)
            out[n] = self.decoders[n](inp).view(*lead, *self.specs[n].shape)
        return out

    def decode_shared(self, z: Tensor, names: Sequence[str] | None = None, w: Mapping[str, Tensor] | None = None,
                      generator: torch.Generator | None = None) -> dict[str, Tensor]:
        """Decoder outputs (likelihood locations) from a shared z (..., latent_dim): modality m's
        private latent is ``w[m]`` (..., private_dim) when given, else the mode of r_m (zeros) or,
        with a ``generator``, one sample of r_m drawn from it."""
        if z.shape[-1] != self.latent_dim:
            raise ValueError(f"decode_shared expects a shared z of size {self.latent_dim} on the last axis, "
                             f"got {tuple(z.shape)}")
        names = list(names or self.names)
        if not self.private_dim:
            return self.decode(z, names)
        w = dict(w or {})
        scales = self.aux_log_scales().clamp(LOG_SCALE_MIN, LOG_SCALE_MAX).exp()  # (M, Dw)
        out = {}
        for n in names:
            if n in w:
                wn = w[n].expand(*z.shape[:-1], self.private_dim)
            elif generator is None:
                wn = z.new_zeros(*z.shape[:-1], self.private_dim)
            else:
                eps = standard_noise(self.family, (*z.shape[:-1], self.private_dim), z.dtype, z.device, generator)
                wn = scales[self.names.index(n)] * eps  # (..., Dw) ~ r_n
            out[n] = self.decoders[n](torch.cat([z, wn], -1).reshape(-1, self.latent_dim + self.private_dim)
                                      ).view(*z.shape[:-1], *self.specs[n].shape)
        return out

    def log_likelihood(self, x: Mapping[str, Tensor], z: Tensor, weighted: bool = True) -> dict[str, Tensor]:
        """log p(x_m | z) for each modality in ``x`` at z (..., B, D) -> dict of (..., B)."""
        params = self.decode(z, [n for n in self.names if n in x])
        out = {}
        for n, p in params.items():
            lik = self.likelihoods[n]
            lp = lik.log_prob(p, x[n])
            out[n] = lp * lik.weight if weighted and lik.weight != 1.0 else lp  # x * 1.0 == x
        return out

    @torch.no_grad()
    def generate(
        self,
        given: Mapping[str, Tensor],
        targets: Sequence[str] | None = None,
        n_samples: int = 0,
        fusion: str | None = None,
        generator: torch.Generator | None = None,
    ) -> dict[str, Tensor]:
        """Cross-modal generation: E[x_t | z] at the posterior mean of the given modalities
        (``n_samples == 0``, shapes (B, *shape)) or at ``n_samples`` posterior samples
        ((n, B, *shape)) drawn from ``generator`` (the global RNG when None).

        With private latents: z from q(z | given) as above; a target t in ``given`` takes w_t from
        its own posterior q(w_t | x_t) (its mean, or samples), a target not in ``given`` takes
        w_t from r_t (its mode 0, or samples) and never from t's own posterior."""
        targets = list(targets or self.names)
        experts = self.encode(given)
        shared = self.fuse_shared(experts, fusion)
        z = shared.mean if n_samples == 0 else shared.sample(n_samples, generator)  # (B, D) or (n, B, D)
        if not self.private_dim:
            params = self.decode(z, targets)
            return {n: self.likelihoods[n].mean(p) for n, p in params.items()}
        D, w = self.latent_dim, {}
        scales = self.aux_log_scales().clamp(LOG_SCALE_MIN, LOG_SCALE_MAX).exp()  # (M, Dw)
        for t in targets:
            if t in experts.names:  # q(w_t | x_t): (B, Dw)
                i = experts.names.index(t)
                loc, scale = experts.loc[i, :, D:], experts.log_scale[i, :, D:].clamp(LOG_SCALE_MIN, LOG_SCALE_MAX).exp()
            else:  # r_t
                loc, scale = z.new_zeros(z.shape[-2], self.private_dim), scales[self.names.index(t)]
            if n_samples == 0:
                w[t] = loc
            else:
                eps = standard_noise(self.family, (n_samples, *loc.shape), z.dtype, z.device, generator)
                w[t] = loc + scale * eps  # (n, B, Dw)
        params = self.decode_shared(z, targets, w)
        return {n: self.likelihoods[n].mean(p) for n, p in params.items()}

    @torch.no_grad()
    def sample_prior(self, n: int, targets: Sequence[str] | None = None,
                     generator: torch.Generator | None = None) -> dict[str, Tensor]:
        """Unconditional generations E[x_m | u] at n prior samples u ~ p(u) (z and every w_m from
        the prior; in the model's dtype), drawn from ``generator`` (the global RNG when None)."""
        param = next(self.parameters())
        z = standard_noise(self.family, (n, self.total_dim), param.dtype, param.device, generator)
        params = self.decode(z, targets or self.names)
        return {k: self.likelihoods[k].mean(p) for k, p in params.items()}


def build_model(config: ModelConfig, seed: int | None = 0, **kwargs) -> MultimodalVAE:
    """Build a model whose built-in networks' initial weights are drawn from a local generator
    seeded with ``seed`` (reproducible, thread-safe, the global RNG untouched); ``seed=None``
    draws them from the global RNG."""
    generator = torch.Generator().manual_seed(seed) if seed is not None else None
    return MultimodalVAE(config, generator=generator, **kwargs)


def config_for_specs(
    specs: Mapping[str, object],
    latent_dim: int = 2,
    latent: str = "gaussian",
    fusion: str = "poe",
    network: dict | None = None,
    likelihood_scale: float | None = None,
    private_dim: int = 0,
    cross_private: str = "auxiliary",
) -> ModelConfig:
    """A ModelConfig for dataset modality specs (objects with name, shape, likelihood, kind).

    ``likelihood_scale=None`` learns the scale of Gaussian / Laplace likelihoods; ``private_dim``
    and ``cross_private``: see :class:`ModelConfig`."""
    mods = []
    for spec in specs.values():
        mods.append(ModalityConfig(
            name=spec.name, shape=tuple(spec.shape), likelihood=spec.likelihood,
            likelihood_scale=likelihood_scale if spec.likelihood in ("gaussian", "laplace") else None,
            network=dict(network) if network else default_network(spec.kind)))
    return ModelConfig(mods, latent_dim=latent_dim, latent=latent, fusion=fusion, private_dim=private_dim,
                       cross_private=cross_private)

