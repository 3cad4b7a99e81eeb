"""The claims study (``docs/claims.md``): its pre-registered rows, read from the document, judged on a sweep.

The document is the one source of the hypotheses: :func:`read_registration` parses its claims tables
(id, paper, claim, metric · subset, Δ = first arm − second arm, expected direction, δ, gate), its arms
table (arm, loss, ``--set`` overrides) and its prompt subsets (P, T, F, A and the unions S, X), so code
and pre-registration cannot drift; a row it cannot read is a ``UserError`` naming the row. Where the
document names a metric differently from the key trials record, :data:`METRICS` maps it (and the
results say so): ``toy_acc`` is ``toy2_acc``, ``janus_two_faced`` is ``toy2_janus_two_faced``,
``diversity_distance`` is computed per (arm, prompt) from the two seeds' kept v2 read-outs.

:func:`judge` follows the document's analysis plan and verdict rules, with ``sdbench.stats``:

1. trials of the confirmatory representation (3D Gaussians), one prior and one equal-steps budget; a
   trial's arm is its ``trial.arm`` (:attr:`sdbench.results.TrialResult.arm`), checked against the
   arms table (loss and overrides);
2. phenomenon gates on the baseline arm alone (:data:`GATES`), with the same cluster bootstrap; a claim
   whose gate fails, whose arm is missing, or with fewer than 5 prompts of defined values is
   *untestable here* and leaves the family;
3. paired differences on (prompt, seed), seeds averaged per prompt, prompt-cluster bootstrap (10 000
   resamples, ``numpy.random.default_rng(21)``), 95 % percentile interval; p-values from the same
   distribution with ``(1 + count) / (R + 1)``: two-sided for ↑/↓, two one-sided tests against ±δ for ≈,
   one-sided against −δ for non-inferiority;
4. Holm across the family; verdicts *reproduced* / *not reproduced (effect < X)* / *opposite* /
   *untestable here*; the smallest detectable effect SDE = (z₀.₉₇₅ + z₀.₈₀)·SE (SE: the bootstrap
   standard deviation) for every claim not reproduced;
5. proportions with cluster-bootstrap and Wilson (n = prompts) intervals; per-prompt tables; the
   exploratory replications on other representations and the secondary metrics, uncorrected.

C22 (VDM's cost against SDS's on a GPU) is judged from per-step times of ``python -m benchmarks.gpu``
(``--gpu-timings``): the timing repetitions are resampled, the statistic is log(median VDM / median
SDS), equivalence margins log 0.8 and log 1.25. Without such a file it is untestable here.

:func:`write_claims` writes ``claims.json`` into the sweep directory, a picture per claim and the
cost-against-quality Pareto plot into the document's ``images/`` folder, and the results into the
document between ``<!-- sdbench:claims -->`` and ``<!-- /sdbench:claims -->``, nothing else.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from sdbench.errors import UserError
from sdbench.results import TrialResult, load_results
from sdbench.stats import bootstrap_distribution, cluster_bootstrap, holm, paired_differences, tail_share, wilson

START, END = "<!-- sdbench:claims -->", "<!-- /sdbench:claims -->"
CONFIRMATORY = "gaussians"
"""The representation every confirmatory claim is judged on (docs/claims.md, design)."""
RESAMPLES = 10_000
SEED = 21
"""``numpy.random.default_rng(21)``: the generator the analysis plan fixes (``PCG64(21)``, as ``sdbench.stats``)."""
ALPHA = 0.05
MIN_PROMPTS = 5
"""A claim (or gate) with fewer prompts of defined values is untestable here."""
SDE_Z = 1.959963984540054 + 0.8416212335729143
"""z₀.₉₇₅ + z₀.₈₀ ≈ 2.80: the smallest detectable effect is this many bootstrap standard errors."""
LOG_FLOOR = 1e-3
"""log₂ ``toy_detail`` per trial is log₂(max(detail, 10⁻³)) (metrics table of docs/claims.md)."""
DIVERSITY = "diversity_distance"

Test = Literal["up", "down", "equivalent", "noninferior"]
Result = tuple[Path, TrialResult]


# ------------------------------------------------------------------ what the document names
@dataclass(frozen=True)
class Metric:
    """How a metric of ``docs/claims.md`` is read from trials."""

    name: str
    """As the document names it."""
    key: str
    """The key trials record in ``result.json`` (``diversity_distance``: computed from the kept read-outs)."""
    share: bool = False
    """A proportion: differences in percentage points, Wilson intervals beside the bootstrap ones."""
    note: str = ""
    """Why the key differs from the document's name, if it does."""


METRICS: dict[str, Metric] = {
    "toy_acc": Metric(
        "toy_acc",
        "toy2_acc",
        share=True,
        note="the v2 evaluator's share of views with every stated attribute read right (shape, colour and the "
        "pattern, plain when none is named); `toy_acc` itself is the v1 evaluator's and exists for the plain "
        "prompts only",
    ),
    "toy_detail": Metric("toy_detail", "toy_detail"),
    "toy_chroma_error": Metric("toy_chroma_error", "toy_chroma_error"),
    "toy_lightness_error": Metric("toy_lightness_error", "toy_lightness_error"),
    "toy_contrast_error": Metric("toy_contrast_error", "toy_contrast_error"),
    "toy_delta_e": Metric("toy_delta_e", "toy_delta_e"),
    "toy_noise": Metric("toy_noise", "toy_noise"),
    "toy_iou": Metric("toy_iou", "toy_iou"),
    "pattern_acc": Metric("pattern_acc", "toy2_pattern_acc", share=True, note="the v2 evaluator's pattern read-out"),
    "janus_two_faced": Metric(
        "janus_two_faced", "toy2_janus_two_faced", share=True, note="the v2 evaluator's Janus score on the orbit"
    ),
    "janus_false_front": Metric("janus_false_front", "toy2_janus_false_front", note="the v2 evaluator's Janus score"),
    DIVERSITY: Metric(
        DIVERSITY,
        DIVERSITY,
        note="per (arm, prompt) across its two seeds, from their kept v2 read-outs (`sdbench.report.group_diversity`)",
    ),
}
SECONDARY: dict[str, tuple[str, ...]] = {
    "toy_chroma_error": ("toy_lightness_error", "toy_contrast_error"),
    "toy_detail": ("pattern_acc", "toy_noise"),
    "janus_two_faced": ("janus_false_front",),
}
"""Exploratory metrics reported beside a claim's metric (docs/claims.md, exploratory), uncorrected."""


EXPLORATORY: tuple[tuple[str, str, str, str, str, Test], ...] = (
    # (the registered row it extends, metric, subset, a, b, expected direction), docs/claims.md "Exploratory":
    # the detail claims and the saturation claims against SDS at CFG 7.5 instead of 100,
    ("C5", "toy_detail", "T", "vsd", "sds@7.5", "up"),
    ("C7", "toy_detail", "T", "ism", "sds@7.5", "up"),
    ("C26", "toy_detail", "T", "sdi", "sds@7.5", "up"),
    ("C27", "toy_detail", "T", "cds", "sds@7.5", "up"),
    ("C4", "toy_chroma_error", "S", "vsd", "sds@7.5", "down"),
    ("C9", "toy_chroma_error", "S", "csd", "sds@7.5", "down"),
    ("C10", "toy_chroma_error", "S", "nfsd", "sds@7.5", "down"),
    ("C29", "toy_chroma_error", "S", "sds_bridge", "sds@7.5", "down"),
    # ASD on prompt fidelity and detail against SDS and VSD (its headline U1 is untestable here),
    ("ASD", "toy_acc", "X", "asd", "sds", "up"),
    ("ASD", "toy_acc", "X", "asd", "vsd", "up"),
    ("ASD", "toy_detail", "T", "asd", "sds", "up"),
    ("ASD", "toy_detail", "T", "asd", "vsd", "up"),
    # VDM against SDS at CFG 100 (C14 and C15 compare it with SDS at 7.5 and with its own ablation).
    ("C14", "toy_detail", "T", "vdm", "sds", "up"),
    ("C15", "toy_chroma_error", "S", "vdm", "sds", "down"),
)
"""The exploratory paired comparisons the document registers, reported with uncorrected intervals (not in the
family, no gates); an arm the sweep lacks leaves its row out."""
CUTOFF_ARMS: tuple[str, ...] = ("vdm_nodca", "vdm_cut100", "vdm", "vdm_cut500")
"""DreamMapping's cut-off ordering (exploratory): chroma error on S at no DCA, cut-off 100, 300 (default), 500."""
CUTOFF_LABELS = {"vdm_nodca": "none", "vdm_cut100": "100", "vdm": "300 (default)", "vdm_cut500": "500"}


@dataclass(frozen=True)
class Claim:
    """One row of the pre-registered family."""

    id: str
    source: str
    """Paper and where in it."""
    text: str
    """The claim in one sentence."""
    metric: str
    """The document's metric name (:data:`METRICS` maps it to a key); ``cost`` for C22's time ratio."""
    log2: bool
    """Compared as log₂ of the metric (``toy_detail``)."""
    subset: str
    """Prompt subset letter (P, T, F, A, S, X); empty for C22."""
    a: str
    """First arm of Δ = a − b (the ratio a / b for C22)."""
    b: str
    test: Test
    """up / down (Δ's expected sign), equivalent (|Δ| < δ) or noninferior (Δ ≥ −δ)."""
    delta: float
    """δ in the metric's unit (shares as fractions: 10 pp is 0.10; C22: log 1.25)."""
    gate: tuple[str, str] | None
    """(gate id, arm) the claim depends on, e.g. ("G1", "sds")."""
    ratio: tuple[float, float] | None = None
    """C22: the equivalence margins of the ratio a / b, (0.8, 1.25)."""

    @property
    def label(self) -> str:
        """``Δ = a − b`` as the tables write it."""
        return f"`{self.a}` / `{self.b}`" if self.ratio else f"`{self.a}` − `{self.b}`"


