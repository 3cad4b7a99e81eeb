"""A trial's live objects, built from its spec: prior, representation, loss, optimisers, generators."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from sdbench.trial.spec import TrialSpec


def seed_everything(seed: int) -> None:
    import random

    import numpy as np

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@dataclass
class TrialState:
    """The live objects of a trial, handed to ``on_step`` callbacks (and to tests)."""

    spec: TrialSpec
    prior: Any
    representation: Any
    loss: Any
    optimizers: dict[str, torch.optim.Optimizer]
    camera_generator: torch.Generator
    step: int = 0
    seconds: float = 0.0
    logs: dict[str, float] = field(default_factory=dict)
    history: list[dict] = field(default_factory=list)
    nfe_before: int = 0
    """NFE spent before this process (a resumed trial)."""
    _nfe0: int = 0
    _grad0: int = 0

    @property
    def nfe(self) -> int:
        """Network evaluations of this trial (the prior's counter may be shared by several trials)."""
        return self.nfe_before + self.prior.nfe.forward - self._nfe0

    @property
    def nfe_with_grad(self) -> int:
        """Evaluations of this process's part of the trial that ran with autograd (VSD's LoRA training)."""
        return self.prior.nfe.with_grad - self._grad0


def build(spec: TrialSpec, prior: Any | None = None) -> TrialState:
    """Instantiate prior, representation, loss and optimiser (seeded)."""
    t = spec.trial
    if t.threads:
        torch.set_num_threads(t.threads)
    torch.set_flush_denormal(True)
    seed_everything(t.seed)
    prior = prior if prior is not None else spec.prior_cls(spec.prior)
    prior.check_prompt(t.prompt)
    resolution = t.resolution or prior.resolution
    seed_everything(t.seed)
    rep = spec.representation_cls(spec.representation, resolution=resolution, prompt=t.prompt).to(prior.device)
    loss = spec.loss_cls(spec.loss, prior).to(prior.device)
    state = TrialState(spec, prior, rep, loss, rep.make_optimizers(), torch.Generator().manual_seed(t.seed + 1))
    state._nfe0, state._grad0 = prior.nfe.forward, prior.nfe.with_grad
    return state
