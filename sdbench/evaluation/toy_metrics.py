"""Toy-world ground truth: what only a world with known objects can measure.

For a prompt ``a {colour} {shape}`` and ``views`` random cameras (drawn from the trial seed):

* ``toy_shape_acc``, ``toy_colour_acc``, ``toy_acc``: share of views the toy evaluator classifies
  as the prompt's shape, colour, and both;
* against the true object rendered at the same cameras: ``toy_iou`` (silhouette IoU) and
  ``toy_colour_error`` (mean |RGB − RGB_true| over the true silhouette). 3D representations use their
  alpha > 0.5 as silhouette at the random views; a 2D image (the same picture from every camera) is
  compared with the object's front view (the first evaluation camera), its silhouette being the
  pixels that differ from the white background by more than ``background_threshold``.

Appearance v2 (:mod:`sdbench.evaluation.appearance`), for the over-saturation / over-smoothing /
noise claims. 3D: the same random views and true renders. 2D: the image is compared with the true
object at its best-matching pose (:mod:`sdbench.evaluation.pose`) on an azimuth × elevation grid,
reported as ``toy_pose_azimuth``, ``toy_pose_elevation`` and ``toy_pose_iou`` (silhouette IoU there,
both silhouettes by ``background_threshold``).

* ``toy_chroma_error``: mean CIELAB ``C*_render − C*_truth`` inside the true silhouette eroded by
  ``erosion`` pixels (signed: > 0 over-saturated);
* ``toy_lightness_error``: mean ``L*_render − L*_truth`` there (signed: < 0 darker);
* ``toy_delta_e``: mean CIE76 ``ΔE`` there (unsigned colour error, perceptual units);
* ``toy_contrast_error``: std of L* over the render's own silhouette minus that over the truth's,
  each found by the same rule (alpha > 0.5 in 3D, ``background_threshold`` for an image) (signed:
  > 0 more contrast, e.g. a dark rim or harsh shading);
* ``toy_detail``: high-frequency (Laplacian) energy of the render over the truth's inside the
  silhouette (1 is the truth, < 1 over-smoothed); left out when the truth has no detail to lose
  (plain v1 objects mostly have none; patterned v2 scenes do);
* ``toy_noise``: high-frequency residual that no blurred, shifted, recoloured truth explains, in
  units of a white-noise std (0 for the truth).

Legacy (v1; kept so old results stay comparable, superseded by the v2 keys above; do not use
for saturation claims):

* ``toy_saturation_error``: mean HSV saturation of the render minus that of the true object, over
  the true silhouette (signed). HSV saturation ignores lightness, and the silhouette is not eroded:
  a ×1.5 colour boost with a dark 1-px rim (the CFG-100 look) reads −0.14 (desaturated) averaged
  over the 30 v1 prompts, and a perfect render shifted by one pixel −0.045
  (``tests/evaluation/test_appearance.py``). Use ``toy_chroma_error``;
* ``toy_hue_error``: mean circular hue distance in degrees over the true silhouette, on pixels whose
  rendered saturation is at least ``min_saturation`` (hue is undefined for greys);

Others:

* ``toy_background_error``: mean |RGB − white| over the pixels outside the true silhouette
  (dilated by one pixel): floaters, fog and tinted backgrounds;
* ``toy_view_consistency`` (3D only): share of the evaluation orbit's views (azimuths around the
  object) whose evaluator read-out, shape and colour, equals the most common read-out — 1 when every
  side shows the same object, lower for view-dependent results. It compares class labels only and
  cannot see a two-faced object: see :mod:`sdbench.evaluation.janus` (needs the v2 evaluator).

World v2 prompts that name one object (``a red striped cube with a face``): the truth is that
object with its pattern and front marking (:func:`sdbench.world.scenes.render_scene`), its colour the
word's vivid end (the v1 albedo; v2 data spans pastel to vivid, so compare arms by differences). The
keys that read the image with the v1 evaluator (accuracy, view consistency) are left out for them:
it never saw a pattern or a face. Prompts that leave the colour or shape open have no single true
object; the v2 evaluator's read-outs (pattern, Janus, the embedding for diversity) are the ``toy2``
metric (:mod:`sdbench.evaluation.toy_readout`).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass, fields

import torch

from sdbench.cameras import CameraConfig, Cameras
from sdbench.evaluation.appearance import colour_errors, detail_ratio, noise_level
from sdbench.evaluation.base import EvalContext, Metric
from sdbench.evaluation.pose import best_pose, pose_grid
from sdbench.world.grammar import ToyPrompt


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
        min_saturation: float = 0.1
        """Legacy hue error: only rendered pixels at least this saturated count."""
        erosion: int = 2
        """v2 appearance: pixels removed from the true silhouette before pixel-wise comparison
        (one for a pixel of misregistration, one for the anti-aliased edge)."""
        pose_azimuths: int = 24
        """2D images: azimuths of the pose grid the image is matched against (evenly spaced)."""
        pose_elevations: tuple[float, ...] = (0.0, 15.0, 30.0, 45.0, 60.0)
        """2D images: elevations of the pose grid, degrees."""

    @classmethod
    def applies_to_prompt(cls, prompt: str) -> str | None:
        try:
            p, _ = parse_toy(prompt)
        except ValueError as e:
            return f"the prompt is not a toy-world prompt ({e})"
        if p.ambiguous:
            return "the prompt leaves its colour or shape open: there is no single true object"
        return None

    def applies(self, ctx: EvalContext) -> str | None:
        from sdbench.evaluation.toy import EVALUATOR_DIR

        reason = self.applies_to_prompt(ctx.prompt)
        if reason:
            return reason
        if not (EVALUATOR_DIR / "open_clip_model.safetensors").is_file():
            return "the toy evaluator's weights are missing"
        return None

    @torch.no_grad()
    def compute(self, ctx: EvalContext) -> dict[str, float]:
        from sdbench.evaluation.toy import classify, load_evaluator
        from sdbench.world.scenes import COLOURS, SHAPES

        p, world = parse_toy(ctx.prompt)
        scene = {"pattern": p.surface, "marking": p.marking}
        cams, out = ctx.random_views(self.cfg.views, self.cfg.cameras)
        cams = cams.to("cpu")
        res = ctx.representation.resolution
        rgb = out.rgb.float().cpu()
        metrics = {}
        if world == "v1":  # the v1 evaluator reads plain objects only
            r = classify(rgb, load_evaluator("cpu"))
            shape_ok = r.shape == SHAPES.index(p.shape)
            colour_ok = r.colour == list(COLOURS).index(p.colour)
            metrics["toy_shape_acc"] = shape_ok.float().mean().item()
            metrics["toy_colour_acc"] = colour_ok.float().mean().item()
            metrics["toy_acc"] = (shape_ok & colour_ok).float().mean().item()
        if ctx.representation.is_3d:
            true_rgb, true_alpha = true_render(p.shape, p.colour, cams, res, **scene)
            mask = out.alpha.float().cpu() > 0.5
        else:
            front = ctx.cameras[0].to("cpu")
            true_rgb, true_alpha = true_render(p.shape, p.colour, front, res, **scene)
            rgb = ctx.views.rgb[:1].float().cpu()
            mask = (1 - rgb).amax(dim=1, keepdim=True) > self.cfg.background_threshold
        true_mask = true_alpha > 0.5
        metrics["toy_iou"] = _iou(mask, true_mask)
        inside = true_mask.expand_as(true_rgb)
        metrics["toy_colour_error"] = (rgb - true_rgb).abs()[inside].mean().item() if inside.any() else float("nan")
        metrics.update(appearance(rgb, true_rgb, true_mask, self.cfg.min_saturation))
        true_own = true_mask
        if not ctx.representation.is_3d:  # v2: against the true object at the image's best-matching pose
            grid = pose_grid(self.cfg.pose_azimuths, self.cfg.pose_elevations, front.radius[0].item(), front.fovy[0].item())
            grid_rgb, grid_alpha = true_render(p.shape, p.colour, grid, res, **scene)
            k, _ = best_pose(rgb[0], grid_rgb)
            true_rgb, true_alpha = grid_rgb[k : k + 1], grid_alpha[k : k + 1]
            true_own = (1 - true_rgb).amax(dim=1, keepdim=True) > self.cfg.background_threshold  # the image's rule
            metrics["toy_pose_azimuth"] = grid.azimuth[k].item()
            metrics["toy_pose_elevation"] = grid.elevation[k].item()
            metrics["toy_pose_iou"] = _iou(mask, true_own)
        metrics.update(appearance_v2(rgb, true_rgb, true_alpha, mask, true_own, self.cfg.erosion))
        if ctx.representation.is_3d and world == "v1":
            orbit = classify(ctx.views.rgb.float().cpu(), load_evaluator("cpu"))
            metrics["toy_view_consistency"] = view_consistency(orbit.shape, orbit.colour)
        # A metric that is undefined for this scene (NaN: e.g. no detail in the truth) is left out,
        # so result.json holds only numbers and "same seed, same metrics" compares like with like.
        return {k: v for k, v in metrics.items() if not math.isnan(v)}


_TRUTHS: OrderedDict[tuple, tuple[torch.Tensor, torch.Tensor]] = OrderedDict()
TRUTH_CACHE_SIZE = 64
"""True renders kept per process (a 120-pose grid at 32 px is 2 MB)."""


def parse_toy(prompt: str) -> tuple[ToyPrompt, str]:
    """The prompt parsed in toy world v1 if it is a v1 prompt, else in v2, and that world's name;
    ``ValueError`` (from the v2 grammar, the superset) if it is neither."""
    from sdbench.world.grammar import parse

    try:
        return parse(prompt, "v1"), "v1"
    except ValueError:
        return parse(prompt, "v2"), "v2"


def true_render(
    shape: str, colour: str, cameras: Cameras, res: int, pattern: str = "plain", marking: str | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`sdbench.world.scenes.render` of the true object (world v2: with its ``pattern`` and front
    ``marking``), memoised per (object, cameras, size) in the process: the trials of a sweep worker
    share prompts, pose grid and (per seed) random views, and a 2D image's 120-pose grid costs seconds
    to ray-march. Returns copies ``[V, 3, H, W]``, ``[V, 1, H, W]``."""
    from sdbench.hardware import legacy_path
    from sdbench.world.scenes import render

    if legacy_path():
        return render(shape, colour, cameras, res, pattern=pattern, marking=marking)
    key = (shape, colour, pattern, marking, res, *(getattr(cameras, f.name).cpu().numpy().tobytes() for f in fields(cameras)))
    if key not in _TRUTHS:
        _TRUTHS[key] = render(shape, colour, cameras, res, pattern=pattern, marking=marking)
        while len(_TRUTHS) > TRUTH_CACHE_SIZE:
            _TRUTHS.popitem(last=False)
    _TRUTHS.move_to_end(key)
    rgb, alpha = _TRUTHS[key]
    return rgb.clone(), alpha.clone()


