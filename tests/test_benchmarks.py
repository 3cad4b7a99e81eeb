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


def test_losses_2d_compresses_every_schedule_into_the_budget():
    from benchmarks.losses_2d import LOSSES, scaled_schedules
    from sdbench import trial
    from sdbench.budget import Budget

    overrides = scaled_schedules(500)
    specs = {}
    for loss in LOSSES:  # every scoped key is validated against its loss's config, applied to its own
        cfg = trial.TrialConfig(prompt="a red cube", loss=loss, representation="image", budget=Budget("steps", 500))
        specs[loss] = trial.resolve(cfg, overrides).loss
    assert specs["sds_bridge"].stage_two_start == 400  # 20000 of 25000: stage 2 is reached
    assert specs["sds_bridge"].t_max.from_step == specs["vsd"].t_max.from_step == specs["esd"].t_max.from_step == 100
    assert specs["sdi"].t_schedule.to_step == specs["asd"].t_min.to_step == specs["asd"].t_max.to_step == 500
    assert specs["cds"].t_next.to_step == specs["cds"].cfg_scale.to_step == specs["cds"].grad_clip.to_step == 500
    assert (specs["lods"].t_max.from_step, specs["ism"].anneal_steps, specs["csd"].omega2.to_step) == (200, 150, 250)
    assert specs["sds"] == type(specs["sds"])()  # a loss without schedules keeps its defaults


def test_prior_cost_quick_reports_per_image_cost_and_kernel_paths():
    from benchmarks import prior_cost

    r = prior_cost.main(quick=True)
    for world in ("v1", "v2"):
        w = r["worlds"][world]
        assert set(w["per_image_by_batch"]) == {"2", "8"}
        assert set(w["batch2_paths"]) == {"float32", "bfloat16", "channels_last"}  # compile is skipped in quick mode
        assert w["batch2_paths"]["float32"]["speedup_vs_float32"] == 1.0
        assert all(v["min_ms"] > 0 for v in w["per_image_by_batch"].values())
    assert r["worlds"]["v2"]["parameters"] > r["worlds"]["v1"]["parameters"]
