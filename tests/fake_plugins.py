"""Plugin classes used by the registry and trial tests (loaded through SDBENCH_PLUGINS)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from sdbench.losses.base import Loss, LossOutput


class GoodLoss(Loss):
    """A loss that pulls the image towards grey (for tests)."""

    aliases = ("good-alias",)

    @dataclass(frozen=True)
    class Config:
        strength: float = 1.0

    def forward(self, images, text, cameras, step, *, t=None, noise=None):
        self.prior.predict_noise(
            self.prior.encode_images(images).detach(), torch.zeros(len(images), dtype=torch.long), [text.cond(cameras)]
        )
        return LossOutput(self.cfg.strength * (images - 0.5).pow(2).mean(), {"strength": self.cfg.strength})


class NaNLoss(Loss):
    """A loss that goes NaN at step 3 (for failure tests)."""

    @dataclass(frozen=True)
    class Config:
        at_step: int = 3

    def forward(self, images, text, cameras, step, *, t=None, noise=None):
        value = images.mean()
        if step >= self.cfg.at_step:
            value = value * float("nan")
        return LossOutput(value, {})


class NotALoss:
    """Not a subclass of Loss."""

    @dataclass(frozen=True)
    class Config:
        pass
