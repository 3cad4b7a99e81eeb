"""The toy world's evaluator: the shipped open_clip model and its read-outs.

v1 (``weights/evaluator``): zero-shot classification over the 30 prompts ``a {colour} {shape}``;
the joint probabilities ``p(colour, shape | image)`` are marginalised to read out the shape and the
colour separately (:func:`classify`).

v2 (``weights/evaluator_v2``, once trained: ``python -m sdbench.world.train_evaluator --world v2``):
one zero-shot read-out per attribute over :func:`~sdbench.world.grammar.readout_prompts` (shape,
colour, *visible* pattern, front-marking visibility in this view), and the unit-norm image
embedding for diversity (:func:`read_attributes`, :func:`embed`).

(``EVALUATOR_DIR``, ``Readout`` and ``readout`` live in :mod:`sdbench.world.evaluator`, re-exported here.)
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch
from torch import Tensor

from sdbench.errors import UserError
from sdbench.evaluation.clip import ClipScorer
from sdbench.world.evaluator import EVALUATOR_DIR, Readout, readout
from sdbench.world.grammar import base_prompts, readout_prompts
from sdbench.world.scenes import COLOURS, PATTERNS, SHAPES

EVALUATOR_V2_DIR = EVALUATOR_DIR.parent / "evaluator_v2"


@lru_cache(maxsize=2)
def load_evaluator(device: str = "cpu", folder: str = str(EVALUATOR_DIR)) -> ClipScorer:
    """The toy evaluator as a :class:`ClipScorer` (cached per device)."""
    if not (Path(folder) / "open_clip_model.safetensors").is_file():
        raise UserError(
            f"the toy evaluator's weights are missing from {folder}; "
            "train them with 'python -m sdbench.world.train_evaluator --out " + folder + "'"
        )
    return ClipScorer.load(f"local-dir:{folder}", device=device)


def evaluator_weights_id(folder: str | Path = EVALUATOR_V2_DIR) -> str:
    """:func:`sdbench.io.file_id` of an evaluator folder's weights file (``""`` when it has none)."""
    from sdbench.io import file_id

    weights = Path(folder) / "open_clip_model.safetensors"
    return file_id(weights) if weights.is_file() else ""


def evaluator_dir(world: str = "v1") -> Path:
    """The shipped evaluator folder of toy world ``world``."""
    if world not in ("v1", "v2"):
        raise UserError(f"unknown toy world {world!r}; expected v1 or v2")
    return EVALUATOR_DIR if world == "v1" else EVALUATOR_V2_DIR


@torch.no_grad()
def classify(images: Tensor, scorer: ClipScorer | None = None) -> Readout:
    """Shape and colour of each image ``[B, 3, H, W]`` in [0, 1]."""
    scorer = scorer or load_evaluator(str(images.device))
    return readout(scorer.probabilities(images, base_prompts()))


@dataclass
class Attributes:
    """v2 read-out per image: predicted class indices ``[B]`` of ``shape`` (:data:`SHAPES`),
    ``colour`` (:data:`COLOURS`), ``pattern`` (:data:`PATTERNS`, the pattern the image *shows*) and
    ``marking`` (1: a front marking is visible in this view, 0: not), their probabilities
    ``probs[name] [B, K]``, and the unit-norm image embedding ``embedding [B, D]``."""

    shape: Tensor
    colour: Tensor
    pattern: Tensor
    marking: Tensor
    probs: dict[str, Tensor]
    embedding: Tensor

    def names(self) -> list[dict[str, str | bool]]:
        return [
            {"shape": SHAPES[s], "colour": list(COLOURS)[c], "pattern": PATTERNS[p], "marking": bool(m)}
            for s, c, p, m in zip(self.shape.tolist(), self.colour.tolist(), self.pattern.tolist(), self.marking.tolist())
        ]


@torch.no_grad()
def read_attributes(images: Tensor, scorer: ClipScorer | None = None) -> Attributes:
    """The v2 evaluator's read-out of images ``[B, 3, H, W]`` in [0, 1] (default: the shipped v2 evaluator)."""
    scorer = scorer or load_evaluator(str(images.device), str(EVALUATOR_V2_DIR))
    embedding = scorer.encode_images(images)
    scale = scorer.model.logit_scale.exp().float()
    probs = {k: (scale * embedding @ scorer.encode_text(v).T).softmax(-1) for k, v in readout_prompts().items()}
    pick = {k: p.argmax(-1) for k, p in probs.items()}
    return Attributes(pick["shape"], pick["colour"], pick["pattern"], pick["marking"], probs, embedding)


@torch.no_grad()
def embed(images: Tensor, scorer: ClipScorer | None = None) -> Tensor:
    """Unit-norm image embeddings ``[B, D]`` of the evaluator (default: the shipped v2 evaluator)."""
    scorer = scorer or load_evaluator(str(images.device), str(EVALUATOR_V2_DIR))
    return scorer.encode_images(images)
