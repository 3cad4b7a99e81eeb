"""One contract test over every registered plugin, on a tiny random SD-like (latent) checkpoint.

For every loss × representation: one trial step runs on the CPU, the loss is finite, the gradient
reaches the representation, the prior counted its network evaluations, the same seed gives the
same numbers, and every config round-trips through its dict form.
"""

from __future__ import annotations

import pytest
import torch

from sdbench import config as cfgutil
from sdbench import registry, trial
from sdbench.budget import Budget

LOSSES = registry.LOSSES.names()
REPRESENTATIONS = registry.REPRESENTATIONS.names()
NFE_PER_VIEW = {
    "sds": {2},
    "csd": {2, 3},
    "nfsd": {2, 3},
    "ism": set(range(4, 9)),
    "vsd": {4},
    "sdi": set(range(4, 25, 2)),
    "asd": {3},
    "cds": {4},
    "sds_bridge": {2},
    "lods": {3},
    "esd": {5},
}


@pytest.fixture(scope="module")
def latent_prior(tiny_latent_checkpoint):
    from sdbench.priors.diffusers_prior import DiffusersPrior

    return DiffusersPrior(DiffusersPrior.Config(path=str(tiny_latent_checkpoint)))


def one_step(latent_prior, tiny_latent_checkpoint, loss: str, rep: str, seed: int = 0):
    spec = trial.resolve(
        trial.TrialConfig(
            prompt="a red cube",
            loss=loss,
            representation=rep,
            prior=str(tiny_latent_checkpoint),
            seed=seed,
            budget=Budget("steps", 1),
            batch_size=2,
        ),
        ["rep.num_points=300"] if rep == "gaussians" else [],
    )
    state = trial.build(spec, latent_prior)
    before = {n: p.detach().clone() for n, p in state.representation.named_parameters()}
    nfe0 = latent_prior.nfe.forward
    history = trial.optimise(state, progress=False)
    changed = [n for n, p in state.representation.named_parameters() if n in before and not torch.equal(before[n], p.detach())]
    return spec, state, history, latent_prior.nfe.forward - nfe0, changed


@pytest.mark.parametrize("rep", REPRESENTATIONS)
@pytest.mark.parametrize("loss", LOSSES)
def test_every_loss_runs_with_every_representation_on_a_latent_prior(latent_prior, tiny_latent_checkpoint, loss, rep):
    spec, state, history, nfe, changed = one_step(latent_prior, tiny_latent_checkpoint, loss, rep)
    assert history and all(
        torch.isfinite(torch.tensor(v)) for k, v in history[-1].items() if isinstance(v, float) and k != "operator_loss"
    )
    assert changed, "the optimiser step changed no parameter of the representation"
    base = loss.split("_")[0]
    expected = NFE_PER_VIEW.get(loss, NFE_PER_VIEW.get(base, {2}))  # vdm and its ablations: a CFG pair
    assert nfe % 2 == 0 and nfe // 2 in expected, (loss, nfe)
    for section, cfg in (("loss", spec.loss), ("representation", spec.representation), ("trial", spec.trial)):
        assert cfgutil.from_dict(type(cfg), cfgutil.to_dict(cfg), section) == cfg


@pytest.mark.parametrize("loss", ["sds", "vdm", "vsd"])
def test_same_seed_same_step(latent_prior, tiny_latent_checkpoint, loss):
    runs = [one_step(latent_prior, tiny_latent_checkpoint, loss, "image", seed=7) for _ in range(2)]
    (_, a, *_), (_, b, *_) = runs
    assert torch.equal(a.representation.logits, b.representation.logits)


def test_every_plugin_is_documented_and_loads():
    for kind, reg in registry.ALL.items():
        for entry in reg.load_all():
            assert not entry.broken, (kind, entry.name, entry.error)
            assert entry.summary, f"{kind} {entry.name} has no one-line docstring"


@pytest.fixture(scope="module")
def toy_prior():
    from sdbench.priors.toy import ToyPrior

    return ToyPrior()


@pytest.mark.parametrize("rep", REPRESENTATIONS)
@pytest.mark.parametrize("loss", [name for name in LOSSES if not name.startswith("vdm_")])  # ablations: vdm's code
def test_every_loss_runs_with_every_representation_on_the_toy_prior(toy_prior, loss, rep):
    spec = trial.resolve(
        trial.TrialConfig(prompt="a red cube", loss=loss, representation=rep, budget=Budget("steps", 2), batch_size=1),
        ["rep.num_points=300"] if rep == "gaussians" else [],
    )
    state = trial.build(spec, toy_prior)
    before = {n: p.detach().clone() for n, p in state.representation.named_parameters()}
    nfe0 = toy_prior.nfe.forward
    history = trial.optimise(state, progress=False)
    assert history and toy_prior.nfe.forward > nfe0
    assert any(not torch.equal(before[n], p.detach()) for n, p in state.representation.named_parameters() if n in before)
    assert state.nonfinite_grad_steps == 0
