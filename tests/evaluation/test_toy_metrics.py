"""Toy ground truth: a perfect representation scores 1 and 0; a wrong one does not."""

from __future__ import annotations

import torch

from sdbench.cameras import CameraConfig, Cameras
from sdbench.evaluation.base import EvalContext
from sdbench.evaluation.toy_metrics import ToyGroundTruth, appearance, rgb_to_hsv, view_consistency
from sdbench.representations.base import RenderOutput, Representation
from sdbench.world.scenes import render
from tests.evaluation.test_appearance import boost_and_rim


class TrueObject(Representation):
    """Renders the ground-truth toy object itself (2D: seen from ``pose`` = (azimuth, elevation)),
    optionally altered by ``transform(rgb, alpha) -> rgb``."""

    def __init__(self, shape: str, colour: str, is_3d: bool = True, transform=None, pose=(0.0, 15.0)):
        super().__init__(None, 32)
        self.shape, self.colour = shape, colour
        self.is_3d = is_3d
        self.transform, self.pose = transform, pose

    def render(self, cameras, height, width):
        cams = cameras if self.is_3d else Cameras.orbit(1, elevation=self.pose[1], start=self.pose[0]).to(cameras.device)
        rgb, alpha = render(self.shape, self.colour, cams, height)
        if self.transform is not None:
            rgb = self.transform(rgb, alpha)
        if not self.is_3d:
            rgb, alpha = rgb.expand(len(cameras), -1, -1, -1), torch.ones_like(alpha).expand(len(cameras), -1, -1, -1)
        return RenderOutput(rgb, alpha)

    def parameter_groups(self):
        return []


def context(rep, prompt, stub_prior):
    cams = Cameras.orbit(4 if rep.is_3d else 1, elevation=15.0)
    return EvalContext(prompt, stub_prior, rep, cams, rep.render(cams, 32, 32), seed=0)


def test_the_true_object_scores_perfectly_in_3d_and_2d(stub_prior):
    metric = ToyGroundTruth(ToyGroundTruth.Config(views=8, cameras=CameraConfig(elevation=(0.0, 40.0))))
    for is_3d in (True, False):
        ctx = context(TrueObject("cube", "red", is_3d), "a red cube", stub_prior)
        assert metric.applies(ctx) is None
        m = metric.compute(ctx)
        assert m["toy_acc"] == 1.0 and m["toy_shape_acc"] == 1.0 and m["toy_colour_acc"] == 1.0
        # 2D: the silhouette comes from colour (anti-aliased edges count by threshold), 3D from alpha
        assert m["toy_iou"] > (0.99 if is_3d else 0.9) and m["toy_colour_error"] < 0.02, (is_3d, m)
        assert abs(m["toy_saturation_error"]) < 0.02 and m["toy_hue_error"] < 2.0 and m["toy_background_error"] < 0.01, (is_3d, m)
        assert m.get("toy_view_consistency", 1.0) == 1.0 and (("toy_view_consistency" in m) == is_3d)
        # v2: 3D compares the same pixels, 2D the image with the truth at its best pose
        assert abs(m["toy_chroma_error"]) < 1e-3 and abs(m["toy_lightness_error"]) < 1e-3 and m["toy_delta_e"] < 1e-3, m
        assert abs(m["toy_contrast_error"]) < 1e-3 and m["toy_noise"] < 1e-6, m
        assert m.get("toy_detail", 1.0) == 1.0  # left out when a plain cube has no detail to lose
        if not is_3d:
            assert (m["toy_pose_azimuth"], m["toy_pose_elevation"]) == (0.0, 15.0) and m["toy_pose_iou"] == 1.0


def test_a_2d_side_view_is_scored_at_its_pose(stub_prior):
    metric = ToyGroundTruth(ToyGroundTruth.Config(views=4))
    m = metric.compute(context(TrueObject("cone", "blue", is_3d=False, pose=(90.0, 30.0)), "a blue cone", stub_prior))
    # a cone is symmetric about z: every azimuth at 30° elevation shows the same picture
    assert m["toy_pose_elevation"] == 30.0 and m["toy_pose_iou"] == 1.0 and abs(m["toy_chroma_error"]) < 1e-3


