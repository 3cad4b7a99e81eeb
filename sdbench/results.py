"""A trial's result, typed: what ``result.json`` holds, the one writer and the one loader.

Every ``result.json`` is written by :func:`write_result` and read back by :func:`load_result` (the
trial loop, ``sdbench eval``, the sweep, the report, the study document and the CLI all go through
them). The file carries ``schema_version``; files without one are schema 1 (sdbench before the typed
result) and load into the same :class:`TrialResult`, with the fields they lack left unknown (``None``).

The shared definitions of results live here too: :func:`group_key` (the rows of every table: prior,
loss or arm, representation, budget), :data:`HEADLINE_METRICS` (the metrics shown first, with short labels)
and :meth:`TrialResult.value` (a metric or ``cost.<field>`` by name). The budget label is
:attr:`sdbench.budget.Budget.label`, the file-name slug :func:`sdbench.io.slug`.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, NamedTuple

from sdbench import config as cfgutil
from sdbench.budget import Budget
from sdbench.errors import UserError
from sdbench.io import write_json

SCHEMA_VERSION = 2
RESULT_FILE = "result.json"
Status = Literal["completed", "failed"]

#: Metrics shown first (report plots, the CLI's sweep table, the study's paired differences), in this
#: order, with the short label a narrow table uses. A metric missing from a sweep is skipped.
HEADLINE_METRICS: dict[str, str] = {
    "toy_acc": "acc",
    "toy_colour_error": "col.err",
    "toy_chroma_error": "chroma",  # CIELAB (v2); the HSV saturation error is legacy
    "toy_background_error": "bg.err",
    "toy_iou": "iou",
    "clip_toy": "clip",
    "clip_vit_l_14": "clipL14",
    "denoise_mse": "denoise",
}


@dataclass(frozen=True)
class Cost:
    """What a trial spent. ``None``: not measured (a trial that failed early, or an older file)."""

    seconds: float | None = None
    """Optimisation wall-clock seconds (evaluation excluded)."""
    steps: int | None = None
    """Optimisation steps taken."""
    nfe: int | None = None
    """Prior network evaluations (per view: a batch of B counts B)."""
    seconds_per_step: float | None = None
    peak_memory_mb: float | None = None
    """CUDA max-allocated on a GPU, else the process's peak RSS, in MiB."""
    nfe_with_grad: int | None = None
    """Evaluations that ran with autograd (VSD's LoRA training)."""
    eval_seconds: float | None = None
    """Seconds spent on evaluation and the trial's files."""
    started_at: float | None = None
    """Unix time the trial started (this process, for a resumed trial)."""
    finished_at: float | None = None
    """Unix time the trial finished."""
    nonfinite_grad_steps: int | None = None
    """Steps in which a gradient held NaN/inf entries (zeroed so the step does no harm, and counted:
    a trial above ``trial.max_nonfinite_grad_share`` of its steps fails)."""


@dataclass(frozen=True)
class Hardware:
    """What ran the trial. ``None``: not recorded (an older file, or a trial whose process died)."""

    device: str | None = None
    """torch device of the prior (``cpu``, ``cuda:0``)."""
    cpu: str | None = None
    cpu_count: int | None = None
    torch_threads: int | None = None
    gpu: str | None = None
    """CUDA device name, or None on a CPU."""
    platform: str | None = None
    hostname: str | None = None
    """The machine's network name (``socket.gethostname()``)."""
    node_id: str | None = None
    """The Ray node id when the trial ran as a Ray task (a sweep), else None."""


class GroupKey(NamedTuple):
    """The rows of every results table: trials with the same key are pooled over prompts and seeds."""

    prior: str
    loss: str
    """The loss name, or the trial's arm when it has one (``sds@7.5``; :attr:`TrialResult.arm`)."""
    representation: str
    budget: str
    """The budget's label, ``steps:500``."""


