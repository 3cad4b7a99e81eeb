"""What a trial is: its config, its resolved plugins, and how ``--set`` overrides reach them."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sdbench import config as cfgutil
from sdbench import registry
from sdbench.budget import Budget
from sdbench.cameras import CameraConfig
from sdbench.errors import UserError

SECTIONS = {"trial": "trial", "loss": "loss", "rep": "representation", "representation": "representation", "prior": "prior"}


@dataclass(frozen=True)
class TrialConfig:
    """Everything about a trial that is not a plugin's own config."""

    prompt: str
    """The text prompt (view words are appended per camera when ``view_dependent``)."""
    loss: str = "sds"
    """Registered loss name."""
    representation: str = "gaussians"
    """Registered representation name (or alias)."""
    prior: str = "toy"
    """Registered prior name, or a path to a local diffusers checkpoint folder."""
    seed: int = 0
    budget: Budget = Budget("steps", 500)
    batch_size: int = 1
    """Views rendered per optimisation step."""
    resolution: int = 0
    """Render size in pixels; 0 means the prior's native resolution."""
    view_dependent: bool = True
    """Append 'front/side/back/overhead view' to the prompt per camera."""
    cameras: CameraConfig = CameraConfig()
    eval_views: int = 8
    """Evaluation views: an orbit of this many cameras."""
    eval_elevation: float = 15.0
    turntable_frames: int = 16
    metrics: tuple[str, ...] = ("all",)
    """Metric names to compute; 'all' means every registered metric that applies."""
    threads: int = 0
    """torch CPU threads; 0 leaves torch's default."""
    log_every: int = 10
    checkpoint_every: int = 0
    """Write a resumable checkpoint.pt every this many steps (0: only the final one)."""
    max_nonfinite_grad_share: float = 0.1
    """NaN/inf gradients are zeroed and counted; a trial that had them in more than this share of its
    steps ends ``failed`` (its result would mean nothing)."""
    scale_schedules: bool = True
    """Scale the step schedules of the loss and the representation (t annealing, densification: each
    config's ``step_schedule``) to the trial's length by the ratio of their reference run; fields set
    with ``--set`` keep their values. False: every schedule as its config writes it."""
    schedule_steps: int = 0
    """The run length schedules are scaled to; 0: the budget's steps. An ``nfe`` or ``seconds`` budget
    has no step count beforehand: with 0 its schedules are not scaled (set this to the expected steps)."""
    arm: str = ""
    """The trial's arm in a study: a name for its loss with its overrides (``sds@7.5``: SDS with
    ``loss.cfg_scale=7.5``), set per group of a sweep definition. Results group by it instead of the loss
    name (:func:`sdbench.results.group_key`), so two arms of one loss stay apart. Empty: the loss name."""


@dataclass
class TrialSpec:
    """A trial with its plugins resolved and every config typed (what ``result.json`` records)."""

    trial: TrialConfig
    loss_cls: type
    loss: Any
    representation_cls: type
    representation: Any
    prior_cls: type
    prior: Any

    def config_dict(self) -> dict[str, Any]:
        return {
            "trial": cfgutil.to_dict(self.trial),
            "loss": cfgutil.to_dict(self.loss),
            "representation": cfgutil.to_dict(self.representation),
            "prior": cfgutil.to_dict(self.prior),
        }


def _is_path(name: str) -> bool:
    return os.sep in name or name.startswith((".", "~")) or Path(name).expanduser().exists()


def resolve_prior(name: str) -> tuple[type, Any]:
    """A registered prior, or a local diffusers folder through the generic adapter."""
    if name in registry.PRIORS.entries() or not _is_path(name):
        cls = registry.PRIORS.get(name)
        return cls, cls.Config()
    from sdbench.priors.diffusers_prior import DiffusersPrior

    path = Path(name).expanduser()
    if not path.is_dir():
        raise UserError(
            f"prior checkpoint folder {name} does not exist; pass a local diffusers folder, or a prior from 'sdbench list'"
        )
    return DiffusersPrior, DiffusersPrior.Config(path=str(path.resolve()))


