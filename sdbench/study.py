"""A sweep as a committed study document: markdown tables and image grids (``sdbench report --markdown``).

The generated part of the document sits between ``<!-- sdbench:tables -->`` and
``<!-- /sdbench:tables -->``; text outside the markers (the reading of the numbers) is kept when the
tables are rebuilt. Contents:

* one table per budget and representation: every loss, metrics and cost as mean ± 95 % CI over
  prompts and seeds (Student t);
* an equal-NFE table fills in a loss that has no ``nfe:K`` trials from its equal-steps trials when
  every one of them used exactly K prior evaluations (marked †: the same trials, already at equal NFE);
* paired differences against SDS (same prompt and seed), mean ± 95 % CI, for the headline metrics;
* the DreamMapping ablation table (VDM variants and SDS, with the paired saturation difference to
  VDM's default) for each representation that has ablation trials;
* image grids per representation: losses × prompts, first seed, first evaluation view.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import torch

from sdbench.report import Result
from sdbench.results import HEADLINE_METRICS, GroupKey, TrialResult, group_key, load_results
from sdbench.stats import mean_ci

START, END = "<!-- sdbench:tables -->", "<!-- /sdbench:tables -->"
COLUMNS = (
    ("toy_acc", "acc ↑"),
    ("toy_iou", "IoU ↑"),
    ("toy_colour_error", "colour err ↓"),
    ("toy_saturation_error", "sat. err (signed)"),
    ("toy_hue_error", "hue err ° ↓"),
    ("toy_background_error", "bg err ↓"),
    ("toy_view_consistency", "view cons. ↑"),
    ("cost.seconds", "seconds"),
    ("cost.nfe", "NFE"),
)
ABLATIONS = ("sds", "vdm_nodca", "vdm_cut100", "vdm", "vdm_cut500", "vdm_linear", "vdm_noise")
ABLATION_LABEL = {
    "vdm_nodca": "VDM, no DCA",
    "vdm_cut100": "VDM, DCA cut-off 100",
    "vdm": "VDM, DCA cut-off 300 (default)",
    "vdm_cut500": "VDM, DCA cut-off 500",
    "vdm_linear": "VDM, linear operator",
    "vdm_noise": "VDM, operator + noise",
    "sds": "SDS (reference)",
}


def cell(values: Sequence[float], digits: int = 3) -> str:
    m, ci, n = mean_ci(values)
    if n == 0:
        return "—"
    fmt = f"{{:.{digits}g}}"
    return fmt.format(m) + (f" ± {ci:.2g}" if ci > 0 else "")


def _groups(results: Sequence[Result]) -> dict[GroupKey, list[TrialResult]]:
    groups: dict[GroupKey, list[TrialResult]] = defaultdict(list)
    for _, r in results:
        if r.completed:
            groups[group_key(r)].append(r)
    return groups


def fill_equal_nfe(groups: dict[GroupKey, list[TrialResult]]) -> set[GroupKey]:
    """Add equal-steps trials to an ``nfe:K`` budget where they used exactly K evaluations; returns the keys added."""
    added = set()
    nfe_budgets = {(g.prior, g.budget) for g in groups if g.budget.startswith("nfe:")}
    for prior, budget in nfe_budgets:
        k = float(budget.split(":", 1)[1])
        for g, rs in list(groups.items()):
            target = g._replace(budget=budget)
            if g.prior != prior or not g.budget.startswith("steps:") or target in groups:
                continue
            if rs and all(r.cost.nfe == k for r in rs):
                groups[target] = rs
                added.add(target)
    return added


def _loss_order(losses: set[str]) -> list[str]:
    known = ["sds", "csd", "nfsd", "ism", "vsd", "vdm", *(a for a in ABLATIONS if a not in ("sds", "vdm"))]
    return [x for x in known if x in losses] + sorted(losses - set(known))


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _paired(a: list[TrialResult], b: list[TrialResult], column: str) -> str:
    """Mean ± CI of value(a) − value(b) over the (prompt, seed) pairs both have."""
    ka = {(r.prompt, r.seed): r.value(column) for r in a}
    kb = {(r.prompt, r.seed): r.value(column) for r in b}
    diffs = [ka[k] - kb[k] for k in ka.keys() & kb.keys() if math.isfinite(ka[k]) and math.isfinite(kb[k])]
    return cell(diffs, 2) if diffs else "—"


def markdown(results: Sequence[Result], image_dir: Path, image_prefix: str) -> str:
    """The generated part of a study document; grid images are written into ``image_dir``."""
    groups = _groups(results)
    filled = fill_equal_nfe(groups)
    present = {c for c, _ in COLUMNS if any(math.isfinite(r.value(c)) for rs in groups.values() for r in rs)}
    columns = [(c, label) for c, label in COLUMNS if c in present]
    parts: list[str] = []
    n_trials = sum(1 for _, r in results)
    n_done = sum(1 for _, r in results if r.completed)
    parts.append(
        f"{n_done} of {n_trials} trials completed. Cells: mean ± 95 % confidence half-width (Student t) over prompts × seeds."
    )
    budgets = sorted({(g.prior, g.budget) for g in groups}, key=lambda x: (x[0], not x[1].startswith("steps"), x[1]))
    for prior, budget in budgets:
        parts.append(f"\n### Budget {budget} (prior {prior})\n")
        for rep in sorted({g.representation for g in groups if (g.prior, g.budget) == (prior, budget)}):
            key = GroupKey(prior, "", rep, budget)
            losses = _loss_order({g.loss for g in groups if g._replace(loss="") == key})
            rows = []
            for loss in losses:
                rs = groups[key._replace(loss=loss)]
                mark = " †" if key._replace(loss=loss) in filled else ""
                rows.append([f"{loss}{mark}", str(len(rs))] + [cell([r.value(c) for r in rs]) for c, _ in columns])
            parts.append(f"**{rep}**\n\n" + _table(["loss", "n", *(label for _, label in columns)], rows) + "\n")
            base = groups.get(key._replace(loss="sds"))
            if base and len(losses) > 1:
                # the v1 study reads the legacy HSV saturation error too (its tables were written with it)
                paired = [c for c in (*HEADLINE_METRICS, "toy_saturation_error") if c in present]
                prow = [
                    [loss] + [_paired(groups[key._replace(loss=loss)], base, c) for c in paired]
                    for loss in losses
                    if loss != "sds"
                ]
                labels = dict(COLUMNS)
                parts.append(
                    f"Paired difference to SDS ({rep}, same prompt and seed):\n\n"
                    + _table(["loss", *(f"Δ {labels[c]}" for c in paired)], prow)
                    + "\n"
                )
        if filled and budget.startswith("nfe:"):
            parts.append("† the equal-steps trials: they used exactly this many prior evaluations.\n")
    ablation = [
        (g, rs)
        for g, rs in groups.items()
        if g.loss in ABLATIONS and g.loss not in ("sds", "vdm") and g.budget.startswith("steps")
    ]
    if ablation:
        parts.append("\n### DreamMapping ablations (equal steps)\n")
        rows = []
        for key in sorted({g._replace(loss="") for g, _ in ablation}):
            rep = key.representation
            ref = groups.get(key._replace(loss="vdm"))
            for loss in ABLATIONS:
                rs = groups.get(key._replace(loss=loss))
                if rs:
                    cells = [
                        cell([r.value(c) for r in rs])
                        for c in ("toy_saturation_error", "toy_colour_error", "toy_hue_error", "toy_acc")
                    ]
                    delta = _paired(rs, ref, "toy_saturation_error") if ref and loss != "vdm" else "—"
                    rows.append([rep, ABLATION_LABEL[loss], str(len(rs)), *cells[:1], delta, *cells[1:]])
        header = [
            "representation",
            "variant",
            "n",
            "sat. err (signed)",
            "Δ sat. err vs VDM (paired)",
            "colour err ↓",
            "hue err ° ↓",
            "acc ↑",
        ]
        parts.append(_table(header, rows) + "\n")
    parts.append("\n### What the results look like\n")
    parts.append(_grids(results, image_dir, image_prefix))
    return "\n".join(parts)


def _grids(results: Sequence[Result], image_dir: Path, image_prefix: str) -> str:
    """One PNG per representation (equal-steps budget): rows losses, columns prompts, first seed, view 0."""
    from PIL import Image
    from torchvision.transforms.functional import pil_to_tensor

    from sdbench.io import save_grid

    done = [(d, r) for d, r in results if r.completed and (d / "views" / "000.png").is_file()]
    steps = sorted({r.budget.label for _, r in done if r.budget.kind == "steps"})
    budget = steps[0] if steps else (sorted({r.budget.label for _, r in done})[0] if done else None)
    lines = []
    for rep in sorted({r.representation for _, r in done}):
        chosen = [(d, r) for d, r in done if r.representation == rep and r.budget.label == budget]
        prompts = sorted({r.prompt for _, r in chosen})
        losses = _loss_order({r.loss for _, r in chosen})
        images = []
        for loss in losses:
            for p in prompts:
                match = sorted((r.seed, str(d)) for d, r in chosen if r.loss == loss and r.prompt == p)
                if match:
                    images.append(pil_to_tensor(Image.open(Path(match[0][1]) / "views" / "000.png").convert("RGB")).float() / 255)
                else:
                    images.append(torch.ones(3, *images[-1].shape[1:]) if images else torch.ones(3, 32, 32))
        if not images:
            continue
        name = f"{image_prefix}-{rep}.png"
        save_grid(torch.stack(images), image_dir / name, nrow=len(prompts), min_size=64)
        lines.append(
            f"**{rep}** ({budget}; rows: {', '.join(losses)}; columns: {'; '.join(prompts)})\n\n![{rep}](images/{name})\n"
        )
    return "\n".join(lines)


def write_markdown(sweep_dir: Path, doc: Path) -> Path:
    """Write (or refresh between the markers) the study document ``doc`` from the sweep in ``sweep_dir``."""
    from sdbench.io import write_text

    sweep_dir, doc = Path(sweep_dir), Path(doc)
    trials = sweep_dir / "trials"
    results = load_results(sorted(p for p in trials.iterdir() if p.is_dir()) if trials.is_dir() else [])
    generated = markdown(results, doc.parent / "images", doc.stem)
    block = f"{START}\n{generated}\n{END}"
    if doc.is_file() and START in (text := doc.read_text(encoding="utf-8")) and END in text:
        head, _, rest = text.partition(START)
        _, _, tail = rest.partition(END)
        return write_text(doc, head + block + tail)
    return write_text(doc, f"# {sweep_dir.name}\n\n{block}\n")
