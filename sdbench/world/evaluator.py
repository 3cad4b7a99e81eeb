"""The toy evaluator's place on disk and its read-out of class probabilities.

World level (below evaluation) because both its training (:mod:`sdbench.world.train_evaluator`) and the
metrics (:mod:`sdbench.evaluation.toy`) use them. Zero-shot classification over the 30 prompts
``a {colour} {shape}``: the joint probabilities ``p(colour, shape | image)`` are marginalised to read
out the shape and the colour separately.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from torch import Tensor

from sdbench.world.scenes import COLOURS, SHAPES

EVALUATOR_DIR = Path(__file__).resolve().parent / "weights" / "evaluator"


@dataclass
class Readout:
    """Per image: predicted ``shape`` and ``colour`` indices ``[B]`` and the joint probabilities
    ``probs [B, colours, shapes]``."""

    shape: Tensor
    colour: Tensor
    probs: Tensor

    def names(self) -> list[tuple[str, str]]:
        return [(list(COLOURS)[c], SHAPES[s]) for c, s in zip(self.colour.tolist(), self.shape.tolist())]


def readout(probs: Tensor) -> Readout:
    """``[B, 30]`` probabilities over :func:`~sdbench.world.grammar.base_prompts` → marginal shape and
    colour predictions."""
    joint = probs.reshape(-1, len(COLOURS), len(SHAPES))
    return Readout(joint.sum(1).argmax(-1), joint.sum(2).argmax(-1), joint)