@dataclass(frozen=True)
class Arm:
    """One row of the arms table: a registered loss with overrides."""

    name: str
    loss: str
    overrides: tuple[str, ...] = ()
    """The ``--set KEY=VALUE`` overrides the table names (only those written as ``--set``)."""


@dataclass(frozen=True)
class Registration:
    """The machine-readable pre-registration."""

    claims: tuple[Claim, ...]
    arms: dict[str, Arm]
    subsets: dict[str, tuple[str, ...]]
    """Prompts per subset letter, including the unions S and X."""


@dataclass(frozen=True)
class Gate:
    """A phenomenon gate of docs/claims.md: the baseline arm alone must show the problem."""

    id: str
    phenomenon: str
    metric: str
    log2: bool
    subset: str
    sign: int
    """+1: the phenomenon is a value above the truth; −1: below (detail; diversity below its reference)."""
    threshold: float
    inclusive: bool = False
    """``estimate ≥ threshold`` passes (G4's "share ≥ 10 %"); else strictly beyond."""


GATES: dict[str, Gate] = {
    "G1": Gate("G1", "over-saturation", "toy_chroma_error", False, "S", +1, 2.3),
    "G2": Gate("G2", "over-smoothing", "toy_detail", True, "T", -1, 0.5),
    "G3": Gate("G3", "noise", "toy_noise", False, "X", +1, 0.01),
    "G4": Gate("G4", "Janus", "janus_two_faced", False, "F", +1, 0.10, inclusive=True),
    "G5": Gate("G5", "low diversity", DIVERSITY, False, "A", -1, 0.10),
}
"""The gates table of docs/claims.md (tests/test_claims.py checks each row names this metric, subset and
threshold). G5 compares each prompt's distance with the reference distance of true renders."""


# ------------------------------------------------------------------ reading the document
def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def _number(text: str) -> float:
    return float(text.replace("−", "-").replace("+", ""))


def _parse_claim(line: str) -> Claim:
    cells = _cells(line)
    cid = cells[0] if cells else "?"
    if len(cells) != 8:
        raise UserError(f"docs/claims.md row {cid}: expected 8 cells (id … gate), got {len(cells)}")
    _, source, text, metric_cell, delta_expr, expected, delta_cell, gate_cell = cells
    ratio = None
    if "s/step" in metric_cell:  # C22: the time ratio on a GPU
        m = re.fullmatch(r"`([^`]+)` / `([^`]+)`.*", delta_expr)
        r = re.fullmatch(r"\[\s*([0-9.]+)\s*,\s*([0-9.]+)\s*\]", delta_cell)
        if not (m and r and expected == "≈"):
            raise UserError(f"docs/claims.md row {cid}: cannot read the cost-ratio row")
        ratio = (float(r.group(1)), float(r.group(2)))
        return Claim(cid, source, text, "cost", False, "", m.group(1), m.group(2), "equivalent", math.log(ratio[1]), None, ratio)
    m = re.fullmatch(r"(log₂ )?`([a-z0-9_]+)`( share)? · ([A-Z])", metric_cell)
    if not m:
        raise UserError(f"docs/claims.md row {cid}: cannot read the metric cell {metric_cell!r}")
    log2, metric, subset = bool(m.group(1)), m.group(2), m.group(4)
    if metric not in METRICS:
        raise UserError(f"docs/claims.md row {cid}: metric {metric!r} has no key in sdbench.claims.METRICS")
    d = re.fullmatch(r"`([^`]+)` − `([^`]+)`", delta_expr)
    if not d:
        raise UserError(f"docs/claims.md row {cid}: cannot read Δ = {delta_expr!r}")
    tests = {"↑": "up", "↓": "down", "≈": "equivalent", "≥ −δ": "noninferior"}
    if expected not in tests:
        raise UserError(f"docs/claims.md row {cid}: unknown expected direction {expected!r}")
    pp = re.fullmatch(r"([0-9.]+) pp", delta_cell)
    try:
        delta = float(pp.group(1)) / 100 if pp else _number(delta_cell)
    except ValueError:
        raise UserError(f"docs/claims.md row {cid}: cannot read δ {delta_cell!r}") from None
    if bool(pp) != METRICS[metric].share:
        raise UserError(f"docs/claims.md row {cid}: δ {delta_cell!r} does not match the metric {metric!r}")
    gate = None
    if gate_cell not in ("—", "-", ""):
        g = re.fullmatch(r"(G[0-9])\(`([^`]+)`\)", gate_cell)
        if not g or g.group(1) not in GATES:
            raise UserError(f"docs/claims.md row {cid}: cannot read the gate {gate_cell!r}")
        gate = (g.group(1), g.group(2))
    return Claim(cid, source, text, metric, log2, subset, d.group(1), d.group(2), tests[expected], delta, gate)


def _table_after(lines: list[str], heading: str) -> list[str]:
    """The rows (header and rule dropped) of the first table after the line ``heading``."""
    try:
        i = next(k for k, line in enumerate(lines) if line.strip() == heading)
    except StopIteration:
        raise UserError(f"docs/claims.md has no section {heading!r}") from None
    rows = []
    for line in lines[i + 1 :]:
        if line.startswith("|"):
            rows.append(line)
        elif rows:
            break
    return rows[2:]


def read_registration(doc: Path) -> Registration:
    """The claims, arms and prompt subsets of ``doc`` (``docs/claims.md``); ``UserError`` on a row it cannot read."""
    doc = Path(doc)
    if not doc.is_file():
        raise UserError(f"claims document {doc} does not exist")
    text = doc.read_text(encoding="utf-8")
    if START in text and END in text:  # the results block holds tables of its own: not the registration
        text = text.partition(START)[0] + text.partition(END)[2]
    lines = text.splitlines()
    claims = tuple(_parse_claim(line) for line in lines if re.match(r"\|\s*C[0-9]+\s*\|", line))
    ids = [c.id for c in claims]
    if not claims or len(set(ids)) != len(ids):
        raise UserError(f"{doc}: no claims rows, or an id twice ({', '.join(ids)})")

    arms: dict[str, Arm] = {}
    for row in _table_after(lines, "### Arms"):
        names_cell, loss_cell, overrides_cell = _cells(row)[:3]
        names = re.findall(r"`([^`]+)`", names_cell)
        overrides = tuple(re.findall(r"`--set ([^`]+)`", overrides_cell))
        for name in names:
            arms[name] = Arm(name, loss_cell if re.fullmatch(r"[a-z0-9_]+", loss_cell) else name, overrides)

    subsets: dict[str, tuple[str, ...]] = {}
    for row in _table_after(lines, "## Prompts"):
        head, prompts_cell = _cells(row)[:2]
        m = re.fullmatch(r"\*\*([A-Z])\*\* .*\(([0-9]+)\)", head)
        if not m:
            raise UserError(f"{doc}: cannot read the prompts row {head!r}")
        prompts = tuple(p.strip() for p in prompts_cell.split("·"))
        if len(prompts) != int(m.group(2)):
            raise UserError(f"{doc}: subset {m.group(1)} lists {len(prompts)} prompts, its heading says {m.group(2)}")
        subsets[m.group(1)] = prompts
    for letter, parts in re.findall(r"\*\*([A-Z]) = ([A-Z](?: ∪ [A-Z])+)\*\*", text):
        subsets[letter] = tuple(p for part in parts.split(" ∪ ") for p in subsets[part])

    for c in claims:
        for arm in (c.a, c.b):
            if arm not in arms:
                raise UserError(f"{doc}: claim {c.id} names arm {arm!r}, which the arms table does not define")
        if c.subset and c.subset not in subsets:
            raise UserError(f"{doc}: claim {c.id} names prompt subset {c.subset!r}, which the prompts table does not define")
    return Registration(claims, arms, subsets)


# ------------------------------------------------------------------ the trials of each arm
def _json_value(value: Any) -> Any:
    from sdbench import config as cfgutil

    return cfgutil.to_dict(value) if not isinstance(value, (str, int, float, bool, type(None))) else value


def _lookup(config: dict, dotted: str) -> Any:
    value: Any = config
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def check_arms(results: Sequence[Result], arms: dict[str, Arm]) -> None:
    """Every trial labelled with an arm of the table ran that arm's loss with its overrides, and the arms of a
    loss without an override of a key (``sds``) ran it at the registered default; ``UserError`` otherwise."""
    from sdbench import config as cfgutil
    from sdbench import registry
    from sdbench.trial import TrialConfig

    keys: dict[str, set[str]] = defaultdict(set)
    for arm in arms.values():
        keys[arm.loss].update(o.partition("=")[0].strip() for o in arm.overrides)
    expected: dict[str, dict[str, Any]] = {}
    for arm in arms.values():
        if not keys[arm.loss]:
            expected[arm.name] = {}
            continue
        configs = {"loss": registry.LOSSES.get(arm.loss).Config(), "trial": TrialConfig(prompt="a cube")}
        for item in arm.overrides:
            key, _, value = item.partition("=")
            section, _, rest = key.strip().partition(".")
            configs[section] = cfgutil.override(configs[section], rest, value, section)
        expected[arm.name] = {
            k: _json_value(_lookup(cfgutil.to_dict(configs[k.partition(".")[0]]), k.partition(".")[2])) for k in keys[arm.loss]
        }
    for d, r in results:
        arm = arms.get(r.arm)
        if arm is None:
            continue
        if r.loss != arm.loss:
            raise UserError(f"trial {d.name}: arm {r.arm!r} is the loss {arm.loss!r} in docs/claims.md, but it ran {r.loss!r}")
        for key, value in expected[arm.name].items():
            got = _lookup(r.config, key)
            if got != value:
                raise UserError(
                    f"trial {d.name}: arm {r.arm!r} needs {key}={value!r} (docs/claims.md's arms table), but it ran {got!r}"
                )


