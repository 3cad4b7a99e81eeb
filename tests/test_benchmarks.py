"""The GPU benchmark's code path, run at a toy size on the CPU (the real run needs CUDA)."""

from __future__ import annotations

import pytest


@pytest.mark.slow
def test_gpu_benchmark_runs_every_loss_at_a_toy_size():
    from benchmarks.gpu import main
    from benchmarks.losses import LOSSES

    results = main(steps=2, rounds=1, latent=8, device="cpu", batch=1, points=256, gaussian_steps=2)
    assert set(results["losses_image"]) == set(LOSSES)
    for row in results["losses_image"].values():
        assert row["steps_measured"] == 2 and row["nfe_per_step"] >= 2 and row["seconds_per_step"] > 0
    assert results["losses_image"]["sds"]["time_vs_sds"] == 1.0
    for loss in ("sds", "vdm"):
        row = results["gaussians"][loss]
        assert row["steps_measured"] == 2 and row["nfe_per_step"] == 2 and row["extrapolated_5000_steps_minutes"] > 0
    assert results["gaussians"]["sds"]["time_vs_sds"] == 1.0


def test_gpu_benchmark_without_cuda_measures_nothing(capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    from benchmarks.gpu import main

    assert main() is None and "no CUDA device" in capsys.readouterr().out
