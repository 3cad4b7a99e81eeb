"""The positive controls' runner end to end on tiny random models (the real run needs the trained v2 prior
and evaluator), its resumption, and its one-line refusal when weights are missing."""

from __future__ import annotations

import json

import pytest

TINY = ["--steps", "2", "--sample-steps", "2", "--resamples", "200", "--prompts", "2", "--seeds", "2", "--threads", "1"]


def test_the_preregistered_design():
    from benchmarks.controls import design

    d = design()
    assert {c: len(p) for c, p in d.prompts.items()} == {"a": 30, "b": 30, "c": 30, "d": 11}
    # amendment 1 (docs/controls.md, committed before any control ran): one seed in (a)-(c), six in (d)
    assert d.seeds == {"a": (0,), "b": (0,), "c": (0,), "d": tuple(range(6))} and not d.d_secondary
    assert (d.steps, d.sample_steps, d.sample_cfg, d.cfg_low, d.cfg_high, d.resamples) == (1000, 50, 7.5, 7.5, 100.0, 10_000)
    patterns = [p.split()[2] for p in d.prompts["b"]]
    assert all(patterns.count(x) == 10 for x in ("striped", "checkered", "dotted"))
    assert (
        all(p.endswith("with a face") for p in d.prompts["c"]) and "a cube" in d.prompts["d"] and "a red object" in d.prompts["d"]
    )


def test_amendment_3_is_the_first_written_seeds_read_at_97_5_percent():
    from benchmarks.controls import design, sds_arms

    first, second = design(), design(amendment=3)
    assert second.seeds == {"a": (0, 1), "b": (0, 1), "c": (0, 1), "d": tuple(range(8))} and not second.d_secondary
    assert (second.confidence, first.confidence) == (0.975, 0.95) and second.amendment == 3
    assert (second.prompts, second.steps, second.cfg_high) == (first.prompts, first.steps, first.cfg_high)
    # every trial of amendment 1's run is one of amendment 3's (reused), plus 172 new ones
    old = {t for ts in sds_arms(first).values() for t in ts}
    new = {t for ts in sds_arms(second).values() for t in ts}
    assert old < new and len(new - old) == 172
    with pytest.raises(ValueError):
        design(amendment=2)
    # amendment 4: (b)'s SDS arm at CFG 100 (its own folders, b-S100), amendment 3's seeds and rule
    cfg_attempt = design(amendment=4)
    (b,) = {t[0] for t in sds_arms(cfg_attempt)["b"]}
    assert b == "b-S100" and {t[4] for t in sds_arms(cfg_attempt)["b"]} == {100.0} and len(sds_arms(cfg_attempt)["b"]) == 60
    assert (cfg_attempt.seeds, cfg_attempt.confidence) == (second.seeds, 0.975) and sds_arms(cfg_attempt)["a"] == sds_arms(
        second
    )["a"]


def test_a_second_look_reads_the_wider_interval_and_reports_the_95_percent_one():
    from benchmarks.controls import comparison

    # per-prompt differences whose 95 % interval lies above zero but whose 97.5 % one does not
    clusters = {f"p{i}": [x] for i, x in enumerate([0.33, -0.17, 0.53, 0.13, -0.07, 0.43, 0.23, -0.22, 0.38, 0.08])}
    at95 = comparison("x", "m", "A − B", +1, clusters, 10_000)
    at975 = comparison("x", "m", "A − B", +1, clusters, 10_000, confidence=0.975)
    assert at95["low"] > 0 and at95["verdict"] == "reproduced" and "low95" not in at95
    assert at975["low"] < 0 < at975["low95"] and at975["verdict"] == "not reproduced" and at975["verdict95"] == "reproduced"
    assert at975["low95"] == at95["low"] and at975["high"] > at95["high"] and at975["confidence"] == 0.975
    assert at975["detectable_effect"] > at95["detectable_effect"]  # a stricter test needs a larger effect