@dataclass
class Selection:
    """The trials a judgement reads: one prior and budget, every representation."""

    prior: str
    budget: str
    by_rep: dict[str, dict[str, list[tuple[Path, TrialResult]]]]
    """representation → arm → (directory, result)."""
    seeds: tuple[int, ...]


def select(results: Sequence[Result], prior: str | None = None, budget: str | None = None) -> Selection:
    """Group trials by representation and arm, for one prior and one equal-steps budget (unless named: the only
    prior, and the one steps budget at which every arm ran); ``UserError`` when the choice is ambiguous or leaves
    nothing."""

    def only(values: set[str], what: str, flag: str) -> str:
        if len(values) != 1:
            raise UserError(f"the sweep holds {what} {', '.join(sorted(values)) or '(none)'}; name one with {flag}")
        return next(iter(values))

    prior = prior or only({r.prior for _, r in results}, "priors", "--claims-prior")
    if budget is None:
        arms_at: dict[str, set[str]] = defaultdict(set)
        for _, r in results:
            if r.prior == prior and r.budget.kind == "steps":
                arms_at[r.budget.label].add(r.arm)
        every = set().union(*arms_at.values()) if arms_at else set()
        # the equal-NFE runs give some arms other step counts: the equal-steps budget is the one every arm ran at
        full = {b for b, arms in arms_at.items() if arms == every}
        budget = only(full or set(arms_at), "equal-steps budgets", "--claims-budget")
    by_rep: dict[str, dict[str, list[Result]]] = defaultdict(lambda: defaultdict(list))
    seen: set[tuple] = set()
    for d, r in results:
        if r.prior != prior or r.budget.label != budget:
            continue
        key = (r.representation, r.arm, r.prompt, r.seed)
        if key in seen:
            raise UserError(f"two trials of {key} in the sweep (trial {d.name}): the pairing needs one per (arm, prompt, seed)")
        seen.add(key)
        by_rep[r.representation][r.arm].append((d, r))
    if not by_rep:
        raise UserError(f"no trial of prior {prior} at budget {budget}")
    seeds = tuple(sorted({r.seed for arms in by_rep.values() for rs in arms.values() for _, r in rs}))
    return Selection(prior, budget, {k: dict(v) for k, v in by_rep.items()}, seeds)


NFE_TOLERANCE = 0.05
"""Equal NFE: an arm's trials are paired at the budget whose median NFE per trial is within 5 % of the target
(``sweeps/claims-nfe.toml``, fixed before its sweep ran)."""
NFE_BASELINE = "sds"
"""The equal-NFE target is this arm's median NFE per trial at the equal-steps budget (2000: 1000 steps × 2)."""


def total_nfe(r: TrialResult) -> int:
    """Every network evaluation of the trial plus one per evaluation with autograd (a trained part's backward)."""
    return (r.cost.nfe or 0) + (r.cost.nfe_with_grad or 0)


def select_equal_nfe(results: Sequence[Result], sel: Selection) -> tuple[Selection, dict[str, dict[str, Any]]]:
    """The confirmatory trials at equal NFE: per arm, the steps budget whose trials' median NFE is within
    :data:`NFE_TOLERANCE` of the baseline's at ``sel``'s budget (the closest, if several). Returns the selection
    (one representation) and, per arm, its budget, median NFE and whether those are the equal-steps trials."""
    import statistics

    base = [total_nfe(r) for _, r in sel.by_rep.get(CONFIRMATORY, {}).get(NFE_BASELINE, []) if r.completed]
    arms: dict[str, dict[str, Any]] = {}
    if not base:
        return Selection(sel.prior, sel.budget, {}, sel.seeds), arms
    target = statistics.median(base)
    runs: dict[tuple[str, str], list[Result]] = defaultdict(list)
    for d, r in results:
        if r.prior == sel.prior and r.representation == CONFIRMATORY and r.budget.kind == "steps":
            runs[(r.arm, r.budget.label)].append((d, r))
    chosen: dict[str, dict[str, list[Result]]] = {CONFIRMATORY: {}}
    for (arm, budget), trials in sorted(runs.items()):
        done = [total_nfe(r) for _, r in trials if r.completed]
        if not done:
            continue
        nfe = statistics.median(done)
        off = abs(nfe / target - 1)
        if off > NFE_TOLERANCE or (arm in arms and off >= arms[arm]["off"]):
            continue
        arms[arm] = {"budget": budget, "nfe": nfe, "off": off, "same_as_equal_steps": budget == sel.budget, "target": target}
        chosen[CONFIRMATORY][arm] = trials
    return Selection(sel.prior, f"nfe≈{target:g}", chosen, sel.seeds), arms


def _value(r: TrialResult, key: str, log2: bool) -> float:
    v = r.value(key) if r.completed else math.nan
    if log2 and math.isfinite(v):
        v = math.log2(max(v, LOG_FLOOR))
    return v


def arm_values(
    trials: Sequence[Result], metric: str, log2: bool, prompts: Sequence[str], diversity: dict[str, float] | None = None
) -> dict[tuple[str, int], float]:
    """``{(prompt, seed): value}`` of one arm's trials on ``prompts`` (failed trials: NaN); for
    ``diversity_distance`` ``{(prompt, 0): distance}`` from ``diversity`` (prompt → distance)."""
    if metric == DIVERSITY:
        return {(p, 0): (diversity or {}).get(p, math.nan) for p in prompts if p in (diversity or {})}
    key = METRICS[metric].key
    wanted = set(prompts)
    return {(r.prompt, r.seed): _value(r, key, log2) for _, r in trials if r.prompt in wanted}


def _clusters(values: dict[tuple[str, int], float]) -> dict[str, list[float]]:
    out: dict[str, list[float]] = defaultdict(list)
    for (prompt, _), v in sorted(values.items()):
        if math.isfinite(v):
            out[prompt].append(v)
    return dict(out)


# ------------------------------------------------------------------ G5's reference
def diversity_reference(prompt: str, trial_dir: Path, embed: Callable | None = None) -> float:
    """G5's reference: the same embedding distance between *true* renders over the open attribute's values
    (the six colours of "a cube"; every colour × shape of "a striped object"), at the trial's evaluation orbit
    and size, through ``embed`` (default: the v2 evaluator, ``sdbench.evaluation.toy.embed``)."""
    import torch

    from sdbench.cameras import Cameras
    from sdbench.evaluation.diversity import embedding_distance
    from sdbench.results import load_result
    from sdbench.world.grammar import parse
    from sdbench.world.scenes import COLOURS, SHAPES, render

    p = parse(prompt, "v2")
    if not p.ambiguous:
        raise UserError(f"{prompt!r} names its colour and shape: it has no open attribute to be diverse in")
    t = load_result(trial_dir).config.get("trial", {})
    cams = Cameras.orbit(
        int(t.get("eval_views", 8)),
        elevation=float(t.get("eval_elevation", 15.0)),
        radius=float(_lookup(t, "cameras.radius")[0]) if _lookup(t, "cameras.radius") else 3.0,
        fovy=float(_lookup(t, "cameras.fovy")[0]) if _lookup(t, "cameras.fovy") else 40.0,
    )
    size = 32
    view = Path(trial_dir) / "views" / "000.png"
    if view.is_file():
        from PIL import Image

        size = Image.open(view).height
    if embed is None:
        from sdbench.evaluation.toy import embed as v2_embed

        embed = v2_embed
    objects = [(s, c) for s in ([p.shape] if p.shape else SHAPES) for c in ([p.colour] if p.colour else list(COLOURS))]
    with torch.no_grad():
        e = torch.stack([embed(render(s, c, cams, size, pattern=p.surface)[0]) for s, c in objects])  # [K, V, D]
    return embedding_distance(e)


# ------------------------------------------------------------------ statistics of one comparison
@dataclass
class Estimate:
    """A paired comparison (or a gate's one-arm estimate) with its cluster-bootstrap interval."""

    estimate: float
    low: float
    high: float
    se: float
    p: float
    """Unadjusted p of the claim's test (gates: the two-sided p against 0)."""
    prompts: int
    pairs: int
    expected_pairs: int
    sde: float

    @property
    def dropped(self) -> int:
        return max(0, self.expected_pairs - self.pairs)


def _estimate(clusters: dict[str, list[float]], expected_pairs: int, test: Test = "up", delta: float = 0.0) -> Estimate:
    boot = cluster_bootstrap(clusters, resamples=RESAMPLES, seed=SEED, plus_one=True)
    if test in ("up", "down"):
        p = boot.p_value
    else:
        dist = bootstrap_distribution(clusters, resamples=RESAMPLES, seed=SEED)
        if test == "equivalent":
            p = max(tail_share(dist, delta, "above"), tail_share(dist, -delta, "below"))
        else:
            p = tail_share(dist, -delta, "below")
    return Estimate(
        boot.estimate, boot.low, boot.high, boot.se, p, boot.clusters, boot.observations, expected_pairs, SDE_Z * boot.se
    )


def ratio_estimate(a: Sequence[float], b: Sequence[float], margins: tuple[float, float]) -> Estimate:
    """C22: log(median a / median b) of per-step times, bootstrapping each arm's timing repetitions; the
    two one-sided tests against the log margins."""
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.size < 2 or y.size < 2:
        raise UserError("the timing file needs at least 2 timed steps per loss")
    rng = np.random.default_rng(SEED)
    dist = np.log(
        np.median(x[rng.integers(0, x.size, (RESAMPLES, x.size))], axis=1)
        / np.median(y[rng.integers(0, y.size, (RESAMPLES, y.size))], axis=1)
    )
    lo, hi = math.log(margins[0]), math.log(margins[1])
    p = max(tail_share(dist, hi, "above"), tail_share(dist, lo, "below"))
    low, high = np.quantile(dist, [0.025, 0.975])
    se = float(dist.std(ddof=1))
    est = math.log(float(np.median(x)) / float(np.median(y)))
    return Estimate(est, float(low), float(high), se, p, 0, int(x.size + y.size), int(x.size + y.size), SDE_Z * se)


