"""Appearance metrics v2: colour (CIELAB), detail and noise of a render against the true object.

Pure functions on tensors: renders and truths ``[V, 3, H, W]`` in [0, 1] (white background), true
coverage ``alpha [V, 1, H, W]`` in [0, 1], the same ``V`` cameras for both. They replace the v1
HSV metrics (``toy_metrics.appearance``), which ignore lightness: a dark, colour-boosted object
(the CFG-100 look) reads there as *de*saturated.

Where pixels are compared one to one, they are compared inside the *eroded* true silhouette
(:func:`interior`): ``alpha > 0.5`` shrunk by ``erosion`` pixels, so a render that is right but
off by a pixel, and the anti-aliased edge, do not count as colour error.

* :func:`colour_errors`: signed chroma error ``C*_render − C*_truth`` and lightness error
  ``L*_render − L*_truth`` (CIELAB units, mean over the eroded interior), the unsigned ``ΔE``,
  and a contrast error: the spread (std) of L* over the render's own silhouette minus that over
  the truth's own silhouette. The spread needs no registration (a shifted render has the same
  spread) and sees a dark rim, which the eroded interior by design does not.
* :func:`detail_ratio`: high-frequency energy (5-point Laplacian, squared, per sRGB channel) of the
  render over that of the truth, inside the interior eroded one pixel more (the Laplacian reads one
  pixel around). 1 for the truth, < 1 over-smoothed, > 1 sharper or noisier than the truth (read it
  with :func:`noise_level`).
* :func:`noise_level`: the high-frequency energy of what the truth cannot explain: per view the
  render minus its best fit ``a·T + c·P + b`` per channel (``T`` the truth, ``P`` the optional
  pattern mask), over candidate ``T`` blurred (``blur_sigmas``) and shifted (up to ``max_shift``
  pixels), keeping the candidate that leaves the least. In units of a white-noise std: for
  i.i.d. Gaussian noise of std σ added to the truth, it is ≈ σ. A sharp or blurred pattern,
  a colour change or a 1-px shift leave nothing; noise and speckle do.
* :func:`pattern_readout`: the evaluator's pattern probabilities against the true pattern (a hook
  for the v2 evaluator).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from sdbench.evaluation.colour import chroma, srgb_to_lab

LAPLACIAN = ((0.0, 1.0, 0.0), (1.0, -4.0, 1.0), (0.0, 1.0, 0.0))
LAPLACIAN_GAIN = 20.0
"""Sum of the squared Laplacian weights: white noise of std σ has Laplacian energy 20 σ²."""


def _check(name: str, x: Tensor, channels: int, like: Tensor | None = None) -> None:
    if x.dim() != 4 or x.shape[1] != channels:
        raise ValueError(f"{name}: expected [V, {channels}, H, W], got {tuple(x.shape)}")
    if like is not None and (x.shape[0], *x.shape[2:]) != (like.shape[0], *like.shape[2:]):
        raise ValueError(f"{name}: shape {tuple(x.shape)} does not match {tuple(like.shape)}")


def erode(mask: Tensor, radius: int) -> Tensor:
    """Shrink a ``[V, 1, H, W]`` bool mask by ``radius`` pixels (3×3-square steps); the image
    border counts as outside."""
    if radius < 0:
        raise ValueError(f"erosion radius must be >= 0, got {radius}")
    if radius == 0:
        return mask.bool()
    x = F.pad(mask.float(), (radius,) * 4, value=0.0)
    return -F.max_pool2d(-x, 2 * radius + 1, stride=1) > 0.5


def interior(alpha: Tensor, erosion: int = 2, threshold: float = 0.5) -> Tensor:
    """The eroded true silhouette: ``alpha > threshold`` shrunk by ``erosion`` pixels, ``[V, 1, H, W]``."""
    _check("alpha", alpha, 1)
    return erode(alpha > threshold, erosion)


def colour_errors(
    render: Tensor,  # [V, 3, H, W]
    truth: Tensor,  # [V, 3, H, W]
    truth_alpha: Tensor,  # [V, 1, H, W]
    render_mask: Tensor,  # [V, 1, H, W] bool
    truth_mask: Tensor | None = None,  # [V, 1, H, W] bool
    erosion: int = 2,
) -> dict[str, float]:
    """CIELAB chroma, lightness and contrast errors of a render against the truth.

    Args:
        render, truth: sRGB ``[V, 3, H, W]`` in [0, 1] at the same cameras.
        truth_alpha: the true coverage ``[V, 1, H, W]``.
        render_mask: the render's own silhouette ``[V, 1, H, W]`` (alpha > 0.5 for 3D renders,
            non-background pixels for an image), used only for the contrast error.
        truth_mask: the truth's own silhouette by the same rule as ``render_mask`` (default
            ``truth_alpha > 0.5``, right when ``render_mask`` is the render's alpha > 0.5): edge
            pixels are part white, so two rules that keep different edges differ in L* spread.
        erosion: pixels removed from the true silhouette before pixel-wise comparison.

    Returns:
        ``chroma_error`` (mean ``C*_render − C*_truth`` over the interior; > 0 over-saturated),
        ``lightness_error`` (mean ``L*_render − L*_truth``; < 0 darker), ``delta_e`` (mean CIE76
        ``ΔE``), ``contrast_error`` (std of L* over the render's silhouette minus std of L* over the
        truth's, mean over views; > 0 more contrast than the truth). NaN where there is nothing to
        compare (empty interior; for contrast, no view with two pixels in both silhouettes).
    """
    _check("render", render, 3)
    _check("truth", truth, 3, render)
    _check("truth_alpha", truth_alpha, 1, render)
    _check("render_mask", render_mask, 1, render)
    truth_mask = truth_alpha > 0.5 if truth_mask is None else truth_mask
    _check("truth_mask", truth_mask, 1, render)
    lab, true_lab = srgb_to_lab(render), srgb_to_lab(truth)
    inside = interior(truth_alpha, erosion)[:, 0]
    out: dict[str, float] = {}
    if inside.any():
        out["chroma_error"] = (chroma(lab) - chroma(true_lab))[inside].mean().item()
        out["lightness_error"] = (lab[:, 0] - true_lab[:, 0])[inside].mean().item()
        out["delta_e"] = (lab - true_lab).norm(dim=1)[inside].mean().item()
    else:
        out["chroma_error"] = out["lightness_error"] = out["delta_e"] = float("nan")
    diffs = []
    for v in range(render.shape[0]):
        r, t = lab[v, 0][render_mask[v, 0].bool()], true_lab[v, 0][truth_mask[v, 0].bool()]
        if r.numel() >= 2 and t.numel() >= 2:
            diffs.append(r.std() - t.std())
    out["contrast_error"] = torch.stack(diffs).mean().item() if diffs else float("nan")
    return out


def laplacian(x: Tensor) -> Tensor:
    """5-point Laplacian of each channel of ``[V, C, H, W]`` (replicated border), same shape."""
    k = x.new_tensor(LAPLACIAN).view(1, 1, 3, 3).repeat(x.shape[1], 1, 1, 1)
    return F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), k, groups=x.shape[1])


def hf_energy(x: Tensor, mask: Tensor) -> Tensor:
    """Mean squared Laplacian over channels and the pixels of ``mask [V, 1, H, W]``, per view ``[V]``
    (NaN for a view with an empty mask)."""
    e = laplacian(x.float()).pow(2).mean(1)  # [V, H, W]
    m = mask[:, 0].float()
    return (e * m).sum((1, 2)) / m.sum((1, 2))


def detail_ratio(
    render: Tensor,  # [V, 3, H, W]
    truth: Tensor,  # [V, 3, H, W]
    truth_alpha: Tensor,  # [V, 1, H, W]
    erosion: int = 2,
    min_energy: float = LAPLACIAN_GAIN * (1.0 / 255.0) ** 2,
) -> float:
    """High-frequency energy of the render over that of the truth inside the true interior.

    Energies are summed over views before the ratio (a view without detail does not dominate).
    The mask is the interior eroded ``erosion + 1`` pixels, so the silhouette edge never enters.

    Args:
        min_energy: below this mean truth energy the truth has no detail to lose and the ratio is
            NaN. Default: the Laplacian energy of white noise of one 8-bit grey level std.

    Returns:
        1 for the truth itself; < 1 smoother than the truth, > 1 sharper or noisier.
    """
    _check("render", render, 3)
    _check("truth", truth, 3, render)
    _check("truth_alpha", truth_alpha, 1, render)
    mask = interior(truth_alpha, erosion + 1)
    if not mask.any():
        return float("nan")
    keep = mask.flatten(1).any(1)
    e_true = hf_energy(truth[keep], mask[keep])
    if e_true.mean().item() < min_energy:
        return float("nan")
    return (hf_energy(render[keep], mask[keep]).sum() / e_true.sum()).item()


def gaussian_blur(x: Tensor, sigma: float) -> Tensor:
    """Separable Gaussian blur of ``[V, C, H, W]`` (radius ``ceil(3σ)``, replicated border);
    ``sigma = 0`` returns ``x``."""
    if sigma <= 0:
        return x
    r = max(1, math.ceil(3 * sigma))
    t = torch.arange(-r, r + 1, dtype=x.dtype, device=x.device)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    c = x.shape[1]
    x = F.conv2d(F.pad(x, (r, r, 0, 0), mode="replicate"), k.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
    return F.conv2d(F.pad(x, (0, 0, r, r), mode="replicate"), k.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)


def _shift(x: Tensor, dy: int, dx: int) -> Tensor:
    """Content moved by ``(dy, dx)`` pixels, the border replicated."""
    if dy == dx == 0:
        return x
    s = max(abs(dy), abs(dx))
    p = F.pad(x, (s, s, s, s), mode="replicate")
    H, W = x.shape[-2:]
    return p[..., s - dy : s - dy + H, s - dx : s - dx + W]


def noise_level(
    render: Tensor,  # [V, 3, H, W]
    truth: Tensor,  # [V, 3, H, W]
    truth_alpha: Tensor,  # [V, 1, H, W]
    pattern: Tensor | None = None,  # [V, 1, H, W]
    erosion: int = 2,
    blur_sigmas: tuple[float, ...] = (0.0, 0.5, 1.0, 1.5, 2.0),
    max_shift: int = 1,
) -> float:
    """High-frequency residual of the render that no blurred, shifted, affinely recoloured truth explains.

    Per view and candidate (truth blurred by each of ``blur_sigmas`` and shifted by every integer
    offset up to ``max_shift``), each channel of the render is fitted by least squares over the
    eroded interior as ``a·T + c·P + b`` (``P``: the true pattern mask blurred and shifted the same
    way, if given; it lets the pattern's contrast differ from the shading's). The residual's
    Laplacian energy over the interior eroded one pixel more is kept for the best candidate.

    Args:
        pattern: optional ``[V, 1, H, W]`` mask of the surface pattern's marks (1 on a mark).

    Returns:
        ``sqrt(mean residual Laplacian energy / 20)``: ≈ σ for i.i.d. noise of std σ (less where
        clamping to [0, 1] cuts the noise: 0.084 for σ = 0.1 on a striped red sphere), 0 for the
        truth and for anything the candidates explain. NaN if the interior is empty.
    """
    _check("render", render, 3)
    _check("truth", truth, 3, render)
    _check("truth_alpha", truth_alpha, 1, render)
    if pattern is not None:
        _check("pattern", pattern, 1, render)
    fit_mask = interior(truth_alpha, erosion)
    energy_mask = erode(fit_mask, 1)
    if not energy_mask.any():
        return float("nan")
    # on the CPU in float64: gelsd handles the rank-deficient fits of flat candidates
    render, truth = render.detach().cpu().double(), truth.detach().cpu().double()
    fit_mask, energy_mask = fit_mask.cpu(), energy_mask.cpu()
    base = truth if pattern is None else torch.cat([truth, pattern.detach().cpu().double()], dim=1)
    candidates = torch.stack(
        [
            _shift(gaussian_blur(base, s), dy, dx)
            for s in blur_sigmas
            for dy in range(-max_shift, max_shift + 1)
            for dx in range(-max_shift, max_shift + 1)
        ]
    )  # [K, V, 3 (+1), H, W]
    K = candidates.shape[0]
    best = []
    for v in range(render.shape[0]):
        fm, em = fit_mask[v, 0], energy_mask[v : v + 1]
        if not em.any():
            continue
        c = candidates[:, v]
        cols = [c[:, :3]] + ([c[:, 3:].expand(-1, 3, -1, -1)] if pattern is not None else []) + [torch.ones_like(c[:, :3])]
        X = torch.stack(cols, dim=-1)  # [K, 3, H, W, p]: regressors per candidate and channel
        y = render[v].expand(K, -1, -1, -1)  # [K, 3, H, W]
        coef = torch.linalg.lstsq(X[:, :, fm], y[:, :, fm, None], driver="gelsd").solution  # [K, 3, p, 1]
        residual = y - (X @ coef[:, :, None])[..., 0]
        best.append(hf_energy(residual, em.expand(K, -1, -1, -1)).min().item())
    return math.sqrt(sum(best) / len(best) / LAPLACIAN_GAIN)


def pattern_readout(probs: Tensor, true_pattern: int | Tensor) -> dict[str, float]:
    """The evaluator's pattern read-out against the true pattern (hook for the v2 evaluator).

    Args:
        probs: ``[V, P]`` pattern probabilities per view.
        true_pattern: the true pattern's index (an int, or ``[V]`` per view).

    Returns:
        ``pattern_acc`` (share of views whose most likely pattern is the true one) and
        ``pattern_prob`` (mean probability of the true pattern); both 1 when read perfectly.
    """
    if probs.dim() != 2:
        raise ValueError(f"probs: expected [V, P], got {tuple(probs.shape)}")
    target = torch.as_tensor(true_pattern, device=probs.device).long().expand(probs.shape[0])
    return {
        "pattern_acc": (probs.argmax(1) == target).float().mean().item(),
        "pattern_prob": probs.gather(1, target[:, None]).float().mean().item(),
    }