@dataclass(frozen=True)
class TrialResult:
    """One trial's outcome (``result.json``, schema 2)."""

    prompt: str
    loss: str
    """Registered loss name (canonical, not an alias)."""
    representation: str
    prior: str
    """Registered prior name or checkpoint folder."""
    seed: int
    budget: Budget
    status: Status
    """``completed`` (metrics computed) or ``failed`` (``error`` says why)."""
    error: str | None = None
    """One line: why the trial failed (None when it completed)."""
    metrics: dict[str, float] = field(default_factory=dict)
    """Metric values by name (NaN allowed: a metric that could not be computed on this trial)."""
    cost: Cost = Cost()
    hardware: Hardware = Hardware()
    versions: dict[str, str | None] = field(default_factory=dict)
    """Python and library versions of the process that ran the trial."""
    config: dict[str, Any] = field(default_factory=dict)
    """The full resolved config: ``trial``, ``loss``, ``representation``, ``prior`` sections."""
    started_at: str | None = None
    """ISO 8601 UTC time the trial started."""
    warnings: tuple[str, ...] = ()
    """Metrics that were skipped, and why."""
    schema_version: int = SCHEMA_VERSION

    @property
    def completed(self) -> bool:
        return self.status == "completed"

    @property
    def arm(self) -> str:
        """The study arm the trial ran in (``trial.arm`` of its config: a loss with its overrides, e.g.
        ``sds@7.5``), else the loss name."""
        trial = self.config.get("trial")
        arm = trial.get("arm") if isinstance(trial, dict) else None
        return arm if isinstance(arm, str) and arm else self.loss

    @property
    def group(self) -> GroupKey:
        return group_key(self)

    def value(self, column: str) -> float:
        """A metric by name, or a cost figure as ``cost.<field>``; NaN when absent."""
        if column.startswith("cost."):
            v = getattr(self.cost, column[5:], None)
        else:
            v = self.metrics.get(column)
        return float(v) if isinstance(v, (int, float)) else float("nan")

    # ------------------------------------------------------------ files
    def to_dict(self) -> dict[str, Any]:
        """The JSON layout of ``result.json`` (schema 2)."""
        return {
            "schema_version": self.schema_version,
            "prompt": self.prompt,
            "loss": self.loss,
            "representation": self.representation,
            "prior": self.prior,
            "seed": self.seed,
            "budget": {"kind": self.budget.kind, "value": self.budget.value},
            "status": self.status,
            "error": self.error,
            "metrics": dict(self.metrics),
            "cost": dataclasses.asdict(self.cost),
            "hardware": dataclasses.asdict(self.hardware),
            "versions": dict(self.versions),
            "config": self.config,
            "started_at": self.started_at,
            "warnings": list(self.warnings),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "result") -> TrialResult:
        """A result from its JSON form, schema 1 or 2; ``UserError`` naming ``where`` if it is not one."""
        if not isinstance(data, dict):
            raise UserError(f"{where}: not a result (a JSON object is expected)")
        version = data.get("schema_version", 1)
        if version not in (1, SCHEMA_VERSION):
            raise UserError(f"{where}: schema_version {version!r} is not one this sdbench reads (1 or {SCHEMA_VERSION})")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise UserError(f"{where}: unknown field {unknown[0]!r} in a schema {version} result")
        missing = [k for k in ("prompt", "loss", "representation", "prior", "seed", "budget", "status") if k not in data]
        if missing:
            raise UserError(f"{where}: field {missing[0]!r} is missing")
        if data["status"] not in ("completed", "failed"):
            raise UserError(f"{where}: status {data['status']!r} is neither 'completed' nor 'failed'")
        try:
            return cls(
                prompt=_typed(str, data["prompt"], "prompt"),
                loss=_typed(str, data["loss"], "loss"),
                representation=_typed(str, data["representation"], "representation"),
                prior=_typed(str, data["prior"], "prior"),
                seed=_typed(int, data["seed"], "seed"),
                budget=cfgutil.from_dict(Budget, data["budget"], "budget"),
                status=data["status"],
                error=data.get("error"),
                metrics={str(k): _number(v, f"metrics.{k}") for k, v in (data.get("metrics") or {}).items()},
                cost=cfgutil.from_dict(Cost, data.get("cost") or {}, "cost"),
                hardware=cfgutil.from_dict(Hardware, data.get("hardware") or {}, "hardware"),
                versions=dict(data.get("versions") or {}),
                config=dict(data.get("config") or {}),
                started_at=data.get("started_at"),
                warnings=tuple(data.get("warnings") or ()),
                schema_version=SCHEMA_VERSION,
            )
        except (UserError, ValueError, TypeError) as e:
            raise UserError(f"{where}: {str(e).removeprefix('bad value for ')}") from None


def _typed(tp: type, value: Any, name: str) -> Any:
    if tp is int and isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, tp) or isinstance(value, bool):
        raise ValueError(f"{name} must be {tp.__name__}, got {value!r}")
    return value


def _number(value: Any, name: str) -> float:
    if value is None:
        return math.nan
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a number, got {value!r}")
    return float(value)


# ------------------------------------------------------------------ the one writer, the one loader
def write_result(trial_dir: Path, result: TrialResult) -> Path:
    """Write ``trial_dir/result.json`` atomically; returns its path."""
    return write_json(Path(trial_dir) / RESULT_FILE, result.to_dict())


def load_result(trial_dir: Path) -> TrialResult:
    """Read ``trial_dir/result.json`` (schema 1 or 2); ``UserError`` naming the file if it is missing or invalid."""
    path = Path(trial_dir) / RESULT_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{trial_dir} is not a trial directory (no {RESULT_FILE})") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UserError(f"{path} cannot be read: {str(e).splitlines()[0]}") from None
    return TrialResult.from_dict(data, str(path))


def load_results(trial_dirs: Iterable[Path]) -> list[tuple[Path, TrialResult]]:
    """(directory, result) for every directory that holds a ``result.json``, in the given order."""
    return [(Path(d), load_result(d)) for d in trial_dirs if (Path(d) / RESULT_FILE).is_file()]


def group_key(result: TrialResult) -> GroupKey:
    """The table row of a trial: its arm (the loss name when it has none) keeps SDS at CFG 7.5 apart from
    SDS at CFG 100 when a sweep names them ``trial.arm``."""
    return GroupKey(result.prior, result.arm, result.representation, result.budget.label)
