"""Where VDM's extra time goes on a GPU: DreamMapping's operator M_ψ (U-Lite, SD's 4×64×64 noise,
4 views) per step, in variants of how it is run, next to the SD 2.1 UNet's CFG call it rides beside.

Each row: median milliseconds (CUDA events, after warm-up) of one ψ update (forward, backward, Adam)
plus the no-grad forward that maps ε_φ, i.e. what VDM adds to an SDS step. Writes
``benchmarks/results/operator_gpu.json``. CUDA only: ``python -m benchmarks.operator_gpu``.
"""

from __future__ import annotations

import contextlib
import copy

import torch

from benchmarks.common import save
from sdbench.losses.ulite import ULite


def _median_ms(fn, warmup: int = 5, repeats: int = 30) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        torch.cuda.synchronize()
        times.append(a.elapsed_time(b))
    return round(sorted(times)[len(times) // 2], 3)


def operator_step_fn(net, opt, eps, noise, autocast: bool, channels_last: bool, sync_item: bool):
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    eps = eps.contiguous(memory_format=fmt)
    ctx = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if autocast else contextlib.nullcontext

    def step():
        with ctx():
            loss = (net(eps).float() - noise).pow(2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if sync_item:
            loss.item()
        with torch.no_grad(), ctx():
            net(eps).float()

    return step


def main() -> dict | None:
    if not torch.cuda.is_available():
        print("operator benchmark: no CUDA device here; nothing measured")
        return None
    torch.manual_seed(0)
    base = ULite(4, 4, levels=5).cuda()
    eps, noise = torch.randn(4, 4, 64, 64, device="cuda"), torch.randn(4, 4, 64, 64, device="cuda")
    variants = {
        "eager ψ update + map (fp32, Adam foreach, .item())": dict(),
        "no .item() sync": dict(sync_item=False),
        "cudnn.benchmark": dict(benchmark=True),
        "fused Adam": dict(fused=True),
        "channels_last": dict(channels_last=True),
        "bf16 autocast": dict(autocast=True),
        "cudnn.benchmark + fused Adam": dict(benchmark=True, fused=True),
        "cudnn.benchmark + fused Adam + channels_last": dict(benchmark=True, fused=True, channels_last=True),
        "cudnn.benchmark + fused Adam + bf16": dict(benchmark=True, fused=True, autocast=True),
        "cudnn.benchmark + fused Adam + bf16 + channels_last": dict(
            benchmark=True, fused=True, autocast=True, channels_last=True
        ),
    }
    results: dict = {"operator_parameters": sum(p.numel() for p in base.parameters()), "ms_per_step": {}}
    for name, v in variants.items():
        torch.backends.cudnn.benchmark = v.get("benchmark", False)
        net = copy.deepcopy(base)
        if v.get("channels_last"):
            net = net.to(memory_format=torch.channels_last)
        opt = torch.optim.Adam(net.parameters(), lr=0.01, fused=v.get("fused", False) or None)
        fn = operator_step_fn(
            net, opt, eps, noise, v.get("autocast", False), v.get("channels_last", False), v.get("sync_item", True)
        )
        results["ms_per_step"][name] = _median_ms(fn)
        print(f"{name:55s} {results['ms_per_step'][name]:8.3f} ms", flush=True)
    torch.backends.cudnn.benchmark = False
    # the shipped code: VDM's update-and-map, eagerly and replayed from a CUDA graph (its default on CUDA)
    from types import SimpleNamespace

    from sdbench.losses.vdm import VDM

    stand_in = SimpleNamespace(latent_shape=(4, 64, 64), device=torch.device("cuda"))
    for graph in (False, True):
        torch.manual_seed(0)
        loss = VDM(VDM.Config(cuda_graph=graph), stand_in)
        name = f"VDM.update_and_map, cuda_graph={graph}"
        results["ms_per_step"][name] = _median_ms(lambda loss=loss: loss._update_and_map(eps, noise)[1].item())
        print(f"{name:55s} {results['ms_per_step'][name]:8.3f} ms", flush=True)
    # the reference: SD 2.1's UNet, CFG on 4 views (batch 8, fp16), forward only, as in SDS
    from benchmarks.losses import sd21_like_prior
    from sdbench.priors.diffusers_prior import DiffusersPrior

    prior = sd21_like_prior(latent=64, cfg=DiffusersPrior.Config(device="cuda"))
    x = torch.randn(8, 4, 64, 64, device="cuda")
    t = torch.full((8,), 500, device="cuda")
    emb = torch.randn(8, 16, 1024, device="cuda")
    with torch.no_grad():
        for bench in (False, True):
            torch.backends.cudnn.benchmark = bench
            results[f"unet_cfg_batch8_ms_cudnn_benchmark_{bench}"] = _median_ms(
                lambda: prior.predict_noise(x, t, [emb]), warmup=3, repeats=10
            )
            print("unet", bench, results[f"unet_cfg_batch8_ms_cudnn_benchmark_{bench}"], flush=True)
    save("operator_gpu", results, device="cuda")
    return results


if __name__ == "__main__":
    main()
