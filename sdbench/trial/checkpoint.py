"""Resumable trial checkpoints: weights, the loss's own state, optimisers and random-generator states."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from sdbench.io import atomic_write
from sdbench.trial.state import TrialState

CHECKPOINT_FILE = "checkpoint.pt"


def save_checkpoint(state: TrialState, path: Path, resumable: bool = True) -> Path:
    """Write the trial's state: representation weights, the loss's own state (LoRA, operator) and,
    when ``resumable``, optimiser and random-generator states to continue bit-identically."""
    data: dict[str, Any] = {
        "config": state.spec.config_dict(),
        "step": state.step,
        "representation": {
            k: v.detach().cpu() if torch.is_tensor(v) else v for k, v in state.representation.state_dict().items()
        },
        "loss": state.loss.checkpoint_state(),
        "resumable": resumable,
    }
    if resumable:
        data.update(
            seconds=state.seconds,
            nfe=state.nfe,
            nonfinite_grad_steps=state.nonfinite_grad_steps,
            history=state.history,
            optimizers={k: o.state_dict() for k, o in state.optimizers.items()},
            rng={
                "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
                "generators": state.generators.state(),
            },
        )
    return atomic_write(path, lambda f: torch.save(data, f))


def restore_checkpoint(state: TrialState, data: dict[str, Any]) -> None:
    """Continue a trial from :func:`save_checkpoint` data (same config)."""
    state.representation.load_weights(data["representation"])
    state.representation.to(state.prior.device)
    state.optimizers = state.representation.make_optimizers()
    for k, o in state.optimizers.items():
        o.load_state_dict(data["optimizers"][k])
    state.loss.load_checkpoint_state(data["loss"])
    state.step, state.seconds, state.history = data["step"], data["seconds"], list(data["history"])
    state.nfe_before, state._nfe0 = data["nfe"], state.prior.nfe.forward
    state.nonfinite_grad_steps = data["nonfinite_grad_steps"]
    rng = data["rng"]
    torch.set_rng_state(rng["torch"])
    if rng["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
    state.generators.load_state(rng["generators"])
