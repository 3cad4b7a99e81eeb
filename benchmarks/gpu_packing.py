"""Several small trials on one GPU: what ``--gpus-per-trial 0.25`` buys (issue 18, item 5).

Ray's fractional GPUs only decide how many trial processes share a card; the throughput they buy is
that of N trial processes running at once on one GPU. This script measures exactly that, without Ray
(its wheel, 79 MB, is larger than what travels to a lent GPU machine): the same trials (toy prior v2,
``--steps`` each, distinct prompts and seeds) are run with 1, 2, 4 and 8 processes at a time, and it
records wall time, trial-steps per second and each trial's own seconds per step (``result.json``).

    python -m benchmarks.gpu_packing --rep image --steps 400 --trials 8   # -> benchmarks/results/gpu_packing.json

On a CPU-only machine it refuses (exit 2): the CPU case is covered by ``benchmarks.throughput``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import torch

from benchmarks.common import save

PROMPTS = ("a red cube", "a blue sphere", "a green striped cone", "a yellow checkered cylinder")


def run_batch(jobs: list[list[str]], at_once: int, log) -> float:
    """Run the command lines ``jobs``, ``at_once`` at a time; returns wall seconds."""
    start, pending, running = time.perf_counter(), list(jobs), []
    while pending or running:
        while pending and len(running) < at_once:
            running.append(subprocess.Popen(pending.pop(0), stdout=log, stderr=subprocess.STDOUT))
        time.sleep(0.05)
        for p in [p for p in running if p.poll() is not None]:
            running.remove(p)
            if p.returncode:
                raise SystemExit(f"error: a trial exited {p.returncode}: {' '.join(p.args)}")
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rep", default="image")
    ap.add_argument("--loss", default="sds")
    ap.add_argument("--prior", default="toy2", help="toy2: world v2 (the prompts use its pattern words)")
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--trials", type=int, default=8)
    ap.add_argument("--at-once", default="1,2,4,8")
    ap.add_argument("--out", type=Path, default=Path("runs/gpu_packing"))
    args = ap.parse_args(argv)
    if not torch.cuda.is_available():
        print("error: benchmarks.gpu_packing needs a CUDA GPU", file=sys.stderr)
        raise SystemExit(2)
    rows = []
    args.out.mkdir(parents=True, exist_ok=True)
    with open(args.out / "trials.log", "a") as log:
        for n in [int(x) for x in args.at_once.split(",")]:
            folder = args.out / f"at_once_{n}"
            shutil.rmtree(folder, ignore_errors=True)  # a finished trial folder would be reused, not timed
            jobs = [
                [
                    sys.executable,
                    "-m",
                    "sdbench.cli",
                    "run",
                    "--prompt",
                    PROMPTS[i % len(PROMPTS)],
                    "--loss",
                    args.loss,
                    "--rep",
                    args.rep,
                    "--prior",
                    args.prior,
                    "--steps",
                    str(args.steps),
                    "--seed",
                    str(i),
                    "--out",
                    str(folder / f"t{i}"),
                    "--quiet",
                ]
                for i in range(args.trials)
            ]
            wall = run_batch(jobs, n, log)
            results = [json.loads((folder / f"t{i}" / "result.json").read_text()) for i in range(args.trials)]
            per_step = [r["cost"]["seconds_per_step"] for r in results]
            rows.append(
                {
                    "at_once": n,
                    "wall_s": round(wall, 2),
                    "trial_steps_per_s": round(args.trials * args.steps / wall, 1),
                    "mean_seconds_per_step_in_trial": round(sum(per_step) / len(per_step), 5),
                    "peak_gpu_mb_per_trial": max((r["cost"].get("peak_memory_mb") or 0) for r in results),
                }
            )
            print(json.dumps(rows[-1]), flush=True)
    base = rows[0]["trial_steps_per_s"]
    for r in rows:
        r["speedup_vs_one_at_a_time"] = round(r["trial_steps_per_s"] / base, 2)
    result = {
        "what": f"{args.trials} trials ({args.loss}, {args.rep}, prior {args.prior}, {args.steps} steps each)",
        "note": "wall_s includes each trial process's start (imports, prior load) and its end-of-trial evaluation",
        "gpu": torch.cuda.get_device_name(0),
        "torch": torch.__version__,
        "rows": rows,
    }
    save("gpu_packing", result, device="cuda")
    return result


if __name__ == "__main__":
    main()
