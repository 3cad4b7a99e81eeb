"""SDS-Bridge: Score Distillation as a Bridge (McAllister et al., NeurIPS 2024, arXiv:2406.09417).

SDS transports the distribution of the current renders (the source) to the prompt's (the target);
describing the source with a text prompt instead of SDS's unconditional prediction gives a better
bridge. Two stages (official 3D code, ``davidmcall/SDS-Bridge`` 240e06e,
``threestudio-sds-bridge/guidance/sds_bridge_guidance.py`` ``compute_grad_sds_bridge`` :182-260,
``configs/sds-bridge.yaml`` :59-80; 2D: ``2D_experiments/guidance.py`` ``sds_loss`` :203-248 and
``bridge_stage_two`` :250-296, ``generate.py``)::

    stage 1 (step < stage_two_start):  g = λ₁ · w₁(t) · (ε_u + s (ε_φ(x_t; y_tgt, t) − ε_u) − ε)
    stage 2:                           g = λ₂ · w₂(t) · (ε_φ(x_t; y_tgt, t) − ε_φ(x_t; y_src, t))

with x_t = √ᾱ_t z + √(1−ᾱ_t) ε (a fresh ε every step; it does not enter stage 2's g), ε_u the empty
prompt, y_tgt = "p, <tgt_modifier>, {view} view", y_src = "p, <src_modifier>, {view} view" (the
official prompt processor's order). Stage 2 equals CFG_s(ε_tgt, ε_u) − CFG_s(ε_src, ε_u) with
λ₂ = s, so no unconditional pass is needed. NFE per view and step: 2 in both stages (4 in stage 1
with ``perp_neg``). No trainable parts.

Defaults are the official **3D** ones (sdbench optimises 3D representations): s = 100, w₁ = 1 − ᾱ_t,
λ₁ = 1, w₂ = 1 (``weighting_strategy: uniform``), λ₂ = 1, stage 2 from step 20000 of 25000,
tgt_modifier "." and t ~ U{20, …, 980} with the upper end 500 from step 5000. The official **2D**
script instead uses w₂ = 1 − ᾱ_t, λ₂ = s = 40, stage 2 from step 500 of 1000 and the target modifier
"detailed high resolution, high quality, sharp": ``--set loss.cfg_scale=40 --set
loss.stage_two_weight=40 --set loss.stage_two_weighting=sds --set loss.stage_two_start=500 --set
loss.t_max=null`` (the target modifier is outside the toy vocabulary). ``stage_two_start`` is a step
count: a shorter trial sets it itself (e.g. 400 of 500 steps, the 3D code's 80 %).

Source modifier: the paper's "oversaturated, smooth, pixelated, cartoon, foggy, hazy, blurry, bad
structure, noisy, malformed" on priors that accept it (SD); the toy prior's vocabulary has none of
smooth, pixelated, cartoon, foggy, hazy, bad structure, malformed, so there its degradation words
"oversaturated, blurry, low contrast, noisy" replace it (foggy/hazy → low contrast). The toy prior saw
one degradation word per training image and does not compose them: this source prompt's ε_src − ε_tgt
points where "low contrast" alone does (cosine 0.98–1.0 at t = 200–800). The 3D target modifier "."
is a no-op on the toy prior's tokenizer.

Implements the two-stage SDS-Bridge gradient of the official 3D code (stage 1 SDS on y_tgt, stage 2
w·λ₂·(ε_tgt − ε_src)); does not reproduce the 2D script's 500-step DDIM timestep grid, its
unmodified stage-1 prompt, or the 3D code's use of the first view's embeddings for the whole
batch (here each view gets its own view words).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from torch import Tensor

from sdbench.cameras import Cameras
from sdbench.config import StepSchedule
from sdbench.errors import UserError
from sdbench.losses.base import Loss, LossOutput
from sdbench.losses.common import (
    Linear,
    Weighting,
    anneal_bounds,
    grad_logs,
    guided_noise,
    noise_images,
    surrogate_loss,
    weight,
)
from sdbench.priors.base import TextConditioning
from sdbench.priors.guidance import PerpNeg

PAPER_SOURCE = "oversaturated, smooth, pixelated, cartoon, foggy, hazy, blurry, bad structure, noisy, malformed"
TOY_SOURCE = "oversaturated, blurry, low contrast, noisy"


class SDSBridge(Loss):
    """Score Distillation as a Bridge: SDS, then w(t) lambda2 (eps_tgt - eps_src)."""

    @dataclass(frozen=True)
    class Config:
        cfg_scale: float = 100.0
        """Stage 1's CFG scale s (diffusers form; official 3D 100, 2D 40)."""
        stage_one_weight: float = 1.0
        """λ₁, the scale of stage 1's gradient."""
        stage_two_weight: float = 1.0
        """λ₂, the scale of stage 2's gradient (official 3D 1, 2D 40)."""
        stage_two_start: int = 20000
        """First step of stage 2 (official 3D: 20000 of 25000 steps; 2D: 500 of 1000); scaled to the trial's
        length (4/5 of it)."""
        weighting: Weighting = "sds"
        """w₁(t) of stage 1: 'sds' = 1 − ᾱ_t (both official codes)."""
        stage_two_weighting: Weighting = "uniform"
        """w₂(t) of stage 2: 'uniform' = 1 (official 3D), 'sds' = 1 − ᾱ_t (official 2D)."""
        src_modifier: str | None = None
        """Describes the current renders: y_src = "p, <src_modifier>". None: the paper's modifier where the prior
        accepts it, else (the toy prior) its degradation words "oversaturated, blurry, low contrast, noisy"."""
        tgt_modifier: str = "."
        """Describes the target: y_tgt = "p, <tgt_modifier>" (official 3D "."; "" for the bare prompt)."""
        t_range: tuple[float, float] = (0.02, 0.98)
        """t ~ U{⌊1000 p_min⌋, …, ⌊1000 p_max⌋}."""
        t_max: Linear | None = Linear(0.98, 0.5, 5000, 5000)
        """Schedule of p_max in steps: 0.98, then 0.5 from step 5000 (official 3D config)."""
        grad_clip: float | None = None
        """Clamp each element of g to [−c, c] (None: off, as official)."""
        perp_neg: bool = False
        """Perp-Neg guidance (view-dependent negatives perpendicular to the positive direction, NFE 4 per
        view) for stage 1's CFG (stage 2 has none): :mod:`sdbench.priors.guidance`."""
        perp_neg_options: PerpNeg = PerpNeg()
        """Perp-Neg's weight curves and overhead threshold (used when ``perp_neg`` is on)."""
        step_schedule: ClassVar[StepSchedule] = StepSchedule(25_000, ("stage_two_start", "t_max.from_step", "t_max.to_step"))
        """The step counts above are the paper's (stage 2 from step 20000, the t_max switch at 5000, of the 25k-step 3D run);
        a trial scales them to its own length (``TrialConfig.scale_schedules``)."""

    def __init__(self, cfg: SDSBridge.Config, prior):
        super().__init__(cfg, prior)
        self._texts: dict[str, tuple[TextConditioning, TextConditioning]] = {}

    def modifiers(self, prompt: str) -> tuple[str, str]:
        """(source, target) modifiers for ``prompt``, checked against the prior's vocabulary."""
        cfg = self.cfg
        check = type(self.prior).check_prompt
        src = cfg.src_modifier
        if src is None:
            try:
                check(_with(prompt, PAPER_SOURCE))
                src = PAPER_SOURCE
            except UserError:
                src = TOY_SOURCE
        for name, modifier in (("src_modifier", src), ("tgt_modifier", cfg.tgt_modifier)):
            try:
                check(_with(prompt, modifier))
            except UserError as e:
                raise UserError(f"loss.{name} {modifier!r}: {e}") from None
        return src, cfg.tgt_modifier

    def texts(self, text: TextConditioning) -> tuple[TextConditioning, TextConditioning]:
        """The source and target conditionings of the trial's ``text`` (view words appended as for ``text``)."""
        if text.prompt not in self._texts:
            src, tgt = self.modifiers(text.prompt)
            self._texts[text.prompt] = tuple(
                TextConditioning(text.prior, _with(text.prompt, m), text.view_dependent, text.camera_config) for m in (src, tgt)
            )
        return self._texts[text.prompt]

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
        cfg, prior = self.cfg, self.prior
        n = noise_images(prior, images, anneal_bounds(cfg.t_range, cfg.t_max, step), t, noise, self.generator)
        B = n.z.shape[0]
        source, target = self.texts(text)
        stage = 1 if step < cfg.stage_two_start else 2
        if stage == 1:
            perp_neg = cfg.perp_neg_options if cfg.perp_neg else None
            eps_cfg, _, _ = guided_noise(prior, n.x_t, n.t, target, cameras, text.uncond(B), cfg.cfg_scale, perp_neg)
            g = cfg.stage_one_weight * weight(cfg.weighting, prior.alphas_cumprod, n.t) * (eps_cfg - n.noise)
        else:
            eps_tgt, eps_src = prior.predict_noise(n.x_t, n.t, [target.cond(cameras), source.cond(cameras)])
            g = cfg.stage_two_weight * weight(cfg.stage_two_weighting, prior.alphas_cumprod, n.t) * (eps_tgt - eps_src)
        g = self.prepare_grad(g, cfg.grad_clip)
        return LossOutput(surrogate_loss(n.z, g), {**grad_logs(g, n.t), "stage": float(stage)})


def _with(prompt: str, modifier: str) -> str:
    """``"p, <modifier>"``; the bare prompt for an empty modifier."""
    return f"{prompt}, {modifier}" if modifier.strip() else prompt
