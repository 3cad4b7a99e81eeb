"""Toy world v2's evaluator on a trial: pattern read-out, Janus score, and the read-out kept for diversity.

Metric ``toy2``: every prompt of world v2 (v1 prompts included), when the v2 evaluator's weights are
present (``sdbench/world/weights/evaluator_v2``; :func:`sdbench.evaluation.toy.read_attributes`).
Without them the metric is omitted and the trial says so once among its warnings.

* On the ``views`` random views of the ``toy`` metric (the same cameras, drawn from the trial seed;
  a 2D image is the same picture from each): ``toy2_pattern_acc`` and ``toy2_pattern_prob``, the
  pattern the evaluator reads against the prompt's (no pattern word means plain;
  :func:`~sdbench.evaluation.appearance.pattern_readout`), and ``toy2_shape_acc``,
  ``toy2_colour_acc`` where the prompt states them; ``toy2_acc``: share of views where every
  stated attribute is read right.
* 3D, prompts with a front marking (``... with a face``): on the evaluation orbit (azimuth 0 is the
  front), the evaluator's per-view probability that the face is visible against the truth, which
  follows from the camera alone (:func:`~sdbench.evaluation.janus.marking_visibility`, views within
  ``margin`` of 90° undecided): ``toy2_janus_false_front`` (mean probability where the truth hides
  it; ↓), ``toy2_janus_missed_front`` (↓), ``toy2_janus_agreement`` (↑) and ``toy2_janus_two_faced``
  (1 when the face is read both where it should and where it cannot be). A 2D image has no orbit.
* Every prompt: the orbit views' unit embeddings ``[V, D]`` and per-attribute probabilities are kept
  with the trial (:data:`~sdbench.evaluation.diversity.READOUT_FILE`), so diversity across seeds, a
  group metric, is computed by the report from them (:func:`~sdbench.evaluation.diversity.diversity_of`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch

from sdbench.cameras import CameraConfig
from sdbench.evaluation.base import EvalContext, Metric, Notice


def _evaluator_dir() -> Path:
    from sdbench.evaluation import toy

    return Path(toy.EVALUATOR_V2_DIR)


class ToyReadout(Metric):
    """Toy world v2: the v2 evaluator's pattern, shape, colour and front-marking read-outs."""

    @dataclass(frozen=True)
    class Config:
        views: int = 16
        """Random views for the pattern, shape and colour read-outs (the ``toy`` metric's, shared)."""
        cameras: CameraConfig = CameraConfig()
        """Where the random views are drawn from (the ``toy`` metric's default)."""
        margin: float = 30.0
        """Janus: orbit views whose angle to the front is within this many degrees of 90° are not scored."""
        threshold: float = 0.5
        """Janus: a view shows the face when its visibility probability exceeds this."""

    def applies(self, ctx: EvalContext) -> str | None:
        from sdbench.world.grammar import parse

        try:
            parse(ctx.prompt, "v2")
        except ValueError as e:
            return f"the prompt is not a toy-world prompt ({e})"
        folder = _evaluator_dir()
        if not (folder / "open_clip_model.safetensors").is_file():
            return Notice(
                f"the toy v2 evaluator's weights are missing from {folder}, so the pattern read-out, Janus score "
                f"and diversity read-out are left out; train them with "
                f"'python -m sdbench.world.train_evaluator --world v2 --out {folder}', then 'sdbench eval' the trial"
            )
        return None

    @torch.no_grad()
    def compute(self, ctx: EvalContext) -> dict[str, float]:
        from sdbench.evaluation.appearance import pattern_readout
        from sdbench.evaluation.diversity import READOUT_FILE
        from sdbench.evaluation.janus import janus_score, marking_visibility
        from sdbench.evaluation.toy import load_evaluator, read_attributes
        from sdbench.world.grammar import parse
        from sdbench.world.scenes import COLOURS, PATTERNS, SHAPES

        p = parse(ctx.prompt, "v2")
        scorer = load_evaluator("cpu", str(_evaluator_dir()))
        _, out = ctx.random_views(self.cfg.views, self.cfg.cameras)
        r = read_attributes(out.rgb.float().cpu(), scorer)
        metrics = {f"toy2_{k}": v for k, v in pattern_readout(r.probs["pattern"], PATTERNS.index(p.surface)).items()}
        right = r.pattern == PATTERNS.index(p.surface)
        if p.shape is not None:
            shape_ok = r.shape == SHAPES.index(p.shape)
            metrics["toy2_shape_acc"] = shape_ok.float().mean().item()
            right &= shape_ok
        if p.colour is not None:
            colour_ok = r.colour == list(COLOURS).index(p.colour)
            metrics["toy2_colour_acc"] = colour_ok.float().mean().item()
            right &= colour_ok
        metrics["toy2_acc"] = right.float().mean().item()

        orbit = read_attributes(ctx.views.rgb.float().cpu(), scorer)
        ctx.files[READOUT_FILE] = {"embedding": orbit.embedding, **{f"probs.{k}": v for k, v in orbit.probs.items()}}
        if p.marking and ctx.representation.is_3d:
            cams = ctx.cameras.to("cpu")
            visible, hidden = marking_visibility(cams.azimuth, cams.elevation, margin=self.cfg.margin)
            janus = janus_score(orbit.probs["marking"][:, 1], visible, hidden, self.cfg.threshold)
            metrics.update({f"toy2_{k}": v for k, v in janus.items()})
        return {k: v for k, v in metrics.items() if not math.isnan(v)}
