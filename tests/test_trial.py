"""The trial loop: determinism, budgets, result files, failures."""

from __future__ import annotations

import hashlib
import json

import pytest
import torch

from sdbench import trial as T
from sdbench.budget import Budget
from sdbench.errors import TrialFailed, UserError


def spec(prior, overrides=(), **kw):
    kw.setdefault("budget", Budget("steps", 6))
    cfg = T.TrialConfig(prompt="a red cube", loss=kw.pop("loss", "sds"), representation="image", prior=str(prior), **kw)
    return T.resolve(cfg, overrides)


def test_result_json_has_the_contract_fields(tiny_pixel_checkpoint, tmp_path):
    result = T.run_trial(spec(tiny_pixel_checkpoint, eval_views=4), tmp_path / "t", progress=False)
    on_disk = json.loads((tmp_path / "t" / "result.json").read_text())
    assert on_disk == json.loads(json.dumps(result.to_dict()))
    for key in (
        "prompt",
        "loss",
        "representation",
        "prior",
        "seed",
        "budget",
        "status",
        "error",
        "metrics",
        "cost",
        "hardware",
        "versions",
        "config",
    ):
        assert key in on_disk, key
    assert on_disk["status"] == "completed" and on_disk["error"] is None
    assert on_disk["budget"] == {"kind": "steps", "value": 6}
    assert set(on_disk["cost"]) >= {"seconds", "steps", "nfe", "seconds_per_step", "peak_memory_mb"}
    assert on_disk["cost"]["steps"] == 6 and on_disk["cost"]["nfe"] == 12  # SDS: 2 per view, batch 1
    assert on_disk["config"]["loss"]["cfg_scale"] == 100.0
    assert on_disk["hardware"]["device"] == "cpu" and on_disk["versions"]["torch"]
    # which weights made it: the SHA-256 of the UNet's file, so two versions of one prior name differ
    (unet,) = (tiny_pixel_checkpoint / "unet").glob("*.safetensors")
    assert on_disk["versions"]["prior_weights"] == hashlib.sha256(unet.read_bytes()).hexdigest()[:16]
    assert (tmp_path / "t" / "views.png").stat().st_size > 0
    assert not list((tmp_path / "t").glob("*.tmp"))  # atomic writes leave no temp files


def test_same_seed_gives_identical_metrics_and_different_seed_does_not(tiny_pixel_checkpoint, tmp_path):
    runs = [T.run_trial(spec(tiny_pixel_checkpoint, seed=s), tmp_path / f"r{i}", progress=False) for i, s in enumerate((3, 3, 4))]
    assert runs[0].metrics == runs[1].metrics
    assert (tmp_path / "r0" / "views.png").read_bytes() == (tmp_path / "r1" / "views.png").read_bytes()
    assert runs[0].metrics != runs[2].metrics


def test_nfe_budget_stops_at_the_count(tiny_pixel_checkpoint, tmp_path):
    s = spec(tiny_pixel_checkpoint, budget=Budget("nfe", 10), batch_size=2)
    result = T.run_trial(s, tmp_path / "n", progress=False)
    assert result.cost.nfe == 12 and result.cost.steps == 3  # 4 NFE per step; stops once ≥ 10


def test_seconds_budget(tiny_pixel_checkpoint, tmp_path):
    result = T.run_trial(spec(tiny_pixel_checkpoint, budget=Budget("seconds", 0.5)), tmp_path / "s", progress=False)
    assert 0.5 <= result.cost.seconds < 5 and result.cost.steps >= 1


def test_overrides_reach_the_plugin_configs(tiny_pixel_checkpoint):
    s = spec(
        tiny_pixel_checkpoint,
        overrides=("loss.cfg_scale=7.5", "rep.lr=0.05", "trial.batch_size=2", "trial.cameras.elevation=0,10"),
    )
    assert s.loss.cfg_scale == 7.5 and s.representation.lr == 0.05 and s.trial.batch_size == 2
    assert s.trial.cameras.elevation == (0.0, 10.0)
    with pytest.raises(UserError, match="unknown config key loss.cfg_scal"):
        spec(tiny_pixel_checkpoint, overrides=("loss.cfg_scal=1",))
    with pytest.raises(UserError, match="unknown section"):
        spec(tiny_pixel_checkpoint, overrides=("los.cfg_scale=1",))


