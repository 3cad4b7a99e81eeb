"""SDS: the gradient w.r.t. the rendered image equals w(t)(ε̂_cfg − ε) through the prior's mapping."""

from __future__ import annotations

import torch

from sdbench.cameras import Cameras
from sdbench.losses.sds import SDS
from sdbench.priors.base import TextConditioning
from sdbench.testing import StubPrior


def test_sds_gradient_matches_the_paper_with_a_closed_form_prior(stub_prior):
    B, prompt, s = 3, "a red cube", 100.0
    images = torch.rand(B, 3, 8, 8, requires_grad=True)
    cams = Cameras.orbit(B)
    t = torch.tensor([20, 300, 980])
    eps = torch.randn(B, 3, 8, 8)
    loss = SDS(SDS.Config(cfg_scale=s), stub_prior)
    text = TextConditioning(stub_prior, prompt)
    out = loss(images, text, cams, step=0, t=t, noise=eps)
    out.loss.backward()

    # independent computation: z = 2x − 1, x_t, predictions from the closed form, CFG, w = 1 − ᾱ_t
    a = stub_prior.alphas_cumprod[t].view(-1, 1, 1, 1)
    z = images.detach() * 2 - 1
    x_t = a.sqrt() * z + (1 - a).sqrt() * eps
    cond = torch.stack([StubPrior.embedding(p) for p in text.prompts_for(cams)])
    e_c = StubPrior.formula(x_t, t, cond)
    e_u = StubPrior.formula(x_t, t, torch.zeros(B, 2, 4))
    g = (1 - a) * (e_u + s * (e_c - e_u) - eps)
    expected = 2 * g / B  # d z / d x = 2, surrogate divides by B
    torch.testing.assert_close(images.grad, expected, atol=1e-6, rtol=0)
    assert stub_prior.nfe.forward == 2 * B
    assert abs(out.logs["grad_norm"] - g.flatten(1).norm(dim=1).mean().item()) < 1e-5


def test_sds_gradient_through_a_real_unet_and_resize(tiny_pixel_checkpoint):
    """Same check through a tiny random diffusers UNet, with renders at 2× the prior's size."""
    from sdbench.priors.diffusers_prior import DiffusersPrior

    prior = DiffusersPrior(DiffusersPrior.Config(path=str(tiny_pixel_checkpoint)))
    B, s = 2, 7.5
    images = torch.rand(B, 3, 32, 32, requires_grad=True)
    cams = Cameras.orbit(B)
    t, eps = torch.tensor([50, 700]), torch.randn(B, 3, 16, 16)
    text = TextConditioning(prior, "a blue cone")
    SDS(SDS.Config(cfg_scale=s, weighting="uniform"), prior)(images, text, cams, 0, t=t, noise=eps).loss.backward()

    x = images.detach().requires_grad_(True)
    z = torch.nn.functional.interpolate(x, size=(16, 16), mode="bilinear", align_corners=False) * 2 - 1
    with torch.no_grad():
        a = prior.alphas_cumprod[t].view(-1, 1, 1, 1)
        x_t = a.sqrt() * z + (1 - a).sqrt() * eps
        e_c = prior.unet(x_t, t, encoder_hidden_states=text.cond(cams)).sample
        e_u = prior.unet(x_t, t, encoder_hidden_states=text.uncond(B)).sample
        g = e_u + s * (e_c - e_u) - eps
    (expected,) = torch.autograd.grad(z, x, grad_outputs=g / B)  # J_resize^T (2 g / B)
    # 2e-5: the loss evaluates the CFG pair as one batch of 2B, the reference as two batches of B;
    # float32 GEMMs of different batch sizes round differently (~1e-6), and s = 7.5 amplifies that.
    torch.testing.assert_close(images.grad, expected, atol=2e-5, rtol=0)


def test_sds_samples_t_in_range_and_counts_nfe(stub_prior):
    torch.manual_seed(0)
    loss = SDS(SDS.Config(t_range=(0.3, 0.31)), stub_prior)
    text = TextConditioning(stub_prior, "a red cube")
    for _ in range(20):
        out = loss(torch.rand(4, 3, 8, 8, requires_grad=True), text, Cameras.orbit(4), 0)
        assert 300 <= out.logs["t"] <= 310
    assert stub_prior.nfe.forward == 20 * 4 * 2
