"""ASD against ScaleDreamer's get_t_plus / get_eps, recomputed with the closed-form prior."""

from __future__ import annotations

import pytest
import torch

from sdbench.losses.asd import ASD
from tests.losses.helpers import check, eps, forward_process, setup


@pytest.mark.parametrize("plus_random", [True, False])
def test_asd_gradient_uses_one_noise_at_t_and_t_plus(plus_random):
    prior, images, noise, cams, text = setup()
    B = images.shape[0]
    t = torch.tensor([500, 700, 995])  # step 0: t ∈ [500, 980]; 995 hits the T − 1 − t cap
    loss = ASD(ASD.Config(plus_random=plus_random), prior)
    loss.generator = torch.Generator().manual_seed(11)
    out = loss(images, text, cams, 0, t=t, noise=noise)
    out.loss.backward()

    # get_t_plus: Δ = trunc(u · clamp(0.1 (t − t_min), 0, 999 − t)), t_min = 500 at step 0
    u = torch.rand(B, generator=torch.Generator().manual_seed(11)) if plus_random else torch.ones(B)
    cap = torch.tensor([min(max(0.1 * (tv - 500), 0.0), 999 - tv) for tv in t.tolist()])
    t_plus = (t + (cap * u).long()).clamp(1, 999)
    assert t_plus[0] == 500 and t_plus[2] <= 999
    if not plus_random:
        assert t_plus.tolist() == [500, 720, 999]
    z, x_t, a = forward_process(prior, images, t, noise)
    a_plus = prior.alphas_cumprod[t_plus].view(-1, 1, 1, 1)
    x_plus = a_plus.sqrt() * z + (1 - a_plus).sqrt() * noise  # the same ε
    prompts = text.prompts_for(cams)
    e_y, e_u = eps(x_t, t, prompts), eps(x_t, t, "")
    g = (1 - a) * (e_u + 7.5 * (e_y - e_u) - eps(x_plus, t_plus, prompts))
    check(images, g)
    assert prior.nfe.forward == 3 * B
    assert out.logs["t_plus"] == pytest.approx(t_plus.float().mean().item())


def test_asd_anneals_both_ends_of_t():
    prior, images, _, cams, text = setup(B=1)  # one view: the logged means are the view's t and t⁺
    loss = ASD(ASD.Config(), prior)
    loss.generator = torch.Generator().manual_seed(0)
    seen = {0: [], 12_500: [], 25_000: []}
    t_min = {0: 500, 12_500: 260, 25_000: 20}
    for step in seen:
        for _ in range(30):
            out = loss(images, text, cams, step)
            t, t_plus = out.logs["t"], out.logs["t_plus"]
            seen[step].append(t)
            assert t <= t_plus <= t + 0.1 * (t - t_min[step])
    assert 500 <= min(seen[0]) and max(seen[0]) <= 980
    assert 260 <= min(seen[12_500]) and max(seen[12_500]) <= 740
    assert 20 <= min(seen[25_000]) and max(seen[25_000]) <= 500
