"""Per-step cost of every arm of the claims study, each timed alone on this machine (the Pareto plot's seconds).

The claims sweep records each trial's own seconds per step, but it ran two trials at once on the two cores,
and in parts of it other work (test runs) shared the machine: its seconds mix the arms' cost with contention.
Here each arm runs as the sweep plans it (``sweeps/claims.toml``: the arm's loss and overrides, prior ``toy2``,
3D Gaussians, one view per step) on one prompt, ``"a red cube with a face"``, at a budget of ``--steps`` steps
instead of 1000 (every schedule scales with the budget, so SDI's hop count, the t annealing of ISM, CSD, VSD and
ESD, and SDS-Bridge's second stage cover the same fractions of the run), one torch thread, one trial at a time,
the arms interleaved over ``--rounds`` rounds. Per arm: the median over rounds of the trial loop's seconds per
step (``cost.seconds_per_step``: evaluation excluded) and NFE per step (backward passes of trained parts counted
as one more each, as the report counts them). At fewer steps the 3D Gaussians densify to fewer points than at
1000, so absolute seconds are lower than the sweep's; the arms' ratios are what the plot compares.

    python -m benchmarks.claims_cost [--steps 60] [--rounds 2] [--quick]

Writes ``benchmarks/results/claims_cost.json`` (``--quick``: 5 steps, 1 round, 3 arms, writes nothing);
``sdbench report runs/claims --no-fid --claims docs/claims.md --cpu-timings benchmarks/results/claims_cost.json``
(``make claims``) plots these seconds.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import tempfile
import time
from pathlib import Path

import torch

from benchmarks.common import save

DEFINITION = Path(__file__).resolve().parent.parent / "sweeps" / "claims.toml"
PROMPT = "a red cube with a face"
UNTIMED = ("trial.metrics=[]", "trial.turntable_frames=0")
"""Evaluation is not timed (``cost.seconds_per_step`` is the loop's), so it is switched off to save time."""


def arms(steps: int, only: tuple[str, ...] = ()) -> dict[str, object]:
    """Arm name → the TrialSpec the claims sweep would run for :data:`PROMPT` at seed 0, at ``steps`` steps."""
    from sdbench.budget import Budget
    from sdbench.sweep import load_definition, plan

    out = {}
    for group in load_definition(DEFINITION):
        if group.prompts and PROMPT not in group.prompts:
            continue  # the ambiguous-prompt groups repeat arms already timed
        g = dataclasses.replace(
            group, prompts=(PROMPT,), seeds=(0,), budget=Budget("steps", steps), overrides=(*group.overrides, *UNTIMED)
        )
        for _, spec in plan(g):
            arm = spec.config_dict()["trial"].get("arm") or spec.config_dict()["loss"]["name"]
            if not only or arm in only:
                out[arm] = spec
    return out


def main(steps: int = 60, rounds: int = 2, quick: bool = False) -> dict:
    from sdbench.trial import run_trial

    torch.set_num_threads(1)
    specs = arms(steps, ("sds", "vdm", "vsd") if quick else ())
    times: dict[str, list[float]] = {a: [] for a in specs}
    nfe: dict[str, float] = {}
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for k in range(rounds):
            for arm, spec in specs.items():
                r = run_trial(spec, Path(tmp) / f"{arm}-{k}".replace("@", "at").replace("+", "_"), progress=False, resume=False)
                times[arm].append(r.cost.seconds_per_step)
                nfe[arm] = (r.cost.nfe + (r.cost.nfe_with_grad or 0)) / r.cost.steps
                print(f"round {k + 1}/{rounds} {arm}: {r.cost.seconds_per_step:.4f} s/step, {nfe[arm]:.2f} NFE/step", flush=True)
    sds = statistics.median(times["sds"]) if times.get("sds") else float("nan")
    return {
        "prompt": PROMPT,
        "steps": steps,
        "rounds": rounds,
        "threads": 1,
        "wall_seconds": round(time.perf_counter() - start, 1),
        "arms": {
            arm: {
                "seconds_per_step": round(statistics.median(t), 5),
                "rounds_seconds_per_step": [round(x, 5) for x in t],
                "nfe_per_step": round(nfe[arm], 3),
                "relative_to_sds": round(statistics.median(t) / sds, 3),
            }
            for arm, t in times.items()
        },
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60, help="budget of each timed trial (default 60)")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds over the arms (default 2)")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 5 steps, 1 round, 3 arms; writes nothing")
    a = parser.parse_args()
    if a.quick:
        print(main(5, 1, quick=True))
    else:
        save("claims_cost", main(a.steps, a.rounds))
