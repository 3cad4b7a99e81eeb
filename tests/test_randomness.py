"""Explicit randomness: a trial's draws come from its own generators, never from process-wide state."""

from __future__ import annotations

import os

import pytest
import torch

from sdbench import trial as T
from sdbench.budget import Budget
from sdbench.errors import UserError


def _spec(prior, loss: str, rep: str, overrides=()):
    cfg = T.TrialConfig(prompt="a red cube", loss=loss, representation=rep, prior=str(prior), seed=2, budget=Budget("steps", 5))
    return T.resolve(cfg, ("trial.eval_views=2", "trial.turntable_frames=0", "trial.metrics=denoise", *overrides))


@pytest.mark.parametrize(
    "loss,rep,overrides",
    [
        ("sds", "image", ()),
        ("vsd", "nerf", ("rep.grid_resolutions=8,16", "rep.samples_per_ray=16")),  # NeRF's sample jitter, VSD's dropout
        ("csd", "gaussians", ("rep.num_points=300",)),
    ],
)
def test_the_global_generator_does_not_reach_the_trial(tiny_pixel_checkpoint, tmp_path, loss, rep, overrides):
    """Reseeding torch's global generator after every step (as other work in the process would) changes nothing."""
    spec = _spec(tiny_pixel_checkpoint, loss, rep, overrides)
    clean = T.run_trial(spec, tmp_path / "clean", progress=False)

    def disturb(state):
        torch.manual_seed(1000 + state.step)
        torch.rand(100)

    disturbed = T.run_trial(spec, tmp_path / "disturbed", progress=False, on_step=disturb)
    assert disturbed.metrics == clean.metrics
    assert (tmp_path / "clean" / "views.png").read_bytes() == (tmp_path / "disturbed" / "views.png").read_bytes()


def test_each_stream_has_its_own_generator_and_seed(tiny_pixel_checkpoint):
    state = T.build(_spec(tiny_pixel_checkpoint, "sds", "nerf"))
    g = state.generators
    assert state.loss.generator is g.loss and state.representation.generator is g.representation
    assert len({g.loss.initial_seed(), g.cameras.initial_seed(), g.representation.initial_seed()}) == 3
    other = T.TrialGenerators.from_seed(3)  # a neighbouring seed shares no stream
    assert not {other.loss.initial_seed(), other.cameras.initial_seed()} & {g.loss.initial_seed(), g.cameras.initial_seed()}


def test_representation_init_draws_from_its_generator():
    from sdbench.representations.gaussians import Gaussians
    from sdbench.representations.nerf import NeRF

    for cls, cfg in ((Gaussians, Gaussians.Config(num_points=50)), (NeRF, NeRF.Config(grid_resolutions=(8,)))):
        a = cls(cfg, 16, generator=torch.Generator().manual_seed(7))
        torch.manual_seed(123)  # the global generator is not what decides
        b = cls(cfg, 16, generator=torch.Generator().manual_seed(7))
        c = cls(cfg, 16, generator=torch.Generator().manual_seed(8))
        sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
        floats = [k for k, v in sa.items() if torch.is_tensor(v) and v.is_floating_point() and v.numel() > 3]
        assert all(torch.equal(sa[k], sb[k]) for k in floats), cls
        assert any(not torch.equal(sa[k], sc[k]) for k in floats), cls


def test_shap_e_init_takes_the_generator(tmp_path):
    from sdbench.representations import shap_e
    from sdbench.testing import tiny_shap_e

    folder = tiny_shap_e(tmp_path / "shap-e")
    with pytest.raises(UserError, match="no surface|empty mesh"):  # the tiny random model: the latent path runs, no mesh
        shap_e.shap_e_points(str(folder), "a red cube", 100, num_inference_steps=2, generator=torch.Generator().manual_seed(0))


class _Recorder(dict):
    """os.environ that records writes."""

    writes: list[str]

    def __setitem__(self, key, value):
        self.writes.append(key)
        super().__setitem__(key, value)

    def __delitem__(self, key):
        self.writes.append(key)
        super().__delitem__(key)

    def pop(self, key, *default):
        self.writes.append(key)
        return super().pop(key, *default)


def test_loading_a_checkpoint_folder_sets_no_environment_variable(tiny_latent_checkpoint, monkeypatch):
    from sdbench.priors.diffusers_prior import DiffusersPrior

    env = _Recorder(os.environ)
    env.writes = []
    monkeypatch.setattr(os, "environ", env)
    env.pop("HF_HUB_OFFLINE", None)
    env.writes.clear()
    prior = DiffusersPrior(DiffusersPrior.Config(path=str(tiny_latent_checkpoint)))
    assert prior.vae is not None and env.writes == [] and "HF_HUB_OFFLINE" not in env
