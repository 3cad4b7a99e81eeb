"""A trial's live objects, built from its spec: prior, representation, loss, optimisers, generators.

Randomness is explicit: a trial owns one ``torch.Generator`` per stream (:class:`TrialGenerators`),
each seeded from the trial seed and the stream's name, and hands each to what draws from it. So a
trial sees the same draws whatever else runs in the process (other trials, metrics, libraries).
``torch.manual_seed(seed)`` is still called once in :func:`build`, as a belt for third-party code that
draws from torch's global generator: the default initialisers of a loss's own networks (VDM's U-Lite,
VSD's LoRA through peft), nerfacc's CUDA sampler and the VAE posterior sample of latent priors
(gsplat's densification split runs under a global generator forked and seeded from the representation's
stream: :mod:`sdbench.representations.gaussians`). Its state is checkpointed too, so resumed trials stay bit-identical.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, fields
from typing import Any

import torch

from sdbench.trial.spec import TrialSpec


def stream_seed(seed: int, stream: str) -> int:
    """A 63-bit seed for the trial ``seed``'s stream ``stream``: distinct streams (and trials whose seeds
    differ by one) do not share sequences."""
    return int.from_bytes(hashlib.sha256(f"sdbench:{seed}:{stream}".encode()).digest()[:8], "little") >> 1


@dataclass
class TrialGenerators:
    """The trial's random streams (CPU generators; draws are moved to the device)."""

    representation: torch.Generator
    """Initialisation of the representation and its later draws (NeRF's sample jitter): ``rep.generator``."""
    cameras: torch.Generator
    """The training cameras of every step."""
    loss: torch.Generator
    """t, ε and dropout inside the loss: ``loss.generator``."""

    @classmethod
    def from_seed(cls, seed: int) -> TrialGenerators:
        return cls(**{f.name: torch.Generator().manual_seed(stream_seed(seed, f.name)) for f in fields(cls)})

    def state(self) -> dict[str, torch.Tensor]:
        return {f.name: getattr(self, f.name).get_state() for f in fields(self)}

    def load_state(self, state: dict[str, torch.Tensor]) -> None:
        for f in fields(self):
            getattr(self, f.name).set_state(state[f.name])


@dataclass
class TrialState:
    """The live objects of a trial, handed to ``on_step`` callbacks (and to tests)."""

    spec: TrialSpec
    prior: Any
    representation: Any
    loss: Any
    optimizers: dict[str, torch.optim.Optimizer]
    generators: TrialGenerators
    step: int = 0
    seconds: float = 0.0
    logs: dict[str, float] = field(default_factory=dict)
    history: list[dict] = field(default_factory=list)
    nfe_before: int = 0
    """NFE spent before this process (a resumed trial)."""
    nonfinite_grad_steps: int = 0
    """Steps whose gradients held NaN/inf entries (zeroed, see :func:`sdbench.trial.loop.optimise`)."""
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
    """Instantiate prior, representation, loss and optimiser, and hand each its generator."""
    t = spec.trial
    if t.threads:
        torch.set_num_threads(t.threads)
    torch.set_flush_denormal(True)
    prior = prior if prior is not None else spec.prior_cls(spec.prior)
    prior.check_prompt(t.prompt)
    resolution = t.resolution or prior.resolution
    generators = TrialGenerators.from_seed(t.seed)
    torch.manual_seed(t.seed)  # the belt for third-party draws (see the module docstring)
    rep = spec.representation_cls(
        spec.representation, resolution=resolution, prompt=t.prompt, generator=generators.representation
    ).to(prior.device)
    loss = spec.loss_cls(spec.loss, prior).to(prior.device)
    loss.generator = generators.loss
    state = TrialState(spec, prior, rep, loss, rep.make_optimizers(), generators)
    state._nfe0, state._grad0 = prior.nfe.forward, prior.nfe.with_grad
    return state
