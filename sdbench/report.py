"""Results of a sweep: ``results.csv`` and a self-contained ``report.html``, rebuilt from trial directories.

* ``results.csv``: one row per trial — identifying fields, status, every metric, every cost figure,
  and the trial's group 3D-FID (``fid``, with ``fid_features`` naming the feature space).
* ``report.html`` (opens offline; images and plots are embedded): per (prior, loss, representation,
  budget) the mean ± 95 % confidence half-width (Student t) over prompts and seeds of every metric and
  cost figure; metric-vs-cost plots (seconds and NFE); an image grid prompt × loss · representation;
  the failed trials with their reasons.
"""

from __future__ import annotations

import base64
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
from sdbench.budget import Budget
from sdbench.io import atomic_write, slug, write_text
from sdbench.results import HEADLINE_METRICS, GroupKey, TrialResult, group_key, load_results

ID_FIELDS = ("trial", "prompt", "loss", "representation", "prior", "seed", "budget", "status", "error")
COST_FIELDS = ("seconds", "steps", "nfe", "seconds_per_step", "peak_memory_mb", "nonfinite_grad_steps")
Result = tuple[Path, TrialResult]


# ------------------------------------------------------------------ statistics
def mean_ci(values: Sequence[float]) -> tuple[float, float, int]:
    """Mean, 95 % confidence half-width (Student t, n − 1 dof; 0 for one value) and n of finite values."""
    xs = [v for v in values if isinstance(v, (int, float)) and math.isfinite(v)]
    n = len(xs)
    if n == 0:
        return float("nan"), float("nan"), 0
    m = sum(xs) / n
    if n == 1:
        return m, 0.0, 1
    from scipy.stats import t as student

    sd = math.sqrt(sum((x - m) ** 2 for x in xs) / (n - 1))
    return m, float(student.ppf(0.975, n - 1)) * sd / math.sqrt(n), n


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


def _img(path: Path, alt: str, width: int | None = None) -> str:
    if not path.is_file():
        return "<span class='missing'>—</span>"
    data = base64.b64encode(path.read_bytes()).decode()
    kind = "gif" if path.suffix == ".gif" else "png"
    w = f" width='{width}'" if width else ""
    return f"<img src='data:image/{kind};base64,{data}' alt='{html.escape(alt)}'{w}>"


def _fmt(m: float, ci: float | None = None) -> str:
    if not math.isfinite(m):
        return "—"
    text = f"{m:.4g}"
    if ci is not None and math.isfinite(ci) and ci > 0:
        text += f" ± {ci:.2g}"
    return text


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
        html_parts.append(
            f"<img src='data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}' alt='{html.escape(metric)} vs cost'>"
        )
    return "\n".join(html_parts)


def write_report(
    results: Sequence[Result], path: Path, title: str = "sdbench report", fids: dict | None = None, notes: str = ""
) -> Path:
    columns, table = summarize(results)
    metric_cols = [c for c in columns if not c.startswith("cost.")]
    fids = fids or {}

    def section(cols: list[str], with_fid: bool) -> str:
        head = (
            "<th>prior</th><th>loss</th><th>representation</th><th>budget</th><th>n</th>"
            + "".join(f"<th>{html.escape(c.removeprefix('cost.'))}</th>" for c in cols)
            + ("<th>3D-FID</th>" if with_fid else "")
        )
        body = []
        for key, row in table.items():
            n = max(v[2] for v in row.values()) if row else 0
            cells = "".join(f"<td>{_fmt(*row[c][:2])}</td>" for c in cols)
            f = fids.get(key)
            fid_cell = (f"<td>{f[0]:.3g} <small>({html.escape(f[1])})</small></td>" if f else "<td>—</td>") if with_fid else ""
            body.append(
                f"<tr><td>{html.escape(key[0])}</td><td>{html.escape(key[1])}</td><td>{html.escape(key[2])}</td>"
                f"<td>{html.escape(key[3])}</td><td>{n}</td>{cells}{fid_cell}</tr>"
            )
        return f"<table><tr>{head}</tr>{''.join(body)}</table>"

    quality = section(metric_cols, with_fid=True)
    cost = section([c for c in columns if c.startswith("cost.")], with_fid=False)
    plots = _plots(columns, table, [m for m in HEADLINE_METRICS if m in metric_cols] or metric_cols[:2])
    prompts = sorted({r.prompt for _, r in results})
    cols = sorted({(r.loss, r.representation) for _, r in results})
    grid_head = "".join(f"<th>{html.escape(loss)} · {html.escape(rep)}</th>" for loss, rep in cols)
    grid_rows = []
    for p in prompts:
        cells = []
        for loss, rep in cols:
            match = sorted(
                [(r.seed, d) for d, r in results if r.prompt == p and r.loss == loss and r.representation == rep and r.completed]
            )
            cells.append("<td>" + (_img(match[0][1] / "views.png", f"{p} {loss} {rep}", 480) if match else "—") + "</td>")
        grid_rows.append(f"<tr><th>{html.escape(p)}</th>{''.join(cells)}</tr>")
    failed = [(d.name, r.error or "") for d, r in results if not r.completed]
    failed_html = (
        "<h2>Failed trials</h2><ul>"
        + "".join(f"<li><code>{html.escape(n)}</code>: {html.escape(e)}</li>" for n, e in failed)
        + "</ul>"
        if failed
        else ""
    )
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: system-ui, -apple-system, sans-serif; margin: 2em; color: #222; max-width: 1600px; }}
table {{ border-collapse: collapse; margin-bottom: 2em; }}
th, td {{ border: 1px solid #ccc; padding: 4px 8px; font-size: 13px; }}
td {{ text-align: right; }}
th {{ background: #f3f3f3; }}
img {{ image-rendering: pixelated; }}
.missing {{ color: #999; }}
.note {{ color: #555; font-size: 13px; }}
</style></head><body>
<h1>{html.escape(title)}</h1>
<p class="note">{len(results)} trials, {len(failed)} failed.
Cells: mean ± 95 % confidence half-width (Student t) over prompts and seeds. {notes}</p>
<h2>Quality per loss · representation</h2>
{quality}
<h2>Cost per loss · representation</h2>
{cost}
<h2>Metrics against cost</h2>
{plots}
<h2>Evaluation views: prompt × loss · representation (lowest seed)</h2>
<table><tr><th>prompt</th>{grid_head}</tr>{"".join(grid_rows)}</table>
{failed_html}
</body></html>
"""
    return atomic_write(path, lambda f: f.write(page.encode()))


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
    sweep = json.loads((out / "sweep.json").read_text()).get("sweep", {}) if (out / "sweep.json").is_file() else {}
    notes = ""
    if "budget" in sweep:
        notes = html.escape(f"Budget {cfgutil.from_dict(Budget, sweep['budget']).label} for every trial.")
    elif "groups" in sweep:
        budgets = sorted({cfgutil.from_dict(Budget, g["budget"]).label for g in sweep["groups"]})
        notes = html.escape(f"{len(sweep['groups'])} groups; budgets {', '.join(budgets)} (a row's budget is in its name).")
    return write_report(results, out / "report.html", title=f"sdbench sweep: {out.name}", fids=fids, notes=notes)
