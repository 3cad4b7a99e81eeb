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


class OneBadStepLoss(Loss):
    """Pulls the image to grey; its gradient is NaN at one step (zeroed and counted by prepare_grad)."""

    @dataclass(frozen=True)
    class Config:
        bad_step: int = 2

    def forward(self, images, text, cameras, step, *, t=None, noise=None):
        g = images.detach() - 0.5
        if step == self.cfg.bad_step:
            g = g * float("nan")
        g = self.prepare_grad(g, None)
        return LossOutput(0.5 * (images - (images - g).detach()).pow(2).sum(), {"grad_norm": g.norm().item()})


class _NaNBackward(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.shape = x.shape
        return (x * 0).sum()

    @staticmethod
    def backward(ctx, grad):
        return torch.full(ctx.shape, float("nan"))


class NaNBackwardLoss(Loss):
    """A finite loss whose backward pass sends NaN into the representation at every step."""

    @dataclass(frozen=True)
    class Config:
        pass

    def forward(self, images, text, cameras, step, *, t=None, noise=None):
        return LossOutput(_NaNBackward.apply(images), {})
