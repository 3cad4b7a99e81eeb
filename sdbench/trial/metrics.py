"""A trial's metrics: evaluation views, every metric that applies, and re-evaluation of a saved trial."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from sdbench import registry
from sdbench.cameras import Cameras
from sdbench.errors import UserError
from sdbench.io import save_grid, save_image, save_tensors
from sdbench.results import TrialResult, load_result, write_result
from sdbench.trial.checkpoint import CHECKPOINT_FILE
from sdbench.trial.spec import TrialSpec, spec_from_config
from sdbench.trial.state import TrialGenerators
from sdbench.trial.timing import TIMER


def evaluate(
    spec: TrialSpec,
    prior: Any,
    representation: Any,
    out_dir: Path | None = None,
    metrics: tuple[str, ...] | None = None,
    strict: bool = True,
) -> tuple[dict[str, float], list[str]]:
    """Compute metrics on an orbit of evaluation views; returns (metrics, warnings).

    ``metrics``: names to compute (default: the trial's ``metrics``); with ``all``, metrics that do
    not apply (or whose weights are missing) are skipped (a :class:`~sdbench.evaluation.base.Notice`
    reason is recorded among the warnings), while a metric named explicitly that cannot run is a
    :class:`UserError` saying why, unless ``strict`` is false and the reason is a
    :class:`~sdbench.evaluation.base.Notice` (weights not there yet: the end of a trial, which must not
    lose the trained representation; ``sdbench eval`` adds the metric later). Tensors metrics leave in
    ``ctx.files`` are saved into ``out_dir``.
    """
    from sdbench.evaluation.base import EvalContext, Notice

    t = spec.trial
    wanted = tuple(metrics) if metrics is not None else t.metrics
    res = representation.resolution
    n_views = t.eval_views if representation.is_3d else 1
    cams = Cameras.orbit(n_views, elevation=t.eval_elevation, radius=t.cameras.radius[0], fovy=t.cameras.fovy[0])
    cams = cams.to(prior.device)
    with torch.no_grad():
        views = representation.render(cams, res, res)
    ctx = EvalContext(t.prompt, prior, representation, cams, views, t.seed)
    names = registry.METRICS.names() if "all" in wanted else list(wanted)
    values: dict[str, float] = {}
    warnings: list[str] = []
    for name in names:
        try:
            cls = registry.METRICS.get(name)
        except UserError as e:
            if "all" in wanted:
                warnings.append(str(e))
                continue
            raise
        metric = cls(cls.Config())
        reason = metric.applies(ctx)
        if reason:
            if "all" not in wanted and (strict or not isinstance(reason, Notice)):
                raise UserError(f"metric {name} cannot run on {t.prompt!r}: {reason}")
            if isinstance(reason, Notice):
                warnings.append(f"metric {name} omitted: {reason}")
            continue
        with torch.no_grad(), TIMER.section(f"eval:{name}"):
            values.update({k: float(v) for k, v in metric.compute(ctx).items()})
    if out_dir is not None:
        save_grid(views.rgb, out_dir / "views.png", nrow=min(len(cams), 8))
        for i, view in enumerate(views.rgb):  # one file per view, for FID
            save_image(view, out_dir / "views" / f"{i:03d}.png")
        for file, tensors in ctx.files.items():
            save_tensors(tensors, out_dir / file)
    return values, warnings


def reevaluate(trial_dir: Path, metrics: tuple[str, ...] | None = None, priors: dict | None = None) -> TrialResult:
    """Recompute the metrics of a completed trial directory from its saved representation and
    rewrite its ``result.json`` (metrics are merged: names not recomputed are kept)."""
    trial_dir = Path(trial_dir)
    result = load_result(trial_dir)
    if not result.completed:
        raise UserError(f"{trial_dir}: the trial did not complete (status {result.status!r}); nothing to evaluate")
    if not (trial_dir / CHECKPOINT_FILE).is_file():
        raise UserError(f"{trial_dir} has no {CHECKPOINT_FILE}; rerun the trial")
    spec = spec_from_config(result.config)
    priors = {} if priors is None else priors
    key = (spec.prior_cls, repr(spec.prior))
    if key not in priors:
        priors[key] = spec.prior_cls(spec.prior)
    prior = priors[key]
    torch.set_flush_denormal(True)
    rep = spec.representation_cls(
        spec.representation,
        resolution=spec.trial.resolution or prior.resolution,
        prompt=spec.trial.prompt,
        generator=TrialGenerators.from_seed(spec.trial.seed).representation,  # the weights are loaded over it
    )
    rep.load_weights(torch.load(trial_dir / CHECKPOINT_FILE, map_location="cpu", weights_only=False)["representation"])
    rep = rep.to(prior.device).eval()
    start = time.perf_counter()
    values, warnings = evaluate(spec, prior, rep, trial_dir, metrics)
    result = replace(
        result,
        metrics={**result.metrics, **values},
        cost=replace(result.cost, eval_seconds=round(time.perf_counter() - start, 3)),
        warnings=tuple(warnings) or result.warnings,
    )
    write_result(trial_dir, result)
    return result