def read_timings(path: Path, losses: Sequence[str]) -> tuple[dict[str, list[float]], str]:
    """Per-step seconds of ``losses`` from a ``benchmarks/gpu.py`` result (``results.gaussians.<loss>.step_seconds``,
    else ``results.losses_image``), and where they were found; ``UserError`` when they are not there."""
    import json

    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise UserError(f"timing file {path} cannot be read: {str(e).splitlines()[0]}") from None
    results = data.get("results", data) if isinstance(data, dict) else {}
    for section in ("gaussians", "losses_image"):
        part = results.get(section) or {}
        times = {loss: (part.get(loss) or {}).get("step_seconds") for loss in losses}
        if all(isinstance(t, list) and len(t) >= 2 for t in times.values()):
            device = (data.get("hardware") or {}).get("gpu") or (data.get("hardware") or {}).get("device") or "?"
            return {k: [float(x) for x in v] for k, v in times.items()}, f"{path} ({section}, {device})"
    raise UserError(f"timing file {path} has no per-step times (step_seconds) of {', '.join(losses)}")


# ------------------------------------------------------------------ judging
@dataclass
class GateResult:
    gate: str
    arm: str
    phenomenon: str
    passed: bool | None
    """None: could not be evaluated (``reason`` says why)."""
    reason: str = ""
    estimate: Estimate | None = None

    @property
    def label(self) -> str:
        return f"{self.gate}({self.arm})"


@dataclass
class ClaimResult:
    claim: Claim
    verdict: str
    """reproduced, not reproduced, opposite or untestable here."""
    detail: str
    """The verdict as the table writes it, e.g. "not reproduced (effect < 0.31)"."""
    estimate: Estimate | None = None
    p_holm: float = math.nan
    gate: GateResult | None = None
    per_prompt: list[dict[str, Any]] = field(default_factory=list)
    marginals: dict[str, dict[str, float]] = field(default_factory=dict)
    replications: list[dict[str, Any]] = field(default_factory=list)
    secondary: list[dict[str, Any]] = field(default_factory=list)
    equal_nfe: dict[str, Any] | None = None
    """The same comparison at equal NFE (:func:`select_equal_nfe`), uncorrected; None where an arm has no trials
    there."""
    source: str = ""
    """Where C22's timings came from."""


