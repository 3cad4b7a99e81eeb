"""Toy-world ground truth: what only a world with known objects can measure.

For a prompt ``a {colour} {shape}`` and ``views`` random cameras (drawn from the trial seed):

* ``toy_shape_acc``, ``toy_colour_acc``, ``toy_acc``: share of views the toy evaluator classifies
  as the prompt's shape, colour, and both;
* against the true object rendered at the same cameras: ``toy_iou`` (silhouette IoU) and
  ``toy_colour_error`` (mean |RGB − RGB_true| over the true silhouette). 3D representations use their
  alpha > 0.5 as silhouette at the random views; a 2D image (the same picture from every camera) is
  compared with the object's front view (the first evaluation camera), its silhouette being the
  pixels that differ from the white background by more than ``background_threshold``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from sdbench.cameras import CameraConfig
from sdbench.evaluation.base import EvalContext, Metric


class ToyGroundTruth(Metric):
    """Toy world: evaluator accuracy on random views, silhouette IoU and colour error vs the true object."""

    @dataclass(frozen=True)
    class Config:
        views: int = 16
        """Random views rendered for the metric."""
        cameras: CameraConfig = CameraConfig()
        """Where the views are drawn from."""
        background_threshold: float = 0.15
        """2D images: a pixel is foreground when some channel differs from white by more than this."""

    def applies(self, ctx: EvalContext) -> str | None:
        from sdbench.evaluation.toy import EVALUATOR_DIR
        from sdbench.world.grammar import parse

        try:
            parse(ctx.prompt)
        except ValueError as e:
            return f"the prompt is not a toy-world prompt ({e})"
        if not (EVALUATOR_DIR / "open_clip_model.safetensors").is_file():
            return "the toy evaluator's weights are missing"
        return None

    @torch.no_grad()
    def compute(self, ctx: EvalContext) -> dict[str, float]:
        from sdbench.evaluation.toy import classify, load_evaluator
        from sdbench.world.grammar import parse
        from sdbench.world.scenes import COLOURS, SHAPES, render

        p = parse(ctx.prompt)
        cams, out = ctx.random_views(self.cfg.views, self.cfg.cameras)
        cams = cams.to("cpu")
        res = ctx.representation.resolution
        rgb = out.rgb.float().cpu()
        r = classify(rgb, load_evaluator("cpu"))
        shape_ok = r.shape == SHAPES.index(p.shape)
        colour_ok = r.colour == list(COLOURS).index(p.colour)
        metrics = {
            "toy_shape_acc": shape_ok.float().mean().item(),
            "toy_colour_acc": colour_ok.float().mean().item(),
            "toy_acc": (shape_ok & colour_ok).float().mean().item(),
        }
        if ctx.representation.is_3d:
            true_rgb, true_alpha = render(p.shape, p.colour, cams, res)
            mask = out.alpha.float().cpu() > 0.5
        else:
            front = ctx.cameras[0].to("cpu")
            true_rgb, true_alpha = render(p.shape, p.colour, front, res)
            rgb = ctx.views.rgb[:1].float().cpu()
            mask = (1 - rgb).amax(dim=1, keepdim=True) > self.cfg.background_threshold
        true_mask = true_alpha > 0.5
        union = (mask | true_mask).sum().clamp(min=1)
        metrics["toy_iou"] = ((mask & true_mask).sum() / union).item()
        inside = true_mask.expand_as(true_rgb)
        metrics["toy_colour_error"] = (rgb - true_rgb).abs()[inside].mean().item() if inside.any() else float("nan")
        return metrics
