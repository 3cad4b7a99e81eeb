"""``make demo``: a small toy study on the embedded toy prior, ending with a report.

    python -m sdbench.demo [--out runs/demo] [--steps 300]

Runs every (prompt, loss, representation) of a small grid in this process (one prior, loaded
once), writes each trial directory, ``results.csv`` and ``report.html``, and prints a table.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from sdbench.errors import TrialFailed, UserError

PROMPTS = ("a red cube", "a blue sphere", "a yellow cone", "a green torus")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("runs/demo"))
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--losses", default="sds")
    ap.add_argument("--reps", default="image")
    args = ap.parse_args(argv)

    from rich.console import Console
    from rich.table import Table

    from sdbench import registry, trial
    from sdbench.budget import Budget
    from sdbench.report import load_results, write_report, write_results_csv

    console = Console()
    try:
        out = trial.check_writable(args.out)
        specs = []
        for rep in args.reps.split(","):
            for loss in args.losses.split(","):
                for prompt in PROMPTS:
                    cfg = trial.TrialConfig(prompt=prompt, loss=loss, representation=rep, budget=Budget("steps", args.steps))
                    specs.append(trial.resolve(cfg, ["loss.cfg_scale=20"] if loss == "sds" else []))
        prior = registry.PRIORS.get("toy")(registry.PRIORS.get("toy").Config())
    except UserError as e:
        console.print(f"error: {e}", style="red")
        return 2
    start = time.time()
    dirs = []
    for i, spec in enumerate(specs):
        t = spec.trial
        d = out / "trials" / f"{i:02d}-{t.loss}-{t.representation}-{t.prompt.replace(' ', '-')}"
        console.print(f"[{i + 1}/{len(specs)}] {t.prompt!r} · {t.loss} · {t.representation}")
        try:
            trial.run_trial(spec, d, progress=True, prior=prior)
        except TrialFailed as e:
            console.print(f"  failed: {e}", style="red")
        dirs.append(d)
    results = load_results(dirs)
    csv_path = write_results_csv(results, out / "results.csv")
    report = write_report(results, out / "report.html", title="sdbench demo (toy prior)")
    table = Table(title=f"demo: {len(results)} trials in {time.time() - start:.0f} s", title_justify="left")
    metric_names = sorted({m for _, r in results for m in r["metrics"]})
    for col in ("prompt", "loss", "rep", "status", *metric_names, "s/step", "nfe"):
        table.add_column(col)
    for _, r in results:
        table.add_row(
            r["prompt"], r["loss"], r["representation"], r["status"],
            *(f"{r['metrics'].get(m, float('nan')):.3g}" for m in metric_names),
            f"{r['cost'].get('seconds_per_step', float('nan')):.3f}", str(r["cost"].get("nfe", "")),
        )
    console.print(table)
    console.print(f"results: {csv_path.resolve()}")
    console.print(f"report:  {report.resolve()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
