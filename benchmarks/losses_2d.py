"""Every loss turns a grey 2D image into its prompt on the toy prior (issue: the loss zoo).

For each loss (paper defaults) and each of 6 prompts covering every shape and colour: 500 steps of
the image representation from a grey start, then the toy evaluator's read-out of the result.
Writes ``benchmarks/results/losses_2d.json`` and ``docs/images/losses_2d.png`` (rows: losses,
columns: prompts).
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from benchmarks.common import save
from sdbench.io import save_grid

PROMPTS = ("a red sphere", "a green cube", "a blue cone", "a yellow cylinder", "a purple torus", "an orange sphere")
LOSSES = ("sds", "csd", "nfsd", "ism", "vsd", "vdm")
DOCS = Path(__file__).resolve().parent.parent / "docs" / "images"


def main(steps: int = 500) -> dict:
    from sdbench import trial
    from sdbench.budget import Budget
    from sdbench.evaluation.toy import classify, load_evaluator
    from sdbench.priors.toy import ToyPrior
    from sdbench.world.grammar import parse
    from sdbench.world.scenes import COLOURS, SHAPES

    prior, scorer = ToyPrior(), load_evaluator("cpu")
    shapes = torch.tensor([SHAPES.index(parse(p).shape) for p in PROMPTS])
    colours = torch.tensor([list(COLOURS).index(parse(p).colour) for p in PROMPTS])
    results: dict = {"steps": steps, "prompts": list(PROMPTS), "losses": {}}
    rows = []
    for loss in LOSSES:
        finals, start = [], time.time()
        for i, prompt in enumerate(PROMPTS):
            spec = trial.resolve(
                trial.TrialConfig(
                    prompt=prompt, loss=loss, representation="image", budget=Budget("steps", steps), seed=i, metrics=()
                )
            )
            state = trial.build(spec, prior)
            trial.optimise(state, progress=False)
            finals.append(state.representation.image().detach()[0])
        finals = torch.stack(finals)
        r = classify(finals, scorer)
        ok_s, ok_c = r.shape == shapes, r.colour == colours
        results["losses"][loss] = {
            "shape": ok_s.float().mean().item(),
            "colour": ok_c.float().mean().item(),
            "both": (ok_s & ok_c).float().mean().item(),
            "seconds": round(time.time() - start, 1),
            "predictions": [f"{c} {s}" for c, s in r.names()],
        }
        print(
            f"{loss}: {results['losses'][loss]['both']:.2f} of prompts right in {results['losses'][loss]['seconds']:.0f} s",
            flush=True,
        )
        rows.append(finals)
    save_grid(torch.cat(rows), DOCS / "losses_2d.png", nrow=len(PROMPTS), min_size=64)
    save("losses_2d", results)
    return results


if __name__ == "__main__":
    main()
