"""The one trial loop, used by ``sdbench run`` and by every worker of ``sdbench sweep``.

A trial optimises one representation for one prompt with one loss and prior, under a budget,
then evaluates it and writes its directory::

    result.json   the contract's fields (status, metrics, cost, hardware, versions, config)
    views.png     a grid of evaluation views
    history.jsonl per-step logs (every ``log_every`` steps)
    turntable.gif for 3D representations, plus whatever the representation exports

Same seed, same machine → bit-identical results on CPU: parameters, timesteps, noise and cameras
all come from generators seeded by the trial seed.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from sdbench import config as cfgutil
from sdbench import registry
from sdbench.budget import Budget
from sdbench.cameras import CameraConfig, Cameras
from sdbench.errors import TrialFailed, UserError
from sdbench.hardware import PeakMemory, hardware, versions
from sdbench.io import atomic_write, save_gif, save_grid, save_image, write_json, write_text
from sdbench.priors.base import TextConditioning

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
    for section, key, value, only in parsed:
        if section == "trial":
            continue
        if only and regs[section].canonical(only) != names[section]:  # unknown names raise here
            cfgutil.override(regs[section].get(only).Config(), key, value, f"{section}@{only}")  # validated, not applied
            continue
        configs[section] = cfgutil.override(configs[section], key, value, section)
    return TrialSpec(trial, loss_cls, configs["loss"], rep_cls, configs["representation"], prior_cls, configs["prior"])


def check_writable(directory: Path) -> Path:
    """Create ``directory`` (and parents) and prove a file can be written there; ``UserError`` if not."""
    directory = Path(directory).expanduser()
    try:
        directory.mkdir(parents=True, exist_ok=True)
        probe = directory / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise UserError(f"cannot write to output directory {directory}: {e.strerror or e}") from None
    return directory.resolve()


def seed_everything(seed: int) -> None:
    import random

    import numpy as np

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@dataclass
class TrialState:
    """The live objects of a trial, handed to ``on_step`` callbacks (and to tests)."""

    spec: TrialSpec
    prior: Any
    representation: Any
    loss: Any
    optimizers: dict[str, torch.optim.Optimizer]
    camera_generator: torch.Generator
    step: int = 0
    seconds: float = 0.0
    logs: dict[str, float] = field(default_factory=dict)
    history: list[dict] = field(default_factory=list)
    nfe_before: int = 0
    """NFE spent before this process (a resumed trial)."""
    _nfe0: int = 0
    _grad0: int = 0

    @property
    def nfe(self) -> int:
        """Network evaluations of this trial (the prior's counter may be shared by several trials)."""
        return self.nfe_before + self.prior.nfe.forward - self._nfe0

    @property
    def nfe_with_grad(self) -> int:
        """Evaluations of this process's part of the trial that ran with autograd (VSD's LoRA training)."""
        return self.prior.nfe.with_grad - self._grad0


CHECKPOINT_FILE = "checkpoint.pt"


def save_checkpoint(state: TrialState, path: Path, resumable: bool = True) -> Path:
    """Write the trial's state: representation weights, the loss's own state (LoRA, operator) and,
    when ``resumable``, optimiser and random-generator states to continue bit-identically."""
    import random

    import numpy as np

    data: dict[str, Any] = {
        "config": state.spec.config_dict(),
        "step": state.step,
        "representation": {
            k: v.detach().cpu() if torch.is_tensor(v) else v for k, v in state.representation.state_dict().items()
        },
        "loss": state.loss.checkpoint_state(),
        "resumable": resumable,
    }
    if resumable:
        data.update(
            seconds=state.seconds,
            nfe=state.nfe,
            history=state.history,
            optimizers={k: o.state_dict() for k, o in state.optimizers.items()},
            rng={
                "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
                "camera": state.camera_generator.get_state(),
                "numpy": np.random.get_state(),
                "python": random.getstate(),
            },
        )
    return atomic_write(path, lambda f: torch.save(data, f))


def restore_checkpoint(state: TrialState, data: dict[str, Any]) -> None:
    """Continue a trial from :func:`save_checkpoint` data (same config)."""
    import random

    import numpy as np

    state.representation.load_weights(data["representation"])
    state.representation.to(state.prior.device)
    state.optimizers = state.representation.make_optimizers()
    for k, o in state.optimizers.items():
        o.load_state_dict(data["optimizers"][k])
    state.loss.load_checkpoint_state(data["loss"])
    state.step, state.seconds, state.history = data["step"], data["seconds"], list(data["history"])
    state.nfe_before, state._nfe0 = data["nfe"], state.prior.nfe.forward
    rng = data["rng"]
    torch.set_rng_state(rng["torch"])
    if rng["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
    state.camera_generator.set_state(rng["camera"])
    np.random.set_state(rng["numpy"])
    random.setstate(rng["python"])


def build(spec: TrialSpec, prior: Any | None = None) -> TrialState:
    """Instantiate prior, representation, loss and optimiser (seeded)."""
    t = spec.trial
    if t.threads:
        torch.set_num_threads(t.threads)
    torch.set_flush_denormal(True)
    seed_everything(t.seed)
    prior = prior if prior is not None else spec.prior_cls(spec.prior)
    prior.check_prompt(t.prompt)
    resolution = t.resolution or prior.resolution
    seed_everything(t.seed)
    rep = spec.representation_cls(spec.representation, resolution=resolution, prompt=t.prompt).to(prior.device)
    loss = spec.loss_cls(spec.loss, prior).to(prior.device)
    state = TrialState(spec, prior, rep, loss, rep.make_optimizers(), torch.Generator().manual_seed(t.seed + 1))
    state._nfe0, state._grad0 = prior.nfe.forward, prior.nfe.with_grad
    return state


def _progress(budget: Budget, description: str, enabled: bool):
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[spent]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[logs]}"),
        disable=not enabled,
        transient=False,
    )


