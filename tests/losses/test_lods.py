"""LODS (embedding variant) on the closed-form stub prior: gradient, α's update, NFE, checkpoint round trip."""

from __future__ import annotations

import torch

from sdbench.losses.lods import LODS
from sdbench.testing import StubPrior
from tests.losses.helpers import check, eps, forward_process, setup

A, B_, C = StubPrior.a, StubPrior.b, StubPrior.c


def with_alpha(prior, seed: int = 1, **cfg) -> LODS:
    """A LODS loss whose α is moved off its initial value ("" embeds to zeros on the stub)."""
    loss = LODS(LODS.Config(**cfg), prior)
    with torch.no_grad():
        loss.alpha.copy_(torch.randn(loss.alpha.shape, generator=torch.Generator().manual_seed(seed)))
    return loss


def eps_alpha(x_t: torch.Tensor, t: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """ε_φ(x_t; α, t) of the stub, written out: a·x_t + b·mean(α) + c·t/1000."""
    return A * x_t + B_ * alpha.mean() + C * (t.float() / 1000).view(-1, 1, 1, 1)


def test_alpha_starts_as_the_negative_prompt_embedding():
    prior = StubPrior()
    torch.testing.assert_close(
        LODS(LODS.Config(negative_prompt="a blue ball"), prior).alpha.detach(), StubPrior.embedding("a blue ball")
    )
    assert LODS(LODS.Config(), prior).alpha.shape == (2, 4)  # the prior's [L, D]


def test_lods_gradient_is_the_official_form_with_the_pre_step_alpha():
    prior, images, noise, cams, text = setup(B=3)
    loss = with_alpha(prior, alpha_lr=1e-2)
    alpha0 = loss.alpha.detach().clone()
    t, s = torch.tensor([30, 400, 950]), 1000.0
    z, x_t, a = forward_process(prior, images, t, noise)
    e_c = eps(x_t, t, text.prompts_for(cams))
    e_alpha = eps_alpha(x_t, t, alpha0)
    # yangxiaofeng/LODS lods_embedding_guidance.py:369: w·[ε_c + ((1 − s)/s)·ε_α − ε/s]
    g = (1 - a) * (e_c + (1 - s) / s * e_alpha - noise / s)
    out = loss(images, text, cams, 0, t=t, noise=noise)
    out.loss.backward()
    check(images, g)
    assert not torch.equal(loss.alpha.detach(), alpha0)  # α stepped, after g was formed with α0
    assert prior.nfe.forward == 3 * 3 and prior.nfe.with_grad == 3  # CFG pair + α's training forward, per view


def test_alpha_takes_one_adamw_step_down_its_denoising_loss():
    prior, images, noise, cams, text = setup(B=2)
    lr, wd = 1e-2, 0.01
    loss = with_alpha(prior, alpha_lr=lr, alpha_weight_decay=wd)
    loss.generator = torch.Generator().manual_seed(11)
    draws = torch.Generator().manual_seed(11)  # t and ε are fixed below, so α's t′, ε′ are the generator's first draws
    alpha0 = loss.alpha.detach().clone()
    out = loss(images, text, cams, 0, t=torch.tensor([100, 700]), noise=noise)
    # independent: t′ ~ U{0..999}, ε′ ~ N(0, I) in that order, x_t′ from sg(z), L_α = mean(ε_φ(x_t′; α, t′) − ε′)²
    t1 = torch.randint(0, 1000, (2,), generator=draws)
    e1 = torch.randn(noise.shape, generator=draws)
    z = images.detach() * 2 - 1
    a1 = prior.alphas_cumprod[t1].view(-1, 1, 1, 1)
    x1 = a1.sqrt() * z + (1 - a1).sqrt() * e1

    def alpha_loss(alpha: torch.Tensor) -> torch.Tensor:
        return (eps_alpha(x1, t1, alpha) - e1).pow(2).mean()

    assert abs(out.logs["embedding_loss"] - alpha_loss(alpha0).item()) < 1e-6
    # ∂L_α/∂α_ij = 2·b·mean(ε_φ − ε′)/|α| for every entry (ε_φ sees α only through its mean)
    grad = torch.full_like(alpha0, 2 * B_ * (eps_alpha(x1, t1, alpha0) - e1).mean().item() / alpha0.numel())
    # AdamW's first step: decoupled decay, then −lr·m̂/(√v̂ + eps) = −lr·sign(grad) (eps 1e-15)
    expected = alpha0 * (1 - lr * wd) - lr * grad.sign()
    torch.testing.assert_close(loss.alpha.detach(), expected, atol=1e-7, rtol=0)
    assert (loss.alpha.detach() - alpha0).mul(grad).sum() < 0
    assert alpha_loss(loss.alpha.detach()) < alpha_loss(alpha0)


def test_alpha_gets_no_gradient_from_the_render_loss():
    prior, images, noise, cams, text = setup(B=2)
    loss = with_alpha(prior)
    out = loss(images, text, cams, 0, t=torch.tensor([100, 700]), noise=noise)
    loss.alpha.grad = None
    out.loss.backward()
    assert loss.alpha.grad is None and images.grad is not None


def test_checkpoint_round_trips_alpha_and_its_optimiser_state():
    prior, images, noise, cams, text = setup(B=2)
    loss = with_alpha(prior, alpha_lr=1e-2)
    loss.generator = torch.Generator().manual_seed(0)
    loss(images, text, cams, 0, t=torch.tensor([100, 700]), noise=noise)
    state = loss.checkpoint_state()
    assert list(state["parameters"]) == ["alpha"] and state["optimizers"]["embedding"]["state"]
    other = LODS(LODS.Config(alpha_lr=1e-2), prior)
    other.load_checkpoint_state(state)
    assert torch.equal(other.alpha, loss.alpha)
    # the next step is the same only if Adam's moments came back too
    for m in (loss, other):
        m.generator = torch.Generator().manual_seed(5)
        m(images, text, cams, 1, t=torch.tensor([200, 300]), noise=noise)
    assert torch.equal(other.alpha, loss.alpha)
    fresh = LODS(LODS.Config(alpha_lr=1e-2), prior)
    with torch.no_grad():
        fresh.alpha.copy_(state["parameters"]["alpha"])
    fresh.generator = torch.Generator().manual_seed(5)
    fresh(images, text, cams, 1, t=torch.tensor([200, 300]), noise=noise)
    assert not torch.equal(fresh.alpha, loss.alpha)  # without the optimiser state the step differs
