"""``sdbench sweep``: the grid prompt × loss × representation × prior × seed on Ray Tune.

Every grid point is one Tune trial running :func:`sdbench.trial.run_trial` (the loop ``sdbench run``
uses) into ``OUT/trials/<id>/``. Trial ids are derived from the resolved config, so running the same
command on the same ``--out`` again keeps completed trials and runs the missing, failed and
interrupted ones. After a ``kill -9`` of the driver, the next run first ends what the dead driver left
behind (its local Ray processes), so every trial completes exactly once; while a driver runs, a
second sweep on the same ``--out`` is refused (``OUT/.sweep.lock``). A trial that raises or goes
NaN is recorded ``failed`` with a one-line reason and the others go on. At the end ``results.csv``
and ``report.html`` are rebuilt from the trial directories (never appended to), so they cannot hold
duplicates or half rows.

Ray layer (it only adapts): a function trainable turns Tune's config into a :class:`TrialSpec`,
runs the trial with ``threads`` CPU threads (and a GPU fraction when there are GPUs) into a directory
local to its node, logs it to W&B (offline by default), and reports its status, metrics and that
directory as the trial's checkpoint. Tune copies the checkpoint to the sweep's storage (``--storage``:
a path every node mounts or an object-store URI; default ``OUT/ray``) and the driver fetches it into
``OUT/trials/<id>/``, so workers need not share the driver's disk; on a cluster every node must read
the storage, checked before any trial runs. A trial whose attempt dies (its node lost) is run again,
up to ``--retries`` times (Tune's ``FailureConfig(max_failures=...)``, default 3); each trial is
fetched once, and ``OUT/attempts.jsonl`` logs every attempt, retry and fetch.

The package, one job per module: :mod:`~sdbench.sweep.definition` (prompts files, TOML definitions),
:mod:`~sdbench.sweep.plan` (grid → trial ids and specs), :mod:`~sdbench.sweep.directory` (``sweep.json``,
trial statuses), :mod:`~sdbench.sweep.driver` (the lock: one driver per directory, stale leftovers),
:mod:`~sdbench.sweep.ray_backend` (the Tune trainable), :mod:`~sdbench.sweep.storage` (how trial
files reach the sweep directory), :mod:`~sdbench.sweep.wandb_log` and
:mod:`~sdbench.sweep.runner` (``run_sweep``).
"""

from sdbench.sweep.definition import DEFINITION_KEYS, SweepConfig, expand_names, load_definition, read_prompts, restrict
from sdbench.sweep.directory import SWEEP_FILE, trial_status
from sdbench.sweep.driver import LOCK_FILE
from sdbench.sweep.plan import plan, trial_id
from sdbench.sweep.runner import SweepSummary, run_sweep

__all__ = [
    "DEFINITION_KEYS",
    "LOCK_FILE",
    "SWEEP_FILE",
    "SweepConfig",
    "SweepSummary",
    "expand_names",
    "load_definition",
    "plan",
    "read_prompts",
    "restrict",
    "run_sweep",
    "trial_id",
    "trial_status",
]