def test_the_controls_run_end_to_end_and_resume(tiny_pixel_checkpoint, evaluator_v2, tmp_path, monkeypatch):
    from benchmarks import controls

    work = tmp_path / "work"
    args = ["--quick", "--prior", str(tiny_pixel_checkpoint), "--work", str(work), *TINY]
    results = controls.main(args)
    assert results["not_a_control_run"] and (work / "controls_quick.json").is_file()
    assert json.loads((work / "controls_quick.json").read_text())["design"]["changed_from_preregistration"]["steps"] == 2
    names = [row["name"] for c in "abcd" for row in results["controls"][c]["comparisons"]]
    assert names == ["a1", "a2", "b1", "b2", "c1", "c2", "d1"]
    for c in "abcd":
        out = results["controls"][c]
        assert (work / controls.PICTURES[c]).is_file() and isinstance(out["passed"], bool)
        for row in out["comparisons"]:
            assert row["verdict"] in ("reproduced", "not reproduced", "opposite", "not computed")
            assert set(row["per_prompt"]) <= set(results["design"]["prompts"][c])
            if row["verdict"] != "not computed":
                assert (
                    row["low"] <= row["estimate"] <= row["high"] and 0 < row["p_value"] <= 1 and row["p_holm"] >= row["p_value"]
                )
    a1 = results["controls"]["a"]["comparisons"][0]
    assert a1["clusters"] == 2 and a1["observations"] == 4  # 2 prompts × 2 seeds, clustered by prompt
    assert set(results["controls"]["d"]["diversity"]) == {"P", "S100", "S7.5"}
    split = results["controls"]["d"]["exploratory_distance_by_readout"]
    assert set(split) == {"note", "P", "S100", "S7.5"} and set(split["P"]["per_prompt"]) == set(results["design"]["prompts"]["d"])
    assert all(0.0 <= split[a]["mean_over_prompts"]["share_same"] <= 1.0 for a in ("P", "S100", "S7.5"))
    assert set(results["controls"]["c"]["trial_level_share_wilson_ignores_clustering"]) <= {"G", "Gv"}
    # a second run reuses every finished trial and sample
    from sdbench import trial

    monkeypatch.setattr(trial, "run_trial", lambda *a, **k: pytest.fail("a finished trial was run again"))
    monkeypatch.setattr(trial, "evaluate", lambda *a, **k: pytest.fail("a finished sample was scored again"))
    again = controls.main(args)
    assert again["controls"]["a"]["comparisons"][0]["estimate"] == a1["estimate"]


def test_trials_before_the_evaluator_are_scored_later_not_rerun(
    tiny_pixel_checkpoint, tiny_evaluator_v2_dir, tmp_path, monkeypatch
):
    from benchmarks import controls
    from sdbench import trial
    from sdbench.evaluation import toy as toy_eval

    work = tmp_path / "work"
    args = ["--quick", "--prior", str(tiny_pixel_checkpoint), "--work", str(work), "--only", "a", *TINY]
    monkeypatch.setattr(toy_eval, "EVALUATOR_V2_DIR", tmp_path / "not-yet")
    assert controls.main([*args, "--trials-only"])["trials"] == 8  # 2 prompts × 2 seeds × (S7.5, S100)
    first = json.loads(next((work / "a-S100").glob("*/result.json")).read_text())
    assert first["status"] == "completed" and "toy2_acc" not in first["metrics"] and "toy_chroma_error" in first["metrics"]
    assert any("toy2 omitted" in w for w in first["warnings"])
    assert not list(work.glob("a-P/*"))  # no prior samples, no analysis
    monkeypatch.setattr(toy_eval, "EVALUATOR_V2_DIR", tiny_evaluator_v2_dir)
    monkeypatch.setattr(trial, "run_trial", lambda *a, **k: pytest.fail("a trained trial was run again"))
    results = controls.main([*args, "--label", "v21"])  # a second world version's run, beside the first
    a1 = results["controls"]["a"]["comparisons"][0]
    assert a1["observations"] == 4 and a1["verdict"] != "not computed"
    assert results["design"]["label"] == "v21" and results["design"]["evaluator"] == controls.evaluator_id() != ""
    assert (work / "controls_a_v21_quick.json").is_file() and (work / "control_a_saturation_v21.png").is_file()
    assert not (work / "controls_a_quick.json").exists() and not (work / "control_a_saturation.png").exists()
    again = json.loads(next((work / "a-S100").glob("*/result.json")).read_text())
    assert "toy2_acc" in again["metrics"] and again["metrics"]["toy_chroma_error"] == first["metrics"]["toy_chroma_error"]


