"""A 2D image: per-pixel logits through a sigmoid, the same picture from every camera.

The classic 2D testbed of score distillation (DreamFusion's Fig. 3 style experiments): it removes
the 3D renderer so that a loss's behaviour can be looked at directly.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from sdbench.cameras import Cameras
from sdbench.representations.base import RenderOutput, Representation


class Image(Representation):
    """A 2D image (sigmoid of per-pixel logits), identical from every camera."""

    aliases = ("2d",)
    is_3d = False

    @dataclass(frozen=True)
    class Config:
        size: int = 0
        """Pixel grid size; 0 means the trial's render resolution."""
        init: float = 0.5
        """Initial grey level in (0, 1)."""
        lr: float = 0.1
        """Adam learning rate on the logits."""

    def __init__(self, cfg: Image.Config, resolution: int, prompt: str = "", generator: torch.Generator | None = None):
        super().__init__(cfg, resolution, prompt, generator)
        if not 0.0 < cfg.init < 1.0:
            raise ValueError(f"init must be in (0, 1), got {cfg.init}")
        size = cfg.size or resolution
        self.logits = torch.nn.Parameter(torch.full((1, 3, size, size), float(torch.logit(torch.tensor(cfg.init)))))

    def image(self) -> torch.Tensor:
        """``[1, 3, S, S]`` in [0, 1]."""
        return torch.sigmoid(self.logits)

    def render(self, cameras: Cameras, height: int, width: int) -> RenderOutput:
        img = self.image()
        if img.shape[-2:] != (height, width):
            img = F.interpolate(img, size=(height, width), mode="bilinear", align_corners=False)
        rgb = img.expand(len(cameras), -1, -1, -1)
        return RenderOutput(rgb, torch.ones_like(rgb[:, :1]))

    def parameter_groups(self) -> list[dict[str, Any]]:
        return [{"name": "logits", "params": [self.logits], "lr": self.cfg.lr}]

    def export(self, directory: Path) -> list[Path]:
        from sdbench.io import save_image

        path = Path(directory) / "image.png"
        save_image(self.image()[0].detach(), path)
        return [path]
