"""Results of a sweep: ``results.csv`` and a self-contained ``report.html``, rebuilt from trial directories.

* ``results.csv``: one row per trial — identifying fields, status, every metric, every cost figure,
  and the trial's group 3D-FID (``fid``, with ``fid_features`` naming the feature space).
* ``diversity.csv`` (when the sweep has ambiguous toy prompts, e.g. "a cube"): diversity across
  seeds per (prior, loss, representation, budget, prompt), a group metric
  (:func:`group_diversity`); also a section of ``report.html``.
* ``report.html`` (opens offline; images and plots are embedded): per (prior, loss, representation,
  budget) the mean ± 95 % confidence half-width (Student t) over prompts and seeds of every metric and
  cost figure; metric-vs-cost plots (seconds and NFE); per prompt, each loss · representation's views
  and its metrics over that prompt's seeds; the failed trials with their reasons. The HTML itself
  (number precision, pixelated views, sortable tables, the page) is in :mod:`sdbench.report_html`.
"""

from __future__ import annotations

import csv
import html
import io
import json
import math
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sdbench import config as cfgutil
from sdbench import report_html as H
from sdbench.budget import Budget
from sdbench.errors import UserError
from sdbench.io import atomic_write, slug, write_text
from sdbench.results import HEADLINE_METRICS, GroupKey, TrialResult, group_key, load_results
from sdbench.stats import mean_ci

ID_FIELDS = ("trial", "prompt", "loss", "arm", "representation", "prior", "seed", "budget", "status", "error")
COST_FIELDS = ("seconds", "steps", "nfe", "seconds_per_step", "peak_memory_mb", "nonfinite_grad_steps")
Result = tuple[Path, TrialResult]


# ------------------------------------------------------------------ statistics
def summarize(results: Sequence[Result]) -> tuple[list[str], dict[GroupKey, dict[str, tuple[float, float, int]]]]:
    """Per group: {column: (mean, ci, n)} over completed trials, for metrics and costs."""
    metric_names = sorted({m for _, r in results for m in r.metrics})
    columns = metric_names + [f"cost.{c}" for c in COST_FIELDS]
    groups: dict[GroupKey, list[TrialResult]] = defaultdict(list)
    for _, r in results:
        if r.completed:
            groups[group_key(r)].append(r)
    return columns, {key: {c: mean_ci([r.value(c) for r in rs]) for c in columns} for key, rs in sorted(groups.items())}


# ------------------------------------------------------------------------ FID
def group_fid(results: Sequence[Result], refs_per_prompt: int = 8) -> dict[GroupKey, tuple[float, str]]:
    """3D-FID per group: the group's evaluation views against prior samples of its prompts.

    Feature space: the toy evaluator for the toy prior, clean-fid's Inception where its weights are
    local (``$SDBENCH_INCEPTION_DIR``); groups with neither are left out.
    """
    import os
    import shutil
    import tempfile

    from sdbench.evaluation import fid as F
    from sdbench.world.data import cache_dir

    groups: dict[GroupKey, list[Result]] = defaultdict(list)
    for d, r in results:
        if r.completed and (d / "views").is_dir():
            groups[group_key(r)].append((d, r))
    values: dict[GroupKey, tuple[float, str]] = {}
    priors: dict[str, Any] = {}
    for key, members in groups.items():
        prior_name = key.prior
        features = "toy" if prior_name == "toy" else ("inception" if os.environ.get(F.INCEPTION_ENV) else None)
        if features is None:
            continue
        if prior_name not in priors:
            from sdbench.trial import spec_from_config

            spec = spec_from_config(members[0][1].config)
            priors[prior_name] = spec.prior_cls(spec.prior)
        prior = priors[prior_name]
        with tempfile.TemporaryDirectory() as tmp:
            fake, real = Path(tmp) / "views", Path(tmp) / "refs"
            fake.mkdir()
            real.mkdir()
            for d, _ in members:
                for v in sorted((d / "views").glob("*.png")):
                    shutil.copy(v, fake / f"{d.name}-{v.name}")
            for prompt in sorted({r.prompt for _, r in members}):
                folder = F.reference_images(
                    prior,
                    json.dumps(members[0][1].config["prior"], sort_keys=True) + prior_name,
                    prompt,
                    refs_per_prompt,
                    0,
                    cache_dir(),
                )
                for v in sorted(folder.glob("*.png")):
                    shutil.copy(v, real / f"{slug(prompt, 48)}-{v.name}")
            values[key] = (F.fid(fake, real, features), features)
    return values


