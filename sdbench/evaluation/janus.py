"""Janus score: is a front-only marking seen where the truth says it cannot be?

An object with a front marking (a face, a spot) on one side and a plain back shows the marking
only to cameras on that side. A multi-faced ("Janus") result shows it from the back too. Per view,
the evaluator's probability that the marking is visible is compared with the truth, which follows
from the camera and the marking's direction alone (:func:`marking_visibility`).

Truth (cameras far from a convex object): the marking, facing the unit direction ``m``, is
visible from a camera in direction ``c`` when the angle between them is below 90°, hidden above.
Near 90° a marking of finite size on a curved surface may show partly, and a close camera sees
less than a hemisphere, so views within ``margin`` degrees of 90° are left undecided and not scored.

Not wired into the toy metric yet: it needs the v2 evaluator's visibility read-out and v2 scenes
with a front marking. The caller passes both as tensors.
"""

from __future__ import annotations

import torch
from torch import Tensor


def _direction(azimuth: Tensor, elevation: Tensor) -> Tensor:
    """Unit vectors ``[..., 3]`` at ``(azimuth, elevation)`` degrees, the cameras' convention
    (``az = 0`` is the object's front, +x; z up)."""
    az, el = torch.deg2rad(azimuth.float()), torch.deg2rad(elevation.float())
    return torch.stack([torch.cos(el) * torch.cos(az), torch.cos(el) * torch.sin(az), torch.sin(el)], dim=-1)


def marking_visibility(
    azimuth: Tensor,  # [V] degrees
    elevation: Tensor,  # [V] degrees
    marking_azimuth: float = 0.0,
    marking_elevation: float = 0.0,
    margin: float = 30.0,
) -> tuple[Tensor, Tensor]:
    """Where the truth shows and hides a marking facing ``(marking_azimuth, marking_elevation)``.

    Args:
        azimuth, elevation: the cameras' angles ``[V]`` in degrees (:class:`~sdbench.cameras.Cameras`).
        margin: views whose angle to the marking is within ``margin`` degrees of 90° are undecided.

    Returns:
        ``visible [V]`` and ``hidden [V]`` bool; neither for undecided views.
    """
    if azimuth.shape != elevation.shape or azimuth.dim() != 1:
        raise ValueError(f"azimuth and elevation must be [V], got {tuple(azimuth.shape)} and {tuple(elevation.shape)}")
    if not 0.0 <= margin < 90.0:
        raise ValueError(f"margin must be in [0, 90) degrees, got {margin}")
    m = _direction(torch.tensor(marking_azimuth), torch.tensor(marking_elevation))
    cos = (_direction(azimuth, elevation) @ m).clamp(-1, 1)
    angle = torch.rad2deg(torch.acos(cos))
    return angle < 90.0 - margin, angle > 90.0 + margin


def janus_score(
    visibility: Tensor,  # [V] in [0, 1]
    visible: Tensor,  # [V] bool
    hidden: Tensor,  # [V] bool
    threshold: float = 0.5,
) -> dict[str, float]:
    """Per-azimuth front-marking visibility read-out against the truth.

    Args:
        visibility: the evaluator's probability ``[V]`` that the marking is visible in each view.
        visible, hidden: the truth from :func:`marking_visibility`.
        threshold: a view "shows the marking" when its probability exceeds this.

    Returns:
        ``janus_false_front``: mean probability over the views where the truth hides the marking
        (0 for a correct object, high for a multi-faced one); ``janus_missed_front``: mean
        ``1 − probability`` where the truth shows it; ``janus_agreement``: share of decided views
        whose thresholded read-out equals the truth; ``janus_two_faced``: 1.0 when the marking is
        shown both in some view where it should be and in some view where it should not, else 0.0.
        Means over no views are NaN.
    """
    for name, x in (("visible", visible), ("hidden", hidden)):
        if x.shape != visibility.shape or visibility.dim() != 1:
            raise ValueError(f"{name}: expected [V] like visibility {tuple(visibility.shape)}, got {tuple(x.shape)}")
    if (visible & hidden).any():
        raise ValueError("a view cannot be both visible and hidden")
    p = visibility.float()
    shown = p > threshold
    nan = float("nan")
    decided = visible | hidden
    return {
        "janus_false_front": p[hidden].mean().item() if hidden.any() else nan,
        "janus_missed_front": (1 - p[visible]).mean().item() if visible.any() else nan,
        "janus_agreement": (shown == visible)[decided].float().mean().item() if decided.any() else nan,
        "janus_two_faced": float(bool((shown & visible).any() and (shown & hidden).any())),
    }