@dataclass
class Judgement:
    registration: Registration
    selection: Selection
    claims: list[ClaimResult]
    gates: list[GateResult]
    """Every gate on every arm that has its subset (the table of where each phenomenon appears)."""
    family: int
    notes: list[str]
    exploratory: list[dict[str, Any]] = field(default_factory=list)
    """The registered exploratory comparisons (:data:`EXPLORATORY`), uncorrected."""
    cutoff: list[dict[str, Any]] = field(default_factory=list)
    """Each arm of :data:`CUTOFF_ARMS` alone: chroma error on S, prompt-cluster bootstrap."""
    cpu_timings: dict[str, float] = field(default_factory=dict)
    """Arm → seconds per step timed alone (``benchmarks/claims_cost.py``, ``--cpu-timings``); empty: the Pareto
    plot uses the sweep's own per-trial seconds."""
    cpu_timings_source: str = ""
    equal_nfe: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Arm → its equal-NFE budget, median NFE per trial and whether those are the equal-steps trials."""


def _fmt(v: float | None, share: bool = False, digits: int = 3) -> str:
    if v is None or not math.isfinite(v):
        return "—"
    if share:
        return f"{100 * v:.1f}"
    return f"{v:.{digits}g}"


def _unit(claim: Claim) -> str:
    if claim.ratio:
        return "ratio"
    if METRICS[claim.metric].share:
        return "pp"
    return "log₂" if claim.log2 else ""


def _verdict(claim: Claim, est: Estimate, p_holm: float) -> tuple[str, str]:
    share = METRICS[claim.metric].share if claim.metric in METRICS else False
    u = " pp" if share else ""
    sig = p_holm <= ALPHA
    delta = claim.delta
    if claim.test in ("up", "down"):
        s = 1 if claim.test == "up" else -1
        if sig and s * est.estimate >= delta:
            return "reproduced", "reproduced"
        if sig and -s * est.estimate >= delta:
            return "opposite", "opposite"
        x = est.high if s > 0 else -est.low
        notes = []
        if x <= 0:
            notes.append("the interval lies against the expected direction")
        if sig:
            notes.append(f"significant but |Δ̂| < δ = {_fmt(delta, share)}{u}")
        if est.sde > delta:
            notes.append(f"SDE {_fmt(est.sde, share)}{u} > δ: too small to decide")
        else:
            notes.append(f"SDE {_fmt(est.sde, share)}{u}")
        return "not reproduced", f"not reproduced (effect < {_fmt(x, share)}{u}; {'; '.join(notes)})"
    if claim.test == "equivalent":
        lo, hi = (math.log(claim.ratio[0]), math.log(claim.ratio[1])) if claim.ratio else (-delta, delta)
        if sig:
            return "reproduced", "reproduced"
        if est.low > hi or est.high < lo:
            return "opposite", "opposite"
        if claim.ratio:
            x = max(math.exp(est.high), 1 / math.exp(est.low))
            return "not reproduced", f"not reproduced (the ratio may differ from 1 by a factor up to {x:.3g})"
        x = max(abs(est.low), abs(est.high))
        return "not reproduced", f"not reproduced (difference may be as large as {_fmt(x, share)}{u})"
    if sig:  # non-inferiority
        return "reproduced", "reproduced"
    if est.high < -delta:
        return "opposite", "opposite"
    return (
        "not reproduced",
        f"not reproduced (may be worse by up to {_fmt(abs(est.low), share)}{u}; SDE {_fmt(est.sde, share)}{u})",
    )


def _gate(
    gate: Gate,
    arm: str,
    values: dict[tuple[str, int], float],
    expected_pairs: int,
    reference: dict[str, float] | None = None,
) -> GateResult:
    if gate.id == "G5":
        values = {k: v - reference[k[0]] for k, v in values.items() if reference and k[0] in reference}
    clusters = _clusters(values)
    if len(clusters) < MIN_PROMPTS:
        what = "prompts with a reference distance" if gate.id == "G5" and not reference else "prompts of defined values"
        return GateResult(gate.id, arm, gate.phenomenon, None, f"{len(clusters)} {what} (< {MIN_PROMPTS})")
    est = _estimate(clusters, expected_pairs)
    beyond = gate.sign * est.estimate >= gate.threshold if gate.inclusive else gate.sign * est.estimate > gate.threshold
    side = est.low > 0 if gate.sign > 0 else est.high < 0
    return GateResult(gate.id, arm, gate.phenomenon, bool(beyond and side), "", est)


def judge(
    results: Sequence[Result],
    registration: Registration,
    *,
    prior: str | None = None,
    budget: str | None = None,
    timings: Path | None = None,
    reference: Callable[[str, Path], float] | None = diversity_reference,
    diversity: Callable[[Sequence[Result]], dict] | None = None,
) -> Judgement:
    """Gates, paired comparisons, Holm and verdicts of every claim on ``results`` (see the module docstring).

    Args:
        reference: G5's reference distance of an ambiguous prompt, given one of its trial directories
            (None: G5 cannot be evaluated).
        diversity: ``results → {(GroupKey, prompt): {"diversity_distance": ...}}`` (default
            :func:`sdbench.report.group_diversity`).
        timings: C22's per-step GPU times (:func:`read_timings`); None: C22 is untestable here.
    """
    from sdbench.report import group_diversity

    check_arms(results, registration.arms)
    sel = select(results, prior, budget)
    subsets = registration.subsets
    notes: list[str] = []
    div_fn = diversity or (lambda rs: group_diversity(rs))

    nfe_sel, nfe_arms = select_equal_nfe(results, sel)

    def diversity_of(rep: str, selection: Selection) -> dict[str, dict[str, float]]:
        rs = [x for arms in selection.by_rep.get(rep, {}).values() for x in arms]
        found = div_fn(rs) if rs else {}
        if isinstance(found, tuple):
            found, note = found
            if note:
                notes.append(note)
        out: dict[str, dict[str, float]] = defaultdict(dict)
        for (g, prompt), v in found.items():
            out[g.loss][prompt] = v.get(DIVERSITY, math.nan)
        return out

    div_cache: dict[tuple[str, str], dict[str, dict[str, float]]] = {}

    def values(
        rep: str, arm: str, metric: str, log2: bool, subset: str, selection: Selection = sel
    ) -> dict[tuple[str, int], float]:
        key = (selection.budget, rep)
        if metric == DIVERSITY and key not in div_cache:
            div_cache[key] = diversity_of(rep, selection)
        trials = selection.by_rep.get(rep, {}).get(arm, [])
        return arm_values(trials, metric, log2, subsets[subset], div_cache.get(key, {}).get(arm))

    def expected_pairs(metric: str, subset: str) -> int:
        """Prompts of ``subset`` × the seeds the sweep ran on them (a subset may have its own seeds)."""
        if metric == DIVERSITY:
            return len(subsets[subset])
        wanted = set(subsets[subset])
        seeds = {r.seed for arms in sel.by_rep.values() for rs in arms.values() for _, r in rs if r.prompt in wanted}
        return len(subsets[subset]) * len(seeds or sel.seeds)

    refs: dict[str, float] | None = None

    def references() -> dict[str, float]:
        nonlocal refs
        if refs is None:
            refs = {}
            if reference is not None:
                for prompt in subsets[GATES["G5"].subset]:
                    dirs = [d for arms in sel.by_rep.get(CONFIRMATORY, {}).values() for d, r in arms if r.prompt == prompt]
                    if not dirs:
                        continue
                    try:
                        refs[prompt] = float(reference(prompt, dirs[0]))
                    except UserError as e:
                        notes.append(f"G5's reference distance could not be computed: {e}")
                        break
        return refs

    gate_cache: dict[tuple[str, str], GateResult] = {}

    def gate_result(gid: str, arm: str) -> GateResult:
        if (gid, arm) not in gate_cache:
            g = GATES[gid]
            vals = values(CONFIRMATORY, arm, g.metric, g.log2, g.subset)
            gate_cache[(gid, arm)] = _gate(
                g, arm, vals, expected_pairs(g.metric, g.subset), references() if gid == "G5" else None
            )
        return gate_cache[(gid, arm)]

    present = sel.by_rep.get(CONFIRMATORY, {})
    out: list[ClaimResult] = []
    for claim in registration.claims:
        if claim.ratio:
            out.append(_judge_cost(claim, timings))
            continue
        missing = [a for a in (claim.a, claim.b) if a not in present]
        if missing:
            out.append(ClaimResult(claim, "untestable here", f"untestable here (arm {', '.join(missing)} not in the sweep)"))
            continue
        gate = gate_result(*claim.gate) if claim.gate else None
        if gate is not None and not gate.passed:
            why = (
                f"phenomenon absent: {gate.label} {_gate_text(gate)}"
                if gate.passed is False
                else f"gate {gate.label} not evaluable: {gate.reason}"
            )
            out.append(ClaimResult(claim, "untestable here", f"untestable here ({why})", gate=gate))
            continue
        a = values(CONFIRMATORY, claim.a, claim.metric, claim.log2, claim.subset)
        b = values(CONFIRMATORY, claim.b, claim.metric, claim.log2, claim.subset)
        clusters = paired_differences(a, b)
        if len(clusters) < MIN_PROMPTS:
            key = METRICS[claim.metric].key
            why = f"too few defined values: {len(clusters)} prompts with `{key}` in both arms, < {MIN_PROMPTS}"
            out.append(ClaimResult(claim, "untestable here", f"untestable here ({why})", gate=gate))
            continue
        est = _estimate(clusters, expected_pairs(claim.metric, claim.subset), claim.test, claim.delta)
        res = ClaimResult(claim, "", "", est, gate=gate, per_prompt=_per_prompt(a, b, subsets[claim.subset]))
        if METRICS[claim.metric].share:
            res.marginals = {arm: _marginal(vals) for arm, vals in ((claim.a, a), (claim.b, b))}
        for rep in sorted(sel.by_rep):
            if rep == CONFIRMATORY:
                continue
            c = paired_differences(
                values(rep, claim.a, claim.metric, claim.log2, claim.subset),
                values(rep, claim.b, claim.metric, claim.log2, claim.subset),
            )
            if len(c) >= 2:
                e = _estimate(c, expected_pairs(claim.metric, claim.subset))
                flip = math.copysign(1, e.estimate) != math.copysign(1, est.estimate)
                res.replications.append({"representation": rep, **asdict(e), "sign_differs": flip})
        if claim.a in nfe_arms and claim.b in nfe_arms:
            same = nfe_arms[claim.a]["same_as_equal_steps"] and nfe_arms[claim.b]["same_as_equal_steps"]
            c = (
                clusters
                if same
                else paired_differences(
                    values(CONFIRMATORY, claim.a, claim.metric, claim.log2, claim.subset, nfe_sel),
                    values(CONFIRMATORY, claim.b, claim.metric, claim.log2, claim.subset, nfe_sel),
                )
            )
            if len(c) >= 2:
                e = est if same else _estimate(c, expected_pairs(claim.metric, claim.subset), claim.test, claim.delta)
                flip = math.copysign(1, e.estimate) != math.copysign(1, est.estimate)
                res.equal_nfe = {
                    **asdict(e),
                    "same_trials": same,
                    "sign_differs": flip,
                    "reading": _verdict(claim, e, e.p)[1],  # the verdict rule at the uncorrected p: a lead only
                    "budgets": [nfe_arms[claim.a]["budget"], nfe_arms[claim.b]["budget"]],
                    "nfe": [nfe_arms[claim.a]["nfe"], nfe_arms[claim.b]["nfe"]],
                }
        for name in SECONDARY.get(claim.metric, ()):
            c = paired_differences(
                values(CONFIRMATORY, claim.a, name, False, claim.subset), values(CONFIRMATORY, claim.b, name, False, claim.subset)
            )
            if len(c) >= 2:
                res.secondary.append(
                    {"metric": name, "key": METRICS[name].key, **asdict(_estimate(c, expected_pairs(name, claim.subset)))}
                )
        out.append(res)

    tested = [r for r in out if r.estimate is not None and not r.verdict]
    adjusted = holm([r.estimate.p for r in tested])
    for r, p in zip(tested, adjusted):
        r.p_holm = p
        r.verdict, r.detail = _verdict(r.claim, r.estimate, p)
        flips = [x["representation"] for x in r.replications if x["sign_differs"]]
        if flips:  # docs/claims.md, design: a sign that flips between representations is named in the verdict
            r.detail += f"; the sign flips on {', '.join(flips)}"
    exploratory = []
    for ref, metric, subset, a_arm, b_arm, test in EXPLORATORY:
        if a_arm not in present or b_arm not in present:
            continue
        log2 = metric == "toy_detail"
        va = values(CONFIRMATORY, a_arm, metric, log2, subset)
        c = paired_differences(va, values(CONFIRMATORY, b_arm, metric, log2, subset))
        if len(c) < 2:
            continue
        e = _estimate(c, expected_pairs(metric, subset))
        agrees = (e.low > 0 if test == "up" else e.high < 0) if e.p < ALPHA else None
        exploratory.append(
            {
                "ref": ref,
                "metric": metric,
                "key": METRICS[metric].key,
                "log2": log2,
                "subset": subset,
                "a": a_arm,
                "b": b_arm,
                "expected": test,
                "as_expected": agrees,
                **asdict(e),
            }
        )
    cutoff = []
    for arm in CUTOFF_ARMS:
        if arm not in present:
            continue
        c = _clusters(values(CONFIRMATORY, arm, "toy_chroma_error", False, "S"))
        if len(c) >= 2:
            cutoff.append({"arm": arm, **asdict(_estimate(c, expected_pairs("toy_chroma_error", "S")))})
    gates = []
    for gid, g in GATES.items():
        for arm in sorted(present):
            if any(r.prompt in subsets[g.subset] for _, r in present[arm]):
                gates.append(gate_result(gid, arm))
    return Judgement(registration, sel, out, gates, len(tested), notes, exploratory, cutoff, equal_nfe=nfe_arms)


def _judge_cost(claim: Claim, timings: Path | None) -> ClaimResult:
    if timings is None:
        return ClaimResult(
            claim, "untestable here", "untestable here (needs a GPU run of `python -m benchmarks.gpu`, passed as --gpu-timings)"
        )
    times, source = read_timings(timings, (claim.a, claim.b))
    est = ratio_estimate(times[claim.a], times[claim.b], claim.ratio)
    return ClaimResult(claim, "", "", est, source=source)


def _gate_text(g: GateResult) -> str:
    if g.estimate is None:
        return g.reason
    share = METRICS[GATES[g.gate].metric].share
    e = g.estimate
    return f"{_fmt(e.estimate, share)} [{_fmt(e.low, share)}, {_fmt(e.high, share)}]{' pp' if share else ''}"


def _per_prompt(a: dict, b: dict, prompts: Sequence[str]) -> list[dict[str, Any]]:
    rows = []
    for p in prompts:
        seeds = sorted({s for (q, s) in a.keys() | b.keys() if q == p})
        diffs = {
            s: a[(p, s)] - b[(p, s)]
            for s in seeds
            if (p, s) in a and (p, s) in b and math.isfinite(a[(p, s)]) and math.isfinite(b[(p, s)])
        }

        def mean(vals: list[float]) -> float:
            vals = [v for v in vals if math.isfinite(v)]
            return sum(vals) / len(vals) if vals else math.nan

        rows.append(
            {
                "prompt": p,
                "a": mean([a[(p, s)] for s in seeds if (p, s) in a]),
                "b": mean([b[(p, s)] for s in seeds if (p, s) in b]),
                "diffs": {str(s): d for s, d in diffs.items()},
                "diff": mean(list(diffs.values())),
            }
        )
    return rows


def _marginal(values: dict[tuple[str, int], float]) -> dict[str, float]:
    clusters = _clusters(values)
    if len(clusters) < 2:
        return {"prompts": len(clusters)}
    boot = cluster_bootstrap(clusters, resamples=RESAMPLES, seed=SEED)
    n = boot.clusters
    lo, hi = wilson(round(boot.estimate * n), n)
    return {"share": boot.estimate, "low": boot.low, "high": boot.high, "wilson_low": lo, "wilson_high": hi, "prompts": n}


# ------------------------------------------------------------------ cost against quality
PARETO_QUALITY = ("toy_delta_e", "X")
"""The quality axis of the Pareto plot: mean ΔE against the truth over the fully specified prompts (↓)."""


def read_cpu_timings(path: Path) -> dict[str, float]:
    """Arm → seconds per step from a ``benchmarks/claims_cost.py`` result (``results.arms.<arm>.seconds_per_step``)."""
    import json

    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        arms = data.get("results", data)["arms"]
        return {str(a): float(v["seconds_per_step"]) for a, v in arms.items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise UserError(f"{path} is not a benchmarks/claims_cost.py result (results.arms.<arm>.seconds_per_step): {e}") from None


def pareto(sel: Selection, subsets: dict[str, tuple[str, ...]], seconds: dict[str, float] | None = None) -> list[dict[str, Any]]:
    """Per arm (confirmatory representation): seconds per step (``seconds``, timed alone, where given; else the
    median of the sweep's trials; ``sweep_seconds_per_step`` is always the latter), mean NFE per step (backward
    passes of trained parts counted: ``cost.nfe + cost.nfe_with_grad``), mean ΔE and toy2_acc over X, and whether
    it is on the Pareto front of cost (seconds, NFE) against ΔE."""
    metric, subset = PARETO_QUALITY
    wanted = set(subsets.get(subset, ()))
    rows = []
    for arm, trials in sorted(sel.by_rep.get(CONFIRMATORY, {}).items()):
        done = [r for _, r in trials if r.completed]
        sps = [r.cost.seconds_per_step for r in done if r.cost.seconds_per_step]
        nfe = [(r.cost.nfe + (r.cost.nfe_with_grad or 0)) / r.cost.steps for r in done if r.cost.nfe is not None and r.cost.steps]
        q = [r.value(metric) for r in done if r.prompt in wanted and math.isfinite(r.value(metric))]
        acc = [r.value("toy2_acc") for r in done if r.prompt in wanted and math.isfinite(r.value("toy2_acc"))]
        sweep_sps = float(np.median(sps)) if sps else math.nan
        rows.append(
            {
                "arm": arm,
                "seconds_per_step": seconds.get(arm, math.nan) if seconds else sweep_sps,
                "sweep_seconds_per_step": sweep_sps,
                "nfe_per_step": float(np.mean(nfe)) if nfe else math.nan,
                metric: float(np.mean(q)) if q else math.nan,
                "toy2_acc": float(np.mean(acc)) if acc else math.nan,
                "trials": len(done),
            }
        )
    for cost in ("seconds_per_step", "nfe_per_step"):
        for r in rows:
            x, y = r[cost], r[metric]
            r[f"front_{cost}"] = (
                math.isfinite(x)
                and math.isfinite(y)
                and not any(
                    (o[cost] <= x and o[metric] <= y and (o[cost] < x or o[metric] < y))
                    for o in rows
                    if o is not r and math.isfinite(o[cost]) and math.isfinite(o[metric])
                )
            )
    return rows


def pareto_plot(rows: list[dict[str, Any]], path: Path, seconds_label: str = "median seconds per step") -> Path | None:
    """Seconds per step and NFE per step against ΔE, one point per arm, the Pareto front joined; PNG."""
    metric = PARETO_QUALITY[0]
    if not any(math.isfinite(r[metric]) for r in rows):
        return None
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sdbench.io import atomic_write

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, cost, label in ((axes[0], "seconds_per_step", seconds_label), (axes[1], "nfe_per_step", "NFE per step")):
        pts = [r for r in rows if math.isfinite(r[cost]) and math.isfinite(r[metric])]
        for r in pts:
            ax.plot(r[cost], r[metric], "o", color="C3" if r[f"front_{cost}"] else "C0")
            ax.annotate(r["arm"], (r[cost], r[metric]), fontsize=7, xytext=(3, 3), textcoords="offset points")
        front = sorted((r[cost], r[metric]) for r in pts if r[f"front_{cost}"])
        if len(front) > 1:
            ax.plot(*zip(*front), "-", color="C3", alpha=0.6)
        ax.set_xscale("log")
        ax.set_xlabel(label + " (log)")
        ax.set_ylabel("ΔE against the truth (X, ↓)")
        ax.grid(alpha=0.3)
    fig.suptitle("cost against quality: every arm, 3D Gaussians (red: the Pareto front)", fontsize=10)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write(path, lambda f: f.write(buf.getvalue()))


def claim_picture(claim: Claim, sel: Selection, subsets: dict[str, tuple[str, ...]], path: Path, columns: int = 8) -> Path | None:
    """The two arms (rows) on the first ``columns`` prompts of the claim's subset (columns), lowest seed, view 0."""

    def first_views(arm: str) -> dict[str, Path]:  # prompt → view 0 of its lowest seed that has one
        out: dict[str, Path] = {}
        for d, r in sorted(sel.by_rep.get(CONFIRMATORY, {}).get(arm, []), key=lambda x: x[1].seed):
            if r.completed and r.prompt not in out and (d / "views" / "000.png").is_file():
                out[r.prompt] = d / "views" / "000.png"
        return out

    views = {arm: first_views(arm) for arm in (claim.a, claim.b)}
    prompts = [p for p in subsets.get(claim.subset, ()) if all(p in v for v in views.values())][:columns]
    if not prompts:
        return None
    import torch
    from PIL import Image
    from torchvision.transforms.functional import pil_to_tensor

    from sdbench.io import save_grid

    images = [
        pil_to_tensor(Image.open(views[arm][p]).convert("RGB")).float() / 255 for arm in (claim.a, claim.b) for p in prompts
    ]
    size = images[0].shape[1:]
    images = [i if i.shape[1:] == size else torch.ones(3, *size) for i in images]
    path.parent.mkdir(parents=True, exist_ok=True)
    return save_grid(torch.stack(images), path, nrow=len(prompts), min_size=64)


