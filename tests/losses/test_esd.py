"""ESD (Entropic Score Distillation) with a tiny random diffusers UNet: gradient, λ = 0 is VSD, checks, checkpoint."""

from __future__ import annotations

import pytest
import torch

from sdbench.cameras import Cameras
from sdbench.errors import UserError
from sdbench.losses.esd import ESD
from sdbench.losses.vsd import VSD
from sdbench.priors.base import TextConditioning
from sdbench.priors.diffusers_prior import DiffusersPrior
from sdbench.priors.guidance import PerpNeg

PROMPT = "a red cube"


@pytest.fixture()
def prior(tiny_pixel_checkpoint):
    return DiffusersPrior(DiffusersPrior.Config(path=str(tiny_pixel_checkpoint)))


def make(cls, prior, seed: int = 0, **cfg):
    """The loss with a non-trivial LoRA (its up-projection starts at zero); the same seed, the same weights."""
    torch.manual_seed(seed)
    loss = cls(cls.Config(**cfg), prior)
    with torch.no_grad():
        for n, p in loss.unet_lora.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.05)
    return loss


def batch(B: int = 2):
    g = torch.Generator().manual_seed(1)
    images = torch.rand(B, 3, 16, 16, generator=g).requires_grad_(True)
    return images, Cameras.orbit(B, elevation=20.0), torch.tensor([100, 600][:B]), torch.randn(B, 3, 16, 16, generator=g)


def test_esd_gradient_mixes_the_camera_free_and_camera_lora_scores(prior):
    loss = make(ESD, prior, lora_cfg_scale=0.2)  # λ = 0.8: not symmetric, so swapping λ and 1 − λ would fail
    B, s, lam = 2, 7.5, 0.8
    images, cams, t, noise = batch(B)
    text = TextConditioning(prior, PROMPT)
    # independent, with the networks called directly and batched as the loss batches them (so 1e-6 holds)
    with torch.no_grad():
        a = prior.alphas_cumprod[t].view(-1, 1, 1, 1)
        x_t = a.sqrt() * (images * 2 - 1) + (1 - a).sqrt() * noise
        x2, t2 = torch.cat([x_t, x_t]), torch.cat([t, t])
        e_c, e_u = prior.unet(x2, t2, encoder_hidden_states=torch.cat([text.cond(cams), text.uncond(B)])).sample.chunk(2)
        y = prior.encode_text([PROMPT] * B)  # the LoRA side takes the view-independent prompt
        c2w = cams.c2w.reshape(B, 16)
        e_cam, e_nocam = loss.unet_lora(
            x2, t2, encoder_hidden_states=torch.cat([y, y]), class_labels=torch.cat([c2w, torch.zeros_like(c2w)])
        ).sample.chunk(2)
        g = (1 - a) * (e_u + s * (e_c - e_u) - (lam * e_nocam + (1 - lam) * e_cam))
    assert (e_cam - e_nocam).abs().max() > 1e-3  # the camera changes the LoRA score, so λ matters here
    out = loss(images, text, cams, 0, t=t, noise=noise)
    out.loss.backward()
    torch.testing.assert_close(images.grad, 2 * g / B, atol=1e-6, rtol=0)
    assert loss.entropy_lambda == pytest.approx(lam)
    assert prior.nfe.forward == 5 * B and prior.nfe.with_grad == B  # 2 prior + 2 LoRA + 1 LoRA training


