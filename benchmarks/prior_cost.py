"""What one toy-prior evaluation costs, and whether batching or a faster kernel path would cut it.

The step profile (``benchmarks.step_profile``) finds the toy UNet's forward to be most of a toy
trial step. Two ways to make it cheaper are candidates in the throughput issue, and this benchmark
measures both before either is built:

* **Batching** several trials' prior calls into one UNet call (trials grouped in one process). It pays
  only if the cost per image falls with the batch size. Measured: the UNet forward (no autograd) at
  batch 2 (one trial's CFG pair), 4, 8, 16 and 32, milliseconds per image.
* **Kernel paths** at batch 2: bfloat16 weights and inputs (oneDNN uses AVX-512 BF16 where the CPU
  has it; this machine's EPYC does), channels-last memory layout, and ``torch.compile`` (with its
  one-off compile time, which a trial of a few hundred steps must win back).

Both toy UNet sizes are measured: ``base`` (v1's architecture, ``weights/prior``'s, which world v2 uses
by default) and ``large`` (:data:`sdbench.world.toy_models.UNET_CONFIG_V2_LARGE`, ``train_prior --unet
large``). Random weights: the cost does not depend on them.
One torch thread, as a sweep worker on 2 cores gets. Timings are the minimum and median of
``repeats`` runs; the machine may be shared (its load average is recorded).

    python -m benchmarks.prior_cost [--quick] [--no-compile]

Writes ``benchmarks/results/prior_cost.json``.
"""

from __future__ import annotations

import argparse
import copy
import os
import time
import warnings

import torch

from benchmarks.common import run_times, save

BATCHES = (2, 4, 8, 16, 32)


SIZES = {"base": ("v1", "base"), "large": ("v2", "large")}


def _inputs(world: str, batch: int):
    from sdbench.world import toy_models

    tok = toy_models.build_tokenizer(world)
    text = toy_models.build_text_encoder(len(tok)).eval()
    ids = tok(
        ["a red cube"] * batch, padding="max_length", max_length=toy_models.MAX_TOKENS, truncation=True, return_tensors="pt"
    ).input_ids
    with torch.no_grad():
        h = text(ids).last_hidden_state
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 3, toy_models.RESOLUTION, toy_models.RESOLUTION, generator=g)
    t = torch.randint(0, 1000, (batch,), generator=g)
    return x, t, h


def _ms(fn, repeats: int, per: int = 1) -> dict:
    with torch.no_grad():
        times = run_times(fn, repeats=repeats, warmup=2)
    return {"min_ms": round(times[0] * 1e3 / per, 2), "median_ms": round(times[len(times) // 2] * 1e3 / per, 2)}


def measure(size: str, repeats: int, batches: tuple[int, ...], compile_: bool) -> dict:
    from sdbench.world import toy_models

    world = SIZES[size][0]
    unet = toy_models.build_unet(world, toy_models.RESOLUTION, SIZES[size][1]).eval().requires_grad_(False)
    out: dict = {"parameters": sum(p.numel() for p in unet.parameters()), "per_image_by_batch": {}}
    for b in batches:
        x, t, h = _inputs(world, b)
        out["per_image_by_batch"][str(b)] = _ms(lambda x=x, t=t, h=h: unet(x, t, h), repeats, per=b)
        print(size, "batch", b, out["per_image_by_batch"][str(b)], flush=True)
    x, t, h = _inputs(world, 2)
    paths = {"float32": _ms(lambda: unet(x, t, h), repeats, per=2)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bf = copy.deepcopy(unet).to(torch.bfloat16)
    xb, hb = x.bfloat16(), h.bfloat16()
    paths["bfloat16"] = _ms(lambda: bf(xb, t, hb), repeats, per=2)
    cl = copy.deepcopy(unet).to(memory_format=torch.channels_last)
    xc = x.contiguous(memory_format=torch.channels_last)
    paths["channels_last"] = _ms(lambda: cl(xc, t, h), repeats, per=2)
    if compile_:
        compiled = torch.compile(copy.deepcopy(unet))
        start = time.perf_counter()
        with torch.no_grad():
            compiled(x, t, h)
        seconds = time.perf_counter() - start
        paths["compiled"] = {**_ms(lambda: compiled(x, t, h), repeats, per=2), "compile_seconds": round(seconds, 1)}
    base = paths["float32"]["min_ms"]
    for v in paths.values():
        v["speedup_vs_float32"] = round(base / v["min_ms"], 3)
    out["batch2_paths"] = paths
    per = out["per_image_by_batch"]
    out["batching_gain_best"] = round(per["2"]["min_ms"] / min(v["min_ms"] for v in per.values()), 3)
    print(size, paths, flush=True)
    return out


def main(quick: bool = False, compile_: bool = True) -> dict:
    torch.set_num_threads(1)
    repeats = 3 if quick else 9
    batches = (2, 8) if quick else BATCHES
    results = {
        "threads": 1,
        "repeats": repeats,
        "load_average_before": os.getloadavg()[0],
        "unets": {size: measure(size, repeats, batches, compile_ and not quick) for size in SIZES},
        "load_average_after": os.getloadavg()[0],
    }
    if quick:
        return results
    save("prior_cost", results)
    return results


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="2 batch sizes, 3 repeats, no compile; writes nothing")
    ap.add_argument("--no-compile", action="store_true", help="skip torch.compile (its first call takes a minute or more)")
    a = ap.parse_args()
    main(quick=a.quick, compile_=not a.no_compile)
