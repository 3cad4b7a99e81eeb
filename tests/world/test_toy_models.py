"""The toy prior's components and both training scripts, at tiny settings."""

from __future__ import annotations

import json
import math

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


# ----------------------------------------------------------------------------- world v2
import pytest  # noqa: E402

from sdbench.world import training  # noqa: E402

TINY_V2 = ["--world", "v2", "--resolution", "16", "--per-class", "1", "--batch-size", "4", "--threads", "1"]


@pytest.fixture(scope="module")
def v2_cache(tmp_path_factory):
    """One render cache for the module: the v2 renders (240 classes) are made once."""
    return str(tmp_path_factory.mktemp("cache"))


def test_v2_tokenizer_keeps_v1_ids():
    v1, v2 = toy_models.build_tokenizer("v1"), toy_models.build_tokenizer("v2")
    assert len(v2) > len(v1)
    assert v1.get_vocab().items() <= v2.get_vocab().items()
    ids = v2(["a red striped cube with a face"]).input_ids[0]
    assert v2.convert_tokens_to_ids("<unk>") not in ids


def test_warm_start_from_the_shipped_v1_prior_predicts_what_v1_predicts():
    from diffusers import UNet2DConditionModel
    from transformers import CLIPTextModel

    from sdbench.priors.toy import WEIGHTS

    v1_unet = UNet2DConditionModel.from_pretrained(WEIGHTS / "unet").eval()
    v1_text = CLIPTextModel.from_pretrained(WEIGHTS / "text_encoder").eval()
    torch.manual_seed(0)
    v2_unet, v2_tok = toy_models.build_unet("v2", size="large").eval(), toy_models.build_tokenizer("v2")
    v2_text = toy_models.build_text_encoder(len(v2_tok)).eval()
    report = training.warm_start_unet(v2_unet, v1_unet.state_dict())
    assert report["identity_inits"] > 0 and 0.5 < report["share"] < 1
    text_report = training.warm_start(v2_text, v1_text.state_dict(), ("token_embedding.weight",))
    assert text_report["extended"] == 1 and text_report["skipped"] == 0
    assert sum(p.numel() for p in v2_unet.parameters()) > 1.5 * sum(p.numel() for p in v1_unet.parameters())
    ids = v2_tok(["a red cube, front view", ""], padding="max_length", max_length=toy_models.MAX_TOKENS, return_tensors="pt")
    x, t = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1)), torch.tensor([50, 800])
    with torch.no_grad():
        e1, e2 = v1_text(ids.input_ids).last_hidden_state, v2_text(ids.input_ids).last_hidden_state
        torch.testing.assert_close(e2, e1)
        # the grown UNet is the v1 function until training moves it (float32 round-off only)
        torch.testing.assert_close(v2_unet(x, t, e2).sample, v1_unet(x, t, e1).sample, atol=1e-5, rtol=1e-5)


def test_the_base_v2_unet_is_v1s_architecture_and_warm_starts_as_a_copy():
    from diffusers import UNet2DConditionModel

    from sdbench.priors.toy import WEIGHTS

    v1_state = UNet2DConditionModel.from_pretrained(WEIGHTS / "unet").state_dict()
    base, large = toy_models.build_unet("v2"), toy_models.build_unet("v2", size="large")
    report = training.warm_start_unet(base, v1_state)
    assert report == {"copied": len(v1_state), "extended": 0, "skipped": 0, "share": 1.0, "identity_inits": 0}
    assert all(torch.equal(base.state_dict()[k], v) for k, v in v1_state.items())
    n_base, n_large = (sum(p.numel() for p in u.parameters()) for u in (base, large))
    assert n_base == sum(v.numel() for v in v1_state.values()) and n_large > 1.5 * n_base
    with pytest.raises(ValueError, match="no 'large' UNet for world v1"):
        toy_models.build_unet("v1", size="large")


