"""Best-matching pose: a true render at pose k is matched to k (or to a pose showing the same picture)."""

from __future__ import annotations

import pytest
import torch
from torchvision.transforms.functional import adjust_saturation

from sdbench.evaluation.pose import best_pose, pose_grid
from sdbench.world.scenes import render

TIE = 1e-3  # best_pose's default


@pytest.fixture(scope="module")
def grid_renders():
    grid = pose_grid(12, (0.0, 30.0, 60.0))  # coarser than the metric's default, to keep the test quick
    return grid, {shape: render(shape, "red", grid, 32)[0] for shape in ("cube", "cone")}


def test_the_grid_is_azimuths_times_elevations():
    g = pose_grid(4, (0.0, 30.0), radius=2.5, fovy=35.0)
    assert g.azimuth.tolist() == [0.0, 90.0, -180.0, -90.0] * 2 and g.elevation.tolist() == [0.0] * 4 + [30.0] * 4
    assert (g.radius == 2.5).all() and (g.fovy == 35.0).all()
    with pytest.raises(ValueError, match="at least one"):
        pose_grid(0)


def test_a_true_render_at_pose_k_is_matched_to_k(grid_renders):
    grid, renders = grid_renders
    for shape, truths in renders.items():
        for k in range(len(grid)):
            i, costs = best_pose(truths[k], truths)
            assert costs[k].abs() < 1e-6
            # k itself, or a pose from which the object looks exactly the same (a cube's two unlit sides)
            assert i == k or (truths[i] - truths[k]).abs().max() < 1 / 255, (shape, k, i)


def test_a_darker_boosted_noisy_picture_still_finds_its_pose(grid_renders):
    grid, renders = grid_renders
    gen = torch.Generator().manual_seed(1)
    for shape, truths in renders.items():
        for k in range(0, len(grid), 5):
            x = (adjust_saturation(truths[k], 1.5) * 0.8 + 0.03 * torch.randn(truths[k].shape, generator=gen)).clamp(0, 1)
            i, _ = best_pose(x, truths)
            # k, or a pose whose truth is the same picture up to an affine change of lightness,
            # which a lightness-invariant match cannot tell apart by design
            assert i == k or best_pose(truths[k], truths)[1][i] < TIE, (shape, k, i)


def test_bad_shapes_are_rejected():
    with pytest.raises(ValueError, match="truths"):
        best_pose(torch.rand(3, 8, 8), torch.rand(4, 3, 8, 9))
    with pytest.raises(ValueError, match="image"):
        best_pose(torch.rand(1, 3, 8, 8), torch.rand(4, 3, 8, 8))
