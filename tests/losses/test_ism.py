"""ISM against LucidDreamer's procedure, recomputed step by step with the closed-form prior."""

from __future__ import annotations

import math

import pytest
import torch

from sdbench.losses.ism import ISM, NEGATIVE
from tests.losses.helpers import check, eps, setup


def ddim(prior, x, tau, tau_next, e):
    a, b = prior.alphas_cumprod[tau], prior.alphas_cumprod[tau_next]
    x0 = (x - math.sqrt(1 - a) * e) / math.sqrt(a)
    return math.sqrt(b) * x0 + math.sqrt(1 - b) * e


@pytest.mark.parametrize("t_val,hops", [(60, 1), (350, 2), (950, 5)])
def test_ism_gradient_follows_the_inversion_path(t_val, hops):
    prior, images, noise, cams, text = setup()
    B = images.shape[0]
    t = torch.full((B,), t_val)
    out = ISM(ISM.Config(), prior)(images, text, cams, 0, t=t, noise=noise)
    out.loss.backward()

    s = max(t_val - 100, 0)  # δ_T = 100 at step 0
    a0 = prior.alphas_cumprod[0]
    x = math.sqrt(a0) * (images.detach() * 2 - 1) + math.sqrt(1 - a0) * noise
    taus = [0]
    while taus[-1] < s or len(taus) == 1:
        taus.append(min(taus[-1] + 200, s))
        if taus[-1] == s:
            break
    for tau, nxt in zip(taus, taus[1:]):
        x = ddim(prior, x, tau, nxt, eps(x, torch.full((B,), tau), ""))
    eps_s = eps(x, torch.full((B,), s), "")
    x_t = ddim(prior, x, s, t_val, eps_s)
    e_y, e_neg = eps(x_t, t, text.prompts_for(cams)), eps(x_t, t, NEGATIVE)
    a_t = prior.alphas_cumprod[t_val]
    g = 0.1 * math.sqrt((1 - a_t) / a_t) * (e_neg + 7.5 * (e_y - e_neg) - eps_s)
    check(images, g)
    assert len(taus) - 1 == hops and out.logs["inversion_hops"] == hops
    assert prior.nfe.forward == (hops + 1 + 2) * B


def test_ism_schedule_anneals_t_and_interval():
    prior, *_ = setup()
    loss = ISM(ISM.Config(), prior)
    assert loss.schedule(0) == (20, 979, 100)
    assert loss.schedule(750) == (20, 739, 75)
    assert loss.schedule(1500) == (20, 499, 50) == loss.schedule(10_000)


def test_ism_shares_one_t_across_views():
    prior, images, noise, cams, text = setup()
    torch.manual_seed(1)
    loss = ISM(ISM.Config(), prior)
    for _ in range(5):
        out = loss(images, text, cams, 2000)
        assert out.logs["t"] == int(out.logs["t"]) and 20 <= out.logs["t"] <= 499
