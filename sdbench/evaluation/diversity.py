"""Diversity across seeds: does a loss keep the modes of an ambiguous prompt, or collapse to one?

For ``S`` trials of one prompt that differ only in their seed (``"a cube"`` with the colour left
open, ``"a red object"`` with the shape left open), from the evaluator's outputs on their views:

* :func:`readout_entropy`: the entropy of the most likely class per seed (per attribute: shape,
  colour, pattern), divided by its largest possible value ``log(min(S, K))``: 0 when every seed
  reads the same, 1 when all differ (or are spread evenly over every class);
* :func:`embedding_distance`: the mean over seed pairs of the cosine distance ``1 − cos`` between
  image embeddings (view by view when the seeds share cameras, as trials do), in [0, 2]: 0 for
  identical images (the v1 toy evaluator: 0.09 for one red cube seen 5° higher, 1.33 between a red
  cube, a blue sphere and a green torus).

Identical seeds score exactly 0 on both. This is a cross-trial metric: :func:`diversity_of` reads
finished trials, for the report and study layers: the v2 evaluator's read-out each trial kept
(:data:`READOUT_FILE`, written by the ``toy2`` metric, :mod:`sdbench.evaluation.toy_readout`), or
else its saved views (``views/*.png``) through an evaluator.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch import Tensor

from sdbench.errors import UserError

READOUT_FILE = "readout_v2.safetensors"
"""A trial's v2 evaluator read-out of its evaluation views: ``embedding [V, D]`` (unit norm) and
``probs.<attribute> [V, K]`` for shape, colour, pattern and marking (``toy2`` metric)."""
DIVERSITY_ATTRIBUTES = ("shape", "colour", "pattern")
"""Read-outs whose entropy across seeds is reported (marking visibility depends on the view, not the seed)."""


def seed_classes(probs: Tensor) -> Tensor:
    """Each seed's most likely class ``[S]`` from probabilities ``[S, K]`` or ``[S, V, K]`` (views averaged first)."""
    if probs.dim() == 3:
        probs = probs.float().mean(1)
    if probs.dim() != 2:
        raise ValueError(f"probs: expected [S, K] or [S, V, K], got {tuple(probs.shape)}")
    return probs.argmax(1)


def readout_entropy(probs: Tensor) -> float:
    """Normalised entropy of the per-seed read-out.

    Args:
        probs: class probabilities ``[S, K]``, or ``[S, V, K]`` over ``V`` views per seed (averaged
            over views first). Each seed's class is its most likely one.

    Returns:
        ``H / log(min(S, K))`` of the empirical distribution of the ``S`` classes, in [0, 1].
    """
    S, K = probs.shape[0], probs.shape[-1]
    classes = seed_classes(probs)
    if S < 2 or K < 2:
        raise ValueError(f"diversity needs at least 2 seeds and 2 classes, got {S} and {K}")
    counts = torch.bincount(classes, minlength=K).double()
    p = counts[counts > 0] / S
    return (-(p * p.log()).sum() / math.log(min(S, K))).item() + 0.0  # + 0.0: one class gives 0.0, not -0.0


def embedding_distance(embeddings: Tensor) -> float:
    """Mean pairwise cosine distance between seeds.

    Args:
        embeddings: ``[S, D]``, or ``[S, V, D]`` with the same ``V`` cameras for every seed (pairs are
            compared view by view and averaged).

    Returns:
        mean over pairs ``i < j`` of ``1 − cos(e_i, e_j)``, computed as ``½‖ê_i − ê_j‖²`` so identical
        embeddings give exactly 0.
    """
    if embeddings.dim() == 2:
        embeddings = embeddings[:, None]
    if embeddings.dim() != 3:
        raise ValueError(f"embeddings: expected [S, D] or [S, V, D], got {tuple(embeddings.shape)}")
    S = embeddings.shape[0]
    if S < 2:
        raise ValueError(f"diversity needs at least 2 seeds, got {S}")
    e = torch.nn.functional.normalize(embeddings.double(), dim=-1)
    i, j = torch.triu_indices(S, S, offset=1)
    return (0.5 * (e[i] - e[j]).pow(2).sum(-1)).mean().item()


def distance_by_agreement(embeddings: Tensor, labels: Tensor) -> dict[str, float]:
    """:func:`embedding_distance` split by whether a seed pair's read-out agrees.

    An embedding distance mixes two things: seeds that land in different modes (the diversity a prompt
    asks for) and seeds in the same mode that still look different (other variation, artefacts
    included). This separates them; it is a diagnostic, not a pass criterion of any control.

    Args:
        embeddings: ``[S, D]`` or ``[S, V, D]`` as in :func:`embedding_distance`.
        labels: ``[S]`` each seed's read-out class (e.g. the omitted attribute's most likely class).

    Returns:
        ``share_same`` (of the ``S(S−1)/2`` pairs, those with equal labels), ``distance_same`` and
        ``distance_different`` (mean distance of those pairs; NaN when there are none), so that
        ``share_same · distance_same + (1 − share_same) · distance_different`` is the embedding distance.
    """
    if embeddings.dim() == 2:
        embeddings = embeddings[:, None]
    S = embeddings.shape[0]
    if embeddings.dim() != 3 or labels.shape != (S,) or S < 2:
        raise ValueError(
            f"expected embeddings [S, (V,) D] and labels [S] with S ≥ 2, got {tuple(embeddings.shape)}, {tuple(labels.shape)}"
        )
    e = torch.nn.functional.normalize(embeddings.double(), dim=-1)
    i, j = torch.triu_indices(S, S, offset=1)
    d = (0.5 * (e[i] - e[j]).pow(2).sum(-1)).mean(-1)  # [pairs], averaged over views
    same = labels[i] == labels[j]

    def mean(x: Tensor) -> float:
        return x.mean().item() if x.numel() else math.nan

    return {"share_same": same.double().mean().item(), "distance_same": mean(d[same]), "distance_different": mean(d[~same])}


