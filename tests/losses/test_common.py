from __future__ import annotations

import pytest
import torch

from sdbench.losses import common
from sdbench.testing import sd_alphas_cumprod


def test_timestep_bounds_follow_threestudio():
    assert common.timestep_bounds((0.02, 0.98), 1000) == (20, 980)
    with pytest.raises(ValueError):
        common.timestep_bounds((0.5, 1.0), 1000)


def test_sampled_timesteps_cover_both_ends_inclusive():
    torch.manual_seed(0)
    t = common.sample_timesteps(20000, 20, 25)
    assert t.dtype == torch.int64 and set(t.tolist()) == set(range(20, 26))


def test_weights_match_their_formulas():
    a = sd_alphas_cumprod()
    t = torch.tensor([20, 300, 980])
    ab = a[t]
    torch.testing.assert_close(common.weight("sds", a, t).flatten(), 1 - ab)
    torch.testing.assert_close(common.weight("uniform", a, t).flatten(), torch.ones(3))
    torch.testing.assert_close(common.weight("fantasia3d", a, t).flatten(), ab.sqrt() * (1 - ab))
    torch.testing.assert_close(common.weight("sigma_over_alpha", a, t).flatten(), ((1 - ab) / ab).sqrt())
    # the SD values quoted in losses.md
    assert abs(float(1 - a[300]) - 0.4095) < 5e-4 and abs(float(((1 - a[800]) / a[800]).sqrt()) - 5.11) < 0.02


def test_surrogate_gradient_is_g_over_batch():
    z = torch.randn(3, 4, 5, 5, requires_grad=True)
    g = torch.randn(3, 4, 5, 5)
    loss = common.surrogate_loss(z, g)
    (grad,) = torch.autograd.grad(loss, z)
    torch.testing.assert_close(grad, g / 3, atol=1e-6, rtol=0)
    torch.testing.assert_close(loss, 0.5 * g.pow(2).sum() / 3)


def test_prepare_grad_removes_nan_and_clamps():
    g = torch.tensor([float("nan"), 5.0, -5.0, 0.5])
    torch.testing.assert_close(common.prepare_grad(g, 1.0), torch.tensor([0.0, 1.0, -1.0, 0.5]))
