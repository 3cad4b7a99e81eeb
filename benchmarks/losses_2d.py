"""Every loss turns a grey 2D image into its prompt on the toy prior (issue: the loss zoo).

For each registered loss (VDM's ablations aside: :func:`benchmarks.common.registered_losses`) at its
paper defaults, and each of 6 prompts covering every shape and colour: 500 steps of the image
representation from a grey start, then the toy evaluator's read-out of the result. Writes
``benchmarks/results/losses_2d.json`` and ``docs/images/losses_2d.png`` (rows: losses, columns: prompts).

Step schedules are compressed to the budget by their paper's ratio (the trial does it: each loss
config's ``step_schedule``, ``trial.scale_schedules``), so that each loss runs its whole schedule in the
500 steps; the values used are written to the result file (``schedules``).

``python -m benchmarks.losses_2d [--quick]``: ``--quick`` is a smoke run (2 steps, the first prompt) that
writes nothing. On a machine with spare cores the grid can run in parts, one process each, then be
merged: ``--losses sds,csd --part a`` (writes ``losses_2d.part-a.json`` and its images), ``--merge a,b``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from benchmarks.common import registered_losses, save
from sdbench.io import save_grid

PROMPTS = ("a red sphere", "a green cube", "a blue cone", "a yellow cylinder", "a purple torus", "an orange sphere")
LOSSES = registered_losses()
DOCS = Path(__file__).resolve().parent.parent / "docs" / "images"
RESULTS = Path(__file__).resolve().parent / "results"


def schedules(steps: int, losses=LOSSES) -> dict[str, dict[str, int]]:
    """The step schedule each loss runs with in a ``steps``-step trial: its ``step_schedule`` fields,
    scaled by the trial from the paper's run length (:func:`sdbench.config.scale_steps`)."""
    from sdbench import trial
    from sdbench.budget import Budget
    from sdbench.config import schedule_values

    out = {}
    for loss in losses:
        cfg = trial.TrialConfig(prompt=PROMPTS[0], loss=loss, representation="image", budget=Budget("steps", steps))
        values = schedule_values(trial.resolve(cfg).loss)
        if values:
            out[loss] = values
    return out


def main(steps: int = 500, quick: bool = False, losses: tuple[str, ...] = LOSSES, part: str | None = None) -> dict:
    """The 2D grid (writes the result and the image), or with ``quick`` a 2-step smoke run on the first
    prompt that writes nothing."""
    from sdbench import trial
    from sdbench.budget import Budget
    from sdbench.evaluation.toy import classify, load_evaluator
    from sdbench.priors.toy import ToyPrior
    from sdbench.world.grammar import parse
    from sdbench.world.scenes import COLOURS, SHAPES

    prompts = PROMPTS[:1] if quick else PROMPTS
    steps = 2 if quick else steps
    prior, scorer = ToyPrior(), load_evaluator("cpu")
    shapes = torch.tensor([SHAPES.index(parse(p).shape) for p in prompts])
    colours = torch.tensor([list(COLOURS).index(parse(p).colour) for p in prompts])
    results: dict = {"steps": steps, "prompts": list(prompts), "schedules": schedules(steps), "losses": {}}
    rows = []
    for loss in losses:
        finals, start, last_logs = [], time.time(), []
        for i, prompt in enumerate(prompts):
            spec = trial.resolve(
                trial.TrialConfig(
                    prompt=prompt, loss=loss, representation="image", budget=Budget("steps", steps), seed=i, metrics=()
                )
            )
            state = trial.build(spec, prior)
            trial.optimise(state, progress=False)
            finals.append(state.representation.image().detach()[0])
            last_logs.append(state.logs)
        finals = torch.stack(finals)
        r = classify(finals, scorer)
        ok_s, ok_c = r.shape == shapes, r.colour == colours
        results["losses"][loss] = {
            "shape": ok_s.float().mean().item(),
            "colour": ok_c.float().mean().item(),
            "both": (ok_s & ok_c).float().mean().item(),
            "seconds": round(time.time() - start, 1),
            "predictions": [f"{c} {s}" for c, s in r.names()],
            # the loss's logs over the last logging window (SDS-Bridge's "stage" is 2 there)
            "final_logs": {k: round(sum(d[k] for d in last_logs) / len(last_logs), 4) for k in last_logs[0]},
        }
        print(
            f"{loss}: {results['losses'][loss]['both']:.2f} of prompts right in {results['losses'][loss]['seconds']:.0f} s",
            flush=True,
        )
        rows.append(finals)
    if quick:
        print(json.dumps(results, indent=2))
        print("quick run: nothing written")
        return results
    if part is not None:
        torch.save(dict(zip(losses, rows)), RESULTS / f"losses_2d.part-{part}.pt")
        save(f"losses_2d.part-{part}", results)
        return results
    save_grid(torch.cat(rows), DOCS / "losses_2d.png", nrow=len(prompts), min_size=64)
    save("losses_2d", results)
    return results


def merge(parts: list[str]) -> dict:
    """Combine ``losses_2d.part-*.json`` files (same steps, prompts, schedules) into the result and the grid,
    losses in :data:`LOSSES` order."""
    payloads = [json.loads((RESULTS / f"losses_2d.part-{p}.json").read_text()) for p in parts]
    loaded = [d["results"] for d in payloads]
    first = loaded[0]
    keys = ("steps", "prompts", "schedules")
    if any(tuple(d.get(k) for k in keys) != tuple(first.get(k) for k in keys) for d in loaded):
        raise SystemExit("parts differ in steps, prompts or schedules")
    per_loss, images = {}, {}
    for d in loaded:
        per_loss.update(d["losses"])
    for p in parts:
        images.update(torch.load(RESULTS / f"losses_2d.part-{p}.pt"))
    order = [loss for loss in LOSSES if loss in per_loss]
    results = {k: first[k] for k in keys}
    results["losses"] = {loss: per_loss[loss] for loss in order}
    results["parts"] = {p: {"measured_at": d["measured_at"]} for p, d in zip(parts, payloads)}
    save_grid(
        torch.cat([images[loss] for loss in order]),
        DOCS / "losses_2d.png",
        nrow=len(first["prompts"]),
        min_size=64,
    )
    save("losses_2d", results)
    return results


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smoke run: 2 steps, the first prompt; writes nothing")
    ap.add_argument("--losses", default=",".join(LOSSES), help="comma list (default: every registered loss)")
    ap.add_argument("--part", help="write losses_2d.part-PART.json instead of the result (run parts in parallel)")
    ap.add_argument("--merge", help="comma list of parts to merge into the result and the grid")
    a = ap.parse_args()
    if a.merge:
        merge(a.merge.split(","))
    else:
        main(quick=a.quick, losses=tuple(a.losses.split(",")), part=a.part)
