"""VSD (ProlificDreamer) with a tiny random diffusers UNet: gradient, LoRA training, NFE, checkpoint."""

from __future__ import annotations

import pytest
import torch

from sdbench.cameras import Cameras
from sdbench.losses.vsd import VSD
from sdbench.priors.base import TextConditioning
from sdbench.priors.diffusers_prior import DiffusersPrior


@pytest.fixture()
def prior(tiny_pixel_checkpoint):
    return DiffusersPrior(DiffusersPrior.Config(path=str(tiny_pixel_checkpoint)))


def test_vsd_gradient_is_pretrained_cfg_minus_lora(prior):
    torch.manual_seed(0)
    loss = VSD(VSD.Config(), prior)
    with torch.no_grad():  # a non-trivial LoRA (its up-projection starts at zero)
        for n, p in loss.unet_lora.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.05)
    B, s = 2, 7.5
    images = torch.rand(B, 3, 16, 16, requires_grad=True)
    cams, t, noise = Cameras.orbit(B, elevation=20.0), torch.tensor([100, 600]), torch.randn(B, 3, 16, 16)
    text = TextConditioning(prior, "a red cube")
    # independent: the frozen UNet with CFG, and the LoRA copy with the camera and the view-independent prompt
    with torch.no_grad():
        a = prior.alphas_cumprod[t].view(-1, 1, 1, 1)
        x_t = a.sqrt() * (images * 2 - 1) + (1 - a).sqrt() * noise
        e_c = prior.unet(x_t, t, encoder_hidden_states=text.cond(cams)).sample
        e_u = prior.unet(x_t, t, encoder_hidden_states=text.uncond(B)).sample
        e_l = loss.unet_lora(
            x_t, t, encoder_hidden_states=prior.encode_text(["a red cube"] * B), class_labels=cams.c2w.reshape(B, 16)
        ).sample
        g = (1 - a) * (e_u + s * (e_c - e_u) - e_l)
    out = loss(images, text, cams, 0, t=t, noise=noise)
    out.loss.backward()
    # 2e-5: batched (2B) vs separate UNet calls round differently in float32, amplified by s = 7.5
    torch.testing.assert_close(images.grad, 2 * g / B, atol=2e-5, rtol=0)
    assert prior.nfe.forward == 4 * B and prior.nfe.with_grad == B  # 2 prior + 1 LoRA + 1 LoRA training
    assert torch.isfinite(torch.tensor(out.logs["lora_loss"]))


def test_lora_starts_as_the_prior_plus_camera_and_the_prior_stays_frozen(prior):
    loss = VSD(VSD.Config(camera_condition=False), prior)
    x, t, e = torch.randn(1, 3, 16, 16), torch.tensor([500]), prior.encode_text(["a red cube"])
    with torch.no_grad():
        torch.testing.assert_close(
            loss.unet_lora(x, t, encoder_hidden_states=e).sample, prior.unet(x, t, encoder_hidden_states=e).sample
        )
    trainable = [n for n, p in loss.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    assert not any(p.requires_grad for p in prior.unet.parameters())


def test_lora_loss_decreases_on_a_fixed_batch(prior):
    torch.manual_seed(0)
    loss = VSD(VSD.Config(lora_lr=1e-2), prior)
    z = torch.rand(4, 3, 16, 16) * 2 - 1
    text, cams = TextConditioning(prior, "a red cube"), Cameras.orbit(4)

    def fixed_batch_loss() -> float:
        torch.manual_seed(123)  # the same t', ε' and camera dropout every time
        with torch.no_grad():
            t = torch.randint(0, 1000, (4,))
            noise = torch.randn_like(z)
            pred = loss.unet_lora(
                prior.add_noise(z, t, noise),
                t,
                encoder_hidden_states=text.embed("a red cube", 4),
                class_labels=cams.c2w.reshape(4, 16),
            ).sample
        return (pred - noise).pow(2).mean().item()

    before = fixed_batch_loss()
    for _ in range(40):
        torch.manual_seed(123)
        loss.lora_step(z, text, cams)
    assert fixed_batch_loss() < 0.92 * before  # rank-4 LoRA on a tiny random UNet: ~13 % in 40 steps


def test_checkpoint_holds_only_trainable_lora_and_camera_weights(prior):
    loss = VSD(VSD.Config(), prior)
    loss(torch.rand(1, 3, 16, 16, requires_grad=True), TextConditioning(prior, "a red cube"), Cameras.orbit(1), 0)
    state = loss.checkpoint_state()
    assert all(("lora_" in n) or ("class_embedding" in n) for n in state["parameters"])
    assert any("class_embedding" in n for n in state["parameters"]) and "lora" in state["optimizers"]
    other = VSD(VSD.Config(), prior)
    other.load_checkpoint_state(state)
    for n, p in other.named_parameters():
        if p.requires_grad:
            assert torch.equal(p, dict(loss.named_parameters())[n]), n