def optimise(
    state: TrialState,
    progress: bool = True,
    on_step: Callable[[TrialState], None] | None = None,
    checkpoint_path: Path | None = None,
) -> list[dict]:
    """Run the optimisation loop until the budget is spent; returns the logged history.

    With ``checkpoint_path`` and ``trial.checkpoint_every``, a resumable checkpoint is written
    every that many steps."""
    t = state.spec.trial
    text = TextConditioning(state.prior, t.prompt, t.view_dependent, t.cameras)
    res = state.representation.resolution
    history = state.history
    window: dict[str, list[float]] = {}
    start = time.perf_counter() - state.seconds
    with _progress(t.budget, f"{t.loss} · {t.representation}", progress) as bar:
        task = bar.add_task(f"{t.loss} · {t.representation}", total=1.0, spent="", logs="")
        while not t.budget.exhausted(state.step, state.seconds, state.nfe):
            cams = Cameras.sample(t.batch_size, t.cameras, generator=state.camera_generator).to(state.prior.device)
            out = state.representation.render(cams, res, res)
            result = state.loss(out.rgb, text, cams, state.step)
            if not torch.isfinite(result.loss) or not torch.isfinite(out.rgb).all():
                raise TrialFailed(f"loss became NaN/inf at step {state.step}")
            for opt in state.optimizers.values():
                opt.zero_grad(set_to_none=True)
            state.representation.pre_backward(state.step, out)
            result.loss.backward()
            for opt in state.optimizers.values():
                opt.step()
            state.representation.post_step(state.step, state.optimizers, out)
            state.step += 1
            state.seconds = time.perf_counter() - start
            for k, v in result.logs.items():
                window.setdefault(k, []).append(float(v))
            if state.step % t.log_every == 0 or t.budget.exhausted(state.step, state.seconds, state.nfe):
                state.logs = {k: sum(v) / len(v) for k, v in window.items()}
                window = {}
                if any(not math.isfinite(v) for v in state.logs.values()):
                    raise TrialFailed(f"a logged value became NaN/inf at step {state.step}: {state.logs}")
                history.append({"step": state.step, "seconds": round(state.seconds, 4), "nfe": state.nfe, **state.logs})
                shown = " ".join(f"{k}={v:.3g}" for k, v in list(state.logs.items())[:3])
                bar.update(
                    task,
                    completed=t.budget.fraction(state.step, state.seconds, state.nfe),
                    spent=f"step {state.step} · nfe {state.nfe}",
                    logs=shown,
                )
            if checkpoint_path is not None and t.checkpoint_every and state.step % t.checkpoint_every == 0:
                save_checkpoint(state, checkpoint_path)
            if on_step is not None:
                on_step(state)
        bar.update(task, completed=1.0)
    return history


