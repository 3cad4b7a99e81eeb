"""The GPU benchmark's code path, run at a toy size on the CPU (the real run needs CUDA)."""

from __future__ import annotations

from pathlib import Path

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
        assert len(row["step_seconds"]) == 2 and min(row["step_seconds"]) > 0  # kept for the claims study's C22
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


def test_convergence_quick_run_scores_every_arm_and_representation_at_each_checkpoint(tmp_path):
    from benchmarks.convergence import ARMS, REPRESENTATIONS, main, run_one
    from sdbench import trial
    from sdbench.budget import Budget
    from sdbench.priors.toy import ToyPrior

    results = main(quick=True, out=tmp_path)
    assert (tmp_path / "convergence.json").is_file() and (tmp_path / "convergence.png").stat().st_size > 10_000
    runs = results["runs"]
    assert {(r["representation"], r["arm"]) for r in runs} == {(rep, arm) for rep in REPRESENTATIONS for arm in ARMS}
    for r in runs:
        assert r["steps"] == [0, 1, 2]
        for key in ("toy_chroma_error", "toy_lightness_error", "toy_delta_e", "toy_contrast_error", "toy_noise", "toy_acc"):
            assert len(r["metrics"][key]) == 3 and all(v is not None for v in r["metrics"][key]), (key, r["arm"])
    first = {r["representation"]: r["metrics"]["toy_delta_e"][0] for r in runs if r["arm"] == "sds_cfg7.5"}
    assert all(r["metrics"]["toy_delta_e"][0] == first[r["representation"]] for r in runs)  # every arm starts alike
    curve = results["summary"]["gaussians"]["vdm"]["toy_chroma_error"]
    assert curve["steps"] == [0, 1, 2] and curve["prompts"] == [1, 1, 1] and curve["low"] == curve["mean"] == curve["high"]

    # observing a trial does not change it: its last checkpoint is the trial's own evaluation of an unobserved run
    prior = ToyPrior()
    observed = run_one(prior, "a red sphere", "sds_cfg100", "image", 0, steps=2, every=1, metrics=("toy",))
    spec = trial.resolve(
        trial.TrialConfig(prompt="a red sphere", loss="sds", representation="image", budget=Budget("steps", 2)),
        ("loss.cfg_scale=100",),
    )
    state = trial.build(spec, prior)
    trial.optimise(state, progress=False)
    values, _ = trial.evaluate(spec, prior, state.representation, None, ("toy",))
    for key, series in observed["metrics"].items():
        assert series[-1] == pytest.approx(values[key], rel=1e-3, abs=1e-6), key  # JSON keeps 4 significant digits


def test_convergence_averages_seeds_within_a_prompt_before_prompts():
    from benchmarks.convergence import bootstrap_interval, summarise

    def run(prompt, seed, values):
        return {"representation": "image", "arm": "vdm", "prompt": prompt, "seed": seed, "steps": [0, 10], "metrics": values}

    runs = [
        run("a", 0, {"toy_noise": [1.0, None]}),
        run("a", 1, {"toy_noise": [3.0, 4.0]}),
        run("b", 0, {"toy_noise": [10.0, 6.0]}),
    ]
    curve = summarise(runs)["image"]["vdm"]["toy_noise"]
    assert curve["mean"] == [6.0, 5.0] and curve["prompts"] == [2, 2]  # (2 + 10) / 2, (4 + 6) / 2: prompts weigh alike
    assert 2.0 <= curve["low"][0] < 6.0 < curve["high"][0] <= 10.0
    assert bootstrap_interval([3.0, 3.0, 3.0]) == (3.0, 3.0) and bootstrap_interval([5.0]) == (5.0, 5.0)


def test_convergence_on_the_v2_prior_without_its_weights_is_one_clear_error(tmp_path, monkeypatch):
    from benchmarks.convergence import main
    from sdbench.errors import UserError
    from sdbench.priors import toy

    monkeypatch.setattr(toy, "WEIGHTS_V2", tmp_path / "no-prior")
    with pytest.raises(UserError, match="toy v2 prior's weights are missing") as e:
        main(prior="toy2", quick=True)
    assert "\n" not in str(e.value)
    with pytest.raises(UserError, match="unknown prior 'sd21'"):
        main(prior="sd21", quick=True)


def test_prior_cost_quick_reports_per_image_cost_and_kernel_paths():
    from benchmarks import prior_cost

    r = prior_cost.main(quick=True)
    for size in ("base", "large"):
        w = r["unets"][size]
        assert set(w["per_image_by_batch"]) == {"2", "8"}
        assert set(w["batch2_paths"]) == {"float32", "bfloat16", "channels_last"}  # compile is skipped in quick mode
        assert w["batch2_paths"]["float32"]["speedup_vs_float32"] == 1.0
        assert all(v["min_ms"] > 0 for v in w["per_image_by_batch"].values())
    assert r["unets"]["large"]["parameters"] > 1.5 * r["unets"]["base"]["parameters"]


def test_claims_cost_times_every_arm_of_the_claims_sweep_as_planned_at_the_budget_given():
    from benchmarks.claims_cost import PROMPT, arms
    from sdbench.claims import read_registration

    specs = arms(7)
    registered = set(read_registration(Path(__file__).resolve().parent.parent / "docs" / "claims.md").arms)
    assert set(specs) == registered and len(specs) == 19
    for arm, spec in specs.items():
        c = spec.config_dict()
        assert (c["trial"]["prompt"], c["trial"]["arm"], c["trial"]["budget"]) == (PROMPT, arm, {"kind": "steps", "value": 7})
        assert c["trial"]["batch_size"] == 1 and not c["trial"]["metrics"]  # evaluation is not timed: off
    assert specs["sds@7.5"].config_dict()["loss"]["cfg_scale"] == 7.5 and specs["sds"].config_dict()["loss"]["cfg_scale"] == 100
    assert specs["sds+perpneg"].config_dict()["loss"]["perp_neg"] is True
