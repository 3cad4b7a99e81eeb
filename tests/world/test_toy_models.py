"""The toy prior's components and both training scripts, at tiny settings."""

from __future__ import annotations

import json

import torch

from sdbench.world import toy_models


def test_tokenizer_maps_unknown_words_to_unk_and_pads():
    tok = toy_models.build_tokenizer()
    ids = tok(
        ["a red cube, front view", "ugly red dragon!"],
        padding="max_length",
        max_length=toy_models.MAX_TOKENS,
        return_tensors="pt",
    ).input_ids
    assert ids.shape == (2, toy_models.MAX_TOKENS)
    unk = tok.convert_tokens_to_ids("<unk>")
    assert ids[0, 0] == tok.bos_token_id and tok.eos_token_id in ids[0].tolist() and unk not in ids[0].tolist()
    assert ids[1].tolist().count(unk) == 2


def test_train_prior_runs_and_loads_through_the_diffusers_adapter(tmp_path, monkeypatch):
    from sdbench.priors.diffusers_prior import DiffusersPrior
    from sdbench.world import train_prior

    monkeypatch.setenv("SDBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(toy_models, "UNET_CONFIG", {**toy_models.UNET_CONFIG, "block_out_channels": (16, 16, 16)})
    out = tmp_path / "prior"
    summary = train_prior.main(
        ["--out", str(out), "--steps", "4", "--batch-size", "4", "--per-class", "1", "--log-every", "2", "--save-every", "2"]
    )
    assert summary["steps"] == 4 and summary["final_mse"] > 0
    assert len((out / "train_log.jsonl").read_text().splitlines()) == 2
    index = json.loads((out / "model_index.json").read_text())
    assert index["unet"] == ["diffusers", "UNet2DConditionModel"] and index["vae"] == [None, None]
    prior = DiffusersPrior(DiffusersPrior.Config(path=str(out)))
    assert prior.resolution == toy_models.RESOLUTION and prior.vae is None
    (eps,) = prior.predict_noise(torch.zeros(1, 3, 32, 32), torch.tensor([500]), [prior.encode_text(["a red cube"])])
    assert eps.shape == (1, 3, 32, 32)


def test_prior_training_is_reproducible_from_its_seed(tmp_path, monkeypatch):
    from safetensors.torch import load_file

    from sdbench.world import train_prior

    monkeypatch.setenv("SDBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(toy_models, "UNET_CONFIG", {**toy_models.UNET_CONFIG, "block_out_channels": (16, 16, 16)})
    args = ["--steps", "3", "--batch-size", "4", "--per-class", "1", "--log-every", "3", "--threads", "1"]
    for name in ("a", "b"):
        train_prior.main(["--out", str(tmp_path / name), *args])
    a = load_file(str(tmp_path / "a" / "unet" / "diffusion_pytorch_model.safetensors"))
    b = load_file(str(tmp_path / "b" / "unet" / "diffusion_pytorch_model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_train_evaluator_runs_and_loads_as_an_open_clip_folder(tmp_path, monkeypatch):
    from sdbench.evaluation.toy import classify, load_evaluator
    from sdbench.world import train_evaluator

    monkeypatch.setenv("SDBENCH_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "evaluator"
    summary = train_evaluator.main(
        ["--out", str(out), "--steps", "3", "--batch-size", "8", "--per-class", "1", "--log-every", "1"]
    )
    assert set(summary["held_out"]) == {"shape_accuracy", "colour_accuracy"}
    scorer = load_evaluator("cpu", str(out))
    r = classify(torch.rand(2, 3, 32, 32), scorer)
    assert r.shape.shape == (2,) and r.probs.shape == (2, 6, 5)
    torch.testing.assert_close(r.probs.sum(dim=(1, 2)), torch.ones(2))
    scores = scorer.score(torch.rand(3, 3, 48, 48), "a red cube")
    assert scores.shape == (3,) and (scores >= 0).all() and (scores <= 100).all()
