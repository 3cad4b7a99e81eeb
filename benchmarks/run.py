"""Run the benchmarks: ``python -m benchmarks.run [--quick] [name ...]`` (default: all).

``--quick`` is passed to the benchmarks that take it (``step_profile``, ``throughput``): a smoke-scale run.

Each benchmark writes ``benchmarks/results/<name>.json`` with the hardware it ran on.
"""

from __future__ import annotations

import importlib
import sys
import time

import torch

QUICK = ("step_profile", "throughput", "prior_cost")
BENCHMARKS = (
    "step_profile",
    "prior_cost",
    "throughput",
    "toy_world",
    "losses",
    "losses_2d",
    "gaussians",
    "splat_cpu",
    "nerf",
    "sweep",
    "cluster",
    "gpu",
    "operator_gpu",
)


def main(argv: list[str] | None = None) -> int:
    args = list(argv if argv is not None else sys.argv[1:])
    quick = "--quick" in args
    names = [a for a in args if a != "--quick"] or list(BENCHMARKS)
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        print(f"error: unknown benchmark {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}", file=sys.stderr)
        return 2
    torch.set_flush_denormal(True)
    for name in names:
        start = time.time()
        print(f"== {name}")
        module = importlib.import_module(f"benchmarks.{name}")
        module.main(quick=True) if quick and name in QUICK else module.main()
        print(f"== {name}: {time.time() - start:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
