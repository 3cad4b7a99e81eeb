"""CSD and NFSD gradients against their papers' equations, recomputed independently."""

from __future__ import annotations

import pytest
import torch

from sdbench.losses.common import Linear
from sdbench.losses.csd import CSD
from sdbench.losses.csd import NEGATIVE as CSD_NEG
from sdbench.losses.nfsd import NEGATIVE as NFSD_NEG
from sdbench.losses.nfsd import NFSD
from tests.losses.helpers import check, eps, forward_process, setup


@pytest.mark.parametrize("step", [0, 2500, 7000])
def test_csd_gradient(step):
    prior, images, noise, cams, text = setup()
    t = torch.tensor([30, 400, 900])
    loss = CSD(CSD.Config(), prior)
    out = loss(images, text, cams, step, t=t, noise=noise)
    out.loss.backward()
    _, x_t, a = forward_process(prior, images, t, noise)
    w1, w2 = 1.0, min(step / 5000, 1.0)
    e_y, e_0, e_neg = eps(x_t, t, text.prompts_for(cams)), eps(x_t, t, ""), eps(x_t, t, CSD_NEG)
    g = (1 - a) * (w1 * (e_y - e_0) - w2 * (e_neg - e_0))  # Eq. 7 with the annealed negative term
    check(images, g)
    assert out.logs["omega2"] == pytest.approx(w2)
    assert prior.nfe.forward == (2 if w2 == 0 else 3) * 3


def test_csd_t_range_anneals_and_normalisation():
    prior, images, noise, cams, text = setup()
    loss = CSD(CSD.Config(grad_normalize=True, omega2=Linear.constant(0.5)), prior)
    torch.manual_seed(0)
    ts = [loss(images, text, cams, 6000).logs["t"] for _ in range(30)]
    assert max(ts) <= 500
    t = torch.tensor([100, 200, 300])
    images.grad = None
    loss(images, text, cams, 0, t=t, noise=noise).loss.backward()
    _, x_t, a = forward_process(prior, images, t, noise)
    e_y, e_0, e_neg = eps(x_t, t, text.prompts_for(cams)), eps(x_t, t, ""), eps(x_t, t, CSD_NEG)
    g = (1 - a) * ((e_y - e_0) - 0.5 * (e_neg - e_0))
    check(images, g / g.norm())


@pytest.mark.parametrize("t_values", [[50, 150, 199], [199, 200, 800]])
def test_nfsd_gradient_both_sides_of_the_cutoff(t_values):
    prior, images, noise, cams, text = setup()
    t = torch.tensor(t_values)
    out = NFSD(NFSD.Config(), prior)(images, text, cams, 0, t=t, noise=noise)
    out.loss.backward()
    _, x_t, a = forward_process(prior, images, t, noise)
    e_y, e_0, e_neg = eps(x_t, t, text.prompts_for(cams)), eps(x_t, t, ""), eps(x_t, t, NFSD_NEG)
    delta_C = e_y - e_0
    delta_D = torch.where((t < 200).view(-1, 1, 1, 1), e_0, e_0 - e_neg)  # Eq. 10: the t < 200 rule
    check(images, (1 - a) * (delta_D + 7.5 * delta_C))
    # the sampled noise never enters the gradient; ε_neg is skipped when every t < 200
    assert prior.nfe.forward == (2 if max(t_values) < 200 else 3) * 3


def test_nfsd_ignores_the_noise_sample():
    prior, images, noise, cams, text = setup()
    t = torch.tensor([500, 500, 500])
    loss = NFSD(NFSD.Config(), prior)
    loss(images, text, cams, 0, t=t, noise=noise).loss.backward()
    first = images.grad.clone()
    images.grad = None
    # the stub prediction depends on x_t, so a different ε changes ε_φ but not through an "− ε" term:
    # with the stub a·x_t, δ_C and δ_D cancel the a·x_t part exactly
    loss(images, text, cams, 0, t=t, noise=noise * -3).loss.backward()
    torch.testing.assert_close(images.grad, first, atol=1e-6, rtol=0)
