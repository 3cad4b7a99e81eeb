"""CDS against Consistent3D's compute_grad_consistency (VE form), recomputed with the closed-form prior."""

from __future__ import annotations

import math

import pytest
import torch

from sdbench.losses.cds import CDS, SqrtAnneal
from tests.losses.helpers import check, eps, setup, setup_double


def reference(prior, images, prompts, t, t_next, noise, s, weighting="uniform"):
    """The official gradient in its own variables: zs = z + σ̃_t ε, scaled_zs = zs/√(1+σ̃_t²), one VE Euler
    step zs' = zs + (σ̃_t' − σ̃_t) ε̂_t, threestudio's grad_latents = w[(σ̃_t/σ̃_t')(ε̂_t − ε̂_t) + (ε̂_t' − ε̂_t)],
    and target = z + grad_latents, so the surrogate's g is −grad_latents."""
    ac = prior.alphas_cumprod
    sig = ((1 - ac[t]) / ac[t]).sqrt().view(-1, 1, 1, 1)
    sig_next = ((1 - ac[t_next]) / ac[t_next]).sqrt().view(-1, 1, 1, 1)
    z = images.detach() * 2 - 1
    zs = z + sig * noise
    e_y, e_u = eps(zs / (1 + sig**2).sqrt(), t, prompts), eps(zs / (1 + sig**2).sqrt(), t, "")
    e_t = e_u + s * (e_y - e_u)
    zs_next = zs + (sig_next - sig) * e_t
    x_next = zs_next / (1 + sig_next**2).sqrt()
    e_y, e_u = eps(x_next, t_next, prompts), eps(x_next, t_next, "")
    e_next = e_u + s * (e_y - e_u)
    w = (1 - ac[t]).view(-1, 1, 1, 1) if weighting == "sds" else 1.0
    grad_latents = w * ((sig / (sig_next + 1e-9)) * (e_t - e_t) + (e_next - e_t))
    return -grad_latents


@pytest.mark.parametrize("weighting", ["uniform", "sds"])
def test_cds_gradient_is_the_official_one_ode_step_difference(weighting):
    prior, images, noise, cams, text = setup_double()  # CFG 88.5 on two chained predictions
    B = images.shape[0]
    loss = CDS(CDS.Config(grad_clip=None, weighting=weighting), prior)
    t = torch.tensor([500, 550, 699])
    out = loss(images, text, cams, 750, t=t, noise=noise)
    out.loss.backward()
    # step 750 of 3000: t' = ⌊700 − 600·√0.25⌋ = 400, s = 101 − 50·0.25 = 88.5 (threestudio form 87.5)
    t_next = torch.full((B,), 400)
    g = reference(prior, images, text.prompts_for(cams), t, t_next, noise, 88.5, weighting)
    check(images, g)
    assert prior.nfe.forward == 4 * B
    assert out.logs["t_next"] == 400 and out.logs["cfg_scale"] == 88.5


def test_cds_clamps_g_with_the_annealed_clip():
    prior, images, noise, cams, text = setup_double()
    loss = CDS(CDS.Config(), prior)
    out = loss(images, text, cams, 750, t=torch.tensor([900, 950, 980]), noise=noise)
    out.loss.backward()
    raw = reference(prior, images, text.prompts_for(cams), torch.tensor([900, 950, 980]), torch.full((3,), 400), noise, 88.5)
    assert raw.abs().max() > 3.5  # the clip is active here
    check(images, raw.clamp(-3.5, 3.5))  # c = 2 + 6·0.25


def test_cds_timesteps_follow_the_sqrt_schedule_and_the_gap():
    assert SqrtAnneal(700, 100, 0, 3000)(0) == 700 and SqrtAnneal(700, 100, 0, 3000)(3000) == 100
    assert SqrtAnneal(700, 100, 0, 3000)(30) == pytest.approx(700 - 600 * math.sqrt(0.01))
    prior, *_ = setup()
    loss = CDS(CDS.Config(), prior)
    loss.generator = torch.Generator().manual_seed(0)
    for step, t_next in [(0, 700), (750, 400), (3000, 100), (9000, 100)]:
        t, tn = loss.timesteps(64, step, "cpu")
        assert (tn == t_next).all()
        gap = t - tn
        assert gap.min() >= 100 and gap.max() <= 299 and t.max() <= 980
    loss = CDS(CDS.Config(t_next=SqrtAnneal(950, 950)), prior)  # t' capped at 980 − 100, t at 980
    t, tn = loss.timesteps(64, 0, "cpu")
    assert (tn == 880).all() and t.max() == 980


def test_cds_draws_one_fixed_noise_and_keeps_it():
    prior, images, _, cams, text = setup_double()
    B = images.shape[0]
    loss = CDS(CDS.Config(grad_clip=None), prior)
    loss.generator = torch.Generator().manual_seed(5)
    assert not loss.noise_drawn
    for step in (0, 1, 2):
        images.grad = None
        t = torch.tensor([800, 600, 400])
        loss(images, text, cams, step, t=t).loss.backward()
        first = torch.randn(3, 8, 8, generator=torch.Generator().manual_seed(5))  # the generator's first draw
        torch.testing.assert_close(loss.fixed_noise, first, atol=0, rtol=0)
        t_next = torch.full((B,), int(SqrtAnneal(700, 100, 0, 3000)(step)))
        s = 101 - 50 * step / 3000
        check(images, reference(prior, images, text.prompts_for(cams), t, t_next, first.expand(B, -1, -1, -1), s))
    assert set(loss.checkpoint_state()["buffers"]) == {"fixed_noise", "noise_drawn"}

    fresh = CDS(CDS.Config(share_noise=False), prior)
    fresh.generator = torch.Generator().manual_seed(5)
    a = fresh(images, text, cams, 0, t=torch.tensor([800, 600, 400])).logs["grad_norm"]
    b = fresh(images, text, cams, 0, t=torch.tensor([800, 600, 400])).logs["grad_norm"]
    assert a != b and not fresh.noise_drawn


def test_cds_trial_resumes_bit_identically_with_its_saved_noise(tiny_pixel_checkpoint, tmp_path):
    from sdbench import trial as T
    from sdbench.budget import Budget

    cfg = T.TrialConfig(
        prompt="a red cube",
        loss="cds",
        representation="image",
        prior=str(tiny_pixel_checkpoint),
        budget=Budget("steps", 7),
        seed=5,
    )
    spec = T.resolve(cfg, ["trial.checkpoint_every=3"])
    clean = T.run_trial(spec, tmp_path / "clean", progress=False)

    def interrupt(state):
        if state.step == 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        T.run_trial(spec, tmp_path / "resumed", progress=False, on_step=interrupt)
    resumed = T.run_trial(spec, tmp_path / "resumed", progress=False)
    assert resumed.metrics == clean.metrics and resumed.cost.nfe == clean.cost.nfe == 7 * 4 * spec.trial.batch_size
    a, b = (torch.load(tmp_path / d / "checkpoint.pt", weights_only=False) for d in ("clean", "resumed"))
    assert torch.equal(a["representation"]["logits"], b["representation"]["logits"])
    assert bool(b["loss"]["buffers"]["noise_drawn"])
    assert torch.equal(a["loss"]["buffers"]["fixed_noise"], b["loss"]["buffers"]["fixed_noise"])
