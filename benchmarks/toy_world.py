"""Quality gates of the toy world (issue: the embedded toy world).

1. evaluator on held-out ground-truth renders: shape and colour accuracy (gate ≥ 98 % each);
2. prior samples (50-step DPM-Solver++, CFG 7.5), every shape × colour prompt: accuracy by the
   evaluator (gates ≥ 90 % shape, ≥ 95 % colour);
3. 2D image + SDS from a grey start, 500 steps, every prompt: share classified as its prompt
   (gate ≥ 80 %), at SDS's paper CFG (100) and at CFG 7.5.

Writes ``benchmarks/results/toy_world.json`` and the grids ``docs/images/toy_prior_samples.png``
and ``docs/images/toy_sds_grid.png``.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from benchmarks.common import save
from sdbench.io import save_grid

DOCS = Path(__file__).resolve().parent.parent / "docs" / "images"
SAMPLES_PER_PROMPT = 4


def accuracy(readout, shapes: torch.Tensor, colours: torch.Tensor) -> dict[str, float]:
    s, c = readout.shape == shapes, readout.colour == colours
    return {"shape": s.float().mean().item(), "colour": c.float().mean().item(), "both": (s & c).float().mean().item()}


def labels(prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    from sdbench.world.grammar import parse
    from sdbench.world.scenes import COLOURS, SHAPES

    parsed = [parse(p) for p in prompts]
    return torch.tensor([SHAPES.index(p.shape) for p in parsed]), torch.tensor([list(COLOURS).index(p.colour) for p in parsed])


def main(sds_steps: int = 500) -> dict:
    from sdbench import trial
    from sdbench.budget import Budget
    from sdbench.evaluation.toy import classify, load_evaluator
    from sdbench.priors.toy import ToyPrior
    from sdbench.world.data import make_renders
    from sdbench.world.grammar import base_prompts

    results: dict = {}
    scorer = load_evaluator("cpu")
    prompts = base_prompts()

    # 1. evaluator on held-out renders (a seed used by neither training run)
    data = make_renders(20, seed=303)
    r = classify(data.images.float() / 255, scorer)
    results["evaluator_held_out"] = {"n": len(data), **accuracy(r, data.shape, data.colour)}

    # 2. prior samples
    prior = ToyPrior()
    start = time.time()
    sample_prompts = [p for p in prompts for _ in range(SAMPLES_PER_PROMPT)]
    imgs = prior.sample(
        sample_prompts,
        num_steps=50,
        guidance_scale=7.5,
        scheduler="dpmsolver++",
        generator=torch.Generator().manual_seed(0),
        batch_size=60,
    )
    shapes, colours = labels(sample_prompts)
    results["prior_samples"] = {
        "n": len(imgs),
        "scheduler": "dpmsolver++",
        "steps": 50,
        "cfg": 7.5,
        "seconds": round(time.time() - start, 1),
        **accuracy(classify(imgs, scorer), shapes, colours),
    }
    save_grid(imgs[::SAMPLES_PER_PROMPT], DOCS / "toy_prior_samples.png", nrow=5, min_size=64)

    # 3. 2D SDS from grey
    shapes, colours = labels(prompts)
    results["sds_2d"] = {}
    for cfg_scale in (100.0, 7.5):
        finals, start = [], time.time()
        for i, p in enumerate(prompts):
            spec = trial.resolve(
                trial.TrialConfig(
                    prompt=p, loss="sds", representation="image", budget=Budget("steps", sds_steps), seed=i, metrics=()
                ),
                [f"loss.cfg_scale={cfg_scale}"],
            )
            state = trial.build(spec, prior)
            trial.optimise(state, progress=False)
            finals.append(state.representation.image().detach()[0])
        finals = torch.stack(finals)
        results["sds_2d"][f"cfg_{cfg_scale:g}"] = {
            "n": len(prompts),
            "steps": sds_steps,
            "seconds": round(time.time() - start, 1),
            **accuracy(classify(finals, scorer), shapes, colours),
        }
        save_grid(finals, DOCS / f"toy_sds_grid_cfg{cfg_scale:g}.png", nrow=5, min_size=64)
    results["gates"] = {
        "evaluator_shape>=0.98": results["evaluator_held_out"]["shape"] >= 0.98,
        "evaluator_colour>=0.98": results["evaluator_held_out"]["colour"] >= 0.98,
        "samples_shape>=0.90": results["prior_samples"]["shape"] >= 0.90,
        "samples_colour>=0.95": results["prior_samples"]["colour"] >= 0.95,
        "sds_2d_both>=0.80 (cfg 100)": results["sds_2d"]["cfg_100"]["both"] >= 0.80,
        "sds_2d_both>=0.80 (cfg 7.5)": results["sds_2d"]["cfg_7.5"]["both"] >= 0.80,
    }
    save("toy_world", results)
    return results


if __name__ == "__main__":
    main()
