"""The v2 gate benchmark's code path on tiny, barely trained models (the real run needs trained weights)."""

from __future__ import annotations

import pytest


@pytest.mark.slow
def test_v2_gates_run_end_to_end_on_tiny_models(tmp_path, monkeypatch):
    from benchmarks import toy_world
    from sdbench.priors.toy import ToyPrior2
    from sdbench.world import toy_models, train_evaluator, train_prior

    monkeypatch.setenv("SDBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(toy_models, "UNET_CONFIG_V2", {**toy_models.UNET_CONFIG_V2, "block_out_channels": (16, 16, 16)})
    tiny = ["--world", "v2", "--resolution", "16", "--per-class", "1", "--threads", "1", "--steps", "1", "--log-every", "1"]
    train_prior.main(["--out", str(tmp_path / "prior"), *tiny, "--batch-size", "2"])
    train_evaluator.main(["--out", str(tmp_path / "evaluator"), *tiny, "--batch-size", "4", "--held-out-per-class", "1"])
    saved = {}
    monkeypatch.setattr(toy_world, "save", lambda name, results: saved.setdefault(name, results))
    monkeypatch.setattr(toy_world, "DOCS", tmp_path / "docs")
    results = toy_world.main_v2(
        str(tmp_path / "prior"),
        str(tmp_path / "evaluator"),
        ambiguous_samples=2,
        num_steps=2,
        held_out_per_class=1,
        label="cand",
    )
    assert saved["toy_world_v2_cand"] is results and (tmp_path / "docs" / "toy_v2_prior_samples_cand.png").is_file()
    w = results["weights"]  # which weights were gated
    assert (
        w["prior_id"] == ToyPrior2(ToyPrior2.Config(path=str(tmp_path / "prior"))).weights_id() and len(w["evaluator_id"]) == 16
    )
    assert results["prior_samples"]["n"] == 240 + 120  # marked prompts twice: front view and back view
    for key in ("shape", "colour", "pattern", "marking_visibility", "patterned_pattern_blur_2px"):
        assert 0 <= results["evaluator_held_out"][key] <= 1
    assert len(results["diversity"]["prompts"]) == 11 and results["diversity"]["mean_ratio"] >= 0
    assert len(results["gates"]) == 10
