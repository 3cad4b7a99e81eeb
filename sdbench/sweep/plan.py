"""The grid as a list of resolved trials with stable, readable ids."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

from sdbench.errors import UserError
from sdbench.io import slug
from sdbench.sweep.definition import SweepConfig, expand_names


def trial_id(spec) -> str:
    """A readable, stable id: prompt, arm (the loss name when the trial has no arm), representation, seed
    and a hash of the full config. An empty ``trial.arm`` is left out of the hash, so the ids of sweeps
    without arms are those they had before the field existed (their directories resume)."""
    config = spec.config_dict()
    if not config["trial"].get("arm"):
        config["trial"].pop("arm", None)
    digest = hashlib.sha1(json.dumps(config, sort_keys=True).encode()).hexdigest()[:8]
    t = spec.trial
    name = slug(t.arm, 24) if t.arm else t.loss
    return f"{slug(t.prompt, 28)}-{name}-{t.representation}-s{t.seed}-{digest}"


def _check_metrics(spec: Any) -> None:
    """``UserError`` when a metric the trial names can never score its prompt (e.g. a truth-based metric on an
    ambiguous prompt): found while planning, before any trial runs, instead of on every worker."""
    from sdbench import registry

    t = spec.trial
    if "all" in t.metrics:  # "all" skips what does not apply
        return
    for name in t.metrics:
        check = getattr(registry.METRICS.get(name), "applies_to_prompt", None)  # plugins may predate it
        reason = check(t.prompt) if check is not None else None
        if reason:
            raise UserError(f"metric {name} cannot run on {t.prompt!r}: {reason} (set trial.metrics for its group)")


def plan(cfg: SweepConfig | Sequence[SweepConfig]) -> list[tuple[str, Any]]:
    """Every grid point (of every group) as (id, TrialSpec), validated before anything runs."""
    from sdbench import registry
    from sdbench.trial import TrialConfig, resolve

    out = []
    for group in [cfg] if isinstance(cfg, SweepConfig) else cfg:
        losses = expand_names(group.losses, registry.LOSSES)
        reps = expand_names(group.representations, registry.REPRESENTATIONS)
        for prior in group.priors:
            for rep in reps:
                for loss in losses:
                    for prompt in group.prompts:
                        for seed in group.seeds:
                            t = TrialConfig(
                                prompt=prompt, loss=loss, representation=rep, prior=prior, seed=seed, budget=group.budget
                            )
                            spec = resolve(t, group.overrides)
                            _check_metrics(spec)
                            out.append((trial_id(spec), spec))
    ids = [i for i, _ in out]
    if len(set(ids)) != len(ids):
        raise UserError(
            "the grid has duplicate points (a loss or representation named twice, an alias and its name, "
            "or two groups overlapping)"
        )
    return out
