"""The CFG helper and Perp-Neg's pieces: the perpendicular projection and the view weights."""

from __future__ import annotations

import math

import pytest
import torch

from sdbench.priors.guidance import ExpDecay, PerpNeg, cfg_combine, perp_neg_views, perpendicular


def test_cfg_combine_is_the_diffusers_form_bit_for_bit():
    g = torch.Generator().manual_seed(0)
    c, u = torch.randn(3, 4, 5, 5, generator=g), torch.randn(3, 4, 5, 5, generator=g)
    assert torch.equal(cfg_combine(c, u, 7.5), u + 7.5 * (c - u))


def test_the_perpendicular_component_is_orthogonal_per_sample():
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(4, 3, 8, 8, generator=g), torch.randn(4, 3, 8, 8, generator=g)
    x_perp = perpendicular(x, y)
    dot = (x_perp * y).flatten(1).sum(1)
    torch.testing.assert_close(dot, torch.zeros(4), atol=1e-4, rtol=0)  # |⟨x, y⟩| ~ 1e1: float32 rounding
    # what was removed is parallel to y, sample by sample (not one coefficient for the batch)
    coef = ((x - x_perp) / y).flatten(1)
    torch.testing.assert_close(coef, coef[:, :1].expand_as(coef), atol=1e-3, rtol=1e-3)
    assert coef[:, 0].unique().numel() == 4
    torch.testing.assert_close(perpendicular(x, torch.zeros_like(y)), x)  # ‖y‖ = 0: nothing to remove
    torch.testing.assert_close(perpendicular(3 * y, y), torch.zeros_like(y), atol=1e-5, rtol=0)


def test_perp_neg_combination_removes_only_the_perpendicular_part_of_each_negative():
    g = torch.Generator().manual_seed(2)
    u, pos = torch.randn(2, 3, 4, 4, generator=g), torch.randn(2, 3, 4, 4, generator=g)
    d = pos - u
    along, across = 0.7 * d, perpendicular(torch.randn(2, 3, 4, 4, generator=g), d)
    w = torch.tensor([[-2.0], [-0.5]])
    out = cfg_combine(pos, u, 5.0, [u + along + across], w)
    torch.testing.assert_close(out, u + 5.0 * (d + w.view(2, 1, 1, 1) * across), atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match=r"\[B, K\]"):
        cfg_combine(pos, u, 5.0, [pos], torch.zeros(2, 2))


# losses-2.md §7: threestudio's weights (w on E_front, w on E_side) at elevation ≤ 60°, to 2 decimals
TABLE = {
    0: (0.0, -1.57),
    30: (-0.44, -0.96),
    45: (-0.69, -0.69),
    60: (-0.96, -0.44),
    90: (-1.57, -0.001),
    120: (-1.68, -0.11),
    135: (-1.75, -0.17),
    150: (-1.81, -0.24),
    180: (-1.97, -0.39),
}


@pytest.mark.parametrize("sign", [1, -1])
def test_view_weights_match_threestudios_table(sign):
    az = torch.tensor([sign * float(a) for a in TABLE])
    plan = perp_neg_views(az, torch.full_like(az, 20.0), PerpNeg(), overhead_elevation=60.0)
    for i, (phi, (w_front, w_side)) in enumerate(TABLE.items()):
        first, second = plan.negatives[i]
        got = dict(zip((first, second), plan.weights[i].tolist()))
        assert got["front"] == pytest.approx(w_front, abs=6e-3) and got["side"] == pytest.approx(w_side, abs=6e-3), phi
        if phi < 90:
            assert plan.positive[i] == ("front", "side") and plan.ratio[i].item() == pytest.approx(1 - phi / 90)
        else:
            assert plan.positive[i] == ("side", "back") and plan.ratio[i].item() == pytest.approx(2 - phi / 90)


def test_azimuth_wraps_and_overhead_views_have_no_negatives():
    az, el = torch.tensor([315.0, 30.0, 30.0]), torch.tensor([10.0, 61.0, 61.0])
    plan = perp_neg_views(az, el, PerpNeg(), overhead_elevation=60.0)
    assert plan.ratio[0].item() == pytest.approx(0.5)  # 315° is −45°: halfway front → side
    assert plan.positive[1] == ("overhead", "overhead") and plan.negatives[1] == (None, None)
    assert plan.weights[1].tolist() == [0.0, 0.0] and plan.ratio[1].item() == 1.0
    raised = perp_neg_views(az, el, PerpNeg(overhead_elevation=70.0), overhead_elevation=60.0)
    assert raised.positive[1] == ("front", "side")  # the option overrides the cameras' threshold


def test_weight_curve_is_a_shifted_exponential():
    f = ExpDecay(4.0, 0.5, -2.426)
    assert f(torch.tensor(0.0)).item() == pytest.approx(4 - 2.426)
    assert f(torch.tensor(1.0)).item() == pytest.approx(4 * math.exp(-0.5) - 2.426, abs=1e-6)
