"""Convergence curves: every toy-world metric against optimisation steps (issue 16, Deliver 5).

Arms (:data:`ARMS`): SDS at CFG 7.5, SDS at CFG 100 (the paper's), VDM (CFG 7.5), each on the 2D image
and on 3D Gaussians, from the trial's own start (grey image, a ball of Gaussians), for ``--steps``
steps (default 1000), on a few prompts (:func:`default_prompts`: six v1 prompts covering every shape
and colour, and with ``--prior toy2`` four v2 prompts with a pattern or a face) × ``--seeds``.
Every ``--every`` steps (and at step 0) the live representation is scored by the trial's own
evaluation, :func:`sdbench.trial.evaluate` with ``--metrics`` (default ``toy``: the v2 appearance keys
``toy_chroma_error`` … ``toy_noise`` and the rest, see ``docs/metrics-v2.md``); nothing is copied.
Writes ``benchmarks/results/convergence.json`` (every run's values at every checkpoint, and per
representation × arm × key the mean over prompts with a 95 % prompt-level bootstrap interval, seeds
averaged within a prompt first) and ``docs/images/convergence.png`` (one panel per metric, a colour
per arm, solid 2D and dashed 3DGS, the band the interval). A budget for a study is then read where
the curves flatten.

Each curve is one run of ``--steps`` steps observed along the way. The losses here have no step
schedule, but 3DGS densification is budget-relative (``Gaussians.Config.step_schedule``: refinements
at 40 % and 60 % of the trial, steps 400 and 600 of 1000), so a 3DGS point at step k is not what a
k-step trial would give; the JSON records the schedules used and the number of Gaussians at each
checkpoint.

Prompts whose metrics cannot be computed (``--metrics`` raises for them: e.g. v2 prompts while the
toy metric reads v1 prompts only) are left out with a printed line and listed under ``skipped``.

``python -m benchmarks.convergence [--prior toy|toy2] [--steps 1000] [--every 100] [--seeds 0,1]``
``[--arms ...] [--reps image,gaussians] [--prompts "a red sphere;..."] [--quick] [--out DIR]``;
``--quick`` is a smoke run (2 steps, each checkpoint, the first prompt that can be scored, one seed,
256 Gaussians) that writes into a temporary folder (or ``--out``). The grid can run in parts, one
process per core, then be merged (``--merge a,b,c``); 3DGS is most of the cost, so for two cores e.g.
``--reps gaussians --arms sds_cfg7.5,sds_cfg100 --part a`` on one, and ``--reps image --part b`` then
``--reps gaussians --arms vdm --part c`` on the other.

Cost, measured on one thread of a 2-core AMD EPYC shared with other jobs (load average ≈ 5), so ±50 %:
a step of SDS / VDM takes 30–67 / 51–149 ms on the image and 133–162 / 188–256 ms on 3DGS (4096
Gaussians, 8192 once refined); an evaluation 0.1 s on the image (plus ≈ 5 s once per prompt for its
pose grid) and 2–4 s on 3DGS (``--steps 200 --every 100``, one prompt and seed, every arm and
representation: 2 min 45 s in all). One (prompt, seed) at 1000 steps, every 100, is thus 13–15 min, of
which 3DGS is about 80 %; the default grid (6 prompts × 2 seeds × 3 arms × 2 representations = 72 runs,
11 checkpoints each) about 2.5–3 h on one core, about 1.5 h in the parts above on two free cores.
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from benchmarks.common import RESULTS, save

DOCS = Path(__file__).resolve().parent.parent / "docs" / "images"

#: Arm name → (loss, its ``--set`` overrides).
ARMS: dict[str, tuple[str, tuple[str, ...]]] = {
    "sds_cfg7.5": ("sds", ("loss.cfg_scale=7.5",)),
    "sds_cfg100": ("sds", ("loss.cfg_scale=100",)),
    "vdm": ("vdm", ("loss.cfg_scale=7.5",)),
}
REPRESENTATIONS = ("image", "gaussians")
V1_PROMPTS = ("a red sphere", "a green cube", "a blue cone", "a yellow cylinder", "a purple torus", "an orange sphere")
V2_PROMPTS = ("a red striped cube", "a blue checkered sphere", "a green dotted cylinder", "a yellow cube with a face")
#: Panels first, in this order, when present; any other key except :data:`NOT_PLOTTED` follows.
PLOTTED = (
    "toy_chroma_error",
    "toy_lightness_error",
    "toy_delta_e",
    "toy_contrast_error",
    "toy_detail",
    "toy_noise",
    "toy_acc",
    "toy_iou",
    "toy_background_error",
)
#: Recorded in the JSON, not drawn: legacy v1 keys (``docs/metrics-v2.md``) and by-products.
NOT_PLOTTED = (
    "toy_saturation_error",
    "toy_hue_error",
    "toy_colour_error",
    "toy_shape_acc",
    "toy_colour_acc",
    "toy_pose_azimuth",
    "toy_pose_elevation",
)
QUICK_OVERRIDES = ("rep@gaussians.num_points=256", "trial.eval_views=2")


def default_prompts(prior: str) -> tuple[str, ...]:
    """Six v1 prompts (every shape and colour); with the v2 prior also :data:`V2_PROMPTS`."""
    return V1_PROMPTS + (V2_PROMPTS if prior == "toy2" else ())


def checkpoints(steps: int, every: int) -> list[int]:
    """0, every, 2·every, … and the last step."""
    return sorted({*range(0, steps + 1, every), steps})


def load_prior(name: str):
    """The toy prior ``name``; ``UserError`` (one line) when it is unknown or its weights are missing."""
    from sdbench.errors import UserError
    from sdbench.priors.toy import ToyPrior, ToyPrior2

    if name not in ("toy", "toy2"):
        raise UserError(f"unknown prior {name!r} for the convergence curves; use toy or toy2")
    return ToyPrior() if name == "toy" else ToyPrior2()


def evaluate(state, metrics: tuple[str, ...]) -> dict[str, float]:
    """The trial's evaluation of the live representation; torch's global generator is left as it was,
    so the curve's trial runs exactly as it would unobserved."""
    from sdbench import trial

    with torch.random.fork_rng(devices=[]):
        values, _ = trial.evaluate(state.spec, state.prior, state.representation, None, metrics)
    return values


