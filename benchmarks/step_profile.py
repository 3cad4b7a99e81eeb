"""Where a toy trial's time goes: a profile of one step for image, 3DGS and NeRF under SDS, VDM and VSD.

Each (representation, loss) trial runs in this process on one torch thread (what a sweep worker gets
on 2 cores), sharing one toy prior. After ``warmup`` steps, ``steps`` steps are timed with the trial
loop's own sections (:mod:`sdbench.trial.timing`), plus the prior's two entry points wrapped here:

* ``prior``: every ``prior.unet_forward`` (the toy UNet, CFG pairs, VSD's LoRA copy) and text encoding;
* ``render``: the representation's forward; ``backward``: ``loss.backward()`` (through the renderer
  and any prior call made with autograd);
* ``optimiser``: ``zero_grad``, ``step`` and the representation's ``post_step`` (3DGS densification);
* ``loss_own``: the loss call minus its prior calls (its formula, and its own networks: VDM's U-Lite
  operator step, VSD's LoRA update);
* ``cameras``, ``checks`` (NaN/inf), ``logging`` (history), ``checkpoint`` (every ``checkpoint_every``
  steps): the framework;
* ``evaluation``: ``evaluate`` + ``export_files`` of the trial, once, spread over ``budget`` steps
  (per metric in ``evaluation_by_metric``);
* Ray: the sweep's fixed start-up and its per-trial overhead, read from ``results/sweep.json``
  (``python -m benchmarks.run sweep``), not re-measured here.

``framework_share`` = (cameras + checks + logging + checkpoint + evaluation per step) / step;
``framework_and_loss_share`` adds ``loss_own``. Writes ``benchmarks/results/step_profile.json``.

    python -m benchmarks.step_profile [--quick]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from benchmarks.common import RESULTS, save

REPRESENTATIONS = ("image", "gaussians", "nerf")
LOSSES = ("sds", "vdm", "vsd")
FRAMEWORK = ("cameras", "checks", "logging", "checkpoint")


def _wrap_prior(prior, timer) -> None:
    """Time the prior's network and text calls (instance attributes shadow the methods)."""
    for name, section in (("unet_forward", "prior"), ("encode_text", "text")):
        method = getattr(type(prior), name).__get__(prior)

        def timed(*args, _m=method, _s=section, **kwargs):
            with timer.section(_s):
                return _m(*args, **kwargs)

        setattr(prior, name, timed)


def profile_one(prior, rep: str, loss: str, steps: int, warmup: int, budget: int, checkpoint_every: int, tmp: Path) -> dict:
    from sdbench import trial
    from sdbench.budget import Budget
    from sdbench.trial.timing import TIMER

    spec = trial.resolve(
        trial.TrialConfig(
            prompt="a red cube",
            loss=loss,
            representation=rep,
            budget=Budget("steps", warmup + steps),
            checkpoint_every=checkpoint_every,
        )
    )
    state = trial.build(spec, prior)
    TIMER.reset()
    TIMER.enable(False)

    def on_step(s) -> None:
        if s.step == warmup:  # measure from here
            TIMER.reset()
            TIMER.enable(True)
            on_step.start = time.perf_counter()

    on_step.start = time.perf_counter()
    trial.optimise(state, progress=False, on_step=on_step, checkpoint_path=tmp / f"{rep}-{loss}.pt")
    wall = time.perf_counter() - on_step.start
    totals, calls = dict(TIMER.totals), dict(TIMER.calls)
    TIMER.reset()
    start = time.perf_counter()
    trial.evaluate(spec, state.prior, state.representation, tmp / f"{rep}-{loss}")
    eval_by_metric = {k.split(":", 1)[1]: round(v, 3) for k, v in TIMER.totals.items() if k.startswith("eval:")}
    trial.export_files(state, tmp / f"{rep}-{loss}")
    evaluation = time.perf_counter() - start
    TIMER.enable(False)
    TIMER.reset()

    per = {k: v / steps for k, v in totals.items()}
    step = wall / steps
    prior_s = per.get("prior", 0.0) + per.get("text", 0.0)
    parts = {
        "prior": prior_s,
        "render": per.get("render", 0.0),
        "backward": per.get("backward", 0.0),
        "optimiser": per.get("optimiser", 0.0),
        "loss_own": max(per.get("loss", 0.0) - prior_s, 0.0),
        **{k: per.get(k, 0.0) for k in FRAMEWORK},
        "evaluation": evaluation / budget,
    }
    parts["unaccounted"] = max(step - sum(v for k, v in parts.items() if k != "evaluation"), 0.0)
    total = step + parts["evaluation"]
    framework = sum(parts[k] for k in (*FRAMEWORK, "evaluation", "unaccounted"))
    return {
        "seconds_per_step": round(step, 5),
        "seconds_per_step_with_evaluation": round(total, 5),
        "ms": {k: round(v * 1000, 2) for k, v in parts.items()},
        "share": {k: round(v / total, 4) for k, v in parts.items()},
        "framework_share": round(framework / total, 4),
        "framework_and_loss_share": round((framework + parts["loss_own"]) / total, 4),
        "evaluation_seconds": round(evaluation, 3),
        "evaluation_by_metric_seconds": eval_by_metric,
        "prior_calls_per_step": round(calls.get("prior", 0) / steps, 2),
    }


