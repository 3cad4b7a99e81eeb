"""Quality gates of the toy world (issue: the embedded toy world).

1. evaluator on held-out ground-truth renders: shape and colour accuracy (gate ≥ 98 % each);
2. prior samples (50-step DPM-Solver++, CFG 7.5), every shape × colour prompt: accuracy by the
   evaluator (gates ≥ 90 % shape, ≥ 95 % colour);
3. 2D image + SDS from a grey start, 500 steps, every prompt: share classified as its prompt
   (gate ≥ 80 %), at SDS's paper CFG (100) and at CFG 7.5.

Writes ``benchmarks/results/toy_world.json`` and the grids ``docs/images/toy_prior_samples.png``
and ``docs/images/toy_sds_grid.png``.

World v2 (``python -m benchmarks.toy_world --world v2``, once ``prior_v2`` and ``evaluator_v2`` are
trained) checks the v2 gates and writes ``benchmarks/results/toy_world_v2.json`` and
``docs/images/toy_v2_prior_samples.png``: see :func:`main_v2`.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from benchmarks.common import label_arg, labelled, save
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


def entropy(labels: torch.Tensor, classes: int) -> float:
    """Plug-in entropy (nats) of integer ``labels``."""
    p = torch.bincount(labels, minlength=classes).float() / max(len(labels), 1)
    return float(-(p[p > 0] * p[p > 0].log()).sum())


def main_v2(
    prior_path: str = "",
    evaluator_path: str = "",
    samples_per_prompt: int = 1,
    ambiguous_samples: int = 32,
    num_steps: int = 50,
    held_out_per_class: int = 3,
    label: str = "",
) -> dict:
    """World v2 gates (issue: toy world v2), on the shipped v2 weights unless paths are given.

    1. evaluator on held-out v2 renders (a seed neither training used): accuracy per attribute
       (marking: visibility where the label is sure) — gate ≥ 98 % each;
    2. the evaluator must see blur: pattern accuracy on the held-out *patterned* renders blurred
       with σ = 2 px (truth: the rendered pattern) — gate: at least 30 points below the sharp one;
    3. prior samples (DPM-Solver++ ``num_steps``, CFG 7.5) of every unambiguous prompt, marked
       ones with ", front view" (truth: face visible) and ", back view" (truth: hidden) —
       gate ≥ 90 % per attribute;
    4. diversity: for each ambiguous prompt ("a cube", "a red object"), the entropy of the
       evaluator's read-out of the omitted attribute over ``ambiguous_samples`` samples, against
       the same estimate on as many data renders of that prompt — gate: mean ratio ≥ 0.9.
    """
    from sdbench.evaluation.toy import EVALUATOR_V2_DIR, evaluator_weights_id, load_evaluator, read_attributes
    from sdbench.priors.toy import ToyPrior2
    from sdbench.world import degrade
    from sdbench.world.data_v2 import DataConfig, make_renders
    from sdbench.world.grammar import ToyPrompt, ambiguous_prompts, full_prompts, parse
    from sdbench.world.scenes import COLOURS, PATTERNS, SHAPES

    scorer = load_evaluator("cpu", evaluator_path or str(EVALUATOR_V2_DIR))
    prior = ToyPrior2(ToyPrior2.Config(path=prior_path))
    results: dict = {
        "weights": {  # which models were gated (the SHA-256 prefix of their weights files)
            "prior": prior_path or "weights/prior_v2",
            "prior_id": prior.weights_id(),
            "evaluator": evaluator_path or "weights/evaluator_v2",
            "evaluator_id": evaluator_weights_id(evaluator_path or EVALUATOR_V2_DIR),
        }
    }
    data = make_renders(DataConfig(resolution=prior.resolution, per_class=held_out_per_class), seed=303)
    images = data.images.float() / 255

    # 1-2. evaluator
    r = read_attributes(images, scorer)
    visible = data.marking_visible()
    sure = visible >= 0
    patterned = data.pattern > 0
    blurred = read_attributes(degrade.blur(images[patterned], 2.0), scorer)
    results["evaluator_held_out"] = {
        "n": len(data),
        "shape": (r.shape == data.shape).float().mean().item(),
        "colour": (r.colour == data.colour).float().mean().item(),
        "pattern": (r.pattern == data.pattern).float().mean().item(),
        "marking_visibility": (r.marking[sure] == visible[sure]).float().mean().item(),
        "patterned_pattern": (r.pattern[patterned] == data.pattern[patterned]).float().mean().item(),
        "patterned_pattern_blur_2px": (blurred.pattern == data.pattern[patterned]).float().mean().item(),
    }

    # 3. prior samples
    prompts, truth = [], []
    for text in full_prompts():
        p = parse(text, "v2")
        for view in ("front", "back") if p.marking else (None,):
            prompts += [ToyPrompt(p.colour, p.shape, view, (), p.pattern, p.marking).text()] * samples_per_prompt
            truth += [(SHAPES.index(p.shape), list(COLOURS).index(p.colour), PATTERNS.index(p.surface), int(view == "front"))]
            truth += truth[-1:] * (samples_per_prompt - 1)
    start = time.time()
    g = torch.Generator().manual_seed(0)
    imgs = prior.sample(prompts, num_steps=num_steps, guidance_scale=7.5, scheduler="dpmsolver++", generator=g, batch_size=64)
    t = torch.tensor(truth)
    r = read_attributes(imgs, scorer)
    results["prior_samples"] = {
        "n": len(imgs),
        "scheduler": "dpmsolver++",
        "steps": num_steps,
        "cfg": 7.5,
        "seconds": round(time.time() - start, 1),
        **{k: (getattr(r, k) == t[:, i]).float().mean().item() for i, k in enumerate(("shape", "colour", "pattern", "marking"))},
    }
    save_grid(imgs[:: samples_per_prompt * 8][:64], DOCS / f"{labelled('toy_v2_prior_samples', label)}.png", nrow=8, min_size=64)

    # 4. diversity on ambiguous prompts: samples against data renders of the same prompt
    rows = {}
    gen = torch.Generator().manual_seed(1)
    for text in ambiguous_prompts():
        p = parse(text, "v2")
        attr, classes = ("colour", len(COLOURS)) if p.colour is None else ("shape", len(SHAPES))
        samples = prior.sample([text] * ambiguous_samples, num_steps=num_steps, generator=gen, batch_size=64)
        match = (data.pattern == 0) & (data.marking == 0)
        match &= (data.shape == SHAPES.index(p.shape)) if p.shape else (data.colour == list(COLOURS).index(p.colour))
        pool = match.nonzero()[:, 0]
        pick = pool[torch.randint(len(pool), (ambiguous_samples,), generator=gen)]
        h_samples = entropy(getattr(read_attributes(samples, scorer), attr), classes)
        h_data = entropy(getattr(read_attributes(images[pick], scorer), attr), classes)
        rows[text] = {
            "attribute": attr,
            "entropy_samples": h_samples,
            "entropy_data": h_data,
            "ratio": h_samples / max(h_data, 1e-9),
        }
    results["diversity"] = {"n_per_prompt": ambiguous_samples, "prompts": rows}
    results["diversity"]["mean_ratio"] = sum(v["ratio"] for v in rows.values()) / len(rows)

    e, s = results["evaluator_held_out"], results["prior_samples"]
    results["gates"] = {
        **{f"evaluator_{k}>=0.98": e[k] >= 0.98 for k in ("shape", "colour", "pattern", "marking_visibility")},
        "evaluator_pattern_drops_under_2px_blur (>=30 points)": e["patterned_pattern_blur_2px"] <= e["patterned_pattern"] - 0.3,
        **{f"samples_{k}>=0.90": s[k] >= 0.90 for k in ("shape", "colour", "pattern", "marking")},
        "diversity_ratio>=0.90": results["diversity"]["mean_ratio"] >= 0.9,
    }
    save(labelled("toy_world_v2", label), results)
    return results


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--world", choices=("v1", "v2"), default="v1")
    ap.add_argument("--prior", default="", help="v2: prior folder (default: the shipped prior_v2)")
    ap.add_argument("--evaluator", default="", help="v2: evaluator folder (default: the shipped evaluator_v2)")
    ap.add_argument(
        "--label",
        default="",
        type=label_arg,
        help="v2: write toy_world_v2_LABEL.json and toy_v2_prior_samples_LABEL.png (a candidate's gates)",
    )
    args = ap.parse_args()
    if args.world == "v1":
        main()
    else:
        main_v2(args.prior, args.evaluator, label=args.label)
