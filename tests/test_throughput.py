"""The throughput work changes cost, not results: its fast paths against the old ones (``SDBENCH_LEGACY_PATH=1``)."""

from __future__ import annotations

import math

import pytest
import torch

from sdbench.trial.loop import zero_nonfinite_grads


def _params(*grads):
    out = []
    for g in grads:
        p = torch.nn.Parameter(torch.zeros_like(g))
        p.grad = g.clone()
        out.append(p)
    return out


@pytest.mark.parametrize("legacy", [False, True])
def test_the_nonfinite_scan_counts_and_zeroes_exactly_on_both_paths(legacy, monkeypatch):
    monkeypatch.setenv("SDBENCH_LEGACY_PATH", "1" if legacy else "0")
    clean = _params(torch.randn(5), torch.randn(2, 3))
    assert zero_nonfinite_grads(clean) == 0
    bad = _params(torch.tensor([1.0, math.nan, math.inf]), torch.tensor([-math.inf, 2.0]), torch.randn(4))
    assert zero_nonfinite_grads(bad) == 3
    assert all(torch.isfinite(p.grad).all() for p in bad)
    assert bad[0].grad.tolist() == [1.0, 0.0, 0.0] and bad[1].grad.tolist() == [0.0, 2.0]
    # finite entries whose sum overflows: the fast path falls back to the exact count (none)
    big = _params(torch.full((4,), 3e38))
    assert zero_nonfinite_grads(big) == 0 and torch.equal(big[0].grad, torch.full((4,), 3e38))


def test_true_renders_are_memoised_per_object_cameras_and_size_and_handed_out_as_copies(monkeypatch):
    from sdbench.cameras import Cameras
    from sdbench.evaluation import toy_metrics
    from sdbench.world import scenes

    calls = []
    real = scenes.render

    def counting(*args, **kw):
        calls.append(args[:2])
        return real(*args, **kw)

    monkeypatch.setattr(scenes, "render", counting)
    monkeypatch.setattr(toy_metrics, "_TRUTHS", type(toy_metrics._TRUTHS)())
    cams = Cameras.orbit(3, elevation=15.0, radius=3.0, fovy=40.0)
    a_rgb, a_alpha = toy_metrics.true_render("cube", "red", cams, 16)
    a_rgb.fill_(0)  # a caller's in-place edit does not reach the cache
    b_rgb, b_alpha = toy_metrics.true_render("cube", "red", Cameras.orbit(3, elevation=15.0, radius=3.0, fovy=40.0), 16)
    assert len(calls) == 1
    ref_rgb, ref_alpha = real("cube", "red", cams, 16)
    assert torch.equal(b_rgb, ref_rgb) and torch.equal(b_alpha, ref_alpha)
    toy_metrics.true_render("cube", "blue", cams, 16)
    toy_metrics.true_render("cube", "red", Cameras.orbit(3, elevation=30.0, radius=3.0, fovy=40.0), 16)
    toy_metrics.true_render("cube", "red", cams, 8)
    assert len(calls) == 4
    monkeypatch.setenv("SDBENCH_LEGACY_PATH", "1")
    toy_metrics.true_render("cube", "red", cams, 16)
    assert len(calls) == 5  # the old path renders every time


def test_a_group_of_trials_gives_the_same_metrics_on_the_new_and_the_old_path(tiny_pixel_checkpoint, tmp_path, monkeypatch):
    """Equivalence: the same trials, one by one in one process, with today's path (the second 2D trial
    of a prompt reuses the first one's true renders) and with ``SDBENCH_LEGACY_PATH=1``.

    Tolerance: none (exact equality). The fast paths change no arithmetic that reaches a metric: the
    cache hands back the very tensors ``render`` made, and the NaN/inf scan only reads gradients (it
    zeroes the same entries on both paths). Same seed, same machine, CPU → bit-identical.
    """
    from sdbench import trial as T
    from sdbench.budget import Budget
    from sdbench.evaluation import toy_metrics

    group = [("image", 0), ("image", 1), ("nerf", 0)]
    runs = {}
    for path in ("new", "old"):
        monkeypatch.setenv("SDBENCH_LEGACY_PATH", "1" if path == "old" else "0")
        monkeypatch.setattr(toy_metrics, "_TRUTHS", type(toy_metrics._TRUTHS)())
        for rep, seed in group:
            cfg = T.TrialConfig(
                prompt="a red cube",
                representation=rep,
                prior=str(tiny_pixel_checkpoint),
                seed=seed,
                budget=Budget("steps", 3),
                eval_views=2,
                turntable_frames=0,
                metrics=("toy", "denoise"),
            )
            result = T.run_trial(T.resolve(cfg), tmp_path / path / f"{rep}-{seed}", progress=False)
            runs[path, rep, seed] = result.metrics
        if path == "new":
            assert len(toy_metrics._TRUTHS) == 3  # one pose grid and front view for the prompt, NeRF's random views
    for rep, seed in group:
        new, old = runs["new", rep, seed], runs["old", rep, seed]
        print(f"{rep} seed {seed}: {len(new)} metrics, identical: {new == old}")
        assert "toy_iou" in new and new == old