def _iou(mask: torch.Tensor, true_mask: torch.Tensor) -> float:
    union = (mask | true_mask).sum().clamp(min=1)
    return ((mask & true_mask).sum() / union).item()


def appearance_v2(
    rgb: torch.Tensor,
    true_rgb: torch.Tensor,
    true_alpha: torch.Tensor,
    mask: torch.Tensor,
    true_mask: torch.Tensor,
    erosion: int = 2,
) -> dict[str, float]:
    """The v2 appearance keys (``toy_chroma_error`` ... ``toy_noise``) of renders against true renders.

    Args:
        rgb, true_rgb: ``[V, 3, H, W]`` in [0, 1]; true_alpha: ``[V, 1, H, W]``; mask, true_mask: the
        render's and the truth's own silhouettes ``[V, 1, H, W]`` bool, by the same rule.
    """
    c = colour_errors(rgb, true_rgb, true_alpha, mask, true_mask, erosion)
    return {
        "toy_chroma_error": c["chroma_error"],
        "toy_lightness_error": c["lightness_error"],
        "toy_delta_e": c["delta_e"],
        "toy_contrast_error": c["contrast_error"],
        "toy_detail": detail_ratio(rgb, true_rgb, true_alpha, erosion),
        "toy_noise": noise_level(rgb, true_rgb, true_alpha, erosion=erosion),
    }


