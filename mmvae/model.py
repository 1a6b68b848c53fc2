"""The multimodal VAE: one encoder and decoder per modality over one shared latent z."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Mapping, Sequence

import torch
from torch import Tensor, nn

from .distributions import LATENT_FAMILIES, LIKELIHOODS, Likelihood, check_choice, standard_prior
from .fusion import FUSIONS, Posterior, fuse, standard_noise
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
    """Everything needed to rebuild a model (it is stored as JSON in every checkpoint)."""

    modalities: list[ModalityConfig]
    latent_dim: int = 2
    latent: str = "gaussian"
    fusion: str = "poe"

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
    """Unimodal expert parameters of the present modalities: loc and log_scale are (M, B, D)."""

    names: list[str]
    loc: Tensor
    log_scale: Tensor


class MultimodalVAE(nn.Module):
    """Encoders q~(z | x_m), decoders p(x_m | z), a fixed standard prior and a fusion rule.

    Pass ``encoders`` / ``decoders`` (dicts by modality name) to use your own modules; see
    :mod:`mmvae.networks` for the contract they keep.
    """

    def __init__(
        self,
        config: ModelConfig,
        encoders: Mapping[str, nn.Module] | None = None,
        decoders: Mapping[str, nn.Module] | None = None,
    ) -> None:
        super().__init__()
        self.config = config
        self.names = [m.name for m in config.modalities]
        self.specs = {m.name: m for m in config.modalities}
        enc, dec, lik = {}, {}, {}
        for m in config.modalities:
            if encoders is not None and m.name in encoders:
                if decoders is None or m.name not in decoders:
                    raise ValueError(f"modality {m.name!r}: a custom encoder needs a custom decoder too")
                enc[m.name], dec[m.name] = encoders[m.name], decoders[m.name]
            elif m.network.get("type") == "custom":
                raise ValueError(f"modality {m.name!r} uses a custom network: pass its encoder and decoder modules")
            else:
                enc[m.name], dec[m.name] = build_networks(m.network, m.shape, config.latent_dim,
                                                          prior_product=config.latent == "gaussian")
            lik[m.name] = Likelihood(m.likelihood, len(m.shape), m.likelihood_scale, m.weight)
        self.encoders = nn.ModuleDict(enc)
        self.decoders = nn.ModuleDict(dec)
        self.likelihoods = nn.ModuleDict(lik)

    # ------------------------------------------------------------------ properties
    @property
    def latent_dim(self) -> int:
        return self.config.latent_dim

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
        """The standard prior p(z), on the model's device and in its floating-point dtype."""
        param = next(self.parameters())
        return standard_prior(self.family, self.latent_dim, device=param.device, dtype=param.dtype)

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
        loc = torch.stack([o[0] for o in outs])
        log_scale = torch.stack([o[1] for o in outs])
        return Experts(names, loc, log_scale)

    def posterior(
        self,
        x: Mapping[str, Tensor],
        fusion: str | None = None,
        subsets: Sequence[Sequence[str]] | None = None,
        training: bool = False,
        validate: bool = True,
    ) -> Posterior:
        """The fused posterior q(z | x_S) of the modalities present in ``x``.

        ``subsets`` (lists of modality names) replaces the rule's components by the PoEs of
        exactly those subsets (a MoPoE over them). ``training=True`` with PoE gives MVAE's
        separate joint and unimodal terms.
        """
        experts = self.encode(x, validate)
        pos = None
        if subsets is not None:
            index = {n: i for i, n in enumerate(experts.names)}
            missing = {n for s in subsets for n in s} - set(index)
            if missing:
                raise ValueError(f"subsets name modalities that are not in the data: {sorted(missing)}")
            pos = [tuple(sorted(index[n] for n in s)) for s in subsets]
        return fuse(self.family, experts.names, experts.loc, experts.log_scale, fusion or self.fusion, training, pos)

    # ------------------------------------------------------------------ generation
    def decode(self, z: Tensor, names: Sequence[str] | None = None) -> dict[str, Tensor]:
        """Decoder outputs (likelihood locations) for latents ``z`` of shape (..., D)."""
        lead = z.shape[:-1]
        flat = z.reshape(-1, z.shape[-1])
        out = {}
        for n in names or self.names:
            out[n] = self.decoders[n](flat).view(*lead, *self.specs[n].shape)
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
        *,
        generator: torch.Generator | None = None,
    ) -> dict[str, Tensor]:
        """Cross-modal generation: E[x_t | z] at the posterior mean of the given modalities
        (``n_samples == 0``, shapes (B, *shape)) or at ``n_samples`` posterior samples
        ((n, B, *shape)); samples come from ``generator`` when given."""
        post = self.posterior(given, fusion)
        z = post.mean if n_samples == 0 else post.sample(n_samples, generator)
        params = self.decode(z, targets or self.names)
        return {n: self.likelihoods[n].mean(p) for n, p in params.items()}

    @torch.no_grad()
    def sample_prior(self, n: int, targets: Sequence[str] | None = None, *,
                     generator: torch.Generator | None = None) -> dict[str, Tensor]:
        """Unconditional generations E[x_m | z] at n prior samples z ~ p(z) (from ``generator`` when given)."""
        param = next(self.parameters())
        z = standard_noise(self.family, (n, self.latent_dim), param.device, generator).to(param.dtype)
        params = self.decode(z, targets or self.names)
        return {k: self.likelihoods[k].mean(p) for k, p in params.items()}


def build_model(config: ModelConfig, seed: int | None = 0, **kwargs) -> MultimodalVAE:
    """Build a model with reproducible initial weights."""
    if seed is not None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return MultimodalVAE(config, **kwargs)
    return MultimodalVAE(config, **kwargs)


def config_for_specs(
    specs: Mapping[str, object],
    latent_dim: int = 2,
    latent: str = "gaussian",
    fusion: str = "poe",
    network: dict | None = None,
    likelihood_scale: float | None = None,
) -> ModelConfig:
    """A ModelConfig for dataset modality specs (objects with name, shape, likelihood, kind).

    ``likelihood_scale=None`` learns the scale of Gaussian / Laplace likelihoods."""
    mods = []
    for spec in specs.values():
        mods.append(ModalityConfig(
            name=spec.name, shape=tuple(spec.shape), likelihood=spec.likelihood,
            likelihood_scale=likelihood_scale if spec.likelihood in ("gaussian", "laplace") else None,
            network=dict(network) if network else default_network(spec.kind)))
    return ModelConfig(mods, latent_dim=latent_dim, latent=latent, fusion=fusion)