def resolve(trial: TrialConfig, overrides: list[str] | tuple[str, ...] = ()) -> TrialSpec:
    """Validate a trial, look up its plugins and apply ``--set KEY=VALUE`` overrides.

    Keys start with ``trial.``, ``loss.``, ``rep.``/``representation.`` or ``prior.``. A loss or
    representation key may be scoped to one plugin, ``loss@ism.anneal_steps=45`` or
    ``rep@gaussians.lr_sh0=0.03``: it applies only to trials of that plugin (and is checked against
    that plugin's config in every case), so one sweep can carry per-plugin settings.

    Then the step schedules of the loss and the representation are scaled to the trial's length
    (:func:`schedule_steps`; each config's ``step_schedule``, :func:`sdbench.config.scale_steps`),
    except the fields set here: ``result.json`` records the values the trial ran with.
    """
    parsed = []
    for item in overrides:
        key, sep, value = item.partition("=")
        section, dot, rest = key.strip().partition(".")
        section, _, only = section.partition("@")
        if not sep or not dot or not rest:
            raise UserError(f"bad --set {item!r}; use SECTION.KEY=VALUE with SECTION one of trial, loss, rep, prior")
        if section not in SECTIONS:
            raise UserError(f"bad --set {item!r}: unknown section {section!r}; use trial, loss, rep or prior")
        if only and SECTIONS[section] not in ("loss", "representation"):
            raise UserError(f"bad --set {item!r}: only loss and rep keys can be scoped to a plugin (loss@NAME., rep@NAME.)")
        parsed.append((SECTIONS[section], rest, value, only))
    for section, key, value, _ in parsed:
        if section == "trial":
            trial = cfgutil.override(trial, key, value, "trial")
    if not trial.prompt or not trial.prompt.strip():
        raise UserError('the prompt is empty; pass --prompt "a red cube"')
    if trial.batch_size < 1:
        raise UserError(f"batch_size must be at least 1, got {trial.batch_size}")
    if trial.eval_views < 1:
        raise UserError(f"eval_views must be at least 1, got {trial.eval_views}")
    if not 0 <= trial.max_nonfinite_grad_share <= 1:
        raise UserError(f"max_nonfinite_grad_share must be in [0, 1], got {trial.max_nonfinite_grad_share}")
    if trial.schedule_steps < 0:
        raise UserError(f"schedule_steps must be 0 (the budget's steps) or positive, got {trial.schedule_steps}")
    loss_cls = registry.LOSSES.get(trial.loss)
    rep_cls = registry.REPRESENTATIONS.get(trial.representation)
    prior_cls, prior_cfg = resolve_prior(trial.prior)
    prior_cls.check_prompt(trial.prompt)
    trial = dataclasses.replace(
        trial, loss=registry.LOSSES.canonical(trial.loss), representation=registry.REPRESENTATIONS.canonical(trial.representation)
    )
    configs = {"loss": loss_cls.Config(), "representation": rep_cls.Config(), "prior": prior_cfg}
    names = {"loss": trial.loss, "representation": trial.representation}
    regs = {"loss": registry.LOSSES, "representation": registry.REPRESENTATIONS}
    explicit: dict[str, list[str]] = {"loss": [], "representation": [], "prior": []}
    for section, key, value, only in parsed:
        if section == "trial":
            continue
        if only and regs[section].canonical(only) != names[section]:  # unknown names raise here
            cfgutil.override(regs[section].get(only).Config(), key, value, f"{section}@{only}")  # validated, not applied
            continue
        configs[section] = cfgutil.override(configs[section], key, value, section)
        explicit[section].append(key)
    steps = schedule_steps(trial)
    if steps:
        for section in ("loss", "representation"):
            configs[section] = cfgutil.scale_steps(configs[section], steps, explicit[section])
    return TrialSpec(trial, loss_cls, configs["loss"], rep_cls, configs["representation"], prior_cls, configs["prior"])


def schedule_steps(trial: TrialConfig) -> int:
    """The run length a trial scales its plugins' step schedules to (0: none; see ``scale_schedules``)."""
    if not trial.scale_schedules:
        return 0
    if trial.schedule_steps:
        return trial.schedule_steps
    return int(trial.budget.value) if trial.budget.kind == "steps" else 0


def spec_from_config(config: dict[str, Any]) -> TrialSpec:
    """Rebuild a :class:`TrialSpec` from the ``config`` of a ``result.json``."""
    trial = cfgutil.from_dict(TrialConfig, config["trial"], "trial")
    loss_cls = registry.LOSSES.get(trial.loss)
    rep_cls = registry.REPRESENTATIONS.get(trial.representation)
    prior_cls, _ = resolve_prior(trial.prior)
    return TrialSpec(
        trial,
        loss_cls,
        cfgutil.from_dict(loss_cls.Config, config["loss"], "loss"),
        rep_cls,
        cfgutil.from_dict(rep_cls.Config, config["representation"], "representation"),
        prior_cls,
        cfgutil.from_dict(prior_cls.Config, config["prior"], "prior"),
    )


def check_metrics(spec: TrialSpec) -> None:
    """``UserError`` when a metric the trial names can never score its prompt (a truth-based metric on an
    ambiguous prompt): ``sdbench run`` and the sweep planner call it before optimising, so the error comes in
    one line at once instead of after the run (or on every worker). Re-evaluating an old trial does not."""
    from sdbench import registry

    t = spec.trial
    if "all" in t.metrics:  # "all" skips what does not apply
        return
    for name in t.metrics:
        check = getattr(registry.METRICS.get(name), "applies_to_prompt", None)  # plugins may predate it
        reason = check(t.prompt) if check is not None else None
        if reason:
            raise UserError(f"metric {name} cannot run on {t.prompt!r}: {reason} (set trial.metrics for its group)")
