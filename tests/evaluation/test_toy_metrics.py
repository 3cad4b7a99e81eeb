"""Toy ground truth: a perfect representation scores 1 and 0; a wrong one does not."""

from __future__ import annotations

import torch

from sdbench.cameras import CameraConfig, Cameras
from sdbench.evaluation.base import EvalContext
from sdbench.evaluation.toy_metrics import ToyGroundTruth
from sdbench.representations.base import RenderOutput, Representation
from sdbench.world.scenes import render


class TrueObject(Representation):
    """Renders the ground-truth toy object itself."""

    def __init__(self, shape: str, colour: str, is_3d: bool = True):
        super().__init__(None, 32)
        self.shape, self.colour = shape, colour
        self.is_3d = is_3d

    def render(self, cameras, height, width):
        cams = cameras if self.is_3d else Cameras.orbit(1, elevation=15.0).to(cameras.device)
        rgb, alpha = render(self.shape, self.colour, cams, height)
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


def test_a_wrong_object_is_caught(stub_prior):
    metric = ToyGroundTruth(ToyGroundTruth.Config(views=8))
    m = metric.compute(context(TrueObject("torus", "blue"), "a red cube", stub_prior))
    assert m["toy_acc"] == 0.0 and m["toy_iou"] < 0.7 and m["toy_colour_error"] > 0.2


def test_only_toy_prompts_apply(stub_prior):
    ctx = context(TrueObject("cube", "red"), "a dragon", stub_prior)
    assert "not a toy-world prompt" in ToyGroundTruth(ToyGroundTruth.Config()).applies(ctx)
