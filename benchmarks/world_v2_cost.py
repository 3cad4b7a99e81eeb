"""What toy world v2 costs on this machine: render throughput and training step times.

    python -m benchmarks.world_v2_cost [--quick]

* renders/s of v1 scenes (plain, one albedo) and v2 scenes (pattern, face, per-camera albedo),
  every shape, 32×32 (and 64×64), 2× supersampling, one thread;
* prior training step (forward, backward, AdamW, EMA; batch 32, data excluded) for the v1 UNet and
  the v2 UNet at 32×32 and 64×64, with 1 and 2 threads;
* evaluator training step (batch 128, augmentation excluded) for v1 and v2;
* the training FLOPs of one prior step (forward + backward, ``torch.utils.flop_counter``), which do
  not depend on what else runs on the machine: the ratio to v1 scales v1's measured training time;
* the load average before and after (the CPU may be shared: times are then pessimistic, and the
  minimum over repeats, reported beside the median, is the better estimate of an idle machine).

Writes ``benchmarks/results/world_v2_cost.json``; ``--sheet`` only draws the scene sheet
``docs/images/toy_v2_scenes.png`` (every pattern per shape; the face at azimuths 0, 45, 90, 180;
one colour word from pastel to vivid).
"""

from __future__ import annotations

import argparse
import copy
import os
import time

import torch
import torch.nn.functional as F

from benchmarks.common import run_times, save


