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


class Representation(nn.Module, abc.ABC):
    """Base class of representations (2D image, 3D Gaussians, NeRF, ...)."""

    Config: ClassVar[type]
    aliases: ClassVar[tuple[str, ...]] = ()
    #: True for 3D representations (the trial writes a turntable for them).
    is_3d: ClassVar[bool] = True

    def __init__(self, cfg: Any, resolution: int):
        """``resolution``: the image size the trial renders at (the prior's, unless overridden)."""
        super().__init__()
        self.cfg = cfg
        self.resolution = resolution

    @abc.abstractmethod
    def render(self, cameras: Cameras, height: int, width: int) -> RenderOutput:
        """Render ``B = len(cameras)`` views of size ``height × width``."""

    @abc.abstractmethod
    def parameter_groups(self) -> list[dict[str, Any]]:
        """Optimiser parameter groups: ``[{"name": str, "params": [Tensor], "lr": float}, ...]``."""

    def post_step(self, step: int, optimizer: torch.optim.Optimizer, render: RenderOutput) -> None:
        """Called after each optimiser step (densification and pruning live here)."""

    def export(self, directory: Path) -> list[Path]:
        """Write the representation's own files (e.g. ``model.ply``) into ``directory``; return them."""
        return []
