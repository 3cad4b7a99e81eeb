"""The toy world's evaluator: the shipped open_clip model and its shape / colour read-outs.

Zero-shot classification over the 30 prompts ``a {colour} {shape}``: the joint probabilities
``p(colour, shape | image)`` are marginalised to read out the shape and the colour separately
(:func:`sdbench.world.evaluator.readout`, re-exported here with ``EVALUATOR_DIR``).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import torch
from torch import Tensor

from sdbench.errors import UserError
from sdbench.evaluation.clip import ClipScorer
from sdbench.world.evaluator import EVALUATOR_DIR, Readout, readout
from sdbench.world.grammar import base_prompts

__all__ = ["EVALUATOR_DIR", "Readout", "classify", "load_evaluator", "readout"]


@lru_cache(maxsize=2)
def load_evaluator(device: str = "cpu", folder: str = str(EVALUATOR_DIR)) -> ClipScorer:
    """The toy evaluator as a :class:`ClipScorer` (cached per device)."""
    if not (Path(folder) / "open_clip_model.safetensors").is_file():
        raise UserError(
            f"the toy evaluator's weights are missing from {folder}; "
            "train them with 'python -m sdbench.world.train_evaluator --out " + folder + "'"
        )
    return ClipScorer.load(f"local-dir:{folder}", device=device)


@torch.no_grad()
def classify(images: Tensor, scorer: ClipScorer | None = None) -> Readout:
    """Shape and colour of each image ``[B, 3, H, W]`` in [0, 1]."""
    scorer = scorer or load_evaluator(str(images.device))
    return readout(scorer.probabilities(images, base_prompts()))
