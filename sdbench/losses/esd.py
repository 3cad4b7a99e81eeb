"""ESD: Entropic Score Distillation (Wang et al., CVPR 2024, arXiv:2401.00909).

ESD adds the entropy of the rendered-image distribution to VSD's objective; the paper shows the
resulting update is VSD with classifier-free guidance on the *camera* condition of VSD's LoRA model.
With ε_φ' the camera-conditioned LoRA copy of :mod:`sdbench.losses.vsd` and ∅cam the zero camera::

    g = w(t) · (CFG_s(ε_pre,c, ε_pre,u) − [λ · ε_φ'(x_t, t, y, ∅cam) + (1 − λ) · ε_φ'(x_t, t, y, c)])

* λ ε_φ'(∅cam) + (1 − λ) ε_φ'(c) is the λ-mixture of the camera-marginal score ∇log q_t(x | y) and
  the camera-conditional score ∇log q_t(x | c, y) of the renders (the authors' toy,
  ``VITA-Group/3D-Mode-Collapse: gaussian_example.py:152-162`` at b79d7f2:
  −w(∇log p − λ∇log q_t(x) − (1−λ)∇log q_t(x|c))). ε_φ'(∅cam) is the marginal because the LoRA
  update zeroes the camera with probability 0.1.
* This is exactly threestudio's VSD camera CFG ε_φ'(∅) + s_lora(ε_φ'(c) − ε_φ'(∅)) with
  s_lora = 1 − λ (``threestudio: threestudio/models/guidance/stable_diffusion_vsd_guidance.py:456-559``,
  LoRA CFG :535-538, at 28d9d80), which is how the authors' README runs ESD: threestudio's
  ``configs/prolificdreamer.yaml`` with ``system.guidance.guidance_scale_lora=0.5``. So ESD here is
  :class:`~sdbench.losses.vsd.VSD` with its own defaults, not new code: ``lora_cfg_scale`` = 1 − λ =
  0.5 (λ = 0.5, the README's value; λ = 0 is VSD), the camera-conditioned LoRA required, and the
  LoRA optimiser of threestudio's config (AdamW lr 1e-4, betas (0.9, 0.99), eps 1e-15).
* Everything else is VSD's: prior CFG 7.5 (diffusers form, view-dependent prompt, uncond ""), LoRA
  rank 4 on every attention projection, view-independent prompt on the LoRA side, w(t) = 1 − ᾱ_t,
  t ~ U{20, …, 980} → U{20, …, 500} from step 5000, one LoRA update per step (t' ~ U{0, …, 999},
  camera dropout 0.1, MSE to the network's own target).

Implements the ESD update above (λ = 1 − ``lora_cfg_scale``) on VSD's LoRA copy of the prior's own
UNet; does not reproduce the official recipe's separate SD 2.1 (768, v-prediction) LoRA model beside
the SD 2.1-base prior, its camera embedding's fixed 1280 width (here the prior's time-embedding width,
an MLP Linear(16, D)–SiLU–Linear(D, D) on the flattened c2w, as in VSD), nor any λ schedule (the
paper's choice of λ was not re-read; the README says the value "may vary in different scenarios").
Perp-Neg is off, as in the official recipe (``prolificdreamer.yaml`` does not enable it);
``--set loss.perp_neg=true`` (VSD's option) applies it to the frozen prior's CFG, not the LoRA's
camera CFG. NFE per view and step: 2 (prior CFG pair; 4 with ``perp_neg``) + 2 (LoRA with camera and
with ∅cam, one batched call) + 1 (LoRA training forward, with a backward). Trainable: the LoRA and
camera weights (in the checkpoint).
"""

from __future__ import annotations

from dataclasses import dataclass

from sdbench.errors import UserError
from sdbench.losses.vsd import VSD


class ESD(VSD):
    """Entropic Score Distillation: VSD with camera CFG on the LoRA, lambda eps(no cam) + (1 - lambda) eps(cam)."""

    @dataclass(frozen=True)
    class Config(VSD.Config):
        lora_cfg_scale: float = 0.5
        """s_lora = 1 − λ: the LoRA side is λ ε_φ'(∅cam) + (1 − λ) ε_φ'(c); 0.5 (λ = 0.5) is the authors'
        README value, 1.0 (λ = 0) is plain VSD."""
        lora_betas: tuple[float, float] = (0.9, 0.99)
        """AdamW betas of the LoRA optimiser (threestudio's prolificdreamer.yaml)."""
        lora_eps: float = 1e-15
        """AdamW epsilon of the LoRA optimiser (threestudio's prolificdreamer.yaml)."""

    def __init__(self, cfg: ESD.Config, prior):
        if not cfg.camera_condition:
            raise UserError(
                "esd needs the camera-conditioned LoRA (its entropy term is CFG on the camera): set camera_condition=true"
            )
        if not 0 < cfg.camera_dropout < 1:
            raise UserError(
                f"esd needs 0 < camera_dropout < 1 so that the LoRA learns both the camera-free and the camera score; "
                f"got {cfg.camera_dropout}"
            )
        super().__init__(cfg, prior)

    @property
    def entropy_lambda(self) -> float:
        """λ, the weight of the camera-marginal score ε_φ'(∅cam) on the LoRA side."""
        return 1.0 - self.cfg.lora_cfg_scale
