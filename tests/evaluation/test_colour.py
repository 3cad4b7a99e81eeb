"""sRGB ↔ CIELAB against published values and as a round trip."""

from __future__ import annotations

import pytest
import torch

from sdbench.evaluation.colour import chroma, lab_to_srgb, linear_to_srgb, srgb_to_lab, srgb_to_linear


def pixel(*values: float) -> torch.Tensor:
    return torch.tensor(values).view(3, 1, 1)


# Reference L*a*b* (D65) of the sRGB primaries, as tabulated by Lindbloom's calculator / colormine.
@pytest.mark.parametrize(
    "rgb, lab",
    [
        ((1.0, 1.0, 1.0), (100.0, 0.0, 0.0)),
        ((0.0, 0.0, 0.0), (0.0, 0.0, 0.0)),
        ((1.0, 0.0, 0.0), (53.24, 80.09, 67.20)),
        ((0.0, 1.0, 0.0), (87.73, -86.18, 83.18)),
        ((0.0, 0.0, 1.0), (32.30, 79.19, -107.86)),
        ((0.5, 0.5, 0.5), (53.39, 0.0, 0.0)),
    ],
)
def test_srgb_to_lab_matches_published_values(rgb, lab):
    got = srgb_to_lab(pixel(*rgb)).flatten()
    # published values have two decimals; the white must be exact (the white point is M @ (1, 1, 1))
    assert torch.allclose(got, torch.tensor(lab), atol=0.01 if rgb != (1.0, 1.0, 1.0) else 1e-4), got


def test_chroma_of_greys_is_zero_and_of_red_is_the_hypotenuse():
    lab = srgb_to_lab(torch.stack([pixel(0.3, 0.3, 0.3), pixel(1.0, 0.0, 0.0)]))
    c = chroma(lab).flatten()
    assert c[0].abs() < 1e-3 and abs(c[1].item() - (80.09**2 + 67.20**2) ** 0.5) < 0.02


def test_round_trips():
    rgb = torch.rand(2, 3, 5, 7, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(lab_to_srgb(srgb_to_lab(rgb)), rgb, atol=1e-4)
    assert torch.allclose(linear_to_srgb(srgb_to_linear(rgb)), rgb, atol=1e-5)
    # float64 stays float64 (the pose matcher relies on it)
    assert srgb_to_lab(rgb.double()).dtype == torch.float64


def test_a_bad_shape_is_rejected():
    with pytest.raises(ValueError, match=r"\[\.\.\., 3, H, W\]"):
        srgb_to_lab(torch.rand(4, 5, 6))
