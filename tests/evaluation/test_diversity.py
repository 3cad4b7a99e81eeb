"""Diversity across seeds: identical seeds score exactly zero, distinct modes score high."""

from __future__ import annotations

import math

import pytest
import torch

from sdbench.cameras import Cameras
from sdbench.errors import UserError
from sdbench.evaluation.diversity import (
    distance_by_agreement,
    diversity,
    diversity_of,
    embedding_distance,
    readout_entropy,
)
from sdbench.io import save_image
from sdbench.world.scenes import render


def test_identical_seeds_score_exactly_zero():
    g = torch.Generator().manual_seed(0)
    probs = torch.softmax(torch.randn(1, 3, 6, generator=g), -1).expand(5, -1, -1)  # 5 seeds, 3 views, 6 classes
    emb = torch.randn(1, 3, 16, generator=g).expand(5, -1, -1)
    m = diversity({"colour": probs}, emb)
    assert m == {"diversity_distance": 0.0, "diversity_entropy_colour": 0.0}


def test_distinct_modes_score_high():
    one_hot = torch.eye(4)
    assert readout_entropy(one_hot) == pytest.approx(1.0)  # 4 seeds, 4 different classes
    assert readout_entropy(torch.eye(6)[:4]) == pytest.approx(1.0)  # normalised by log(min(S, K)): 4 seeds, 6 classes
    assert readout_entropy(torch.eye(2).repeat(3, 1)) == pytest.approx(1.0)  # 6 seeds evenly over 2 classes
    two_modes = torch.eye(4)[[0, 0, 0, 1]]
    assert readout_entropy(two_modes) == pytest.approx(-(0.75 * math.log(0.75) + 0.25 * math.log(0.25)) / math.log(4))
    assert embedding_distance(torch.eye(4)) == pytest.approx(1.0)  # orthogonal: cos 0
    assert embedding_distance(torch.tensor([[1.0, 0.0], [-1.0, 0.0]])) == pytest.approx(2.0)  # opposite
    # view by view: two seeds agree on view 0, are orthogonal on view 1
    views = torch.tensor([[[1.0, 0.0], [1.0, 0.0]], [[1.0, 0.0], [0.0, 1.0]]])
    assert embedding_distance(views) == pytest.approx(0.5)


def test_the_readout_averages_views_per_seed_before_its_argmax():
    # seed 0: views say class 0 (0.9) and class 1 (0.6) → class 0 overall; seed 1 → class 1
    probs = torch.tensor([[[0.9, 0.1], [0.4, 0.6]], [[0.2, 0.8], [0.3, 0.7]]])
    assert readout_entropy(probs) == pytest.approx(1.0)


def test_the_distance_splits_into_agreeing_and_differing_pairs():
    # seeds 0, 1 read as class 0 but point different ways (within-mode variation); seed 2 reads as class 1
    e = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [-1.0, 0.0, 0.0]])
    split = distance_by_agreement(e, torch.tensor([0, 0, 1]))
    assert split["share_same"] == pytest.approx(1 / 3)
    assert split["distance_same"] == pytest.approx(1.0)  # orthogonal pair (0, 1)
    assert split["distance_different"] == pytest.approx((2.0 + 1.0) / 2)  # (0, 2) opposite, (1, 2) orthogonal
    total = split["share_same"] * split["distance_same"] + (1 - split["share_same"]) * split["distance_different"]
    assert total == pytest.approx(embedding_distance(e))
    # collapsed read-out: every pair agrees, the distance is all within-mode; identical seeds give 0
    collapsed = distance_by_agreement(e, torch.zeros(3, dtype=torch.long))
    assert collapsed["share_same"] == 1.0 and math.isnan(collapsed["distance_different"])
    assert distance_by_agreement(torch.ones(4, 2, 3), torch.arange(4))["distance_different"] == 0.0
    with pytest.raises(ValueError):
        distance_by_agreement(e, torch.tensor([0, 1]))


def test_too_few_seeds_are_rejected():
    with pytest.raises(ValueError, match="at least 2 seeds"):
        readout_entropy(torch.eye(3)[:1])
    with pytest.raises(ValueError, match="at least 2 seeds"):
        embedding_distance(torch.ones(1, 4))


def write_trial(root, name, images):
    for i, img in enumerate(images):
        save_image(img, root / name / "views" / f"{i:03d}.png")
    return root / name


def mean_colour(images):
    return images.mean((2, 3))  # [B, 3] a crude embedding


def dominant_channel(images):
    return {"channel": torch.nn.functional.one_hot((1 - images).mean((2, 3)).argmin(1), 3).float()}  # least absent


def test_diversity_of_reads_saved_views(tmp_path):
    cams = Cameras.orbit(2, elevation=15.0)
    red, blue, green = (render("cube", c, cams, 32)[0] for c in ("red", "blue", "green"))
    same = [write_trial(tmp_path, f"same{i}", red) for i in range(3)]
    m = diversity_of(same, embed=mean_colour, readout=dominant_channel)
    assert m == {"diversity_distance": 0.0, "diversity_entropy_channel": 0.0, "seeds": 3.0}
    distinct = [write_trial(tmp_path, n, imgs) for n, imgs in (("r", red), ("b", blue), ("g", green))]
    m = diversity_of(distinct, embed=mean_colour, readout=dominant_channel)
    assert m["diversity_entropy_channel"] == pytest.approx(1.0) and m["diversity_distance"] > 0


def test_diversity_of_with_the_toy_evaluator(tmp_path):
    cams = Cameras.orbit(2, elevation=15.0)
    objects = [("cube", "red"), ("sphere", "blue"), ("torus", "green")]
    trials = [write_trial(tmp_path, f"{s}-{c}", render(s, c, cams, 32)[0]) for s, c in objects]
    m = diversity_of(trials)
    # the evaluator reads clean renders right (98.7 % held-out accuracy): three shapes, three colours
    assert m["diversity_entropy_shape"] == pytest.approx(1.0) and m["diversity_entropy_colour"] == pytest.approx(1.0)
    assert m["diversity_distance"] > 0
    same = diversity_of([trials[0], trials[0]])
    assert same["diversity_distance"] == 0.0 and same["diversity_entropy_shape"] == 0.0
    assert str(same["diversity_entropy_shape"]) == "0.0"  # not -0.0 in result files


def test_diversity_of_rejects_what_cannot_be_compared(tmp_path):
    cams = Cameras.orbit(2, elevation=15.0)
    two = write_trial(tmp_path, "two", render("cube", "red", cams, 32)[0])
    one = write_trial(tmp_path, "one", render("cube", "red", cams[:1], 32)[0])
    with pytest.raises(UserError, match="at least two"):
        diversity_of([two])
    with pytest.raises(UserError, match="differ in number or size"):
        diversity_of([two, one], embed=mean_colour, readout=dominant_channel)
    with pytest.raises(UserError, match="no saved views"):
        diversity_of([two, tmp_path / "missing"], embed=mean_colour, readout=dominant_channel)