def ray_overhead() -> dict | None:
    path = RESULTS / "sweep.json"
    if not path.is_file():
        return None
    r = json.loads(path.read_text())["results"]
    return {
        "source": "benchmarks/results/sweep.json (python -m benchmarks.run sweep)",
        "fixed_seconds_per_sweep_2_workers": r["runs"]["2_workers_1_thread"]["fixed_seconds"],
        "ray_overhead_per_trial_seconds": r.get("ray_overhead_per_trial_seconds"),
    }


def table(results: dict) -> str:
    """The profile as a Markdown table (ms per step; evaluation spread over the budget)."""
    cols = ("prior", "render", "backward", "optimiser", "loss_own", "cameras", "checks", "logging", "checkpoint", "evaluation")
    lines = [
        "| trial | step ms | " + " | ".join(cols) + " | framework | framework + loss_own |",
        "|" + "---|" * (len(cols) + 4),
    ]
    for name, r in results.items():
        ms = r["ms"]
        lines.append(
            f"| {name} | {r['seconds_per_step_with_evaluation'] * 1000:.1f} | "
            + " | ".join(f"{ms[c]:.1f}" for c in cols)
            + f" | {r['framework_share']:.1%} | {r['framework_and_loss_share']:.1%} |"
        )
    return "\n".join(lines)


def main(quick: bool = False) -> dict:
    from sdbench.priors.toy import ToyPrior
    from sdbench.trial.timing import TIMER

    steps, warmup, budget, checkpoint_every = (6, 2, 200, 4) if quick else (40, 5, 200, 20)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    prior = ToyPrior()
    _wrap_prior(prior, TIMER)
    results: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        for rep in REPRESENTATIONS:
            for loss in LOSSES:
                results[f"{rep}/{loss}"] = profile_one(prior, rep, loss, steps, warmup, budget, checkpoint_every, Path(tmp))
                r = results[f"{rep}/{loss}"]
                print(f"{rep}/{loss}: {r['seconds_per_step'] * 1000:.1f} ms/step, framework {r['framework_share']:.1%}")
    torch.set_num_threads(threads)
    out = {
        "quick": quick,
        "threads": 1,
        "steps_timed": steps,
        "warmup_steps": warmup,
        "evaluation_spread_over_steps": budget,
        "checkpoint_every": checkpoint_every,
        "profile": results,
        "ray": ray_overhead(),
        "table_markdown": table(results),
    }
    print(out["table_markdown"])
    save("step_profile", out)
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few steps per trial (a smoke run; numbers are rough)")
    main(parser.parse_args().quick)