# ------------------------------------------------------------------ diversity
DiversityKey = tuple[GroupKey, str]


def group_diversity(results: Sequence[Result]) -> tuple[dict[DiversityKey, dict[str, float]], str]:
    """Diversity across seeds (:func:`~sdbench.evaluation.diversity.diversity_of`) of every group's
    ambiguous toy prompts (world v2 prompts that leave the colour or shape open), from the v2 read-outs
    the trials kept (metric ``toy2``).

    Returns:
        ``{(group, prompt): {"diversity_distance": ..., "diversity_entropy_<attribute>": ..., "seeds": S}}``
        for every (group, prompt) with at least two completed trials, and a note saying once what was
        left out and why ("" when nothing was): trials without a kept read-out (the v2 evaluator was
        missing when they were evaluated) are never replaced by another evaluator's.
    """
    from sdbench.evaluation.diversity import diversity_of, has_readout
    from sdbench.world.grammar import parse

    def ambiguous(prompt: str) -> bool:
        try:
            return parse(prompt, "v2").ambiguous
        except ValueError:
            return False

    sets: dict[DiversityKey, list[Path]] = defaultdict(list)
    for d, r in results:
        if r.completed and ambiguous(r.prompt):
            sets[(group_key(r), r.prompt)].append(d)
    values: dict[DiversityKey, dict[str, float]] = {}
    no_readout, refused = 0, []
    for key, dirs in sorted(sets.items()):
        if len(dirs) < 2:
            continue
        if not all(has_readout(d) for d in dirs):
            no_readout += 1
            continue
        try:
            values[key] = diversity_of(dirs)
        except UserError as e:
            refused.append(f"{key[1]!r} ({key[0].loss} · {key[0].representation}): {e}")
    notes = []
    if no_readout:
        notes.append(
            f"Diversity left out for {no_readout} (group, ambiguous prompt) set{'s' * (no_readout > 1)}: "
            "trials without the v2 evaluator's read-out (it was missing when they were evaluated; train it, "
            "then 'sdbench eval' the trials)."
        )
    if refused:
        notes.append("Diversity not computed for " + "; ".join(refused) + ".")
    return values, " ".join(notes)


def write_diversity_csv(values: dict[DiversityKey, dict[str, float]], path: Path) -> Path:
    columns = sorted({c for v in values.values() for c in v} - {"seeds"})
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["prior", "loss", "representation", "budget", "prompt", "seeds", *columns])
    for (g, prompt), v in sorted(values.items()):
        writer.writerow([*g, prompt, int(v["seeds"]), *(v.get(c, "") for c in columns)])
    return write_text(path, buf.getvalue())


def _diversity_section(values: dict[DiversityKey, dict[str, float]], note: str) -> str:
    if not values and not note:
        return ""
    columns = sorted({c for v in values.values() for c in v} - {"seeds"})
    body = [
        [*(H.text(x) for x in g), H.text(prompt), H.number(v["seeds"]), *(H.number(v.get(c, math.nan)) for c in columns)]
        for (g, prompt), v in sorted(values.items())
    ]
    table = H.table(["prior", "loss", "representation", "budget", "prompt", "seeds", *map(H.header_label, columns)], body)
    note_html = f"<p class='note'>{html.escape(note)}</p>" if note else ""
    return f"""<h2 id="diversity">Diversity across seeds (ambiguous prompts)</h2>
<p class="note">Per loss · representation and prompt: mean pairwise cosine distance of the v2 evaluator's
embeddings across seeds (view by view) and the normalised entropy of each read-out across seeds;
0 when every seed gives the same result.</p>
{note_html}{table if values else ""}"""


# ----------------------------------------------------------------------- files
def rows(
    results: Sequence[Result], fids: dict[GroupKey, tuple[float, str]] | None = None
) -> tuple[list[str], list[dict[str, Any]]]:
    metric_names = sorted({m for _, r in results for m in r.metrics})
    header = [*ID_FIELDS, *metric_names, *(f"cost_{c}" for c in COST_FIELDS), "fid", "fid_features"]
    table = []
    for d, r in results:
        row: dict[str, Any] = {
            "trial": d.name,
            "prompt": r.prompt,
            "loss": r.loss,
            "arm": r.arm,
            "representation": r.representation,
            "prior": r.prior,
            "seed": r.seed,
            "budget": r.budget.label,
            "status": r.status,
            "error": r.error or "",
        }
        row.update({m: r.metrics.get(m, "") for m in metric_names})
        row.update({f"cost_{c}": "" if getattr(r.cost, c) is None else getattr(r.cost, c) for c in COST_FIELDS})
        fid_value = (fids or {}).get(group_key(r))
        row["fid"], row["fid_features"] = fid_value if fid_value and r.completed else ("", "")
        table.append(row)
    return header, table