# ------------------------------------------------------------------ writing
def _est_cell(e: Estimate | None, share: bool, ratio: bool = False) -> str:
    if e is None:
        return "—"
    if ratio:
        return f"{math.exp(e.estimate):.3g} [{math.exp(e.low):.3g}, {math.exp(e.high):.3g}]"
    return f"{_fmt(e.estimate, share)} [{_fmt(e.low, share)}, {_fmt(e.high, share)}]"


def _p(p: float) -> str:
    if not math.isfinite(p):
        return "—"
    return f"{p:.2g}" if p >= 0.001 else f"{p:.1e}"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in rows]
    return "\n".join(lines)


def running_hours(trials: Sequence[TrialResult]) -> float:
    """Hours in which at least one trial was computing: the union over trials of ``[finished_at − seconds −
    eval_seconds, finished_at]``, so a sweep stopped and resumed later does not count its pause (a trial resumed
    across the pause reaches back by the seconds it had spent before it). NaN without timings."""
    spans = sorted(
        (r.cost.finished_at - (r.cost.seconds or 0) - (r.cost.eval_seconds or 0), r.cost.finished_at)
        for r in trials
        if r.cost.finished_at
    )
    if not spans:
        return math.nan
    total, (lo, hi) = 0.0, spans[0]
    for a, b in spans[1:]:
        if a > hi:
            total, lo = total + hi - lo, a
        hi = max(hi, b)
    return (total + hi - lo) / 3600


def _run_line(sel: Selection, results: Sequence[Result]) -> str:
    """What the judgement read, then per sweep directory its trials, wall time and trial time."""
    trials = [r for arms in sel.by_rep.values() for rs in arms.values() for _, r in rs]
    done = [r for r in trials if r.completed]
    hw = sorted({f"{r.hardware.gpu or r.hardware.cpu or '?'} × {r.hardware.cpu_count or '?'} CPUs" for r in trials})
    head = (
        f"{len(trials)} trials ({len(done)} completed, {len(trials) - len(done)} failed) of prior `{sel.prior}`, budget "
        f"`{sel.budget}`, representations {', '.join(sorted(sel.by_rep))} (confirmatory: {CONFIRMATORY}), seeds "
        f"{', '.join(map(str, sel.seeds))}. Hardware: {'; '.join(hw)}."
    )
    sweeps: dict[Path, list[TrialResult]] = defaultdict(list)
    for d, r in results:
        sweeps[Path(d).parent.parent].append(r)
    lines = [head]
    for k, (where, rs) in enumerate(sweeps.items()):
        started = [r.cost.started_at for r in rs if r.cost.started_at]
        finished = [r.cost.finished_at for r in rs if r.cost.finished_at]
        span = (max(finished) - min(started)) / 3600 if started and finished else math.nan
        busy = sum((r.cost.seconds or 0) + (r.cost.eval_seconds or 0) for r in rs) / 3600
        n_done = sum(r.completed for r in rs)
        lines.append(
            f"{'Sweep' if k == 0 else 'Exploratory sweep'} `{where.name}`: {len(rs)} trials ({n_done} completed). Wall time "
            f"{_fmt(span)} h from the first trial's start to the last trial's end (interruptions included), "
            f"{_fmt(running_hours(rs))} h with at least one trial running (pauses excluded); {_fmt(busy)} h of trial time "
            "(optimisation and evaluation)."
        )
    return "\n\n".join(lines)