def test_scoped_overrides_apply_to_their_plugin_only_and_are_always_validated(tiny_pixel_checkpoint):
    scoped = ("loss@sds.cfg_scale=7.5", "loss@ism.anneal_steps=45", "rep@2d.lr=0.05", "rep@gaussians.lr_sh0=0.03")
    s = spec(tiny_pixel_checkpoint, overrides=scoped)  # an SDS trial on the image
    assert s.loss.cfg_scale == 7.5 and s.representation.lr == 0.05
    from sdbench.trial import TrialConfig, resolve

    ism = resolve(
        TrialConfig(prompt="a red cube", loss="ism", representation="gaussians", prior=str(tiny_pixel_checkpoint)), scoped
    )
    assert ism.loss.anneal_steps == 45 and ism.representation.lr_sh0 == 0.03
    for bad, fragment in [
        ("loss@ism.anneal_step=45", "unknown config key loss@ism.anneal_step"),  # checked though the trial is SDS
        ("loss@isn.anneal_steps=45", "unknown loss 'isn'"),
        ("trial@x.seed=1", "only loss and rep keys can be scoped"),
    ]:
        with pytest.raises(UserError, match=fragment):
            spec(tiny_pixel_checkpoint, overrides=(bad,))


def test_a_nan_trial_is_recorded_as_failed_with_one_line(tiny_pixel_checkpoint, tmp_path, monkeypatch):
    from sdbench import registry

    monkeypatch.setenv(registry.ENV_VAR, "sdbench.losses:nan=tests.fake_plugins:NaNLoss")
    registry.LOSSES.refresh()
    try:
        with pytest.raises(TrialFailed, match="NaN"):
            T.run_trial(spec(tiny_pixel_checkpoint, loss="nan"), tmp_path / "f", progress=False)
    finally:
        registry.LOSSES.refresh()
    result = json.loads((tmp_path / "f" / "result.json").read_text())
    assert result["status"] == "failed" and "step 3" in result["error"] and "\n" not in result["error"]
    assert result["cost"]["steps"] == 3


def test_bad_inputs_are_user_errors_before_anything_is_written(tiny_pixel_checkpoint, tmp_path):
    with pytest.raises(UserError, match="prompt is empty"):
        T.resolve(T.TrialConfig(prompt="  ", representation="image", prior=str(tiny_pixel_checkpoint)))
    with pytest.raises(UserError, match="unknown loss"):
        T.resolve(T.TrialConfig(prompt="a", loss="nope", representation="image"))
    with pytest.raises(UserError, match="unknown representation"):
        T.resolve(T.TrialConfig(prompt="a", representation="voxels"))
    with pytest.raises(UserError, match="does not exist"):
        T.resolve(T.TrialConfig(prompt="a", representation="image", prior=str(tmp_path / "missing")))
    with pytest.raises(UserError, match="unknown prior"):
        T.resolve(T.TrialConfig(prompt="a", representation="image", prior="sd99"))


@pytest.mark.parametrize("loss,rep", [("sds", "image"), ("vdm", "gaussians"), ("lods", "image"), ("esd", "image")])
def test_an_interrupted_trial_resumes_bit_identically_from_its_checkpoint(tiny_pixel_checkpoint, tmp_path, loss, rep):
    overrides = ["trial.checkpoint_every=3"] + (
        ["rep.num_points=200", "rep.densify_from=1", "rep.densify_every=2"] if rep == "gaussians" else []
    )
    overrides += ["loss.alpha_lr=0.01"] if loss == "lods" else []  # α moves visibly in 7 steps
    cfg = T.TrialConfig(
        prompt="a red cube", loss=loss, representation=rep, prior=str(tiny_pixel_checkpoint), budget=Budget("steps", 7), seed=5
    )
    spec = T.resolve(cfg, overrides)
    clean = T.run_trial(spec, tmp_path / "clean", progress=False)

    def interrupt(state):
        if state.step == 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        T.run_trial(spec, tmp_path / "resumed", progress=False, on_step=interrupt)
    assert not (tmp_path / "resumed" / "result.json").exists()  # interrupted, not failed
    resumed = T.run_trial(spec, tmp_path / "resumed", progress=False)
    assert resumed.metrics == clean.metrics
    assert resumed.cost.steps == 7 and resumed.cost.nfe == clean.cost.nfe
    final = torch.load(tmp_path / "resumed" / "checkpoint.pt", weights_only=False)
    assert final["resumable"] is False and final["step"] == 7 and "loss" in final
    clean_loss = torch.load(tmp_path / "clean" / "checkpoint.pt", weights_only=False)["loss"]["parameters"]
    assert all(torch.equal(v, clean_loss[k]) for k, v in final["loss"]["parameters"].items())  # trainables too
    if loss == "vdm":
        assert any("operator" in k for k in final["loss"]["parameters"])  # the operator ψ is part of the checkpoint
    if loss == "lods":
        assert list(final["loss"]["parameters"]) == ["alpha"]  # the learned unconditional embedding α
    if loss == "esd":
        assert any("class_embedding" in k for k in final["loss"]["parameters"])  # LoRA and camera MLP
