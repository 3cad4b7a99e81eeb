"""The interface of a representation: something the trial loop optimises and renders from cameras."""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from sdbench.cameras import Cameras


@dataclass
class RenderOutput:
    """Rendered views.

    Attributes:
        rgb: ``[B, 3, H, W]`` in [0, 1], composited over the representation's background.
        alpha: ``[B, 1, H, W]`` in [0, 1], accumulated opacity (1 for a 2D image).
        extras: backend-specific tensors (e.g. gsplat's ``means2d`` for densification).
    """

    rgb: Tensor
    alpha: Tensor
    extras: dict[str, Any] = field(default_factory=dict)


@dataclass
class SurfaceOutput:
    """The geometry of rendered views (for exports: normal maps, depth).

    Attributes:
        color: ``[B, 3, H, W]`` accumulated colour Σ w c, without the background (i.e. over black).
        alpha: ``[B, 1, H, W]`` accumulated opacity Σ w.
        depth: ``[B, 1, H, W]`` expected camera-space depth Σ w z / Σ w (along the optical axis); 0 where alpha is 0.
        normal: ``[B, 3, H, W]`` unit surface normals in the **world** frame, pointing out of the
            object; 0 where there is no surface.
    """

    color: Tensor
    alpha: Tensor
    depth: Tensor
    normal: Tensor


class Representation(nn.Module, abc.ABC):
    """Base class of representations (2D image, 3D Gaussians, NeRF, ...)."""

    Config: ClassVar[type]
    aliases: ClassVar[tuple[str, ...]] = ()
    #: True for 3D representations (the trial writes a turntable for them).
    is_3d: ClassVar[bool] = True

    def __init__(self, cfg: Any, resolution: int, prompt: str = "", generator: torch.Generator | None = None):
        """``resolution``: the image size the trial renders at (the prior's, unless overridden);
        ``prompt``: the trial's prompt (for prompt-conditioned initialisations such as Shap-E);
        ``generator``: the trial's stream for every random draw of the representation (initialisation,
        sample jitter, ...), kept as ``self.generator``; None: torch's global generator."""
        super().__init__()
        self.cfg = cfg
        self.resolution = resolution
        self.prompt = prompt
        self.generator = generator

    @abc.abstractmethod
    def render(self, cameras: Cameras, height: int, width: int) -> RenderOutput:
        """Render ``B = len(cameras)`` views of size ``height × width``."""

    def render_surface(self, cameras: Cameras, height: int, width: int) -> SurfaceOutput:
        """Colour without background, opacity, depth and normals of ``B = len(cameras)`` views.

        Optional: 3D representations that can say where their surface is implement it (the 2D
        image cannot)."""
        raise NotImplementedError(f"{type(self).__name__} renders no depth or normals")

    @abc.abstractmethod
    def parameter_groups(self) -> list[dict[str, Any]]:
        """Optimiser parameter groups: ``[{"name": str, "params": [Tensor], "lr": float}, ...]``."""

    def make_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """The optimisers of the parameters; default: one Adam over :meth:`parameter_groups`
        (betas 0.9/0.99, eps 1e-15, as text-to-3D codebases use)."""
        return {"all": torch.optim.Adam(self.parameter_groups(), betas=(0.9, 0.99), eps=1e-15)}

    def pre_backward(self, step: int, render: RenderOutput) -> None:
        """Called between the loss and its backward pass (e.g. to retain screen-space gradients)."""

    def post_step(self, step: int, optimizers: dict[str, torch.optim.Optimizer], render: RenderOutput) -> None:
        """Called after the optimiser steps (densification and pruning live here)."""

    def export(self, directory: Path) -> list[Path]:
        """Write the representation's own files (e.g. ``model.ply``) into ``directory``; return them."""
        return []

    def load_weights(self, state: dict[str, torch.Tensor]) -> None:
        """Load a ``state_dict`` saved from a representation of the same config; representations
        whose parameter shapes change while training (densified Gaussians) override this."""
        self.load_state_dict(state)
