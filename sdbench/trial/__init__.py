"""The one trial loop, used by ``sdbench run`` and by every worker of ``sdbench sweep``.

A trial optimises one representation for one prompt with one loss and prior, under a budget,
then evaluates it and writes its directory::

    result.json   the contract's fields (status, metrics, cost, hardware, versions, config)
    views.png     a grid of evaluation views
    history.jsonl per-step logs (every ``log_every`` steps)
    turntable.gif for 3D representations, plus whatever the representation exports

Same seed, same machine → bit-identical results on CPU: initial parameters, timesteps, noise and
cameras come from the trial's own generators, seeded by the trial seed (:mod:`sdbench.trial.state`).

The package, one job per module: :mod:`~sdbench.trial.spec` (config, plugins, overrides),
:mod:`~sdbench.trial.state` (the live objects and their generators), :mod:`~sdbench.trial.checkpoint`,
:mod:`~sdbench.trial.loop` (optimisation), :mod:`~sdbench.trial.metrics` (evaluation, re-evaluation),
:mod:`~sdbench.trial.export` (files and turntable) and :mod:`~sdbench.trial.run` (``run_trial``).
"""

from sdbench.trial.checkpoint import CHECKPOINT_FILE, restore_checkpoint, save_checkpoint
from sdbench.trial.export import export_files
from sdbench.trial.loop import optimise
from sdbench.trial.metrics import evaluate, reevaluate
from sdbench.trial.run import check_writable, new_result, run_trial
from sdbench.trial.spec import SECTIONS, TrialConfig, TrialSpec, check_metrics, resolve, resolve_prior, spec_from_config
from sdbench.trial.state import TrialGenerators, TrialState, build

__all__ = [
    "CHECKPOINT_FILE",
    "SECTIONS",
    "TrialConfig",
    "TrialGenerators",
    "TrialSpec",
    "TrialState",
    "build",
    "check_metrics",
    "check_writable",
    "evaluate",
    "export_files",
    "new_result",
    "optimise",
    "reevaluate",
    "resolve",
    "resolve_prior",
    "restore_checkpoint",
    "run_trial",
    "save_checkpoint",
    "spec_from_config",
]
