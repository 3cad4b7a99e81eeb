"""The GPU benchmark's code path, run at a toy size on the CPU (the real run needs CUDA)."""

from __future__ import annotations

import pytest


@pytest.mark.slow
def test_gpu_benchmark_runs_every_loss_at_a_toy_size():
    from benchmarks.gpu import main
    from benchmarks.losses import LOSSES, rows

    results = main(steps=2, rounds=1, latent=8, device="cpu", batch=1, points=256, gaussian_steps=2)
    assert set(results["losses_image"]) == set(rows(LOSSES))
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


def test_benchmarks_cover_every_registered_loss_and_sdi_mid_schedule():
    from benchmarks.losses import LOSSES, rows
    from benchmarks.losses_2d import LOSSES as LOSSES_2D
    from sdbench import registry
    from sdbench.study import ABLATIONS

    expected = {n for n in registry.LOSSES.names() if n not in ABLATIONS} | {"sds", "vdm"}
    assert set(LOSSES) == set(LOSSES_2D) == expected and LOSSES[0] == "sds"
    assert {"sdi", "asd", "cds", "lods", "esd", "sds_bridge"} <= expected
    assert list(rows(("sds", "sdi"))) == ["sds", "sdi", "sdi@mid"]


def test_losses_2d_records_the_schedules_the_trial_compressed_into_the_budget():
    from benchmarks.losses_2d import LOSSES, schedules

    got = schedules(500)
    assert set(got) == {"csd", "ism", "vsd", "esd", "lods", "sds_bridge", "sdi", "asd", "cds"} & set(LOSSES)
    assert got["sds_bridge"] == {"stage_two_start": 400, "t_max.from_step": 100, "t_max.to_step": 100}  # stage 2 is reached
    assert got["vsd"]["t_max.from_step"] == got["esd"]["t_max.from_step"] == 100
    assert got["sdi"] == {"t_schedule.to_step": 500} and got["asd"] == {"t_min.to_step": 500, "t_max.to_step": 500}
    assert got["cds"] == {"cfg_scale.to_step": 500, "t_next.to_step": 500, "grad_clip.to_step": 500}
    assert (got["lods"]["t_max.from_step"], got["ism"]["anneal_steps"], got["csd"]["omega2.to_step"]) == (200, 150, 250)