def write_results_csv(results: Sequence[Result], path: Path, fids: dict | None = None) -> Path:
    header, table = rows(results, fids)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=header, lineterminator="\n")
    writer.writeheader()
    writer.writerows(table)
    return write_text(path, buf.getvalue())


def _plots(columns: list[str], table: dict, metrics: list[str]) -> str:
    """Metric vs cost (seconds and NFE) scatter plots with CI bars, as embedded PNGs."""
    if not table or not metrics:
        return ""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    html_parts = []
    for metric in metrics:
        fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
        for ax, cost, label in (
            (axes[0], "cost.seconds", "optimisation seconds"),
            (axes[1], "cost.nfe", "prior evaluations (NFE)"),
        ):
            for key, row in table.items():
                (y, yci, n), (x, xci, _) = row[metric], row[cost]
                if n and math.isfinite(y) and math.isfinite(x):
                    ax.errorbar(x, y, yerr=yci or 0, xerr=xci or 0, fmt="o", capsize=3, label=f"{key[1]} · {key[2]}")
            ax.set_xlabel(label)
            ax.set_ylabel(metric)
            ax.grid(alpha=0.3)
        handles, labels = axes[0].get_legend_handles_labels()
        if handles:
            fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8)
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
        plt.close(fig)
        html_parts.append(H.plot_img(buf.getvalue(), f"{metric} vs cost"))
    return "\n".join(html_parts)


def _views(d: Path) -> list[Path]:
    """A trial's evaluation views at their own resolution (``views/*.png``), else its ``views.png`` grid."""
    return sorted((d / "views").glob("*.png")) or ([d / "views.png"] if (d / "views.png").is_file() else [])


