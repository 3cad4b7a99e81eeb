from __future__ import annotations

import math

import pytest
import torch

from sdbench.cameras import Cameras
from sdbench.world import degrade
from sdbench.world.scenes import COLOURS, SHAPES, render, sdf


def test_sphere_silhouette_matches_its_projected_disc():
    cams = Cameras.orbit(1, elevation=0.0, radius=3.0, fovy=40.0)
    _, alpha = render("sphere", "red", cams, height=64, supersample=4)
    # a sphere of radius r at distance d projects to a disc of angular radius asin(r/d)
    r_px = math.tan(math.asin(0.72 / 3.0)) * 32 / math.tan(math.radians(20))
    expected = math.pi * r_px**2 / 64**2
    assert abs(alpha.mean().item() - expected) < 0.01


@pytest.mark.parametrize("shape", SHAPES)
def test_every_shape_renders_inside_the_frame_on_white(shape):
    rgb, alpha = render(shape, "blue", Cameras.orbit(4, elevation=20.0), height=32)
    assert rgb.shape == (4, 3, 32, 32) and alpha.shape == (4, 1, 32, 32)
    assert 0.05 < alpha.mean() < 0.6
    border = torch.cat([alpha[..., 0, :], alpha[..., -1, :], alpha[..., :, 0], alpha[..., :, -1]], -1)
    assert border.max() == 0  # the object never touches the image border
    torch.testing.assert_close(rgb[..., 0, 0], torch.ones(4, 3))  # white background


def test_light_is_fixed_in_world_space_so_front_and_back_differ():
    cams = Cameras(torch.tensor([0.0, 180.0]), torch.zeros(2), torch.full((2,), 3.0), torch.full((2,), 40.0))
    rgb, alpha = render("sphere", "yellow", cams, height=32)
    inside = alpha > 0.99
    front, back = (rgb[i][:, inside[i, 0]].mean().item() for i in range(2))
    assert front > back + 0.15


def test_sdf_signs():
    inside, outside = torch.zeros(1, 3), torch.tensor([[0.0, 0.0, 0.99]])
    for shape in SHAPES:
        if shape != "torus":  # the torus has a hole at the origin
            assert sdf(shape, inside) < 0 and sdf(shape, outside) > 0, shape
    assert sdf("torus", torch.tensor([[0.52, 0.0, 0.0]])) < 0 and sdf("torus", inside) > 0


def test_colours_are_distinct():
    c = torch.tensor(list(COLOURS.values()))
    d = torch.cdist(c, c) + torch.eye(len(c)) * 10
    assert d.min() > 0.3


def test_degradations_keep_shape_and_range():
    x = torch.rand(2, 3, 16, 16)
    for name in degrade.DEGRADE:
        y = degrade.apply(name, x)
        assert y.shape == x.shape and y.min() >= 0 and y.max() <= 1, name
    assert degrade.blur(x).std() < x.std()
    assert degrade.dark(x).mean() < x.mean()
    assert degrade.low_contrast(x).std() < x.std()
    grey = degrade.luminance(x)
    assert (degrade.oversaturated(x) - grey).abs().mean() > (x - grey).abs().mean()


# ----------------------------------------------------------------------------- world v2
from pathlib import Path  # noqa: E402

from sdbench.world.scenes import MARKINGS, PATTERNS, render_scene  # noqa: E402

V1_RENDERS = Path(__file__).parent / "data" / "v1_renders.pt"


def test_render_defaults_reproduce_the_v1_renders_exactly():
    # tests/world/data/v1_renders.pt was written by the v1 renderer (commit 34be07a) before v2 existed
    ref = torch.load(V1_RENDERS)
    cams = Cameras(
        torch.tensor([0.0, 130.0, -75.0]), torch.tensor([10.0, 45.0, -5.0]), torch.full((3,), 3.0), torch.full((3,), 40.0)
    )
    for i, shape in enumerate(SHAPES):
        colour = list(COLOURS)[i % 6]
        rgb, alpha = render(shape, colour, cams, height=24)
        torch.testing.assert_close(torch.cat([rgb, alpha], 1), ref[f"{shape}/{colour}"], atol=1e-6, rtol=0)
    rgb, alpha = render("cube", (0.3, 0.6, 0.9), cams[:1], height=16, width=20, supersample=1)
    torch.testing.assert_close(torch.cat([rgb, alpha], 1), ref["cube/rgb-16x20-ss1"], atol=1e-6, rtol=0)


def front_camera(azimuth: float = 0.0, elevation: float = 0.0) -> Cameras:
    return Cameras(torch.tensor([azimuth]), torch.tensor([elevation]), torch.tensor([3.0]), torch.tensor([40.0]))


def dominant_period(signal: torch.Tensor) -> float:
    """Period (in samples) of the strongest non-constant Fourier component of a 1D signal."""
    n = 4096  # zero-padded: frequency resolution finer than 1/len(signal)
    spectrum = torch.fft.rfft(signal - signal.mean(), n=n).abs()
    k = int(spectrum[4:].argmax()) + 4
    return n / k


