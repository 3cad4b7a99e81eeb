"""Results tables and a self-contained HTML report from trial directories.

``results.csv`` has one row per trial: the identifying fields, status, every metric and every cost
figure. ``report.html`` embeds its images (base64), so it opens offline from anywhere.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sdbench.io import atomic_write, write_text

ID_FIELDS = ("trial", "prompt", "loss", "representation", "prior", "seed", "budget", "status", "error")
COST_FIELDS = ("seconds", "steps", "nfe", "seconds_per_step", "peak_memory_mb")


def load_results(trial_dirs: Sequence[Path]) -> list[tuple[Path, dict[str, Any]]]:
    """(directory, result.json) for every trial directory that has a result."""
    out = []
    for d in trial_dirs:
        f = Path(d) / "result.json"
        if f.is_file():
            out.append((Path(d), json.loads(f.read_text())))
    return out


def rows(results: Sequence[tuple[Path, dict[str, Any]]]) -> tuple[list[str], list[dict[str, Any]]]:
    metric_names = sorted({m for _, r in results for m in r.get("metrics", {})})
    header = [*ID_FIELDS, *metric_names, *(f"cost_{c}" for c in COST_FIELDS)]
    table = []
    for d, r in results:
        row: dict[str, Any] = {
            "trial": d.name,
            "prompt": r["prompt"],
            "loss": r["loss"],
            "representation": r["representation"],
            "prior": r["prior"],
            "seed": r["seed"],
            "budget": f"{r['budget']['kind']}:{r['budget']['value']:g}",
            "status": r["status"],
            "error": r.get("error") or "",
        }
        row.update({m: r.get("metrics", {}).get(m, "") for m in metric_names})
        row.update({f"cost_{c}": r.get("cost", {}).get(c, "") for c in COST_FIELDS})
        table.append(row)
    return header, table


def write_results_csv(results: Sequence[tuple[Path, dict[str, Any]]], path: Path) -> Path:
    header, table = rows(results)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=header, lineterminator="\n")
    writer.writeheader()
    writer.writerows(table)
    return write_text(path, buf.getvalue())


def _img_tag(path: Path, alt: str, width: int = 256) -> str:
    if not path.is_file():
        return "<span class='missing'>no image</span>"
    data = base64.b64encode(path.read_bytes()).decode()
    kind = "gif" if path.suffix == ".gif" else "png"
    return f"<img src='data:image/{kind};base64,{data}' alt='{html.escape(alt)}' width='{width}'>"


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:.4g}"
    return html.escape(str(v))


def write_report(results: Sequence[tuple[Path, dict[str, Any]]], path: Path, title: str = "sdbench report") -> Path:
    """A self-contained HTML page: the results table and one image per trial (prompt × loss)."""
    header, table = rows(results)
    shown = [h for h in header if h not in ("trial", "error", "prior")]
    head = "".join(f"<th>{html.escape(h)}</th>" for h in shown)
    body = "".join("<tr>" + "".join(f"<td>{_fmt(r[h])}</td>" for h in shown) + "</tr>" for r in table)
    prompts = sorted({r["prompt"] for _, r in results})
    columns = sorted({(r["loss"], r["representation"]) for _, r in results})
    grid_head = "".join(f"<th>{html.escape(loss)} · {html.escape(rep)}</th>" for loss, rep in columns)
    grid_rows = []
    for p in prompts:
        cells = []
        for loss, rep in columns:
            match = [(d, r) for d, r in results if r["prompt"] == p and r["loss"] == loss and r["representation"] == rep]
            cells.append("<td>" + "".join(_img_tag(d / "views.png", f"{p} {loss} {rep}") for d, _ in match[:1]) + "</td>")
        grid_rows.append(f"<tr><th>{html.escape(p)}</th>{''.join(cells)}</tr>")
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; margin-bottom: 2em; }}
th, td {{ border: 1px solid #ccc; padding: 4px 8px; text-align: right; font-size: 13px; }}
th {{ background: #f3f3f3; }}
img {{ image-rendering: pixelated; }}
.missing {{ color: #999; }}
</style></head><body>
<h1>{html.escape(title)}</h1>
<h2>Results ({len(table)} trials)</h2>
<table><tr>{head}</tr>{body}</table>
<h2>Views: prompt × loss · representation</h2>
<table><tr><th>prompt</th>{grid_head}</tr>{''.join(grid_rows)}</table>
</body></html>
"""
    return atomic_write(path, lambda f: f.write(page.encode()))
