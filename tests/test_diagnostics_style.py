"""Shared vs private latents in the diagnostics: swap_style (keep z, change w), embeddings of z alone."""
import pytest
import torch
from torch import nn

from mmvae import ModelConfig, build_model
from mmvae.diagnostics import latent_means
from mmvae.diagnostics.style import swap_style

D, DW, SHAPE = 2, 3, (5,)
NAMES = ("a", "b", "c")


def model_with(private_dim: int = DW, fusion: str = "mopoe"):
    mods = [{"name": n, "shape": SHAPE, "likelihood": "gaussian", "likelihood_scale": 0.5,
             "network": {"type": "mlp", "hidden": [16]}} for n in NAMES]
    return build_model(ModelConfig(mods, latent_dim=D, fusion=fusion, private_dim=private_dim), seed=0).eval()


def data(n: int, seed: int) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {m: torch.randn(n, *SHAPE, generator=g) for m in NAMES}


class Reads(nn.Module):
    """A decoder that ignores the part of its input (z, w_t) named by ``ignore``: output = the sum
    of the kept numbers, broadcast to the modality's shape."""

    def __init__(self, keep: slice) -> None:
        super().__init__()
        self.keep = keep

    def forward(self, u):  # (N, D + DW) -> (N, *SHAPE)
        return u[:, self.keep].sum(-1, keepdim=True).expand(u.shape[0], *SHAPE)


def test_grid_rows_carry_the_content_z_and_columns_the_style_w():
    model = model_with()
    content, style = data(4, 1), data(6, 2)
    model.decoders["b"] = Reads(slice(0, D))  # sees z only
    z_only = swap_style(model, content, style, "b")["grid"]  # (4, 6, 5)
    assert z_only.shape == (4, 6, *SHAPE)
    assert torch.allclose(z_only, z_only[:, :1].expand_as(z_only))  # the style (column) changes nothing
    assert (z_only[:, 0, 0].max() - z_only[:, 0, 0].min()) > 1e-3  # the content (row) does
    model.decoders["b"] = Reads(slice(D, D + DW))  # sees w_b only
    w_only = swap_style(model, content, style, "b")["grid"]
    assert torch.allclose(w_only, w_only[:1].expand_as(w_only))  # the content changes nothing
    assert (w_only[0, :, 0].max() - w_only[0, :, 0].min()) > 1e-3  # the style does


def test_w_comes_from_the_style_examples_target_only():
    model = model_with()
    content, style = data(3, 1), data(5, 2)
    out = swap_style(model, content, style, "b")
    other = {**data(5, 9), "b": style["b"]}  # the style examples' other modalities changed
    assert torch.equal(swap_style(model, content, other, "b")["grid"], out["grid"])
    assert torch.equal(swap_style(model, content, {"b": style["b"]}, "b")["w"], out["w"])
    changed = swap_style(model, content, {"b": data(5, 3)["b"]}, "b")
    assert not torch.allclose(changed["grid"], out["grid"])
    # w is the mean of the target's private posterior q(w_b | x_b): its slot in u = [z | w_a | w_b | w_c]
    u = model.posterior({"b": style["b"]}, "moe").mean  # (5, D + 3 DW)
    assert torch.allclose(out["w"], u[:, D + DW : D + 2 * DW])
    # and never from the content's posterior of b: with b among the content, the grid is unchanged
    with_b = swap_style(model, {**content, "b": data(3, 4)["b"]}, style, "b")
    assert torch.equal(with_b["w"], out["w"])


def test_generated_column_is_the_cross_modal_generation():
    model = model_with()
    content, style = {"a": data(4, 1)["a"]}, data(2, 2)
    out = swap_style(model, content, style, "c")
    gen = model.generate(content, ["c"])["c"]  # w_c at the mode of r_c, z at the posterior mean of x_a
    assert torch.allclose(out["generated"], gen, atol=1e-6)
    assert out["given"] == ["a"] and out["target"] == "c" and out["style"].shape == (2, *SHAPE)


def test_swap_style_refuses_a_model_without_private_latents_and_bad_names():
    content, style = data(2, 1), data(2, 2)
    with pytest.raises(ValueError, match="no private latents"):
        swap_style(model_with(private_dim=0), content, style, "b")
    model = model_with()
    with pytest.raises(ValueError, match="unknown target"):
        swap_style(model, content, style, "zz")
    with pytest.raises(ValueError, match="must hold the target"):
        swap_style(model, content, {"a": style["a"]}, "b")


def test_embeddings_are_of_the_shared_z_alone():
    model = model_with()
    x = data(7, 1)
    means = latent_means(model, x)
    u = model.posterior(x, validate=False).mean  # (7, D + 3 DW)
    assert set(means) == {"joint", *NAMES}
    assert all(v.shape == (7, D) for v in means.values())
    assert torch.allclose(torch.as_tensor(means["joint"]), u[:, :D].double())
    ua = model.posterior({"a": x["a"]}, "moe", validate=False).mean
    assert torch.allclose(torch.as_tensor(means["a"]), ua[:, :D].double())


def test_embedding_says_it_is_of_z_alone():
    from mmvae.diagnostics import latent_embedding

    x = data(6, 1)
    assert "shared z alone" in latent_embedding(model_with(), x, "pca")["of"]
    assert latent_embedding(model_with(private_dim=0), x, "pca")["of"] == "z"