@pytest.mark.parametrize(
    "pattern,shape,axis,low,high",
    [
        # on the cube's front face (distance 2.5: 1.2x the scale at the origin)
        ("striped", "cube", "column", 4.5, 6.5),  # horizontal bands: period along the image's vertical axis
        ("checkered", "cube", "row", 5.0, 7.5),
        ("dotted", "cube", "row", 5.0, 7.5),
    ],
)
def test_pattern_periods_at_the_training_camera_are_a_few_pixels_at_32px(pattern, shape, axis, low, high):
    # Measure on a 128-px render of the training camera (distance 3, fov 40°) and express in 32-px pixels.
    out = render_scene(shape, "red", front_camera(), height=128, supersample=1, pattern=pattern)
    inside = out.alpha[0, 0] > 0.5
    rows, cols = inside.any(1).nonzero()[:, 0], inside.any(0).nonzero()[:, 0]
    mask = out.pattern[0, 0]
    r0, r1, c0, c1 = rows.min() + 4, rows.max() - 4, cols.min() + 4, cols.max() - 4
    if axis == "column":  # the column / row through the most pattern (dots lie on a lattice)
        line = mask[r0:r1, c0 + int(mask[r0:r1, c0:c1].sum(0).argmax())]
    else:
        line = mask[r0 + int(mask[r0:r1, c0:c1].sum(1).argmax()), c0:c1]
    period_32 = dominant_period(line) / 4
    assert low <= period_32 <= high, period_32


@pytest.mark.parametrize("pattern", PATTERNS[1:])
def test_patterns_survive_the_32px_render(pattern):
    out = render_scene("cube", "blue", front_camera(20.0, 15.0), height=32, pattern=pattern)
    plain = render_scene("cube", "blue", front_camera(20.0, 15.0), height=32)
    inside = out.alpha[0, 0] > 0.99
    assert 0.2 < out.pattern[0, 0][inside].mean() < 0.8  # two-tone: both tones cover a good share
    lum = out.rgb[0].mean(0)[inside]
    assert lum.std() > 2 * plain.rgb[0].mean(0)[inside].std()  # the pattern, not the shading, makes the contrast
    torch.testing.assert_close(out.alpha, plain.alpha)  # patterns never change the silhouette


@pytest.mark.parametrize("shape", SHAPES)
def test_the_face_is_on_the_front_and_only_there(shape):
    az = torch.tensor([0.0, 30.0, -30.0, 180.0, 150.0, -150.0])
    cams = Cameras(az, torch.full((6,), 10.0), torch.full((6,), 3.0), torch.full((6,), 40.0))
    out = render_scene(shape, "yellow", cams, height=32, marking="face")
    px = out.marking.sum(dim=(1, 2, 3))
    assert (px[:3] > 4).all(), px  # seen from the front view (azimuth 0 is sdbench.cameras' front, +x)
    assert (px[3:] == 0).all(), px  # never from behind
    plain = render_scene(shape, "yellow", cams, height=32)
    torch.testing.assert_close(out.rgb[3:], plain.rgb[3:])  # the back is exactly the unmarked object
    assert MARKINGS == ("face",)


def test_truth_maps_explain_the_image():
    cams = Cameras.orbit(3, elevation=25.0)
    out = render_scene("cylinder", (0.2, 0.5, 0.8), cams, height=32, pattern="checkered", marking="face")
    full = (out.alpha == 1)[:, 0]
    pure = full & ((out.pattern == 0) | (out.pattern == 1))[:, 0] & ((out.marking == 0) | (out.marking == 1))[:, 0]
    # on pixels whose sub-pixels share one surface albedo the image is albedo × shading
    torch.testing.assert_close((out.surface * out.shading).permute(0, 2, 3, 1)[pure], out.rgb.permute(0, 2, 3, 1)[pure])
    torch.testing.assert_close(
        out.albedo.permute(0, 2, 3, 1)[full], torch.tensor([0.2, 0.5, 0.8]).expand(int(full.sum()), 3), atol=1e-6, rtol=0
    )
    empty = (out.alpha == 0)[:, 0]
    assert empty.any() and (out.albedo.permute(0, 2, 3, 1)[empty] == 1).all()  # white off the object
    assert (out.points.permute(0, 2, 3, 1)[empty] == 0).all() and (out.marking[:, 0][empty] == 0).all()
    # hit points lie on the surface (sub-pixel averaging of a curved surface: within 0.02) and normals are unit
    points = out.points.permute(0, 2, 3, 1)[full]
    assert sdf("cylinder", points).abs().max() < 0.02
    assert (out.normals.permute(0, 2, 3, 1)[full].norm(dim=-1) - 1).abs().max() < 1e-4


def test_per_camera_albedo_and_bad_inputs():
    cams = Cameras.orbit(2)
    albedo = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    out = render_scene("sphere", albedo, cams, height=16)
    centre = out.albedo[:, :, 8, 8]
    torch.testing.assert_close(centre, albedo)
    with pytest.raises(ValueError, match="albedo must be"):
        render_scene("sphere", torch.rand(3, 3), cams, height=16)
    with pytest.raises(ValueError, match="unknown pattern"):
        render_scene("sphere", "red", cams, height=16, pattern="tartan")
    with pytest.raises(ValueError, match="unknown marking"):
        render_scene("sphere", "red", cams, height=16, marking="tail")