def rgb_to_hsv(rgb: torch.Tensor) -> torch.Tensor:
    """``[..., 3, H, W]`` RGB in [0, 1] → HSV with hue in degrees [0, 360), saturation and value in [0, 1].

    Legacy: used by the v1 keys only; CIELAB (:mod:`sdbench.evaluation.colour`) is the v2 colour space."""
    r, g, b = rgb.clamp(0, 1).unbind(-3)
    v, _ = rgb.clamp(0, 1).max(-3)
    c = v - rgb.clamp(0, 1).min(-3).values
    s = torch.where(v > 0, c / v.clamp(min=1e-12), torch.zeros_like(v))
    safe = c.clamp(min=1e-12)
    h = torch.where(v == r, ((g - b) / safe) % 6, torch.where(v == g, (b - r) / safe + 2, (r - g) / safe + 4))
    h = torch.where(c > 0, h * 60.0, torch.zeros_like(h)) % 360.0
    return torch.stack([h, s, v], dim=-3)


def appearance(
    rgb: torch.Tensor, true_rgb: torch.Tensor, true_mask: torch.Tensor, min_saturation: float = 0.1
) -> dict[str, float]:
    """Saturation and hue error inside the true silhouette and background error outside it.

    Legacy (v1): HSV saturation ignores lightness and the silhouette is not eroded, so a dark,
    colour-boosted render reads as desaturated; use :func:`appearance_v2` (``toy_chroma_error``).
    ``toy_background_error`` is not superseded.

    Args:
        rgb, true_rgb: ``[V, 3, H, W]`` in [0, 1]; true_mask: ``[V, 1, H, W]`` bool.
    """
    hsv, true_hsv = rgb_to_hsv(rgb), rgb_to_hsv(true_rgb)
    inside = true_mask[:, 0]
    out: dict[str, float] = {}
    if inside.any():
        out["toy_saturation_error"] = (hsv[:, 1] - true_hsv[:, 1])[inside].mean().item()
        coloured = inside & (hsv[:, 1] >= min_saturation)
        d = (hsv[:, 0] - true_hsv[:, 0]).abs()
        d = torch.minimum(d, 360.0 - d)
        out["toy_hue_error"] = d[coloured].mean().item() if coloured.any() else 180.0
    else:
        out["toy_saturation_error"] = out["toy_hue_error"] = float("nan")
    near = torch.nn.functional.max_pool2d(true_mask.float(), 3, stride=1, padding=1) > 0
    background = (~near).expand_as(rgb)
    out["toy_background_error"] = (1.0 - rgb).abs()[background].mean().item() if background.any() else float("nan")
    return out


def view_consistency(shape: torch.Tensor, colour: torch.Tensor) -> float:
    """Share of views whose (shape, colour) read-out equals the most common one. ``[V]`` class ids."""
    pairs = shape.long() * 1000 + colour.long()
    return (pairs == pairs.mode().values).float().mean().item()
