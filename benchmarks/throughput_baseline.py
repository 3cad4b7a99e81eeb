"""Sweep throughput of two checkouts on the same grid: the commit issue 18 started from and this one.

``benchmarks.throughput`` compares today's code with its own legacy switch (``SDBENCH_LEGACY_PATH=1``), which
only undoes the changes that kept a switch. This benchmark compares the code itself: the same ``sdbench
sweep`` command line, run by a checkout of the baseline commit (default 5bfaf50, the tree the issue's
figures were measured on) with its own interpreter, and by this checkout, back to back on this machine.
The runs alternate by representation block (baseline first, then this one first, ...), so slow drift
of the machine hits both. Throughput = trial-steps / wall seconds of the sweep commands (Ray start-up,
evaluation, files and report included).

The grid: the losses both checkouts have (SDS, CSD, NFSD, ISM, VSD, VDM) × image / 3DGS / NeRF × 2
prompts × 2 seeds at 200 steps, toy prior (v1, which both have), 2 workers, W&B and FID off.
``--quick``: SDS, VDM, VSD × 1 prompt × 2 seeds at 100 steps.

Set up the baseline once (a worktree with its own editable install; the venv may be hard-linked):

    git worktree add --detach ../sdbench-5bfaf50 5bfaf50
    cp -al .venv ../sdbench-5bfaf50/.venv
    cd ../sdbench-5bfaf50 && rm -rf .venv/lib/python*/site-packages/__editable__*sdbench* \\
        .venv/lib/python*/site-packages/sdbench-*.dist-info .venv/bin/sdbench && .venv/bin/python -m pip install --no-deps -e .
    cd - && python -m benchmarks.throughput_baseline --baseline ../sdbench-5bfaf50

Writes ``benchmarks/results/throughput_baseline.json``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import save

LOSSES = ("sds", "csd", "nfsd", "ism", "vsd", "vdm")
REPS = ("image", "gaussians", "nerf")
PROMPTS = ("a red cube", "a blue sphere")


def sweep_command(sdbench: Path, prompts: Path, losses, rep: str, steps: int, workers: int, out: Path) -> list[str]:
    return [
        str(sdbench), "sweep", str(prompts), "--loss", ",".join(losses), "--rep", rep, "--seeds", "0,1",
        "--steps", str(steps), "--workers", str(workers), "--wandb", "disabled", "--no-fid", "--out", str(out),
    ]  # fmt: skip


def per_step(out: Path) -> list[float]:
    """Each completed trial's optimisation seconds per step, from its result.json (both schemas)."""
    values = []
    for f in sorted(out.glob("trials/*/result.json")):
        r = json.loads(f.read_text())
        cost = r.get("cost") or {}
        s = cost.get("seconds_per_step")
        if r.get("status") == "completed" and s is not None:
            values.append(float(s))
    return values


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--baseline", type=Path, required=True, help="a checkout of the baseline commit with its own .venv")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--keep", type=Path, default=None, help="keep the sweep folders here (default: a temporary folder)")
    ap.add_argument("--losses", default=None, help="comma list replacing the grid's losses (a smoke run)")
    ap.add_argument("--reps", default=None, help="comma list replacing the grid's representations (a smoke run)")
    ap.add_argument("--steps", type=int, default=None, help="replace the grid's steps (a smoke run)")
    args = ap.parse_args(argv)
    base_bin = args.baseline / ".venv" / "bin" / "sdbench"
    this_bin = Path(sys.executable).parent / "sdbench"
    for b in (base_bin, this_bin):
        if not b.is_file():
            print(f"error: {b} does not exist (see this module's docstring for the set-up)", file=sys.stderr)
            raise SystemExit(2)
    commit = subprocess.run(["git", "-C", str(args.baseline), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    here = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    losses = tuple(args.losses.split(",")) if args.losses else ("sds", "vdm", "vsd") if args.quick else LOSSES
    reps = tuple(args.reps.split(",")) if args.reps else REPS
    prompts_list = PROMPTS[:1] if args.quick else PROMPTS
    steps = args.steps or (100 if args.quick else 200)
    root = Path(args.keep or tempfile.mkdtemp(prefix="sdbench-throughput-"))
    root.mkdir(parents=True, exist_ok=True)
    prompts = root / "prompts.txt"
    prompts.write_text("\n".join(prompts_list) + "\n")
    runs: dict[str, dict] = {
        "baseline": {"wall": 0.0, "trials": 0, "per_step": []},
        "this": {"wall": 0.0, "trials": 0, "per_step": []},
    }
    blocks = []
    for i, rep in enumerate(reps):
        order = ("baseline", "this") if i % 2 == 0 else ("this", "baseline")
        for which in order:
            out = root / f"{which}-{rep}"
            shutil.rmtree(out, ignore_errors=True)  # a sweep keeps its finished trials: start each one empty
            cmd = sweep_command(base_bin if which == "baseline" else this_bin, prompts, losses, rep, steps, args.workers, out)
            cwd = args.baseline if which == "baseline" else Path.cwd()
            start = time.perf_counter()
            done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
            wall = time.perf_counter() - start
            if done.returncode:
                print(done.stdout[-2000:], done.stderr[-2000:], file=sys.stderr)
                raise SystemExit(f"error: the {which} sweep of {rep} exited {done.returncode}")
            s = per_step(out)
            trials = len(losses) * len(prompts_list) * 2
            if len(s) != trials:
                raise SystemExit(f"error: the {which} sweep of {rep} completed {len(s)} of {trials} trials")
            runs[which]["wall"] += wall
            runs[which]["trials"] += trials
            runs[which]["per_step"] += s
            blocks.append({"representation": rep, "checkout": which, "wall_s": round(wall, 1), "trials": trials,
                           "mean_seconds_per_step": round(sum(s) / len(s), 4)})  # fmt: skip
            print(json.dumps(blocks[-1]), flush=True)
    summary = {}
    for which, r in runs.items():
        summary[which] = {
            "trials": r["trials"],
            "trial_steps": r["trials"] * steps,
            "wall_seconds": round(r["wall"], 1),
            "trial_steps_per_second": round(r["trials"] * steps / r["wall"], 3),
            "optimisation_seconds_per_step_mean": round(sum(r["per_step"]) / len(r["per_step"]), 4),
        }
    result = {
        "quick": args.quick,
        "baseline_commit": commit.stdout.strip(),
        "this_commit": here.stdout.strip(),
        "grid": {
            "losses": list(losses),
            "representations": list(REPS),
            "prompts": list(prompts_list),
            "seeds": [0, 1],
            "steps": steps,
            "prior": "toy",
            "workers": args.workers,
        },  # fmt: skip
        "blocks": blocks,
        "baseline": summary["baseline"],
        "this": summary["this"],
        "speedup": round(summary["this"]["trial_steps_per_second"] / summary["baseline"]["trial_steps_per_second"], 3),
        "speedup_of_the_optimisation_step": round(
            summary["baseline"]["optimisation_seconds_per_step_mean"] / summary["this"]["optimisation_seconds_per_step_mean"], 3
        ),
        "goal_speedup>=2.5": summary["this"]["trial_steps_per_second"] >= 2.5 * summary["baseline"]["trial_steps_per_second"],
    }
    save("throughput_baseline", result)
    return result


if __name__ == "__main__":
    main()