def timed(fn, repeats: int, warmup: int = 1) -> dict[str, float]:
    """Minimum and median wall seconds of ``fn()`` over ``repeats`` runs after ``warmup`` runs."""
    times = run_times(fn, repeats, warmup)
    return {"min": round(times[0], 3), "median": round(times[len(times) // 2], 3)}


def render_rate(world: str, resolution: int, n: int = 64) -> float:
    from sdbench.cameras import Cameras
    from sdbench.world.data_v2 import DataConfig, sample_cameras
    from sdbench.world.scenes import PATTERNS, SHAPES, render_scene

    g = torch.Generator().manual_seed(0)
    cams = sample_cameras(n, DataConfig(), g) if world == "v2" else Cameras.sample(n, generator=g)
    albedo = torch.rand(n, 3, generator=g)
    start = time.perf_counter()
    for i, shape in enumerate(SHAPES):
        if world == "v1":
            render_scene(shape, "red", cams, resolution)
        else:
            render_scene(shape, albedo, cams, resolution, pattern=PATTERNS[1 + i % 3], marking="face")
    return len(SHAPES) * n / (time.perf_counter() - start)


def prior_step_seconds(world: str, resolution: int, threads: int, repeats: int) -> dict:
    from sdbench.world import toy_models

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    tok = toy_models.build_tokenizer(world)
    # v2: the large UNet (--unet large), the one these figures were first measured for; the base v2 UNet is v1's
    text, unet = (
        toy_models.build_text_encoder(len(tok)),
        toy_models.build_unet(world, resolution, "large" if world == "v2" else "base"),
    )
    params = list(unet.parameters()) + list(text.parameters())
    opt = torch.optim.AdamW(params, lr=1e-4)
    ema = [p.detach().clone() for p in copy.deepcopy(params)]
    ids = tok(["a red striped cube with a face, front view"] * 32, padding="max_length", max_length=16, return_tensors="pt")
    x0 = torch.rand(32, 3, resolution, resolution) * 2 - 1

    def step():
        t = torch.randint(0, 1000, (32,))
        noise = torch.randn_like(x0)
        pred = unet(x0 * 0.7 + 0.7 * noise, t, text(ids.input_ids).last_hidden_state).sample
        loss = F.mse_loss(pred, noise)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            for e, p in zip(ema, params):
                e.lerp_(p, 0.001)

    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        step()
    return {
        "seconds": timed(step, repeats=repeats, warmup=1),
        "gflops": round(counter.get_total_flops() / 1e9, 1),
        "unet_parameters": sum(p.numel() for p in unet.parameters()),
    }


def evaluator_step_seconds(world: str, repeats: int) -> dict[str, float]:
    from sdbench.world import toy_models, train_evaluator

    torch.set_num_threads(1)
    torch.manual_seed(0)
    tok = toy_models.build_tokenizer(world)
    model, _ = train_evaluator.build_model(len(tok), world)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x = torch.rand(128, 3, 32, 32)
    tokens = (
        train_evaluator.readout_tokens(tok)
        if world == "v2"
        else {"all": tok(["a red cube"] * 30, return_tensors="pt", padding="max_length", max_length=16).input_ids}
    )
    captions = tok(["a red striped cube"] * 64, padding="max_length", max_length=16, return_tensors="pt").input_ids

    def step():
        logits = train_evaluator.attribute_logits(model, x, tokens)
        loss = sum(v.logsumexp(-1).mean() for v in logits.values())
        if world == "v2":
            loss = loss + model.encode_text(captions).sum() * 0
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return timed(step, repeats=repeats, warmup=1)


def scene_sheet(path=None):
    """A picture of world v2's scenes at the training resolution (32 px, shown at 64)."""
    from pathlib import Path

    from sdbench.cameras import Cameras
    from sdbench.io import save_grid
    from sdbench.world.colour import ColourRange
    from sdbench.world.scenes import COLOURS, PATTERNS, SHAPES, render_scene

    path = path or Path(__file__).resolve().parent.parent / "docs" / "images" / "toy_v2_scenes.png"
    one = Cameras(torch.tensor([20.0]), torch.tensor([15.0]), torch.tensor([3.0]), torch.tensor([40.0]))
    turn = Cameras(torch.tensor([0.0, 45.0, 90.0, 180.0]), torch.full((4,), 15.0), torch.full((4,), 3.0), torch.full((4,), 40.0))
    rows = []
    for i, shape in enumerate(SHAPES):
        colour = list(COLOURS)[i]
        rows += [render_scene(shape, colour, one, 32, pattern=p).rgb for p in PATTERNS]
        rows.append(render_scene(shape, colour, turn, 32, marking="face").rgb)
        v = torch.linspace(0, 1, 4)
        albedo = ColourRange(COLOURS[colour]).albedo(v, torch.zeros(4))
        rows.append(render_scene(shape, albedo, Cameras.cat([one] * 4), 32).rgb)
    save_grid(torch.cat(rows), path, nrow=12, min_size=64)
    return path


def main(quick: bool = False) -> dict:
    torch.set_flush_denormal(True)
    repeats = 2 if quick else 4
    results: dict = {"loadavg_before": os.getloadavg()[0], "cpu_count": os.cpu_count()}
    torch.set_num_threads(1)
    results["renders_per_s"] = {
        f"{w}_{r}px": round(render_rate(w, r), 1) for w in ("v1", "v2") for r in ((32,) if quick else (32, 64))
    }
    prior = {}
    configs = [("v1", 32, 1), ("v2", 32, 1), ("v1", 32, 2), ("v2", 32, 2), ("v2", 64, 1)]
    for world, res, threads in configs[:2] if quick else configs:
        prior[f"{world}_{res}px_{threads}t"] = prior_step_seconds(world, res, threads, repeats)
        print(world, res, threads, prior[f"{world}_{res}px_{threads}t"], flush=True)
    results["prior_step_batch32"] = prior
    results["evaluator_step_batch128_1t"] = {w: evaluator_step_seconds(w, repeats) for w in ("v1", "v2")}
    results["loadavg_after"] = os.getloadavg()[0]
    save("world_v2_cost", results)
    return results


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--sheet", action="store_true", help="only draw docs/images/toy_v2_scenes.png")
    args = ap.parse_args()
    print(scene_sheet()) if args.sheet else main(args.quick)