def test_the_cfg_attempt_runs_control_b_only_at_cfg_100(tiny_pixel_checkpoint, evaluator_v2, tmp_path, capsys):
    from benchmarks import controls

    with pytest.raises(SystemExit) as e:
        controls.main(["--design", "4", "--only", "a,b"])
    assert e.value.code == 2 and "--only b" in capsys.readouterr().err
    work = tmp_path / "work"
    results = controls.main(
        ["--quick", "--design", "4", "--only", "b", "--prior", str(tiny_pixel_checkpoint), "--work", str(work), *TINY]
    )
    rows = results["controls"]["b"]["comparisons"]
    assert [r["name"] for r in rows] == ["b1′", "b2′"] and {r["arms"] for r in rows} == {"S100 − P"}
    assert sorted(p.name for p in work.iterdir() if p.is_dir()) == ["b-P", "b-S100"]
    cfgs = {json.loads(f.read_text())["config"]["loss"]["cfg_scale"] for f in (work / "b-S100").glob("*/result.json")}
    assert cfgs == {100.0}


def test_missing_weights_stop_the_run_with_one_line(tiny_pixel_checkpoint, tmp_path, monkeypatch, capsys):
    from benchmarks import controls
    from sdbench.evaluation import toy as toy_eval
    from sdbench.priors import toy

    monkeypatch.setattr(toy, "WEIGHTS_V2", tmp_path / "no-prior")
    assert controls.cli(["--quick", "--work", str(tmp_path / "w")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: the toy v2 prior's weights are missing")
    monkeypatch.setattr(toy_eval, "EVALUATOR_V2_DIR", tmp_path / "no-evaluator")
    assert controls.cli(["--quick", "--prior", str(tiny_pixel_checkpoint), "--work", str(tmp_path / "w")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: the toy v2 evaluator's weights are missing")
    assert not (tmp_path / "w").exists()
    with pytest.raises(SystemExit) as e:  # the label names files: no dots, slashes or spaces
        controls.main(["--quick", "--label", "v2.1/x", "--work", str(tmp_path / "w")])
    assert e.value.code == 2 and "--label" in capsys.readouterr().err and not (tmp_path / "w").exists()


def test_a_new_evaluator_rescores_trials_and_samples_without_retraining(
    tiny_pixel_checkpoint, tiny_evaluator_v2_dir, tmp_path, monkeypatch
):
    """Trials and samples record the evaluator that scored them; another evaluator re-scores them (no retraining)."""
    import shutil

    from benchmarks import controls
    from sdbench import trial
    from sdbench.evaluation import toy as toy_eval

    work = tmp_path / "work"
    args = ["--quick", "--prior", str(tiny_pixel_checkpoint), "--work", str(work), "--only", "a", *TINY]
    monkeypatch.setattr(toy_eval, "EVALUATOR_V2_DIR", tiny_evaluator_v2_dir)
    controls.main(args)
    first = next((work / "a-S100").glob("*/"))
    old_id = (first / controls.EVALUATOR_RECORD).read_text().strip()
    assert old_id == controls.evaluator_id() and len(old_id) == 16
    other = tmp_path / "other-evaluator"
    shutil.copytree(tiny_evaluator_v2_dir, other)
    from safetensors.torch import load_file, save_file

    weights = other / "open_clip_model.safetensors"
    state = load_file(weights)
    name = sorted(state)[0]
    state[name] = state[name] + 0.01  # another evaluator: other weights, another id
    save_file(state, weights)
    monkeypatch.setattr(toy_eval, "EVALUATOR_V2_DIR", other)
    toy_eval.load_evaluator.cache_clear()
    monkeypatch.setattr(trial, "run_trial", lambda *a, **k: pytest.fail("a trained trial was run again"))
    rescored = []
    from sdbench.trial import metrics as trial_metrics

    real = trial_metrics.reevaluate
    monkeypatch.setattr(trial_metrics, "reevaluate", lambda d, *a, **k: rescored.append(d) or real(d, *a, **k))
    controls.main(args)
    assert len(rescored) == 8  # 2 prompts × 2 seeds × (S7.5, S100)
    assert (first / controls.EVALUATOR_RECORD).read_text().strip() == controls.evaluator_id() != old_id
    samples = [json.loads(f.read_text()) for f in (work / "a-P").glob("*/sample.json")]
    assert samples and all(s["key"]["evaluator"] == controls.evaluator_id() for s in samples)