def evaluate(
    spec: TrialSpec, prior: Any, representation: Any, out_dir: Path | None = None, metrics: tuple[str, ...] | None = None
) -> tuple[dict[str, float], list[str]]:
    """Compute metrics on an orbit of evaluation views; returns (metrics, warnings).

    ``metrics``: names to compute (default: the trial's ``metrics``); with ``all``, metrics that do
    not apply (or whose weights are missing) are skipped, while a metric named explicitly that
    cannot run is a :class:`UserError` saying why.
    """
    from sdbench.evaluation.base import EvalContext

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
            if "all" not in wanted:
                raise UserError(f"metric {name} cannot run on {t.prompt!r}: {reason}")
            continue
        with torch.no_grad():
            values.update({k: float(v) for k, v in metric.compute(ctx).items()})
    if out_dir is not None:
        save_grid(views.rgb, out_dir / "views.png", nrow=min(len(cams), 8))
        for i, view in enumerate(views.rgb):  # one file per view, for FID
            save_image(view, out_dir / "views" / f"{i:03d}.png")
    return values, warnings


def _one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}".rstrip(": ")


def run_trial(
    spec: TrialSpec,
    out_dir: Path,
    progress: bool = True,
    prior: Any | None = None,
    on_step: Callable[[TrialState], None] | None = None,
    resume: bool = True,
) -> dict[str, Any]:
    """Run one trial and write its directory; returns the ``result.json`` content.

    A resumable ``checkpoint.pt`` of the same config in ``out_dir`` (from ``checkpoint_every``) is
    continued bit-identically; at the end ``checkpoint.pt`` holds the final representation and loss
    state (LoRA, operator) without optimiser states.

    Bad input raises :class:`UserError` before anything is written. A failure during the
    trial is recorded as ``status: failed`` with a one-line ``error`` and re-raised as
    :class:`TrialFailed`.
    """
    out_dir = check_writable(out_dir)
    started_at = time.time()
    t = spec.trial
    result: dict[str, Any] = {
        "prompt": t.prompt,
        "loss": t.loss,
        "representation": t.representation,
        "prior": t.prior,
        "seed": t.seed,
        "budget": {"kind": t.budget.kind, "value": t.budget.value},
        "status": "failed",
        "error": None,
        "metrics": {},
        "cost": {},
        "hardware": {},
        "versions": versions(),
        "config": spec.config_dict(),
        "started_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    state = build(spec, prior)  # UserError (bad prompt, missing weights) propagates: nothing written
    ckpt = out_dir / CHECKPOINT_FILE
    if resume and ckpt.is_file():
        data = torch.load(ckpt, map_location="cpu", weights_only=False)
        if data.get("resumable") and data["config"] == spec.config_dict():
            restore_checkpoint(state, data)
    result["hardware"] = hardware(state.prior.device)
    memory = PeakMemory(state.prior.device)
    memory.start()
    try:
        history = optimise(state, progress=progress, on_step=on_step, checkpoint_path=ckpt)
        peak = memory.peak_mb()
        result["cost"] = {
            "seconds": round(state.seconds, 3),
            "steps": state.step,
            "nfe": state.nfe,
            "seconds_per_step": round(state.seconds / max(state.step, 1), 5),
            "peak_memory_mb": round(peak, 1),
            "nfe_with_grad": state.nfe_with_grad,
        }
        write_text(out_dir / "history.jsonl", "".join(json.dumps(h) + "\n" for h in history))
        eval_start = time.perf_counter()
        metrics, warnings = evaluate(state.spec, state.prior, state.representation, out_dir)
        _export(state, out_dir)
        result["cost"]["eval_seconds"] = round(time.perf_counter() - eval_start, 3)
        result["cost"]["started_at"], result["cost"]["finished_at"] = round(started_at, 3), round(time.time(), 3)  # unix time
        result["metrics"] = metrics
        if warnings:
            result["warnings"] = warnings
        result["status"] = "completed"
    except Exception as e:  # noqa: BLE001 - recorded, then re-raised
        if isinstance(e, UserError):
            raise
        result["error"] = _one_line(e)
        result["cost"] = result["cost"] or {"seconds": round(state.seconds, 3), "steps": state.step, "nfe": state.nfe}
        write_json(out_dir / "result.json", result)
        raise TrialFailed(result["error"]) from e
    write_json(out_dir / "result.json", result)
    return result


def _export(state: TrialState, out_dir: Path) -> None:
    t = state.spec.trial
    rep = state.representation
    rep.export(out_dir)
    save_checkpoint(state, out_dir / CHECKPOINT_FILE, resumable=False)
    if rep.is_3d and t.turntable_frames > 0:
        cams = Cameras.orbit(t.turntable_frames, elevation=t.eval_elevation, radius=t.cameras.radius[0], fovy=t.cameras.fovy[0])
        with torch.no_grad():
            frames = rep.render(cams.to(state.prior.device), rep.resolution, rep.resolution).rgb
        save_gif(frames, out_dir / "turntable.gif")


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


def reevaluate(trial_dir: Path, metrics: tuple[str, ...] | None = None, priors: dict | None = None) -> dict[str, Any]:
    """Recompute the metrics of a completed trial directory from its saved representation and
    rewrite its ``result.json`` (metrics are merged: names not recomputed are kept)."""
    import json

    trial_dir = Path(trial_dir)
    result_path = trial_dir / "result.json"
    if not result_path.is_file():
        raise UserError(f"{trial_dir} is not a trial directory (no result.json)")
    result = json.loads(result_path.read_text())
    if result.get("status") != "completed":
        raise UserError(f"{trial_dir}: the trial did not complete (status {result.get('status')!r}); nothing to evaluate")
    if not (trial_dir / CHECKPOINT_FILE).is_file():
        raise UserError(f"{trial_dir} has no {CHECKPOINT_FILE}; rerun the trial")
    spec = spec_from_config(result["config"])
    priors = {} if priors is None else priors
    key = (spec.prior_cls, repr(spec.prior))
    if key not in priors:
        priors[key] = spec.prior_cls(spec.prior)
    prior = priors[key]
    torch.set_flush_denormal(True)
    seed_everything(spec.trial.seed)
    rep = spec.representation_cls(
        spec.representation, resolution=spec.trial.resolution or prior.resolution, prompt=spec.trial.prompt
    )
    rep.load_weights(torch.load(trial_dir / CHECKPOINT_FILE, map_location="cpu", weights_only=False)["representation"])
    rep = rep.to(prior.device).eval()
    start = time.perf_counter()
    values, warnings = evaluate(spec, prior, rep, trial_dir, metrics)
    result["metrics"] = {**result.get("metrics", {}), **values}
    result.setdefault("cost", {})["eval_seconds"] = round(time.perf_counter() - start, 3)
    if warnings:
        result["warnings"] = warnings
    write_json(result_path, result)
    return result