def diversity(probs: dict[str, Tensor], embeddings: Tensor) -> dict[str, float]:
    """``diversity_distance`` from the embeddings and ``diversity_entropy_<name>`` per read-out attribute."""
    out = {"diversity_distance": embedding_distance(embeddings)}
    out.update({f"diversity_entropy_{name}": readout_entropy(p) for name, p in probs.items()})
    return out


def load_views(trial_dir: Path) -> Tensor:
    """A trial's saved evaluation views ``views/*.png`` (sorted by name) as ``[V, 3, H, W]`` in [0, 1]."""
    import numpy as np
    from PIL import Image

    files = sorted((Path(trial_dir) / "views").glob("*.png"))
    if not files:
        raise UserError(f"{trial_dir} has no saved views (views/*.png); was the trial evaluated?")
    arrays = [np.asarray(Image.open(f).convert("RGB"), dtype=np.float32) / 255.0 for f in files]
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()


def toy_embed(images: Tensor) -> Tensor:
    """The toy evaluator's image embedding ``[B, D]`` of ``[B, 3, H, W]`` (v1 until the v2 evaluator lands)."""
    from sdbench.evaluation.toy import embed, load_evaluator

    return embed(images, load_evaluator("cpu"))


def toy_readout(images: Tensor) -> dict[str, Tensor]:
    """The toy evaluator's shape and colour probabilities ``[B, K]`` (v1 until the v2 evaluator lands)."""
    from sdbench.evaluation.toy import classify

    joint = classify(images).probs  # [B, colours, shapes]
    return {"shape": joint.sum(1), "colour": joint.sum(2)}


def has_readout(trial_dir: Path) -> bool:
    """Whether the trial kept its v2 evaluator read-out (:data:`READOUT_FILE`)."""
    return (Path(trial_dir) / READOUT_FILE).is_file()


def load_readout(trial_dir: Path) -> tuple[Tensor, dict[str, Tensor]]:
    """A trial's kept read-out: embeddings ``[V, D]`` and ``{attribute: probs [V, K]}`` (:data:`DIVERSITY_ATTRIBUTES`)."""
    from sdbench.io import load_tensors

    path = Path(trial_dir) / READOUT_FILE
    if not path.is_file():
        raise UserError(f"{trial_dir} has no {READOUT_FILE}; evaluate it with the v2 evaluator ('sdbench eval')")
    data = load_tensors(path)
    return data["embedding"], {k: data[f"probs.{k}"] for k in DIVERSITY_ATTRIBUTES if f"probs.{k}" in data}


def load_readouts(trial_dirs: Sequence[Path]) -> tuple[Tensor, dict[str, Tensor]]:
    """The kept read-outs of trials of one prompt, stacked over seeds: embeddings ``[S, V, D]`` and
    ``{attribute: probs [S, V, K]}``; a :class:`UserError` when they differ in views or classes."""
    kept = [load_readout(Path(d)) for d in trial_dirs]
    shapes = {(tuple(e.shape), tuple((k, tuple(p.shape)) for k, p in sorted(ps.items()))) for e, ps in kept}
    if len(shapes) != 1:
        raise UserError(f"the trials' kept read-outs differ in views or classes ({sorted(shapes)}); compare like with like")
    return torch.stack([e for e, _ in kept]), {k: torch.stack([ps[k] for _, ps in kept]) for k in kept[0][1]}


@torch.no_grad()
def diversity_of(
    trial_dirs: Sequence[Path],
    embed: Callable[[Tensor], Tensor] | None = None,
    readout: Callable[[Tensor], dict[str, Tensor]] | None = None,
) -> dict[str, float]:
    """Diversity across the trials ``trial_dirs`` (one prompt, different seeds, same evaluation cameras).

    Args:
        trial_dirs: at least two trial directories.
        embed: images ``[B, 3, H, W]`` → embeddings ``[B, D]``; readout: images → per-attribute class
            probabilities ``{name: [B, K]}``. With neither given, the trials' kept v2 read-outs
            (:data:`READOUT_FILE`) are used when every trial has one; otherwise the saved views
            (``views/*.png``) go through ``embed`` and ``readout``, by default the v1 toy evaluator's
            (shape and colour only).

    Returns:
        ``diversity_distance``, ``diversity_entropy_<attribute>`` (see :func:`diversity`) and ``seeds``.
    """
    if len(trial_dirs) < 2:
        raise UserError(f"diversity needs at least two trials of the prompt, got {len(trial_dirs)}")
    if embed is None and readout is None and all(has_readout(d) for d in trial_dirs):
        embeddings, probs = load_readouts(trial_dirs)
        return {**diversity(probs, embeddings), "seeds": float(len(embeddings))}
    embed, readout = embed or toy_embed, readout or toy_readout
    views = [load_views(Path(d)) for d in trial_dirs]
    shapes = {tuple(v.shape) for v in views}
    if len(shapes) != 1:
        raise UserError(f"the trials' saved views differ in number or size ({sorted(shapes)}); compare like with like")
    S, V = len(views), views[0].shape[0]
    flat = torch.cat(views)  # [S * V, 3, H, W]
    embeddings = embed(flat).reshape(S, V, -1)
    probs = {k: p.reshape(S, V, -1) for k, p in readout(flat).items()}
    return {**diversity(probs, embeddings), "seeds": float(S)}
