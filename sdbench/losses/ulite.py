"""U-Lite (Dinh et al., APSIPA ASC 2023, "1M parameters are enough?"): DreamMapping's operator M_ψ.

A small U-Net built from axial depth-wise convolutions, AxialDW_{k,d}(x) = x + DW_{k×1,d}(x) +
DW_{1×k,d}(x). Shapes: ``[B, C_in, H, W] → [B, C_out, H, W]`` with H, W divisible by 2^levels.

With ``levels=5`` and widths 16 → 512 it is the published network: 878,417 parameters for 3 → 1
channels, 879,252 for 4 → 4 (SD latent noise). Fewer levels keep the bottleneck at 2×2 or more for
small inputs (the toy prior's 32×32).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class AxialDW(nn.Module):
    """x + DW_{k×1,d}(x) + DW_{1×k,d}(x): per-channel axial convolutions, 'same' padding."""

    def __init__(self, channels: int, kernel: int, dilation: int = 1):
        super().__init__()
        self.vertical = nn.Conv2d(channels, channels, (kernel, 1), padding="same", groups=channels, dilation=dilation)
        self.horizontal = nn.Conv2d(channels, channels, (1, kernel), padding="same", groups=channels, dilation=dilation)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.vertical(x) + self.horizontal(x)


class Down(nn.Module):
    """skip = BN(AxialDW_7(x)); out = GELU(MaxPool(Conv1×1(skip)))."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.mix = AxialDW(c_in, 7)
        self.norm = nn.BatchNorm2d(c_in)
        self.project = nn.Conv2d(c_in, c_out, 1)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        skip = self.norm(self.mix(x))
        return nn.functional.gelu(nn.functional.max_pool2d(self.project(skip), 2)), skip


class Up(nn.Module):
    """GELU(Conv1×1(AxialDW_7(BN(Conv1×1([up(x), skip])))))."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.merge = nn.Conv2d(c_in + c_out, c_out, 1)
        self.norm = nn.BatchNorm2d(c_out)
        self.mix = AxialDW(c_out, 7)
        self.project = nn.Conv2d(c_out, c_out, 1)

    def forward(self, x: Tensor, skip: Tensor) -> Tensor:
        x = torch.cat([nn.functional.interpolate(x, scale_factor=2.0, mode="nearest"), skip], dim=1)
        return nn.functional.gelu(self.project(self.mix(self.norm(self.merge(x)))))


class Bottleneck(nn.Module):
    """Conv1×1 to c/4, then [h, AxialDW_3 at dilations 1, 2, 3] concatenated, BN, Conv1×1, GELU."""

    def __init__(self, channels: int):
        super().__init__()
        quarter = channels // 4
        self.reduce = nn.Conv2d(channels, quarter, 1)
        self.dilated = nn.ModuleList([AxialDW(quarter, 3, d) for d in (1, 2, 3)])
        self.norm = nn.BatchNorm2d(4 * quarter)
        self.expand = nn.Conv2d(4 * quarter, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        h = self.reduce(x)
        h = torch.cat([h, *(m(h) for m in self.dilated)], dim=1)
        return nn.functional.gelu(self.expand(self.norm(h)))


class ULite(nn.Module):
    """U-Lite with ``levels`` encoder/decoder stages of widths ``base · 2^i``."""

    def __init__(self, in_channels: int = 3, out_channels: int = 1, levels: int = 5, base: int = 16):
        super().__init__()
        widths = [base * 2**i for i in range(levels + 1)]
        self.levels = levels
        self.stem = nn.Conv2d(in_channels, base, 7, padding="same")
        self.down = nn.ModuleList([Down(widths[i], widths[i + 1]) for i in range(levels)])
        self.bottleneck = Bottleneck(widths[-1])
        self.up = nn.ModuleList([Up(widths[i + 1], widths[i]) for i in reversed(range(levels))])
        self.head = nn.Conv2d(base, out_channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[-1] % 2**self.levels or x.shape[-2] % 2**self.levels:
            raise ValueError(
                f"U-Lite with {self.levels} levels needs H, W divisible by {2**self.levels}, got {tuple(x.shape[-2:])}"
            )
        x = self.stem(x)
        skips = []
        for block in self.down:
            x, skip = block(x)
            skips.append(skip)
        x = self.bottleneck(x)
        for block, skip in zip(self.up, reversed(skips)):
            x = block(x, skip)
        return self.head(x)


def levels_for(size: int, max_levels: int = 5, min_bottleneck: int = 2) -> int:
    """The most levels (≤ ``max_levels``) that keep a ``min_bottleneck``² bottleneck for ``size``² inputs."""
    levels = 0
    while levels < max_levels and size % 2 ** (levels + 1) == 0 and size // 2 ** (levels + 1) >= min_bottleneck:
        levels += 1
    return levels
