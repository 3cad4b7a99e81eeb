"""The CPU 3DGS renderer, old against new: forward and forward+backward at 32 and 64 px on one thread.

"Old" is the pure-torch rasteriser before the throughput work (gsplat's torch projection, autograd
through every compositing step), which ``SDBENCH_LEGACY_PATH=1`` still selects; "new" is today's
default (:func:`sdbench.representations.splat.project` and the hand-differentiated
:func:`~sdbench.representations.splat.composite_sparse`). Both run in this process, interleaved
repeat by repeat (old, new, old, new, ...), so load from other jobs on a shared machine hits both alike.

Scenes, with the default ``Gaussians`` config (sphere init, 4096 Gaussians, SH degree 0, white background):

* ``init``: the representation at step 0;
* ``mid``: after ``--steps`` (300) steps of a toy SDS trial on "a red cube" (densified by gsplat's
  strategy to ~8k Gaussians; a realistic mid-training state: opacities spread over (0, 1)).

Each repeat renders one view drawn from the trial's camera distribution (a fixed cycle of 8, the same
for both paths), as a trial step does (batch size 1); forward+backward backpropagates
``(rgb · r).sum() + alpha.sum()`` with a fixed random ``r`` into the raw parameters. Times are wall
milliseconds (min / median) and, since the machine is shared, CPU milliseconds of this process
(``process_time``, which other jobs do not inflate as much). ``stages_cpu_median_ms`` splits one
forward+backward into projection, compositing, compositing backward and projection backward (CPU ms). ``agreement``
is the largest difference between the two paths' outputs and gradients on those views (gradients
relative to each parameter's largest entry).

    python -m benchmarks.splat_cpu [--repeats 30] [--steps 300]

Writes ``benchmarks/results/splat_cpu.json``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from contextlib import contextmanager

import torch

from benchmarks.common import save

SIZES = (32, 64)
PATHS = ("old", "new")


@contextmanager
def path(name: str):
    """Select the old (``SDBENCH_LEGACY_PATH=1``) or the new renderer for the duration."""
    before = os.environ.get("SDBENCH_LEGACY_PATH")
    os.environ["SDBENCH_LEGACY_PATH"] = "1" if name == "old" else "0"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("SDBENCH_LEGACY_PATH", None)
        else:
            os.environ["SDBENCH_LEGACY_PATH"] = before


def scenes(steps: int) -> tuple[dict, torch.Tensor]:
    """Raw parameters of the default ``Gaussians`` at step 0 and after ``steps`` toy SDS steps, and the background."""
    from sdbench import trial
    from sdbench.budget import Budget

    spec = trial.resolve(
        trial.TrialConfig(prompt="a red cube", loss="sds", representation="gaussians", budget=Budget("steps", steps))
    )
    state = trial.build(spec)
    snap = lambda: {k: v.detach().clone() for k, v in state.representation.params.items()}  # noqa: E731
    out = {"init": snap()}
    start = time.perf_counter()
    trial.optimise(state, progress=False)
    print(f"trained {steps} steps in {time.perf_counter() - start:.0f} s")
    out["mid"] = snap()
    return out, state.representation.background.clone()


def render(params: dict, background, cams, size: int, backward: bool, cotangent=None):
    from sdbench.representations.splat import rasterize

    p = params
    rgb, alpha, _ = rasterize(
        p["means"],
        p["quats"],
        torch.exp(p["scales"]),
        torch.sigmoid(p["opacities"]),
        torch.cat([p["sh0"], p["shN"]], dim=1),
        cams.viewmats,
        cams.intrinsics(size, size),
        size,
        size,
        0,
        background,
    )
    if backward:
        loss = (rgb * cotangent).sum() + alpha.sum()
        return rgb, alpha, torch.autograd.grad(loss, list(p.values()))
    return rgb, alpha, None


def stages(params: dict, background, cams, size: int, cotangent) -> dict:
    """CPU seconds of projection, compositing, compositing backward and projection backward (one render)."""
    from sdbench.hardware import legacy_path
    from sdbench.representations import splat

    p = params
    inputs = [p["means"], p["quats"], torch.exp(p["scales"]), torch.cat([p["sh0"], p["shN"]], dim=1)]
    opacities = torch.sigmoid(p["opacities"])
    K = cams.intrinsics(size, size)
    project, composite = (
        (splat._project_gsplat, splat._composite_sparse_legacy) if legacy_path() else (splat.project, splat.composite_sparse)
    )
    t0 = time.process_time()
    proj = project(*inputs, cams.viewmats, K, size, size, 0)
    t1 = time.process_time()
    rgb, alpha = composite(proj, opacities, size, size, background)
    t2 = time.process_time()
    outs = [proj.means2d, proj.conics, proj.colors, opacities]
    grads = torch.autograd.grad((rgb * cotangent).sum() + alpha.sum(), outs, allow_unused=True)
    t3 = time.process_time()
    pairs = [(o, g) for o, g in zip(outs, grads) if g is not None]
    torch.autograd.grad([o for o, _ in pairs], list(p.values()), [g for _, g in pairs], allow_unused=True)
    t4 = time.process_time()
    return {"project": t1 - t0, "composite": t2 - t1, "composite_backward": t3 - t2, "project_backward": t4 - t3}


def summary(seconds: list[float]) -> dict:
    ms = sorted(1000 * s for s in seconds)
    return {"min": round(ms[0], 3), "median": round(statistics.median(ms), 3)}


def measure(params: dict, background, size: int, repeats: int) -> dict:
    from sdbench.cameras import Cameras

    params = {k: v.detach().clone().requires_grad_(True) for k, v in params.items()}
    views = [Cameras.sample(1, generator=torch.Generator().manual_seed(i)) for i in range(8)]
    cot = torch.rand(1, size, size, 3, generator=torch.Generator().manual_seed(0))
    wall = {(p, b): [] for p in PATHS for b in (False, True)}
    cpu = {(p, b): [] for p in PATHS for b in (False, True)}
    parts = {p: [] for p in PATHS}
    for name in PATHS:  # warm-up
        with path(name):
            render(params, background, views[0], size, True, cot)
    for r in range(repeats):
        cams = views[r % len(views)]
        for name in PATHS:
            with path(name):
                for backward in (False, True):
                    w, c = time.perf_counter(), time.process_time()
                    render(params, background, cams, size, backward, cot)
                    wall[name, backward].append(time.perf_counter() - w)
                    cpu[name, backward].append(time.process_time() - c)
                parts[name].append(stages(params, background, cams, size, cot))
    out: dict = {"gaussians": len(params["means"])}
    for name in PATHS:
        out[name] = {
            "forward_ms": summary(wall[name, False]),
            "forward_backward_ms": summary(wall[name, True]),
            "forward_cpu_ms": summary(cpu[name, False]),
            "forward_backward_cpu_ms": summary(cpu[name, True]),
            "stages_cpu_median_ms": {k: round(1000 * statistics.median(s[k] for s in parts[name]), 3) for k in parts[name][0]},
        }
    for key in ("forward_ms", "forward_backward_ms", "forward_cpu_ms", "forward_backward_cpu_ms"):
        out.setdefault("speedup", {})[key] = {
            stat: round(out["old"][key][stat] / out["new"][key][stat], 2) for stat in ("min", "median")
        }
    # the two paths on the same views: largest differences of images and gradients; a gradient's
    # difference relative to its largest entry, floored at 1e-3 of the largest entry of any parameter's
    # (the quaternions' gradient is exactly 0 for the isotropic Gaussians of the initial state)
    diffs = {"rgb": 0.0, "alpha": 0.0, "grad_rel": 0.0}
    for cams in views:
        with path("old"):
            rgb_o, a_o, g_o = render(params, background, cams, size, True, cot)
        with path("new"):
            rgb_n, a_n, g_n = render(params, background, cams, size, True, cot)
        diffs["rgb"] = max(diffs["rgb"], (rgb_o - rgb_n).abs().max().item())
        diffs["alpha"] = max(diffs["alpha"], (a_o - a_n).abs().max().item())
        pairs = [(go, gn) for go, gn in zip(g_o, g_n) if go.numel()]  # shN is empty at SH degree 0
        floor = 1e-3 * max(go.abs().max().item() for go, _ in pairs)
        for go, gn in pairs:
            diffs["grad_rel"] = max(diffs["grad_rel"], (go - gn).abs().max().item() / max(go.abs().max().item(), floor))
    out["agreement"] = {k: float(f"{v:.3g}") for k, v in diffs.items()}
    return out


def main(repeats: int = 30, steps: int = 300) -> dict:
    torch.set_num_threads(1)
    torch.set_flush_denormal(True)
    load_before = os.getloadavg()
    with path("new"):
        states, background = scenes(steps)
    results: dict = {
        "threads": torch.get_num_threads(),
        "repeats": repeats,
        "mid_training_steps": steps,
        "load_average_before": [round(x, 2) for x in load_before],
        "scenes": {},
    }
    for scene, params in states.items():
        for size in SIZES:
            key = f"{scene}_{size}px"
            results["scenes"][key] = measure(params, background, size, repeats)
            s = results["scenes"][key]
            print(
                f"{key}: N={s['gaussians']}  forward+backward old {s['old']['forward_backward_ms']}  "
                f"new {s['new']['forward_backward_ms']}  speedup {s['speedup']['forward_backward_ms']}"
            )
    results["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    save("splat_cpu", results)
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30, help="timed renders per path, scene and size")
    parser.add_argument("--steps", type=int, default=300, help="SDS steps before the mid-training scene")
    args = parser.parse_args()
    main(args.repeats, args.steps)