def run_one(prior, prompt: str, arm: str, rep: str, seed: int, steps: int, every: int, metrics, overrides=()) -> dict:
    """One trial of ``steps`` steps evaluated at :func:`checkpoints`; its values per key (None where a key
    is undefined at a checkpoint), the Gaussians' count per checkpoint (3DGS) and its timings."""
    from sdbench import trial
    from sdbench.budget import Budget
    from sdbench.config import schedule_values

    loss, arm_overrides = ARMS[arm]
    cfg = trial.TrialConfig(
        prompt=prompt, loss=loss, representation=rep, prior=prior.name, seed=seed, budget=Budget("steps", steps), metrics=metrics
    )
    spec = trial.resolve(cfg, (*arm_overrides, *overrides))
    state = trial.build(spec, prior)
    marks = checkpoints(steps, every)
    rows: list[dict[str, float]] = []
    points: list[int] = []
    eval_seconds = 0.0

    def observe(s) -> None:
        nonlocal eval_seconds
        if s.step in marks:
            start = time.perf_counter()
            rows.append(evaluate(s, metrics))
            eval_seconds += time.perf_counter() - start
            points.append(getattr(s.representation, "num_points", 0))

    observe(state)
    trial.optimise(state, progress=False, on_step=observe)
    keys = sorted({k for r in rows for k in r})
    return {
        "arm": arm,
        "representation": rep,
        "prompt": prompt,
        "seed": seed,
        "steps": marks,
        "metrics": {k: [_round(r.get(k)) for r in rows] for k in keys},
        "num_points": points if rep == "gaussians" else None,
        "schedules": {"loss": schedule_values(spec.loss), "representation": schedule_values(spec.representation)},
        "optimisation_seconds": round(state.seconds, 2),
        "seconds_per_step": round(state.seconds / max(state.step, 1), 4),
        "eval_seconds": round(eval_seconds, 2),
    }


