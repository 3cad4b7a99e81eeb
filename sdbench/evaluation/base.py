"""The interface of a metric: numbers computed from a finished trial's evaluation views."""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any, ClassVar

from sdbench.cameras import Cameras
from sdbench.priors.base import Prior
from sdbench.representations.base import Representation, RenderOutput


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
    """

    prompt: str
    prior: Prior
    representation: Representation
    cameras: Cameras
    views: RenderOutput
    seed: int


class Metric(abc.ABC):
    """Base class of metrics."""

    Config: ClassVar[type]
    aliases: ClassVar[tuple[str, ...]] = ()

    def __init__(self, cfg: Any):
        self.cfg = cfg

    def applies(self, ctx: EvalContext) -> str | None:
        """None if the metric can be computed for this trial, else the reason it cannot."""
        return None

    @abc.abstractmethod
    def compute(self, ctx: EvalContext) -> dict[str, float]:
        """Metric values by name (a metric may report several numbers)."""
