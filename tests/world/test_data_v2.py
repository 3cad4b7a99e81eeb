"""World v2 training data: front-biased cameras, recorded truth, web-caption-like prompts."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest
import torch

from sdbench.world import data_v2
from sdbench.world.colour import chroma, lab_to_lch, rgb_to_lab
from sdbench.world.data_v2 import DataConfig, make_renders, sample_azimuths, sample_batch
from sdbench.world.grammar import DEGRADATIONS, parse
from sdbench.world.scenes import COLOURS, PATTERNS, SHAPES, render_scene

CFG = DataConfig(resolution=16, per_class=1)


@pytest.fixture(scope="module")
def renders(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SDBENCH_CACHE", str(tmp_path_factory.mktemp("cache")))
        first = make_renders(CFG, seed=5, progress=False)
        again = make_renders(CFG, seed=5, progress=False)  # from the cache
    assert torch.equal(first.images, again.images)
    return first


def test_azimuths_are_front_biased_as_documented():
    g = torch.Generator().manual_seed(0)
    az = sample_azimuths(100_000, 2.0, 0.3, g)
    assert az.min() >= -180 and az.max() <= 180
    front, back = (az.abs() < 45).float().mean().item(), (az.abs() > 135).float().mean().item()
    assert front == pytest.approx(0.547, abs=0.01) and back == pytest.approx(0.088, abs=0.01)  # the docstring's numbers
    assert az.mean().abs() < 1.0  # symmetric around the front
    uniform = sample_azimuths(100_000, 2.0, 1.0, g)
    assert (uniform.abs() < 45).float().mean().item() == pytest.approx(0.25, abs=0.01)
    torch.testing.assert_close(
        sample_azimuths(5, 2.0, 0.3, torch.Generator().manual_seed(1)),
        sample_azimuths(5, 2.0, 0.3, torch.Generator().manual_seed(1)),
    )


def test_every_class_is_rendered_with_its_recorded_truth(renders):
    assert len(renders) == len(SHAPES) * len(COLOURS) * len(PATTERNS) * 2
    combos = set(zip(renders.shape.tolist(), renders.colour.tolist(), renders.pattern.tolist(), renders.marking.tolist()))
    assert len(combos) == len(renders)
    # the pattern and marking pixel counts are truth, not labels: zero exactly where absent
    assert (renders.pattern_px[renders.pattern == 0] == 0).all() and (renders.pattern_px[renders.pattern > 0] > 0).all()
    assert (renders.marking_px[renders.marking == 0] == 0).all()
    # re-rendering an image from its record gives the image
    i = int(((renders.marking == 1) & (renders.pattern == 2)).nonzero()[0])
    from sdbench.cameras import Cameras

    cam = Cameras(renders.azimuth[i : i + 1], renders.elevation[i : i + 1], torch.tensor([3.0]), torch.tensor([40.0]))
    out = render_scene(SHAPES[int(renders.shape[i])], renders.albedo[i : i + 1], cam, 16, pattern="checkered", marking="face")
    assert (out.rgb[0] * 255).round().to(torch.uint8).eq(renders.images[i]).all()
    assert out.marking.sum().item() == pytest.approx(renders.marking_px[i].item())


def test_albedos_come_from_their_colour_word(renders):
    for c, (name, rgb) in enumerate(COLOURS.items()):
        albedo = renders.albedo[renders.colour == c]
        hue = lab_to_lch(rgb_to_lab(torch.tensor(rgb)))[2]
        d = (lab_to_lch(rgb_to_lab(albedo))[:, 2] - hue).abs()
        assert torch.minimum(d, 360 - d).max() < 0.5, name
        assert chroma(albedo).max() <= chroma(torch.tensor(rgb)) + 0.5, name  # v1's albedo is the most vivid
    assert renders.vividness.std() > 0.2  # pastel to vivid, not one colour


def test_prompts_follow_the_configured_shares(renders):
    cfg = replace(CFG, p_drop=0.0, p_filler=0.0)
    rng = random.Random(0)
    counts = dict(n=0, degraded=0, named=0, no_colour=0, no_shape=0, plain_word=0, plain=0)
    for _ in range(40):
        images, prompts, idx = sample_batch(renders, 64, rng, cfg)
        clean = renders.images[idx].float() / 255
        degraded = (images - clean).abs().amax(dim=(1, 2, 3)) > 1e-6
        for j, (text, i) in enumerate(zip(prompts, idx)):
            p = parse(text, "v2")  # every prompt is valid v2
            truth = renders.prompt(i)
            assert p.colour in (None, truth.colour) and p.shape in (None, truth.shape)
            assert p.surface == truth.surface and p.marking == truth.marking  # never ambiguous in pattern / marking
            counts["n"] += 1
            counts["degraded"] += int(degraded[j])
            counts["named"] += int(bool(p.degradations))
            assert not p.degradations or degraded[j]  # a named degradation was applied
            counts["no_colour"] += p.colour is None
            counts["no_shape"] += p.shape is None
            if truth.surface == "plain":
                counts["plain"] += 1
                counts["plain_word"] += p.pattern == "plain"
    n = counts["n"]
    # binomial 3-sigma bands for n = 2560 (a blank degradation, e.g. 'dark' on black, can hide a few)
    assert counts["degraded"] / n == pytest.approx(cfg.p_degrade, abs=0.04)
    assert counts["named"] / counts["degraded"] == pytest.approx(1 - cfg.p_degrade_unnamed, abs=0.06)
    assert counts["no_colour"] / n == pytest.approx(cfg.p_omit_colour, abs=0.03)
    assert counts["no_shape"] / n == pytest.approx(cfg.p_omit_shape, abs=0.03)
    assert counts["plain_word"] / counts["plain"] == pytest.approx(cfg.p_plain_word, abs=0.06)


def test_omitted_attributes_are_uniform_over_the_data(renders):
    rng = random.Random(1)
    cfg = replace(CFG, p_omit_colour=1.0, p_omit_shape=0.0, p_drop=0.0, p_filler=0.0, p_degrade=0.0, p_view=0.0)
    seen: dict[str, list[int]] = {}
    for _ in range(30):
        _, prompts, idx = sample_batch(renders, 64, rng, cfg)
        for text, i in zip(prompts, idx):
            seen.setdefault(text, []).append(int(renders.colour[i]))
    assert all(parse(text, "v2").colour is None for text in seen)
    every = torch.tensor([c for cs in seen.values() for c in cs])
    freq = torch.bincount(every, minlength=len(COLOURS)).float() / len(every)
    assert (freq - 1 / len(COLOURS)).abs().max() < 0.04  # n = 1920: 4.7 sigma
    assert set(seen["a cube"]) == set(range(len(COLOURS)))  # "a cube" is any colour


def test_degradation_words_stay_in_the_data(renders):
    rng = random.Random(2)
    cfg = replace(CFG, p_degrade=1.0, p_degrade_unnamed=0.0, p_drop=0.0, p_filler=0.0)
    _, prompts, _ = sample_batch(renders, 200, rng, cfg)
    named = {d for text in prompts for d in parse(text, "v2").degradations}
    assert named == set(DEGRADATIONS)


def test_marking_visibility_labels(renders):
    vis = renders.marking_visible()
    assert (vis[renders.marking == 0] == 0).all()
    assert set(vis.tolist()) <= {-1, 0, 1}
    assert data_v2.HIDDEN_PX < data_v2.VISIBLE_PX
