from __future__ import annotations

import pytest
import torch

from sdbench.cameras import CameraConfig, Cameras, view_prompt


def cams():
    return Cameras(
        torch.tensor([0.0, 90.0, 180.0, -45.0, 10.0]),
        torch.tensor([0.0, 30.0, -10.0, 89.0, 90.0]),
        torch.full((5,), 3.0),
        torch.full((5,), 40.0),
    )


def test_c2w_is_a_rigid_transform_looking_at_the_origin():
    c = cams()
    m = c.c2w
    rot = m[:, :3, :3]
    torch.testing.assert_close(rot.transpose(1, 2) @ rot, torch.eye(3).expand(5, 3, 3), atol=1e-5, rtol=0)
    torch.testing.assert_close(torch.linalg.det(rot), torch.ones(5), atol=1e-5, rtol=0)
    # The origin is straight ahead of every camera (OpenCV: +z forward) at the camera distance.
    origin_cam = (c.viewmats @ torch.tensor([0.0, 0.0, 0.0, 1.0]))[:, :3]
    torch.testing.assert_close(origin_cam, torch.tensor([0.0, 0.0, 3.0]).expand(5, 3), atol=1e-5, rtol=0)


def test_azimuth_zero_sits_on_plus_x_and_world_up_points_up_in_the_image():
    c = Cameras.orbit(1, elevation=0.0)
    torch.testing.assert_close(c.positions[0], torch.tensor([3.0, 0.0, 0.0]), atol=1e-6, rtol=0)
    up_cam = c.viewmats[0, :3, :3] @ torch.tensor([0.0, 0.0, 1.0])
    assert up_cam[1] < -0.99  # image y points down


def test_rays_through_the_centre_hit_the_origin_and_intrinsics_match_fov():
    c = Cameras.orbit(3, elevation=20.0)
    origins, dirs = c.rays(2, 2)  # pixel centres straddle the image centre symmetrically
    centre_dir = torch.nn.functional.normalize(dirs.mean(dim=(1, 2)), dim=-1)
    torch.testing.assert_close(centre_dir, torch.nn.functional.normalize(-c.positions, dim=-1), atol=1e-5, rtol=0)
    K = c.intrinsics(64, 64)
    fov = 2 * torch.atan(32 / K[:, 1, 1])
    torch.testing.assert_close(torch.rad2deg(fov), torch.full((3,), 40.0), atol=1e-4, rtol=0)


def test_view_names_and_prompt_suffix():
    assert cams().view_names(CameraConfig()) == ["front", "side", "back", "overhead", "overhead"]
    assert view_prompt("a red cube", "back") == "a red cube, back view"
    with pytest.raises(ValueError):
        view_prompt("a red cube", "diagonal")


def test_sampling_respects_ranges_and_generator():
    cfg = CameraConfig(azimuth=(-10, 10), elevation=(5, 6), radius=(2, 2.5), fovy=(30, 31))
    a = Cameras.sample(256, cfg, torch.Generator().manual_seed(0))
    b = Cameras.sample(256, cfg, torch.Generator().manual_seed(0))
    assert torch.equal(a.azimuth, b.azimuth)
    assert a.azimuth.min() >= -10 and a.azimuth.max() <= 10 and a.elevation.min() >= 5 and a.radius.max() <= 2.5


def test_mismatched_shapes_are_rejected():
    with pytest.raises(ValueError, match="share one shape"):
        Cameras(torch.zeros(2), torch.zeros(3), torch.zeros(2), torch.zeros(2))
