"""The interface of a score-distillation loss.

A loss is a small ``nn.Module``. Each optimisation step the trial loop renders ``B`` views and
calls ``loss(images, text, cameras, step)``; the loss maps the images into the prior's space,
queries the prior (counted there), updates any trainable parts it owns with their own optimiser
(VSD's LoRA, VDM's operator), and returns a scalar whose gradient w.r.t. ``images`` is the
score-distillation gradient. Sampling of ``t`` and ε can be fixed by passing them (tests do).
"""

from __future__ import annotations

import abc
import copy
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from sdbench.cameras import Cameras
from sdbench.losses import common
from sdbench.priors.base import Prior, TextConditioning


@dataclass
class LossOutput:
    """What a loss step returns.

    Attributes:
        loss: scalar to back-propagate into the representation (its value is a surrogate; log
            ``grad_norm`` instead).
        logs: numbers a researcher looks at (``grad_norm``, ``t``, ``lambda_t``, operator loss, ...).
    """

    loss: Tensor
    logs: dict[str, float] = field(default_factory=dict)


class Loss(nn.Module, abc.ABC):
    """Base class of score-distillation losses."""

    Config: ClassVar[type]
    aliases: ClassVar[tuple[str, ...]] = ()

    def __init__(self, cfg: Any, prior: Prior):
        super().__init__()
        self.cfg = cfg
        self.prior = prior
        #: The trial's generator for this loss's draws (t, ε, dropout, ...): every random draw of a
        #: loss goes through it (``common.sample_timesteps``, ``randn_like``, ``uniform``), so a trial's
        #: draws do not depend on what else runs in the process. None: torch's global generator.
        self.generator: torch.Generator | None = None
        #: Non-finite (NaN/inf) gradient entries :meth:`prepare_grad` zeroed since the trial last reset it
        #: (the trial loop does, each step, and counts the steps that had any).
        self.nonfinite_grad_entries = 0

    def prepare_grad(self, grad: Tensor, clip: float | None) -> Tensor:
        """:func:`sdbench.losses.common.prepare_grad` (NaN/inf → 0 so one bad step does not wreck the
        representation, optional clamp), counting the entries it zeroed in ``nonfinite_grad_entries``."""
        self.nonfinite_grad_entries += int((~torch.isfinite(grad)).sum())
        return common.prepare_grad(grad, clip)

    @abc.abstractmethod
    def forward(
        self,
        images: Tensor,
        text: TextConditioning,
        cameras: Cameras,
        step: int,
        *,
        t: Tensor | None = None,
        noise: Tensor | None = None,
    ) -> LossOutput:
        """One step.

        Args:
            images: ``[B, 3, H, W]`` renders in [0, 1], attached to the representation's graph.
            text: the trial's text conditioning (prompt with view words, ``""``, negatives).
            cameras: the ``B`` cameras the images were rendered from.
            step: optimisation step (0-based), for schedules.
            t: optional fixed timesteps ``[B]`` (int64); sampled when None.
            noise: optional fixed noise, shaped like the prior-space images; sampled when None.
        """

    def checkpoint_state(self) -> dict[str, Any]:
        """Everything needed to resume: trainable parameters (not frozen copies of the prior, e.g.
        VSD's LoRA UNet keeps only its LoRA and camera weights), buffers, and optimiser states."""
        return {
            "parameters": {n: p.detach().clone() for n, p in self.named_parameters() if p.requires_grad},
            "buffers": {n: b.detach().clone() for n, b in self.named_buffers()},
            # deep copies: an optimiser's state_dict holds its live moment tensors, which later steps update in place
            "optimizers": {name: copy.deepcopy(opt.state_dict()) for name, opt in self.optimizers().items()},
        }

    def load_checkpoint_state(self, state: dict[str, Any]) -> None:
        params, buffers = dict(self.named_parameters()), dict(self.named_buffers())
        with torch.no_grad():
            for n, v in state["parameters"].items():
                params[n].copy_(v)
            for n, v in state["buffers"].items():
                buffers[n].copy_(v)
        for name, opt in self.optimizers().items():
            opt.load_state_dict(state["optimizers"][name])

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """The loss's own optimisers (none for losses without trainable parts)."""
        return {}