def test_the_cfg100_look_reads_over_saturated_in_v2_and_desaturated_in_legacy_v1(stub_prior):
    metric = ToyGroundTruth(ToyGroundTruth.Config(views=8))
    for is_3d in (True, False):
        rep = TrueObject("cone", "orange", is_3d, transform=boost_and_rim)
        m = metric.compute(context(rep, "an orange cone", stub_prior))
        assert m["toy_chroma_error"] > 0 and m["toy_contrast_error"] > 0, (is_3d, m)
        assert m["toy_saturation_error"] < 0, (is_3d, m)  # the legacy HSV key gets the sign wrong


def test_a_wrong_object_is_caught(stub_prior):
    metric = ToyGroundTruth(ToyGroundTruth.Config(views=8))
    m = metric.compute(context(TrueObject("torus", "blue"), "a red cube", stub_prior))
    assert m["toy_acc"] == 0.0 and m["toy_iou"] < 0.7 and m["toy_colour_error"] > 0.2


def test_only_toy_prompts_apply(stub_prior):
    ctx = context(TrueObject("cube", "red"), "a dragon", stub_prior)
    assert "not a toy-world prompt" in ToyGroundTruth(ToyGroundTruth.Config()).applies(ctx)


def test_rgb_to_hsv_matches_colorsys():
    import colorsys

    rgb = torch.rand(2, 3, 5, 7, generator=torch.Generator().manual_seed(0))
    rgb[0, :, 0, 0] = 0.5  # a grey: hue and saturation 0
    hsv = rgb_to_hsv(rgb)
    for i, y, x in [(0, 0, 0), (0, 1, 2), (1, 4, 6), (1, 3, 0)]:
        h, s, v = colorsys.rgb_to_hsv(*rgb[i, :, y, x].tolist())
        assert torch.allclose(hsv[i, :, y, x], torch.tensor([h * 360.0, s, v]), atol=1e-5)


def test_appearance_errors_have_the_hand_computed_values():
    true = torch.ones(1, 3, 8, 8)
    mask = torch.zeros(1, 1, 8, 8, dtype=torch.bool)
    mask[..., 2:6, 2:6] = True
    true[:, :, 2:6, 2:6] = torch.tensor([0.8, 0.4, 0.4]).view(1, 3, 1, 1)  # hue 0, saturation 0.5
    render = true.clone()
    render[:, :, 2:6, 2:6] = torch.tensor([1.0, 0.0, 0.0]).view(1, 3, 1, 1)  # hue 0, saturation 1: over-saturated
    m = appearance(render, true, mask)
    assert abs(m["toy_saturation_error"] - 0.5) < 1e-6 and m["toy_hue_error"] < 1e-6 and m["toy_background_error"] == 0.0
    shifted = true.clone()
    shifted[:, :, 2:6, 2:6] = torch.tensor([0.4, 0.8, 0.4]).view(1, 3, 1, 1)  # hue 120, same saturation
    m = appearance(shifted, true, mask)
    assert abs(m["toy_hue_error"] - 120.0) < 1e-4 and abs(m["toy_saturation_error"]) < 1e-6
    grey_bg = true.clone()
    grey_bg[:, :, 0, :] = 0.7  # a grey stripe far from the object: 8 of the 28 background pixels (after 1-px dilation)
    assert abs(appearance(grey_bg, true, mask)["toy_background_error"] - 0.3 * 8 / 28) < 1e-6
    washed = true.clone()
    washed[:, :, 2:6, 2:6] = 0.9  # grey: no hue, saturation 0
    m = appearance(washed, true, mask)
    assert m["toy_hue_error"] == 180.0 and abs(m["toy_saturation_error"] + 0.5) < 1e-6


def test_view_consistency_counts_the_majority_read_out():
    assert view_consistency(torch.tensor([1, 1, 1, 1]), torch.tensor([2, 2, 2, 2])) == 1.0
    assert view_consistency(torch.tensor([1, 1, 3, 1]), torch.tensor([2, 2, 2, 0])) == 0.5