def write_report(
    results: Sequence[Result],
    path: Path,
    title: str = "sdbench report",
    fids: dict | None = None,
    notes: str = "",
    diversity: tuple[dict[DiversityKey, dict[str, float]], str] | None = None,
) -> Path:
    columns, table = summarize(results)
    metric_cols = [c for c in columns if not c.startswith("cost.")]
    headline = [m for m in HEADLINE_METRICS if m in metric_cols] or metric_cols[:4]
    metric_cols = [*headline, *(c for c in metric_cols if c not in headline)]  # headline metrics first, in view
    fids = fids or {}
    spaces = {f[1] for f in fids.values()}  # FID feature spaces: named in the header when there is one
    # Label columns: (index in the group key, name); prior and budget only when they vary, else said once.
    labels = [(1, "loss"), (2, "representation")]
    same = []
    for i, name in ((0, "prior"), (3, "budget")):
        values = sorted({group_key(r)[i] for _, r in results})
        if len(values) > 1:
            labels.append((i, name))
        elif values:
            same.append(f"{name} {values[0]}")
    same_note = f"<p class='note'>Every row: {html.escape(', '.join(same))}.</p>" if same else ""

    def section(cols: list[str], with_fid: bool) -> str:
        head = [*(name for _, name in labels), "n", *(H.header_label(c.removeprefix("cost.")) for c in cols)]
        body = []
        for key, row in table.items():
            n = max(v[2] for v in row.values()) if row else 0
            cells = [*(H.text(key[i]) for i, _ in labels), H.number(n), *(H.number(*row[c][:2]) for c in cols)]
            if with_fid:
                f = fids.get(key)
                if f is None:
                    cells.append(H.number(math.nan))
                else:
                    space = f" <small>({html.escape(f[1])})</small>" if len(spaces) > 1 else ""
                    cells.append(H.Cell(H.fmt_value(f[0]) + space, f[0], numeric=True))
            body.append(cells)
        fid_head = "3D-FID" + (f" ({html.escape(next(iter(spaces)))})" if len(spaces) == 1 else "")
        return H.table([*head, *([fid_head] if with_fid else [])], body)

    quality = section(metric_cols, with_fid=True)
    cost = section([c for c in columns if c.startswith("cost.")], with_fid=False)
    plots = _plots(columns, table, [m for m in HEADLINE_METRICS if m in metric_cols] or metric_cols[:2])

    # Per prompt: each group's views (lowest seed) and its metrics over that prompt's seeds.
    by_prompt: dict[str, dict[tuple, list[Result]]] = defaultdict(lambda: defaultdict(list))
    for d, r in results:
        if r.completed:
            by_prompt[r.prompt][group_key(r)].append((d, r))
    prompt_sections = []
    for k, (prompt, groups) in enumerate(sorted(by_prompt.items())):
        body = []
        for key, members in sorted(groups.items()):
            members.sort(key=lambda m: m[1].seed)
            d0, r0 = members[0]
            label = " · ".join(key[i] for i, _ in labels)
            stats = [mean_ci([r.metrics.get(m, math.nan) for _, r in members]) for m in headline]
            body.append(
                [
                    *(H.text(key[i]) for i, _ in labels),
                    H.raw(H.views(_views(d0), f"{prompt}: {label}, seed {r0.seed}")),
                    H.number(len(members)),
                    *(H.number(m, ci) for m, ci, _ in stats),
                ]
            )
        head = [*(name for _, name in labels), "views (lowest seed)", "seeds", *map(H.header_label, headline)]
        prompt_sections.append(f"<h3 id='prompt-{k}'>{html.escape(prompt)}</h3>\n{H.table(head, body)}")
    toc = "".join(f"<a href='#prompt-{k}'>{html.escape(p)}</a>" for k, p in enumerate(sorted(by_prompt)))

    div_html = _diversity_section(*diversity) if diversity else ""
    failed = [(d.name, r.error or "") for d, r in results if not r.completed]
    failed_html = (
        "<h2 id='failed'>Failed trials</h2><ul class='failed'>"
        + "".join(f"<li><code>{html.escape(n)}</code>: {html.escape(e)}</li>" for n, e in failed)
        + "</ul>"
        if failed
        else ""
    )
    body = f"""<p class="note">{len(results)} trials, {len(failed)} failed.
Cells: mean ± 95 % confidence half-width (Student t) over prompts and seeds, rounded to the digits the
half-width supports. Click a column header to sort. {notes}</p>
<nav class="toc"><a href="#quality">quality</a><a href="#cost">cost</a><a href="#plots">metrics against cost</a>
<a href="#prompts">per prompt</a>{"<a href='#diversity'>diversity</a>" if div_html else ""}\
{"<a href='#failed'>failed trials</a>" if failed else ""}</nav>
<h2 id="quality">Quality per loss · representation</h2>
{same_note}{quality}
<h2 id="cost">Cost per loss · representation</h2>
{same_note}{cost}
<h2 id="plots">Metrics against cost</h2>
{plots}
<h2 id="prompts">Per prompt</h2>
<p class="note">Each prompt's evaluation views for every loss · representation (the lowest seed, pixels
enlarged without smoothing) and its metrics over that prompt's seeds.</p>
<nav class="toc">{toc}</nav>
{"".join(prompt_sections)}
{div_html}
{failed_html}"""
    return atomic_write(path, lambda f: f.write(H.page(title, body).encode()))


def build_report(out: Path, ids: Sequence[str] | None = None, fid: bool = True) -> Path:
    """Rebuild ``results.csv`` and ``report.html`` of the sweep in ``out`` from its trial directories."""
    out = Path(out)
    trials = out / "trials"
    dirs = (
        [trials / i for i in ids]
        if ids is not None
        else sorted(p for p in trials.iterdir() if p.is_dir())
        if trials.is_dir()
        else []
    )
    results = load_results(dirs)
    fids = group_fid(results) if fid and results else {}
    write_results_csv(results, out / "results.csv", fids)
    diversity = group_diversity(results)
    if diversity[0]:
        write_diversity_csv(diversity[0], out / "diversity.csv")
    sweep = json.loads((out / "sweep.json").read_text()).get("sweep", {}) if (out / "sweep.json").is_file() else {}
    notes = ""
    if "budget" in sweep:
        notes = html.escape(f"Budget {cfgutil.from_dict(Budget, sweep['budget']).label} for every trial.")
    elif "groups" in sweep:
        budgets = sorted({cfgutil.from_dict(Budget, g["budget"]).label for g in sweep["groups"]})
        notes = html.escape(f"{len(sweep['groups'])} groups; budgets {', '.join(budgets)} (a row's budget is in its name).")
    return write_report(
        results, out / "report.html", title=f"sdbench sweep: {out.name}", fids=fids, notes=notes, diversity=diversity
    )
