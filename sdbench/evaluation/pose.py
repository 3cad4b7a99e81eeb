"""Best-matching pose: score a 2D image against the true object seen from where the image sees it.

A 2D representation (one image) has no camera: the object it shows may be seen from any side.
v1 compared it with the front view only, so a correct side view scored as wrong colour and shape.
Here the image is compared with true renders on an azimuth × elevation grid (:func:`pose_grid`) and
the best match is kept (:func:`best_pose`).

Matching, in two steps:

1. ``1 − Pearson correlation`` of CIELAB lightness L* over the whole image (object and white
   background). The silhouette (object vs background) and the relative shading (the light is fixed
   in the world, so each side is shaded differently) both enter, while an affine change of
   lightness (darker, more contrast, a colour boost) does not move the match, so the colour errors
   measured at the chosen pose are not biased by the choice.
2. Poses within ``tie`` of the best correlation cost cannot be told apart by it (a cube seen
   face-on shows one flat face from the front and from the side: the same picture up to its
   brightness); among them the one with the smallest mean squared L* difference wins. For those
   genuinely ambiguous pictures the benefit of the doubt goes to the image.

Shapes symmetric about the vertical axis look the same from every azimuth; they tie at step 2 too
and go to the first such pose, whose truth is the same picture.
"""

from __future__ import annotations

from torch import Tensor

from sdbench.cameras import Cameras
from sdbench.evaluation.colour import srgb_to_lab


def pose_grid(
    azimuths: int = 24,
    elevations: tuple[float, ...] = (0.0, 15.0, 30.0, 45.0, 60.0),
    radius: float = 3.0,
    fovy: float = 40.0,
) -> Cameras:
    """``azimuths`` evenly spaced azimuths (from 0°) × ``elevations``, elevation-major: ``K`` cameras."""
    if azimuths < 1 or not elevations:
        raise ValueError(f"a pose grid needs at least one azimuth and elevation, got {azimuths} and {elevations}")
    return Cameras.cat([Cameras.orbit(azimuths, elevation=e, radius=radius, fovy=fovy) for e in elevations])


def best_pose(image: Tensor, truths: Tensor, tie: float = 1e-3) -> tuple[int, Tensor]:
    """The index of the true render that best matches ``image``.

    Args:
        image: ``[3, H, W]`` sRGB in [0, 1].
        truths: ``[K, 3, H, W]`` true renders at the candidate poses.
        tie: correlation costs within this of the smallest are ties, broken by mean squared L* error.

    Returns:
        the best index and the correlation costs ``[K]`` (``1 − corr(L*_image, L*_truth)``, in
        [0, 2]; 0 for an identical picture).
    """
    if image.dim() != 3 or image.shape[0] != 3:
        raise ValueError(f"image: expected [3, H, W], got {tuple(image.shape)}")
    if truths.dim() != 4 or truths.shape[1:] != image.shape:
        raise ValueError(f"truths: expected [K, {', '.join(map(str, image.shape))}], got {tuple(truths.shape)}")
    x = srgb_to_lab(image[None].double())[:, 0].flatten(1)  # [1, HW]
    y = srgb_to_lab(truths.double())[:, 0].flatten(1)  # [K, HW]
    xc, yc = x - x.mean(1, keepdim=True), y - y.mean(1, keepdim=True)
    corr = (xc * yc).sum(1) / (xc.norm(dim=1) * yc.norm(dim=1)).clamp(min=1e-12)
    costs = 1.0 - corr
    mse = (x - y).pow(2).mean(1)
    mse[costs > costs.min() + tie] = float("inf")
    return int(mse.argmin().item()), costs.float()
