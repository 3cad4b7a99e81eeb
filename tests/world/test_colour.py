"""sRGB ↔ CIELAB against published values, and the colour words' ranges."""

from __future__ import annotations

import pytest
import torch

from sdbench.world.colour import ColourRange, chroma, lab_to_lch, lab_to_rgb, rgb_to_lab, sample_albedos
from sdbench.world.scenes import COLOURS


@pytest.mark.parametrize(
    "rgb,lab",
    [
        ((1.0, 1.0, 1.0), (100.0, 0.0, 0.0)),
        ((0.0, 0.0, 0.0), (0.0, 0.0, 0.0)),
        ((1.0, 0.0, 0.0), (53.24, 80.09, 67.20)),  # sRGB red, D65 (e.g. Bruce Lindbloom's calculator)
        ((0.0, 1.0, 0.0), (87.73, -86.18, 83.18)),
        ((0.0, 0.0, 1.0), (32.30, 79.19, -107.86)),
        ((0.5, 0.5, 0.5), (53.39, 0.0, 0.0)),  # mid grey: L* of sRGB 128/255.5 ≈ 53.4
    ],
)
def test_known_srgb_to_lab_values(rgb, lab):
    # tolerance 0.02: the references are published to two decimals
    torch.testing.assert_close(rgb_to_lab(torch.tensor(rgb)), torch.tensor(lab), atol=0.02, rtol=0)


def test_lab_round_trip_and_channel_dim():
    x = torch.rand(2, 3, 5, 7, generator=torch.Generator().manual_seed(0))
    lab = rgb_to_lab(x, dim=1)
    assert lab.shape == x.shape
    torch.testing.assert_close(lab_to_rgb(lab, dim=1), x, atol=1e-4, rtol=0)
    # the same numbers along any channel dim (float32 round-off of L* up to 100: 1e-4)
    torch.testing.assert_close(lab[:, :, 2, 3], rgb_to_lab(x[:, :, 2, 3]), atol=1e-4, rtol=0)
    with pytest.raises(ValueError, match="3 colour channels"):
        rgb_to_lab(torch.rand(4, 2))


def test_chroma_is_zero_for_greys_and_grows_with_saturation():
    greys = torch.linspace(0, 1, 5)[:, None].expand(5, 3)
    assert chroma(greys).abs().max() < 1e-3
    grey = torch.tensor([0.5, 0.5, 0.5])
    red = torch.tensor([0.9, 0.1, 0.1])
    assert chroma(grey + 0.5 * (red - grey)) < chroma(red)


@pytest.mark.parametrize("name", list(COLOURS))
def test_each_range_holds_its_v1_albedo_keeps_the_hue_and_stays_in_gamut(name):
    r = ColourRange(COLOURS[name])
    # the vivid end with no lightness jitter is the v1 albedo itself
    torch.testing.assert_close(r.albedo(torch.ones(1), torch.zeros(1))[0], torch.tensor(COLOURS[name]), atol=1e-5, rtol=0)
    albedos, v, _ = sample_albedos(r, 400, torch.Generator().manual_seed(0))
    assert albedos.min() >= 0 and albedos.max() <= 1
    lch = lab_to_lch(rgb_to_lab(albedos))
    hue = lab_to_lch(rgb_to_lab(torch.tensor(COLOURS[name])))[2]
    d = (lch[:, 2] - hue).abs()
    assert torch.minimum(d, 360 - d).max() < 0.5  # the hue never moves
    c_min, c_max = r.chroma_range()
    assert c_max == pytest.approx(chroma(torch.tensor(COLOURS[name])).item(), abs=0.5)  # v1 is the most vivid
    assert c_min < 0.6 * c_max  # pastel to vivid: a real range
    assert chroma(albedos[v < 0.2]).mean() < chroma(albedos[v > 0.8]).mean() - 15


def test_colour_words_stay_apart_over_their_whole_ranges():
    g = torch.linspace(0, 1, 9)
    v, lj = torch.meshgrid(g, 2 * g - 1, indexing="ij")
    labs = {n: rgb_to_lab(ColourRange(c).albedo(v.flatten(), lj.flatten())) for n, c in COLOURS.items()}
    names = list(labs)
    closest = min(torch.cdist(labs[a], labs[b]).min().item() for i, a in enumerate(names) for b in names[i + 1 :])
    assert closest > 10  # ΔE*ab: blue–purple is the closest pair (≈ 14.5)
