"""SDI against the official threestudio procedure, recomputed hop by hop with the closed-form prior."""

from __future__ import annotations

import math

import pytest
import torch

from sdbench.losses.sdi import SDI, inversion_grid
from tests.losses.helpers import check, eps, setup, setup_double


def cfg_eps(x, tau, prompts, scale):
    """ε_∅ + s (ε_y − ε_∅) of the stub at (x, τ), τ a python int or a [B] tensor."""
    B = x.shape[0]
    tau = torch.full((B,), tau) if isinstance(tau, int) else tau
    e_y, e_u = eps(x, tau, prompts), eps(x, tau, "")
    return e_u + scale * (e_y - e_u)


def reference(prior, images, prompts, t_val, seed, *, eta=0.3, query="t", reduction="sum", guided=cfg_eps):
    """g of the official code (B views, one t), drawing u then ξ per hop from a generator seeded ``seed``;
    ``guided(x, τ, prompts, s)`` is the guided prediction (CFG, or Perp-Neg in test_perp_neg)."""
    B = images.shape[0]
    ac = prior.alphas_cumprod
    gen = torch.Generator().manual_seed(seed)
    u = torch.rand(B, generator=gen)
    t_plus = torch.clamp(t_val + torch.floor(u * 100).long(), max=999)
    grid = [1 + 100 * k for k in range(10) if 1 + 100 * k < t_val]
    taus = [grid[0] - 100] + grid  # the "leading" DDIMInverseScheduler grid, rolled by one step
    z = images.detach() * 2 - 1
    x = z.clone()
    for i, tau in enumerate(taus):
        a = ac[max(tau, 0)]  # initial_alpha_cumprod = ᾱ_0 (set_alpha_to_one false)
        a_next = ac[taus[i + 1]] if i + 1 < len(taus) else ac[t_plus].view(-1, 1, 1, 1)
        e = guided(x, tau, prompts, -7.5)
        x0 = (x - math.sqrt(1 - a) * e) / math.sqrt(a)
        x = a_next**0.5 * x0 + (1 - a_next) ** 0.5 * e
        variance = (1 - a) / (1 - a_next) * (1 - a_next / a)  # DDIMScheduler._get_variance(τ', τ)
        x = x + eta * variance**0.5 * torch.randn(x.shape, generator=gen, dtype=x.dtype)
    q = torch.full((B,), t_val) if query == "t" else t_plus
    a_q = ac[q].view(-1, 1, 1, 1)
    x0 = (x - (1 - a_q).sqrt() * guided(x, q, prompts, 7.5)) / a_q.sqrt()
    g = z - x0
    return (g / (z[0].numel() * B) if reduction == "mean" else g), len(taus), t_plus


@pytest.mark.parametrize("t_val,hops", [(980, 11), (500, 6), (250, 4)])
def test_sdi_gradient_follows_the_stochastic_inversion(t_val, hops):
    prior, images, _, cams, text = setup_double()  # up to 11 chained hops, σ_t/α_t ≈ 13 at t = 980
    B = images.shape[0]
    loss = SDI(SDI.Config(), prior)
    loss.generator = torch.Generator().manual_seed(7)
    out = loss(images, text, cams, 0, t=torch.full((B,), t_val))
    out.loss.backward()
    g, n_hops, t_plus = reference(prior, images, text.prompts_for(cams), t_val, seed=7)
    check(images, g)
    assert n_hops == hops and out.logs["inversion_hops"] == hops
    assert prior.nfe.forward == 2 * (hops + 1) * B
    assert out.logs["t_plus"] == pytest.approx(t_plus.float().mean().item())
    assert (t_plus >= t_val).all() and (t_plus < t_val + 100).all()


def test_sdi_switches_query_at_t_plus_and_official_mean_scale():
    prior, images, _, cams, text = setup_double()  # up to 11 chained hops, σ_t/α_t ≈ 13 at t = 980
    B = images.shape[0]
    cfg = SDI.Config(query="t_plus", reduction="mean", inversion_eta=0.0)
    loss = SDI(cfg, prior)
    loss.generator = torch.Generator().manual_seed(3)
    loss(images, text, cams, 0, t=torch.full((B,), 640)).loss.backward()
    g, *_ = reference(prior, images, text.prompts_for(cams), 640, seed=3, eta=0.0, query="t_plus", reduction="mean")
    # the official mean reduction: g / (B·C·h·w), here 3·3·8·8
    torch.testing.assert_close(images.grad, 2 * g / B, atol=1e-10, rtol=0)


def test_sdi_inversion_grid_and_t_schedule():
    assert inversion_grid(980, 1000, 10, 1) == [-99, 1, 101, 201, 301, 401, 501, 601, 701, 801, 901]
    assert inversion_grid(250, 1000, 10, 1) == [-99, 1, 101, 201]
    assert inversion_grid(1, 1000, 10, 1) == [-99]  # the official code has no first grid point here and fails
    prior, *_ = setup()
    loss = SDI(SDI.Config(), prior)
    assert [int(loss.timestep(2, k, "cpu")[0]) for k in (0, 10_000, 20_000)] == [980, 250, 250]
    assert abs(int(loss.timestep(2, 5000, "cpu")[0]) - 615) <= 1


def test_sdi_without_schedule_shares_one_sampled_t_and_rejects_per_view_t():
    prior, images, _, cams, text = setup()
    loss = SDI(SDI.Config(t_schedule=None, t_range=(0.3, 0.6)), prior)
    loss.generator = torch.Generator().manual_seed(0)
    for _ in range(3):
        t = loss.timestep(3, 0, "cpu")
        assert (t == t[0]).all() and 300 <= int(t[0]) <= 600
    with pytest.raises(ValueError, match="one value"):
        loss(images, text, cams, 0, t=torch.tensor([300, 400, 500]))