def test_esd_takes_perp_neg_on_the_frozen_prior(prior):
    loss = make(ESD, prior, perp_neg=True)  # λ = 0.5 (default)
    B, s, lam = 2, 7.5, 0.5
    images, _, t, noise = batch(B)
    cams = Cameras(torch.tensor([45.0, 120.0]), torch.tensor([20.0, 20.0]), torch.full((B,), 3.0), torch.full((B,), 40.0))
    text = TextConditioning(prior, PROMPT)
    positive, (neg1, neg2), w = text.perp_neg(cams, PerpNeg(), text.uncond(B))
    assert (w.abs() > 0.05).all()  # both negatives weigh at these azimuths
    with torch.no_grad():
        a = prior.alphas_cumprod[t].view(-1, 1, 1, 1)
        x_t = a.sqrt() * (images * 2 - 1) + (1 - a).sqrt() * noise
        emb = torch.cat([positive, text.uncond(B), neg1, neg2])
        e_pos, e_u, e_1, e_2 = prior.unet(x_t.repeat(4, 1, 1, 1), t.repeat(4), encoder_hidden_states=emb).sample.chunk(4)
        d_pos = e_pos - e_u
        direction = d_pos.clone()
        for k, e_k in enumerate((e_1, e_2)):
            d_k = e_k - e_u
            coef = (d_k * d_pos).sum(dim=(1, 2, 3), keepdim=True) / (d_pos * d_pos).sum(dim=(1, 2, 3), keepdim=True)
            direction = direction + w[:, k].view(-1, 1, 1, 1) * (d_k - coef * d_pos)
        assert (direction - d_pos).norm() > 0.05 * d_pos.norm()  # the negatives move the prior's guidance
        y = prior.encode_text([PROMPT] * B)
        x2, t2, c2w = torch.cat([x_t, x_t]), torch.cat([t, t]), cams.c2w.reshape(B, 16)
        e_cam, e_nocam = loss.unet_lora(
            x2, t2, encoder_hidden_states=torch.cat([y, y]), class_labels=torch.cat([c2w, torch.zeros_like(c2w)])
        ).sample.chunk(2)
        g = (1 - a) * (e_u + s * direction - (lam * e_nocam + (1 - lam) * e_cam))
    out = loss(images, text, cams, 0, t=t, noise=noise)
    out.loss.backward()
    torch.testing.assert_close(images.grad, 2 * g / B, atol=1e-6, rtol=0)
    assert prior.nfe.forward == 7 * B and prior.nfe.with_grad == B  # 4 prior (Perp-Neg) + 2 LoRA + 1 LoRA training


def test_lambda_zero_is_vsd(prior):
    images, cams, t, noise = batch()
    text = TextConditioning(prior, PROMPT)
    grads = []
    for loss in (make(ESD, prior, lora_cfg_scale=1.0), make(VSD, prior)):
        x = images.detach().clone().requires_grad_(True)
        loss(x, text, cams, 0, t=t, noise=noise).loss.backward()
        grads.append(x.grad)
    torch.testing.assert_close(grads[0], grads[1], atol=0, rtol=0)


def test_esd_defaults_and_bad_configs(prior):
    cfg = ESD.Config()
    assert (cfg.lora_cfg_scale, cfg.camera_condition, cfg.camera_dropout, cfg.cfg_scale) == (0.5, True, 0.1, 7.5)
    assert (cfg.lora_lr, cfg.lora_betas, cfg.lora_eps) == (1e-4, (0.9, 0.99), 1e-15)
    with pytest.raises(UserError, match="camera_condition"):
        ESD(ESD.Config(camera_condition=False), prior)
    with pytest.raises(UserError, match="camera_dropout"):
        ESD(ESD.Config(camera_dropout=0.0), prior)


def test_checkpoint_round_trips_lora_camera_and_optimiser_state(prior):
    images, cams, t, noise = batch()
    text = TextConditioning(prior, PROMPT)
    loss = make(ESD, prior)
    loss(images, text, cams, 0, t=t, noise=noise)
    state = loss.checkpoint_state()
    assert any("class_embedding" in n for n in state["parameters"]) and any("lora_" in n for n in state["parameters"])
    other = make(ESD, prior, seed=1)
    other.load_checkpoint_state(state)
    for m in (loss, other):  # the same next step only if the LoRA, camera MLP and AdamW moments all came back
        torch.manual_seed(3)
        m(images, text, cams, 1, t=t, noise=noise)
    after = dict(loss.named_parameters())
    assert all(torch.equal(p, after[n]) for n, p in other.named_parameters() if p.requires_grad)