def test_train_prior_v2_resumes_after_an_interruption_exactly(tmp_path, monkeypatch, v2_cache):
    from safetensors.torch import load_file

    from sdbench.world import train_prior

    monkeypatch.setenv("SDBENCH_CACHE", v2_cache)
    monkeypatch.setattr(toy_models, "UNET_CONFIG_V2", {**toy_models.UNET_CONFIG_V2, "block_out_channels": (16, 16, 16)})
    args = [*TINY_V2, "--steps", "4", "--log-every", "1", "--checkpoint-every", "2"]
    full = train_prior.main(["--out", str(tmp_path / "full"), *args])
    assert full["world"] == "v2" and all(math.isfinite(full[k]) for k in ("final_mse", "final_loss"))

    save = training.Checkpoint.save

    def save_then_die(self, step, *a, **k):
        save(self, step, *a, **k)
        raise KeyboardInterrupt  # killed right after the first checkpoint (step 2)

    monkeypatch.setattr(training.Checkpoint, "save", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        train_prior.main(["--out", str(tmp_path / "cut"), *args])
    monkeypatch.setattr(training.Checkpoint, "save", save)
    resumed = train_prior.main(["--out", str(tmp_path / "cut"), *args, "--resume"])
    assert resumed["resumed_from_step"] == 2
    log = [json.loads(line) for line in (tmp_path / "cut" / "train_log.jsonl").read_text().splitlines()]
    assert [e["step"] for e in log] == [1, 2, 3, 4] and all(e["steps_per_s"] > 0 and "seconds" in e for e in log)
    name = "unet/diffusion_pytorch_model.safetensors"
    a, b = load_file(str(tmp_path / "full" / name)), load_file(str(tmp_path / "cut" / name))
    assert all(torch.equal(a[k], b[k]) for k in a)  # the same weights as the uninterrupted run


def test_v2_prior_loads_through_the_toy2_adapter(tmp_path, monkeypatch, v2_cache):
    from sdbench.errors import UserError
    from sdbench.priors import toy
    from sdbench.world import train_prior

    monkeypatch.setenv("SDBENCH_CACHE", v2_cache)
    monkeypatch.setattr(toy_models, "UNET_CONFIG_V2", {**toy_models.UNET_CONFIG_V2, "block_out_channels": (16, 16, 16)})
    out = tmp_path / "prior_v2"
    train_prior.main(["--out", str(out), *TINY_V2, "--steps", "2", "--log-every", "1"])
    prior = toy.ToyPrior2(toy.ToyPrior2.Config(path=str(out)))
    assert prior.resolution == 16
    (eps,) = prior.predict_noise(torch.zeros(1, 3, 16, 16), torch.tensor([500]), [prior.encode_text(["a red striped cube"])])
    assert eps.shape == (1, 3, 16, 16) and torch.isfinite(eps).all()
    toy.ToyPrior2.check_prompt("a cube with a face, back view")
    with pytest.raises(UserError, match="--prior toy2"):
        toy.ToyPrior.check_prompt("a red striped cube")
    monkeypatch.setattr(toy, "WEIGHTS_V2", tmp_path / "missing")
    with pytest.raises(UserError, match="train_prior --world v2"):
        toy.ToyPrior2.check_available(toy.ToyPrior2.Config())


def test_train_evaluator_v2_runs_resumes_and_reads_attributes(tmp_path, monkeypatch, v2_cache):
    from sdbench.evaluation.toy import embed, load_evaluator, read_attributes
    from sdbench.world import train_evaluator

    monkeypatch.setenv("SDBENCH_CACHE", v2_cache)
    out = tmp_path / "evaluator_v2"
    args = ["--out", str(out), "--world", "v2", "--resolution", "16", "--per-class", "1", "--held-out-per-class", "1"]
    args += ["--batch-size", "8", "--log-every", "1", "--threads", "1", "--checkpoint-every", "2"]
    first = train_evaluator.main([*args, "--steps", "2"])
    assert math.isfinite(first["final_loss"])
    summary = train_evaluator.main([*args, "--steps", "3", "--resume"])
    assert summary["resumed_from_step"] == 2 and math.isfinite(summary["final_loss"])
    held = summary["held_out"]
    assert {"shape_accuracy", "colour_accuracy", "pattern_accuracy", "marking_accuracy"} <= held.keys()
    assert "pattern_accuracy" in held["blurred_2px"]
    scorer = load_evaluator("cpu", str(out))
    images = torch.rand(3, 3, 16, 16)
    r = read_attributes(images, scorer)
    assert r.shape.shape == (3,) and r.probs["pattern"].shape == (3, 4) and r.probs["marking"].shape == (3, 2)
    torch.testing.assert_close(r.probs["colour"].sum(-1), torch.ones(3))
    torch.testing.assert_close(r.embedding, embed(images, scorer))
    torch.testing.assert_close(r.embedding.norm(dim=-1), torch.ones(3))
    assert scorer.score(images, "a red striped cube with a face").shape == (3,)


def test_v2_evaluator_labels_follow_what_the_image_shows():
    from sdbench.world.train_evaluator import labels_v2

    class Data:  # two striped renders, one marked and visible, one marked but hidden
        pattern = torch.tensor([1, 1, 0])
        shape = torch.tensor([0, 1, 2])
        colour = torch.tensor([3, 4, 5])

        def marking_visible(self):
            return torch.tensor([1, 0, -1])

    y = labels_v2(Data(), [0, 1, 2], torch.tensor([0.0, 2.0, 1.2]))
    assert y["pattern"].tolist() == [1, 0, -1]  # blurred away → plain; half-blurred → left out
    assert y["marking"].tolist() == [1, -1, -1]
    assert y["shape"].tolist() == [0, 1, 2] and y["colour"].tolist() == [3, 4, 5]


def test_train_evaluator_warm_start_continues_from_a_folder_and_refuses_another_architecture(tmp_path, monkeypatch, v2_cache):
    from safetensors.torch import load_file, save_file

    from sdbench.world import train_evaluator

    monkeypatch.setenv("SDBENCH_CACHE", v2_cache)
    args = ["--world", "v2", "--resolution", "16", "--per-class", "1", "--held-out-per-class", "1"]
    args += ["--batch-size", "8", "--threads", "1", "--checkpoint-every", "0"]
    train_evaluator.main(["--out", str(tmp_path / "first"), *args, "--steps", "2"])
    # zero further steps: the second stage saves exactly what it started from
    summary = train_evaluator.main(
        ["--out", str(tmp_path / "second"), *args, "--steps", "0", "--warm-start", str(tmp_path / "first")]
    )
    assert summary["warm_start"] == str(tmp_path / "first")
    name = "open_clip_model.safetensors"
    a, b = load_file(str(tmp_path / "first" / name)), load_file(str(tmp_path / "second" / name))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    # one step moves it
    train_evaluator.main(["--out", str(tmp_path / "third"), *args, "--steps", "1", "--warm-start", str(tmp_path / "first")])
    c = load_file(str(tmp_path / "third" / name))
    assert any(not torch.equal(a[k], c[k]) for k in a)

    bad = tmp_path / "bad"
    bad.mkdir()
    a["positional_embedding"] = torch.zeros(3, 3)
    save_file(a, str(bad / name))
    with pytest.raises(SystemExit, match="another architecture"):
        train_evaluator.main(["--out", str(tmp_path / "x"), *args, "--steps", "0", "--warm-start", str(bad)])
    with pytest.raises(SystemExit, match="lacks"):
        train_evaluator.main(["--out", str(tmp_path / "x"), *args, "--steps", "0", "--warm-start", str(tmp_path / "nowhere")])


def test_train_prior_data_overrides_are_checked_and_recorded(tmp_path, monkeypatch, v2_cache, capsys):
    from sdbench.world import train_prior

    assert train_prior.parse_data_overrides(["p_omit_shape=0.3", "p_drop=0"]) == {"p_omit_shape": 0.3, "p_drop": 0.0}
    for bad, says in [
        ("resolution=64", "FIELD one of"),
        ("p_omit_shape", "FIELD one of"),
        ("p_omit_shape=x", "not a number"),
        ("p_drop=1.5", r"\[0, 1\]"),
    ]:
        with pytest.raises(ValueError, match=says):
            train_prior.parse_data_overrides([bad])
        with pytest.raises(SystemExit) as e:
            train_prior.parse_args(["--out", str(tmp_path), "--world", "v2", "--data", bad])
        assert e.value.code == 2
    with pytest.raises(SystemExit):
        train_prior.parse_args(["--out", str(tmp_path), "--data", "p_drop=0.1"])  # a v1 run has no v2 data
    assert "--data is a v2 option" in capsys.readouterr().err

    monkeypatch.setenv("SDBENCH_CACHE", v2_cache)
    monkeypatch.setattr(toy_models, "UNET_CONFIG_V2", {**toy_models.UNET_CONFIG_V2, "block_out_channels": (16, 16, 16)})
    seen = {}
    from sdbench.world import data_v2

    sample_batch = data_v2.sample_batch

    def spy(data, n, rng, cfg):
        seen["cfg"] = cfg
        return sample_batch(data, n, rng, cfg)

    monkeypatch.setattr(data_v2, "sample_batch", spy)
    out = train_prior.main(["--out", str(tmp_path / "p"), *TINY_V2, "--steps", "1", "--data", "p_omit_shape=1"])
    assert out["data_overrides"] == {"p_omit_shape": 1.0} and seen["cfg"].p_omit_shape == 1.0


def test_the_shipped_v2_weights_load_work_and_are_the_ones_gated():
    """The shipped prior v2 and evaluator v2 load through their adapters, run, and are byte for byte the
    weights whose gates are recorded (``benchmarks/results/toy_world_v2_v21.json``, world v2.1)."""
    from pathlib import Path

    from sdbench.cameras import Cameras
    from sdbench.evaluation.toy import EVALUATOR_V2_DIR, evaluator_weights_id, load_evaluator, read_attributes
    from sdbench.priors.toy import ToyPrior2
    from sdbench.world.scenes import COLOURS, SHAPES, render_scene

    gated = json.loads((Path(__file__).parents[2] / "benchmarks" / "results" / "toy_world_v2_v21.json").read_text())
    gated = gated["results"]["weights"]
    prior = ToyPrior2(ToyPrior2.Config())
    assert prior.weights_id() == gated["prior_id"]
    assert evaluator_weights_id(EVALUATOR_V2_DIR) == gated["evaluator_id"]
    (eps,) = prior.predict_noise(torch.zeros(1, 3, 32, 32), torch.tensor([500]), [prior.encode_text(["a red striped cube"])])
    assert eps.shape == (1, 3, 32, 32) and torch.isfinite(eps).all()
    img = render_scene("cube", "red", Cameras.orbit(2, elevation=15.0, radius=3.0, fovy=40.0), 32, marking="face").rgb
    r = read_attributes(img.float(), load_evaluator("cpu", str(EVALUATOR_V2_DIR)))
    assert [SHAPES[i] for i in r.shape] == ["cube", "cube"] and [list(COLOURS)[i] for i in r.colour] == ["red", "red"]
    assert r.marking.tolist() == [1, 0]  # the face shows from the front (azimuth 0), not from the back (180)
