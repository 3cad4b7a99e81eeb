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
