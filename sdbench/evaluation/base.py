"""The interface of a metric: numbers computed from a finished trial's evaluation views."""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch

from sdbench.cameras import CameraConfig, Cameras
from sdbench.priors.base import Prior
from sdbench.representations.base import RenderOutput, Representation


@dataclass
class EvalContext:
    """What a metric may look at.

    Attributes:
        prompt: the trial's prompt (without view words).
        prior: the trial's prior (its NFE spent here is not charged to the trial's cost).
        representation: the optimised representation (render more views if needed).
        cameras: the ``V`` evaluation cameras (an orbit).
        views: renders at ``cameras``: ``rgb [V, 3, H, W]``, ``alpha [V, 1, H, W]``.
        seed: the trial's seed (metrics draw their randomness from it).
        files: tensors a metric asks the trial to keep beside ``result.json``, by file name
            (``{"readout_v2.safetensors": {"embedding": ...}}``); written as safetensors when the
            evaluation has a trial directory, else dropped.
    """

    prompt: str
    prior: Prior
    representation: Representation
    cameras: Cameras
    views: RenderOutput
    seed: int
    files: dict[str, dict[str, torch.Tensor]] = field(default_factory=dict)
    _random: dict[Any, tuple[Cameras, RenderOutput]] = field(default_factory=dict, repr=False)

    def random_views(self, n: int, cameras: CameraConfig = CameraConfig()) -> tuple[Cameras, RenderOutput]:
        """``n`` views from cameras drawn with the trial seed; rendered once and shared by every
        metric that asks for the same number and distribution (CLIP score and toy accuracy)."""
        key = (n, cameras)
        if key not in self._random:
            cams = Cameras.sample(n, cameras, generator=torch.Generator().manual_seed(self.seed + 104729))
            res = self.representation.resolution
            with torch.no_grad():
                out = self.representation.render(cams.to(self.prior.device), res, res)
            self._random[key] = (cams, out)
        return self._random[key]


class Notice(str):
    """A reason a metric does not apply that the user should hear (its weights are missing), unlike
    one that is expected (a prompt from another world). Under ``metrics=("all",)`` the trial records
    it among its warnings, once; other reasons skip the metric silently."""


class Metric(abc.ABC):
    """Base class of metrics."""

    Config: ClassVar[type]
    aliases: ClassVar[tuple[str, ...]] = ()

    def __init__(self, cfg: Any):
        self.cfg = cfg

    @classmethod
    def applies_to_prompt(cls, prompt: str) -> str | None:
        """What the prompt alone decides, before anything runs: None, or why the metric can never score a trial
        of ``prompt`` (a sweep checks every trial's named metrics with it while planning, so a grid that cannot
        be scored fails at once, not on its workers). :meth:`applies` checks it again with the rest."""
        return None

    def applies(self, ctx: EvalContext) -> str | None:
        """None if the metric can be computed for this trial, else the reason it cannot (a
        :class:`Notice` when the trial should record it)."""
        return self.applies_to_prompt(ctx.prompt)

    @abc.abstractmethod
    def compute(self, ctx: EvalContext) -> dict[str, float]:
        """Metric values by name (a metric may report several numbers)."""
