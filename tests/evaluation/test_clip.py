"""CLIP scoring through open_clip with tiny random models built from configs (no downloads)."""

from __future__ import annotations

import json

import pytest
import torch

from sdbench.errors import UserError
from sdbench.evaluation.clip import ClipScore, ClipScorer

TINY = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16, "patch_size": 8},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    """A tiny ViT CLIP registered as an open_clip architecture, with its weights in a local file."""
    import open_clip

    folder = tmp_path_factory.mktemp("clip")
    (folder / "TinyCLIP-sdbench.json").write_text(json.dumps(TINY))
    open_clip.add_model_config(folder / "TinyCLIP-sdbench.json")
    torch.manual_seed(0)
    model = open_clip.create_model("TinyCLIP-sdbench")
    torch.save(model.state_dict(), folder / "weights.pt")
    return "TinyCLIP-sdbench", folder / "weights.pt", model


def test_local_checkpoint_loads_exactly_and_scores_by_the_formula(tiny_clip):
    import open_clip

    name, path, model = tiny_clip
    scorer = ClipScorer.load(name, pretrained=str(path))
    for a, b in zip(scorer.model.state_dict().values(), model.state_dict().values()):
        assert torch.equal(a, b)
    images = torch.rand(3, 3, 48, 48)
    scores = scorer.score(images, "a red cube")
    with torch.no_grad():
        x = torch.nn.functional.interpolate(images, size=(32, 32), mode="bicubic", align_corners=False, antialias=True).clamp(
            0, 1
        )
        x = (x - scorer.mean) / scorer.std
        img = torch.nn.functional.normalize(model.eval().encode_image(x), dim=-1)
        txt = torch.nn.functional.normalize(model.encode_text(open_clip.get_tokenizer(name)(["a red cube"])), dim=-1)
    torch.testing.assert_close(scores, 100 * (img @ txt[0]).clamp(min=0), atol=1e-4, rtol=0)
    assert scores.shape == (3,) and (scores >= 0).all() and (scores <= 100).all()


def test_missing_weights_name_the_env_var(monkeypatch, tmp_path):
    monkeypatch.delenv("SDBENCH_CLIP_VIT_L14", raising=False)
    with pytest.raises(UserError, match="not found"):
        ClipScorer.load("ViT-L-14", pretrained=str(tmp_path / "nope.bin"))
    metric = ClipScore(ClipScore.Config(model="ViT-L-14"))
    ctx = type("Ctx", (), {"prompt": "a dragon"})()
    assert "SDBENCH_CLIP_VIT_L14" in metric.applies(ctx)


def test_clip_metric_on_a_representation(tiny_clip, stub_prior):
    from sdbench.cameras import Cameras
    from sdbench.evaluation.base import EvalContext
    from sdbench.representations.image import Image

    name, path, _ = tiny_clip
    metric = ClipScore(ClipScore.Config(model=name, checkpoint=str(path), views=4))
    rep = Image(Image.Config(), 16)
    cams = Cameras.orbit(2)
    ctx = EvalContext("a dragon", stub_prior, rep, cams, rep.render(cams, 16, 16), seed=0)
    assert metric.applies(ctx) is None
    values = metric.compute(ctx)
    assert set(values) == {"clip_tinyclip_sdbench"} and 0 <= values["clip_tinyclip_sdbench"] <= 100
    assert metric.compute(ctx) == values  # same seed, same views, same number