def equal_nfe_section(j: Judgement, rows: Sequence[ClaimResult]) -> str:
    """The claims at equal NFE (``sweeps/claims-nfe.toml``): which trials each arm contributes, then each tested
    claim with an arm of its own there, beside its equal-steps estimate."""
    target = next(iter(j.equal_nfe.values()))["target"]
    missing = sorted(set(j.registration.arms) - set(j.equal_nfe))
    unchanged = [r.claim.id for r in rows if r.equal_nfe["same_trials"]]
    rows = [r for r in rows if not r.equal_nfe["same_trials"]]
    arms = _table(
        ["arm", "budget", "NFE per trial (median)", "trials"],
        [
            [f"`{a}`", f"`{x['budget']}`", f"{x['nfe']:.0f}", "the equal-steps ones" if x["same_as_equal_steps"] else "own"]
            for a, x in j.equal_nfe.items()
        ],
    )
    claims = _table(
        ["claim", "Δ =", "budgets", "Δ̂ equal steps", "Δ̂ [95 % CI] equal NFE", "p", "n", "reading (uncorrected p)", "sign"],
        [
            [
                r.claim.id,
                r.claim.label,
                " / ".join(f"`{b}`" for b in r.equal_nfe["budgets"]),
                _fmt(r.estimate.estimate, METRICS[r.claim.metric].share) if r.estimate else "—",
                _est_cell(Estimate(**{k: r.equal_nfe[k] for k in Estimate.__dataclass_fields__}), METRICS[r.claim.metric].share),
                _p(r.equal_nfe["p"]),
                str(r.equal_nfe["prompts"]),
                r.equal_nfe["reading"],
                "**differs**" if r.equal_nfe["sign_differs"] else "same",
            ]
            for r in rows
        ],
    )
    return (
        f"**Equal NFE** (secondary). Target {target:.0f} NFE per trial: `{NFE_BASELINE}`'s median at the equal-steps budget, "
        "every network evaluation counted plus one per evaluation with autograd (a trained part's backward pass). Each "
        f"arm's trials are those of the budget whose median NFE lies within {100 * NFE_TOLERANCE:g} % of it "
        "(`sweeps/claims-nfe.toml`: round(target / NFE per step) steps; arms at SDS's 2 NFE per step are their "
        "equal-steps trials). Same pairing, bootstrap and verdict rule as the family, read at the *uncorrected* p and "
        "without gates or Holm: leads, not findings."
        + (f" No trials at equal NFE: {', '.join(f'`{a}`' for a in missing)}." if missing else "")
        + (f" Unchanged (both arms' equal-NFE trials are their equal-steps ones): {', '.join(unchanged)}." if unchanged else "")
        + "\n\n"
        + arms
        + ("\n\n" + claims if rows else "")
        + "\n"
    )


def controls_section(path: Path | None) -> str:
    """The positive controls (``docs/controls.md``) restated from ``benchmarks/results/controls.json``."""
    import json

    if path is None or not Path(path).is_file():
        return f"Not run yet: no `{path or 'benchmarks/results/controls.json'}` (`make controls`)."
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    res = data.get("results", data)
    rows = []
    for name, c in sorted((res.get("controls") or {}).items()):
        for row in c.get("comparisons", []):
            rows.append(
                [
                    f"({name})",
                    "passed" if c.get("passed") else "**not passed**",
                    row.get("name", ""),
                    f"`{row.get('metric', '')}`",
                    row.get("arms", ""),
                    "{} [{}, {}]".format(*(_fmt(row.get(k, math.nan)) for k in ("estimate", "low", "high"))),
                    row.get("verdict", ""),
                ]
            )
    flag = " These numbers are **not a control run** (quick or changed design)." if res.get("not_a_control_run") else ""
    when = data.get("measured_at", "?")
    return f"From `{path}` (measured {when}).{flag}\n\n" + _table(
        ["control", "control verdict", "comparison", "metric", "arms", "Δ̂ [95 % CI]", "verdict"], rows
    )