def _round(value):
    """Four significant digits (a float, None, or a list of them): the curves' resolution in the JSON."""
    if isinstance(value, list):
        return [_round(v) for v in value]
    return None if value is None or not math.isfinite(value) else float(f"{value:.4g}")


def evaluable(prior, prompt: str, metrics: tuple[str, ...]) -> str | None:
    """None when ``metrics`` can score ``prompt`` (on the initial 2D image), else why not."""
    from sdbench import trial
    from sdbench.budget import Budget
    from sdbench.errors import UserError

    try:
        spec = trial.resolve(
            trial.TrialConfig(prompt=prompt, loss="sds", representation="image", prior=prior.name, budget=Budget("steps", 1))
        )
        evaluate(trial.build(spec, prior), metrics)
    except UserError as e:
        return str(e)
    return None


def bootstrap_interval(values: list[float], resamples: int = 2000, seed: int = 0) -> tuple[float, float]:
    """95 % percentile bootstrap interval of the mean of ``values`` (one per prompt)."""
    import numpy as np

    x = np.asarray(values, dtype=float)
    if len(x) < 2:
        return float(x.mean()), float(x.mean())
    means = x[np.random.default_rng(seed).integers(0, len(x), (resamples, len(x)))].mean(axis=1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def summarise(runs: list[dict]) -> dict[str, dict[str, dict[str, dict[str, list]]]]:
    """Per representation → arm → key: ``steps``, ``mean`` over prompts (each prompt the mean of its seeds),
    the bootstrap interval ``low``/``high``, and ``prompts`` (how many had a value there)."""
    out: dict = {}
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in runs:
        groups.setdefault((r["representation"], r["arm"]), []).append(r)
    for (rep, arm), members in groups.items():
        steps = members[0]["steps"]
        keys = sorted({k for r in members for k in r["metrics"]})
        curves = {}
        for key in keys:
            mean, low, high, counts = [], [], [], []
            for i in range(len(steps)):
                by_prompt: dict[str, list[float]] = {}
                for r in members:
                    v = r["metrics"].get(key, [None] * len(steps))[i]
                    if v is not None and math.isfinite(v):
                        by_prompt.setdefault(r["prompt"], []).append(v)
                prompt_means = [sum(v) / len(v) for v in by_prompt.values()]
                counts.append(len(prompt_means))
                m, lo, hi = None, None, None
                if prompt_means:
                    m, (lo, hi) = sum(prompt_means) / len(prompt_means), bootstrap_interval(prompt_means)
                mean.append(m)
                low.append(lo)
                high.append(hi)
            curves[key] = {"steps": steps, "mean": _round(mean), "low": _round(low), "high": _round(high), "prompts": counts}
        out.setdefault(rep, {})[arm] = curves
    return out


def plotted_keys(summary: dict) -> list[str]:
    present = {k for arms in summary.values() for curves in arms.values() for k, c in curves.items() if any(c["prompts"])}
    return [k for k in PLOTTED if k in present] + sorted(present - set(PLOTTED) - set(NOT_PLOTTED))


def plot(summary: dict, path: Path, title: str = "") -> Path:
    """One panel per metric; a colour per arm, solid for the image and dashed for 3DGS; the band is the
    prompt-level 95 % interval."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = plotted_keys(summary)
    cols = min(3, max(len(keys), 1))
    rows = max(1, math.ceil(len(keys) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.0 * rows), squeeze=False)
    colours = {arm: f"C{i}" for i, arm in enumerate(ARMS)}
    styles = {"image": "-", "gaussians": "--"}
    for ax, key in zip(axes.flat, keys):
        for rep, arms in summary.items():
            for arm, curves in arms.items():
                c = curves.get(key)
                if c is None or not any(c["prompts"]):
                    continue
                pts = [(s, m, lo, hi) for s, m, lo, hi in zip(c["steps"], c["mean"], c["low"], c["high"]) if m is not None]
                s, m, lo, hi = (list(v) for v in zip(*pts))
                ax.plot(s, m, styles.get(rep, ":"), color=colours.get(arm, "k"), label=f"{arm} · {rep}", lw=1.4)
                ax.fill_between(s, lo, hi, color=colours.get(arm, "k"), alpha=0.15, lw=0)
        ax.set_title(key, fontsize=10)
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(keys) :]:
        ax.axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 6), fontsize=8, frameon=False)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0.06, 1, 0.97))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def main(
    prior: str = "toy",
    steps: int = 1000,
    every: int = 100,
    prompts: tuple[str, ...] | None = None,
    seeds: tuple[int, ...] = (0, 1),
    arms: tuple[str, ...] = tuple(ARMS),
    reps: tuple[str, ...] = REPRESENTATIONS,
    metrics: tuple[str, ...] = ("toy",),
    quick: bool = False,
    out: Path | None = None,
    part: str | None = None,
) -> dict:
    """The curves (writes the result and the figure; see the module docstring). With ``quick`` a
    2-step smoke run of the first prompt and seed, written to ``out`` or a temporary folder."""
    from sdbench.errors import UserError

    unknown = sorted(set(arms) - set(ARMS)) + sorted(set(reps) - set(REPRESENTATIONS))
    if unknown:
        raise UserError(f"unknown arm or representation {unknown[0]!r}; arms: {', '.join(ARMS)}; reps: image, gaussians")
    if steps < 1 or every < 1:
        raise UserError(f"--steps and --every must be positive, got {steps} and {every}")
    torch.set_num_threads(1)
    model = load_prior(prior)
    prompts = tuple(prompts or default_prompts(prior))
    overrides: tuple[str, ...] = ()
    if quick:
        steps, every, seeds, overrides = 2, 1, seeds[:1], QUICK_OVERRIDES
        out = out or Path(tempfile.mkdtemp(prefix="sdbench-convergence-"))
    skipped, kept = {}, []
    for p in prompts:
        reason = evaluable(model, p, metrics)
        if reason:
            print(f"skipped {p!r}: {reason}", flush=True)
            skipped[p] = reason
        else:
            kept.append(p)
            if quick:  # the first prompt that can be scored
                break
    if not kept:
        raise UserError(f"no prompt can be evaluated with metrics {', '.join(metrics)}")
    runs = []
    for rep in reps:
        for arm in arms:
            for prompt in kept:
                for seed in seeds:
                    r = run_one(model, prompt, arm, rep, seed, steps, every, metrics, overrides)
                    runs.append(r)
                    print(
                        f"{rep} {arm} {prompt!r} s{seed}: {r['seconds_per_step'] * 1000:.0f} ms/step, "
                        f"eval {r['eval_seconds']:.1f} s",
                        flush=True,
                    )
    results = {
        "prior": prior,
        "steps": steps,
        "every": every,
        "prompts": kept,
        "seeds": list(seeds),
        "arms": {a: {"loss": ARMS[a][0], "overrides": list(ARMS[a][1])} for a in arms},
        "representations": list(reps),
        "metrics": list(metrics),
        "overrides": list(overrides),
        "skipped": skipped,
        "runs": runs,
        "summary": summarise(runs),
    }
    name = "convergence" if part is None else f"convergence.part-{part}"
    write(name, results, out)
    return results


def write(name: str, results: dict, out: Path | None) -> None:
    """``results`` as ``{out or benchmarks/results}/{name}.json``; its figure beside it (``out``) or as
    ``docs/images/convergence.png`` (a full, unsplit run)."""
    directory = Path(out) if out is not None else RESULTS
    save(name, results, directory=directory, echo=False, compact=True)
    if out is not None or not name.startswith("convergence.part-"):
        figure = directory / f"{name}.png" if out is not None else DOCS / "convergence.png"
        title = f"prior {results['prior']}: {len(results['prompts'])} prompts × {len(results['seeds'])} seeds"
        print(f"wrote {plot(results['summary'], figure, title)}")


def merge(parts: list[str], out: Path | None = None) -> dict:
    """Combine ``convergence.part-*.json`` (same prior, steps, every, prompts, seeds) into the result and the figure."""
    directory = Path(out) if out is not None else RESULTS
    loaded = [json.loads((directory / f"convergence.part-{p}.json").read_text())["results"] for p in parts]
    keys = ("prior", "steps", "every", "prompts", "seeds", "metrics", "overrides")
    first = loaded[0]
    if any(tuple(d[k] for k in keys) != tuple(first[k] for k in keys) for d in loaded):
        raise SystemExit("parts differ in prior, steps, every, prompts, seeds, metrics or overrides")
    results: dict[str, Any] = {k: first[k] for k in keys}
    results["arms"] = {a: v for d in loaded for a, v in d["arms"].items()}
    results["representations"] = [r for r in REPRESENTATIONS if any(r in d["representations"] for d in loaded)]
    results["skipped"] = {p: why for d in loaded for p, why in d["skipped"].items()}
    results["runs"] = [r for d in loaded for r in d["runs"]]
    ids = [(r["representation"], r["arm"], r["prompt"], r["seed"]) for r in results["runs"]]
    if len(set(ids)) != len(ids):
        raise SystemExit("parts overlap: a (representation, arm, prompt, seed) was run twice")
    results["summary"] = summarise(results["runs"])
    write("convergence", results, out)
    return results


if __name__ == "__main__":
    from sdbench.errors import UserError

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prior", default="toy", help="toy or toy2 (toy2 needs sdbench/world/weights/prior_v2)")
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--every", type=int, default=100, help="evaluate every this many steps (and at step 0)")
    ap.add_argument("--prompts", help="';'-separated prompts (default: six v1 prompts, plus four v2 ones with toy2)")
    ap.add_argument("--seeds", default="0,1", help="comma list")
    ap.add_argument("--arms", default=",".join(ARMS), help="comma list of " + ", ".join(ARMS))
    ap.add_argument("--reps", default=",".join(REPRESENTATIONS), help="comma list of image, gaussians")
    ap.add_argument("--metrics", default="toy", help="comma list of registered metrics (default toy)")
    ap.add_argument("--quick", action="store_true", help="smoke run: 2 steps, one prompt and seed; writes to a temp folder")
    ap.add_argument("--out", type=Path, help="write here instead of benchmarks/results and docs/images")
    ap.add_argument("--part", help="write convergence.part-PART.json instead of the result (run parts in parallel)")
    ap.add_argument("--merge", help="comma list of parts to merge into the result and the figure")
    a = ap.parse_args()
    try:
        if a.merge:
            merge(a.merge.split(","), a.out)
        else:
            main(
                prior=a.prior,
                steps=a.steps,
                every=a.every,
                prompts=tuple(p.strip() for p in a.prompts.split(";")) if a.prompts else None,
                seeds=tuple(int(s) for s in a.seeds.split(",")),
                arms=tuple(a.arms.split(",")),
                reps=tuple(a.reps.split(",")),
                metrics=tuple(a.metrics.split(",")),
                quick=a.quick,
                out=a.out,
                part=a.part,
            )
    except UserError as e:
        raise SystemExit(f"error: {e}") from None
