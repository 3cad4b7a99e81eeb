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


def plan(cfg: SweepConfig | Sequence[SweepConfig]) -> list[tuple[str, Any]]:
    """Every grid point (of every group) as (id, TrialSpec), validated before anything runs."""
    from sdbench import registry
    from sdbench.trial import TrialConfig, check_metrics, resolve

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
                            check_metrics(spec)
                            out.append((trial_id(spec), spec))
    ids = [i for i, _ in out]
    if len(set(ids)) != len(ids):
        raise UserError(
            "the grid has duplicate points (a loss or representation named twice, an alias and its name, "
            "or two groups overlapping)"
        )
    return out