def markdown(j: Judgement, results: Sequence[Result], image_dir: Path, run_dir: Path, controls: Path | None = None) -> str:
    """The generated block of docs/claims.md; pictures go to ``image_dir`` (linked as ``images/…``)."""
    reg = j.registration
    parts = [
        f"_Generated by `sdbench report {run_dir} --claims …` from the sweep's trials; the text outside the markers is "
        "the pre-registration and is not changed._",
        "",
        _run_line(j.selection, results),
        "",
        "Metric keys: the document's names are read from trials as "
        + "; ".join(
            f"`{m.name}` → `{m.key}`" + (f" ({m.note})" if m.note else "")
            for m in METRICS.values()
            if any(c.metric == m.name for c in reg.claims) and (m.note or m.key != m.name)
        )
        + f". log₂ `toy_detail` is log₂(max(detail, {LOG_FLOOR:g})) per trial.",
        "",
        "### Verdicts",
        "",
        f"Δ = first arm − second arm, 3D Gaussians, paired on (prompt, seed), seeds averaged per prompt; estimate and 95 % "
        f"prompt-cluster bootstrap interval ({RESAMPLES} resamples, seed {SEED}); shares in percentage points (pp); p "
        f"unadjusted and Holm-adjusted over the family of {j.family} claims left after gates and missing data; SDE ≈ "
        f"{SDE_Z:.2f}·SE. U1–U5 were declared untestable before the sweep (above).",
        "",
    ]
    rows = []
    for r in j.claims:
        c = r.claim
        share = METRICS[c.metric].share if c.metric in METRICS else False
        e = r.estimate
        metric = "s/step ratio (GPU)" if c.ratio else f"{'log₂ ' if c.log2 else ''}`{c.metric}` · {c.subset}"
        delta = f"[{c.ratio[0]}, {c.ratio[1]}]" if c.ratio else f"{_fmt(c.delta, share)}{' pp' if share else ''}"
        rows.append(
            [
                c.id,
                c.text,
                metric,
                c.label,
                {"up": "↑", "down": "↓", "equivalent": "≈", "noninferior": "≥ −δ"}[c.test],
                delta,
                str(e.prompts) if e and not c.ratio else "—",
                _est_cell(e, share, bool(c.ratio)),
                _p(e.p) if e else "—",
                _p(r.p_holm),
                (f"{_fmt(e.sde, share)}" if e and not c.ratio else "—"),
                f"**{r.detail}**" if r.verdict in ("reproduced", "opposite") else r.detail,
            ]
        )
    parts.append(
        _table(["id", "claim", "metric · subset", "Δ =", "exp.", "δ", "n", "Δ̂ [95 % CI]", "p", "p Holm", "SDE", "verdict"], rows)
    )
    counts = defaultdict(int)
    for r in j.claims:
        counts[r.verdict] += 1
    parts += ["", "Verdicts: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) + "."]
    dropped = [f"{r.claim.id} {r.estimate.dropped}" for r in j.claims if r.estimate and r.estimate.dropped and not r.claim.ratio]
    if dropped:
        parts.append(f"(prompt, seed) pairs dropped (missing, failed or undefined in either arm): {', '.join(dropped)}.")
    for r in j.claims:
        if r.source:
            parts.append(f"{r.claim.id}'s timings: {r.source}.")
    parts += [f"Note: {n}" for n in j.notes]

    parts += ["", "### Positive controls of the world (docs/controls.md), restated", "", controls_section(controls)]
    parts += ["", "### Phenomenon gates, every arm (where each phenomenon appears)", ""]
    arms = sorted({g.arm for g in j.gates})
    grid = {(g.gate, g.arm): g for g in j.gates}
    gate_rows = []
    for arm in arms:
        cells = []
        for gid in GATES:
            g = grid.get((gid, arm))
            if g is None:
                cells.append("—")
            elif g.passed is None:
                cells.append(f"n/a ({g.reason})")
            else:
                cells.append(f"{_gate_text(g)} {'✓' if g.passed else '✗'}")
        gate_rows.append([f"`{arm}`", *cells])
    parts.append(
        _table(["arm", *(f"{gid} {g.phenomenon}" for gid, g in GATES.items())], gate_rows)
        + "\n\n✓: the phenomenon is present (estimate beyond its threshold, interval excluding the truth); G1 C*, G2 log₂ "
        "detail ratio, G3 noise std, G4 two-faced share in pp, G5 distance minus the true renders' reference distance."
    )

    shares = [r for r in j.claims if r.marginals]
    if shares:
        parts += ["", "### Proportions: each arm's share (pp), cluster-bootstrap and Wilson (n = prompts) intervals", ""]
        prow = []
        for r in shares:
            for arm, m in r.marginals.items():
                if "share" in m:
                    prow.append(
                        [
                            r.claim.id,
                            f"`{arm}`",
                            f"{100 * m['share']:.1f}",
                            f"[{100 * m['low']:.1f}, {100 * m['high']:.1f}]",
                            f"[{100 * m['wilson_low']:.1f}, {100 * m['wilson_high']:.1f}]",
                            str(int(m["prompts"])),
                        ]
                    )
        parts.append(_table(["claim", "arm", "share", "bootstrap 95 %", "Wilson 95 %", "prompts"], prow))

    parts += ["", "### Pictures: the two arms of each claim (rows), first prompts of its subset, lowest seed, front view", ""]
    for r in j.claims:
        if r.claim.ratio:
            continue
        path = claim_picture(r.claim, j.selection, reg.subsets, image_dir / f"claims-{r.claim.id}.png")
        if path is not None:
            parts.append(f"**{r.claim.id}** (top `{r.claim.a}`, bottom `{r.claim.b}`): ![{r.claim.id}](images/{path.name})\n")

    rows_p = pareto(j.selection, reg.subsets, j.cpu_timings or None)
    parts += ["", "### Cost against quality (every arm, 3D Gaussians)", ""]
    alone = bool(j.cpu_timings)
    plot = pareto_plot(
        rows_p, image_dir / "claims-pareto.png", "seconds per step, each arm timed alone" if alone else "median seconds per step"
    )
    if plot is not None:
        parts.append(f"![cost against quality](images/{plot.name})\n")
    parts.append(
        _table(
            [
                "arm",
                "s/step (timed alone)" if alone else "s/step (median)",
                *(["s/step in the sweep (median)"] if alone else []),
                "NFE/step",
                "ΔE on X ↓",
                "toy2_acc on X",
                "front (s)",
                "front (NFE)",
            ],
            [
                [
                    f"`{r['arm']}`",
                    _fmt(r["seconds_per_step"]),
                    *([_fmt(r["sweep_seconds_per_step"])] if alone else []),
                    _fmt(r["nfe_per_step"]),
                    _fmt(r["toy_delta_e"]),
                    _fmt(r["toy2_acc"]),
                    "✓" if r["front_seconds_per_step"] else "",
                    "✓" if r["front_nfe_per_step"] else "",
                ]
                for r in rows_p
            ],
        )
        + "\n\n"
        + (
            f"Seconds per step: each arm timed alone, one trial at a time on one thread (`{j.cpu_timings_source}`, "
            "`benchmarks/claims_cost.py`), beside the median of the sweep's own trials (two at once on the two cores, "
            "partly sharing the machine with other work). "
            if alone
            else "Seconds are this sweep's (its hardware, one thread per trial, two trials at once; other work on the "
            "machine inflates them). "
        )
        + "NFE per step counts every network evaluation the prior counted plus one for each that ran with autograd (a "
        "trained part's backward pass: VSD's and ESD's LoRA, LODS's embedding)."
    )

    repl = [(r, x) for r in j.claims for x in r.replications]
    sec = [(r, x) for r in j.claims for x in r.secondary]
    nfe = [r for r in j.claims if r.equal_nfe]
    if repl or sec or j.exploratory or j.cutoff or nfe:
        parts += ["", "### Exploratory (not in the family; uncorrected intervals, leads only)", ""]
    if nfe:
        parts.append(equal_nfe_section(j, nfe))
    if j.exploratory:
        parts.append(
            "The comparisons the pre-registration lists as exploratory (same pairing and bootstrap as the family, no "
            'gate, no Holm; "as expected" only where the uncorrected p < 0.05):\n'
        )
        parts.append(
            _table(
                ["extends", "metric · subset", "Δ =", "exp.", "Δ̂ [95 % CI]", "p", "n", "reading"],
                [
                    [
                        x["ref"],
                        f"{'log₂ ' if x['log2'] else ''}`{x['key']}` · {x['subset']}",
                        f"`{x['a']}` − `{x['b']}`",
                        "↑" if x["expected"] == "up" else "↓",
                        _est_cell(Estimate(**{k: x[k] for k in Estimate.__dataclass_fields__}), METRICS[x["metric"]].share),
                        _p(x["p"]),
                        str(x["prompts"]),
                        {True: "as expected", False: "**opposite**", None: "no difference shown"}[x["as_expected"]],
                    ]
                    for x in j.exploratory
                ],
            )
            + "\n"
        )
    if j.cutoff:
        parts.append(
            "DreamMapping's cut-off ordering: each arm's own `toy_chroma_error` on S (mean over prompts, 95 % "
            "prompt-cluster bootstrap interval; 0 is the truth's chroma):\n"
        )
        parts.append(
            _table(
                ["arm", "DCA cut-off", "chroma error [95 % CI]", "prompts"],
                [
                    [
                        f"`{x['arm']}`",
                        CUTOFF_LABELS.get(x["arm"], "?"),
                        _est_cell(Estimate(**{k: x[k] for k in Estimate.__dataclass_fields__}), False),
                        str(x["prompts"]),
                    ]
                    for x in j.cutoff
                ],
            )
            + "\n"
        )
    if repl:
        parts.append(
            "Replications on other representations (each tested claim, the same arms, pairing and bootstrap; "
            "uncorrected, no gate; a sign that differs from 3DGS's is named in the verdict):\n"
        )
        parts.append(
            _table(
                ["claim", "Δ =", "Δ̂ 3DGS", "representation", "Δ̂ [95 % CI]", "p", "n", "sign as 3DGS"],
                [
                    [
                        r.claim.id,
                        r.claim.label,
                        _fmt(r.estimate.estimate, METRICS[r.claim.metric].share) if r.estimate else "—",
                        x["representation"],
                        _est_cell(Estimate(**{k: x[k] for k in Estimate.__dataclass_fields__}), METRICS[r.claim.metric].share),
                        _p(x["p"]),
                        str(x["prompts"]),
                        "**differs**" if x["sign_differs"] else "same",
                    ]
                    for r, x in repl
                ],
            )
            + "\n"
        )
    if sec:
        parts.append(
            _table(
                ["claim", "secondary metric", "Δ̂ [95 % CI]", "p", "n"],
                [
                    [
                        r.claim.id,
                        f"`{x['key']}`",
                        _est_cell(Estimate(**{k: x[k] for k in Estimate.__dataclass_fields__}), METRICS[x["metric"]].share),
                        _p(x["p"]),
                        str(x["prompts"]),
                    ]
                    for r, x in sec
                ],
            )
        )

    parts += ["", "### Appendix: per-prompt tables", ""]
    for r in j.claims:
        if not r.per_prompt:
            continue
        share = METRICS[r.claim.metric].share
        seeds = sorted({s for row in r.per_prompt for s in row["diffs"]}, key=int)
        parts.append(f"**{r.claim.id}** ({_unit(r.claim) or 'metric units'}; Δ = {r.claim.label})\n")
        parts.append(
            _table(
                ["prompt", f"`{r.claim.a}`", f"`{r.claim.b}`", *(f"Δ seed {s}" for s in seeds), "Δ (mean)"],
                [
                    [
                        row["prompt"],
                        _fmt(row["a"], share),
                        _fmt(row["b"], share),
                        *(_fmt(row["diffs"].get(s, math.nan), share) for s in seeds),
                        _fmt(row["diff"], share),
                    ]
                    for row in r.per_prompt
                ],
            )
            + "\n"
        )
    return "\n".join(parts).rstrip() + "\n"


def to_json(j: Judgement) -> dict[str, Any]:
    """``claims.json``: the registration as read (with the metric keys), the selection, gates and every claim."""

    def est(e: Estimate | None) -> dict | None:
        return None if e is None else {**asdict(e), "dropped": e.dropped}

    return {
        "registration": {
            "claims": [asdict(c) for c in j.registration.claims],
            "arms": {k: asdict(v) for k, v in j.registration.arms.items()},
            "subsets": {k: list(v) for k, v in j.registration.subsets.items()},
            "metrics": {k: asdict(v) for k, v in METRICS.items()},
            "gates": {k: asdict(v) for k, v in GATES.items()},
        },
        "analysis": {"resamples": RESAMPLES, "seed": SEED, "alpha": ALPHA, "min_prompts": MIN_PROMPTS, "sde_z": SDE_Z},
        "selection": {
            "prior": j.selection.prior,
            "budget": j.selection.budget,
            "representations": sorted(j.selection.by_rep),
            "confirmatory": CONFIRMATORY,
            "seeds": list(j.selection.seeds),
        },
        "family": j.family,
        "notes": j.notes,
        "gates": [{**asdict(g), "estimate": est(g.estimate)} for g in j.gates],
        "claims": [
            {
                "id": r.claim.id,
                "verdict": r.verdict,
                "detail": r.detail,
                "estimate": est(r.estimate),
                "p_holm": r.p_holm,
                "gate": None if r.gate is None else {**asdict(r.gate), "estimate": est(r.gate.estimate)},
                "per_prompt": r.per_prompt,
                "marginals": r.marginals,
                "replications": r.replications,
                "secondary": r.secondary,
                "equal_nfe": r.equal_nfe,
                "timings": r.source,
            }
            for r in j.claims
        ],
        "exploratory": j.exploratory,
        "cutoff": j.cutoff,
        "equal_nfe": j.equal_nfe,
        "pareto": pareto(j.selection, j.registration.subsets, j.cpu_timings or None),
        "cpu_timings": j.cpu_timings_source or None,
    }


def write_block(doc: Path, text: str) -> Path:
    """Replace what lies between the claims markers of ``doc`` with ``text``; nothing else changes.
    ``UserError`` unless each marker appears exactly once, start before end."""
    from sdbench.io import write_text

    content = Path(doc).read_text(encoding="utf-8")
    if content.count(START) != 1 or content.count(END) != 1 or content.index(START) > content.index(END):
        raise UserError(f"{doc} must hold the markers {START} and {END} once each, in that order")
    head, _, rest = content.partition(START)
    _, _, tail = rest.partition(END)
    return write_text(Path(doc), f"{head}{START}\n{text.rstrip()}\n{END}{tail}")


def write_claims(
    run_dir: Path,
    doc: Path,
    *,
    timings: Path | None = None,
    prior: str | None = None,
    budget: str | None = None,
    reference: Callable[[str, Path], float] | None = diversity_reference,
    diversity: Callable | None = None,
    controls: Path | None = None,
    cpu_timings: Path | None = None,
    with_dirs: Sequence[Path] = (),
) -> Judgement:
    """Judge the sweep in ``run_dir`` against the registration in ``doc``: ``run_dir/claims.json``, the pictures in
    ``doc``'s ``images/`` folder and the results block of ``doc`` (with the positive controls of ``controls``,
    a ``benchmarks/results/controls.json``, restated; ``cpu_timings``: a ``benchmarks/claims_cost.py`` result for the
    Pareto plot's seconds). ``with_dirs``: further sweeps read with it (the exploratory ``claims-image.toml`` and
    ``claims-nfe.toml``: replications on other representations, and the equal-NFE trials)."""
    from sdbench.io import write_json

    run_dir, doc = Path(run_dir), Path(doc)
    registration = read_registration(doc)
    results: list[Result] = []
    for k, where in enumerate((run_dir, *map(Path, with_dirs))):
        trials = where / "trials"
        if not trials.is_dir():
            raise UserError(f"{where} is not a sweep directory (no trials/)")
        found = load_results(sorted(p for p in trials.iterdir() if p.is_dir()))
        if not found and k == 0:
            raise UserError(f"{where} holds no trial results yet")
        results += found
    j = judge(results, registration, prior=prior, budget=budget, timings=timings, reference=reference, diversity=diversity)
    if cpu_timings is not None:
        j.cpu_timings, j.cpu_timings_source = read_cpu_timings(cpu_timings), str(cpu_timings)
    text = markdown(j, results, doc.parent / "images", run_dir, controls)
    write_json(run_dir / "claims.json", to_json(j))
    write_block(doc, text)
    return j
