"""VDM + DCA: Variational Distribution Mapping with Distribution Coefficient Annealing
(DreamMapping, Cai et al. 2024, arXiv:2409.05099), the project's seed paper.

A render x_0 is treated as a degraded diffusion output; a small learnable operator M_ψ maps the
prior's noise prediction to the true noise. Per step (Algorithm 1: update ψ first, then θ):

* operator loss (Eq. 17): L_op(ψ) = ‖M_ψ(sg[ε_φ(x_t, t, y)]) − ε‖², one Adam step (lr 0.01);
* DCA (Eq. 18): λ_t = 1 if t > 300 else 1 − ᾱ_t;
* gradient on the render (Eq. 19, UNet Jacobian omitted, M_ψ's output a constant for θ)::

      g = w(t) · (ε_φ(x_t, t, y) − λ_t · M_ψ(ε_φ(x_t, t, y)))

with x_t = √ᾱ_t x_0 + √(1−ᾱ_t) ε and t ~ U{0, …, 999} (Algorithm 1's U(0, 1000)).
M_ψ is U-Lite (§5.2: ≈ 1 M parameters at SD's 4×64×64 noise; levels scaled to the prior's size).

Open choices the paper leaves (defaults here): ε_φ is the CFG prediction (s = 7.5, diffusers form:
the paper's CFG setting); w(t) = 1 − ᾱ_t (SDS's weight; the paper does not state one); M_ψ is not
conditioned on t. Ablations of §5.6, each a registered name: ``vdm_nodca`` (λ_t ≡ 1),
``vdm_cut100`` / ``vdm_cut500`` (DCA cut-offs), ``vdm_linear`` (M_ψ(ε) = a ⊙ ε with a learnable tensor
a of ε's shape), ``vdm_noise`` (M_ψ(ε) + n with a learnable tensor n of ε's shape).
NFE per view and step: 2, plus M_ψ's update and mapping: on a GPU these are replayed from a CUDA
graph (``cuda_graph``), 2.7 ms per step at SD scale on an H200 next to 32 ms for the CFG UNet call
(eagerly: 17 ms, which made VDM 1.16–1.22× SDS; ``benchmarks/operator_gpu.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

from sdbench.cameras import Cameras
from sdbench.losses.base import Loss, LossOutput
from sdbench.losses.common import Weighting, grad_logs, guided_noise, noise_images, surrogate_loss, weight
from sdbench.losses.graphs import CapturedStep
from sdbench.losses.ulite import ULite, levels_for
from sdbench.priors.base import TextConditioning
from sdbench.priors.guidance import PerpNeg

Operator = Literal["ulite", "linear", "ulite_noise"]


class LinearOperator(nn.Module):
    """M(ε) = a ⊙ ε, a learnable tensor of ε's shape ``[C, h, w]`` (initialised to 1)."""

    def __init__(self, shape: tuple[int, ...]):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(shape))

    def forward(self, eps: Tensor) -> Tensor:
        return self.scale * eps


class NoisyOperator(nn.Module):
    """M(ε) = U-Lite(ε) + n, n a learnable observation-noise tensor of ε's shape (initialised to 0)."""

    def __init__(self, net: nn.Module, shape: tuple[int, ...]):
        super().__init__()
        self.net = net
        self.noise = nn.Parameter(torch.zeros(shape))

    def forward(self, eps: Tensor) -> Tensor:
        return self.net(eps) + self.noise


def dca_lambda(alphas_cumprod: Tensor, t: Tensor, cutoff: int | None) -> Tensor:
    """DCA (Eq. 18): λ_t = 1 for t > cutoff, else 1 − ᾱ_t; ``[B, 1, 1, 1]``. None: no DCA (λ_t ≡ 1)."""
    ones = torch.ones_like(alphas_cumprod[t])
    lam = ones if cutoff is None else torch.where(t > cutoff, ones, 1 - alphas_cumprod[t])
    return lam.view(-1, 1, 1, 1)


class VDM(Loss):
    """VDM + DCA (DreamMapping): w(t)(eps_phi - lambda_t M_psi(eps_phi)) with a learned operator."""

    @dataclass(frozen=True)
    class Config:
        cfg_scale: float = 7.5
        """CFG scale of ε_φ (diffusers form); 1 uses the conditional prediction alone."""
        dca: bool = True
        """Distribution Coefficient Annealing on (off: λ_t ≡ 1)."""
        dca_cutoff: int = 300
        """λ_t = 1 above this timestep, 1 − ᾱ_t at or below it."""
        operator: Operator = "ulite"
        """'ulite' (M_ψ), 'linear' (learnable element-wise scale), 'ulite_noise' (M_ψ + learnable noise)."""
        operator_lr: float = 0.01
        operator_levels: int = 0
        """U-Lite levels; 0 picks the most that keep a 2×2 bottleneck (5 at SD's 64×64)."""
        operator_steps: int = 1
        """ψ updates per step (Algorithm 1: one)."""
        cuda_graph: bool = True
        """On CUDA, replay the ψ update and the mapping from a CUDA graph (same arithmetic, fewer
        kernel launches: see ``sdbench/losses/graphs.py``); no effect on the CPU."""
        t_range: tuple[float, float] = (0.0, 0.999)
        """t ~ U{0, …, 999}."""
        weighting: Weighting = "sds"
        grad_clip: float | None = None
        perp_neg: bool = False
        """Perp-Neg guidance (view-dependent negatives perpendicular to the positive direction, NFE 4 per
        view) instead of plain CFG (also when ``cfg_scale`` = 1): :mod:`sdbench.priors.guidance`."""
        perp_neg_options: PerpNeg = PerpNeg()
        """Perp-Neg's weight curves and overhead threshold (used when ``perp_neg`` is on)."""

    def __init__(self, cfg: VDM.Config, prior):
        super().__init__(cfg, prior)
        shape = tuple(prior.latent_shape)  # M_ψ acts on the prior's noise, [C, h, w]
        if cfg.operator == "linear":
            self.operator: nn.Module = LinearOperator(shape)
        else:
            net = ULite(shape[0], shape[0], levels=cfg.operator_levels or levels_for(shape[1]))
            self.operator = net if cfg.operator == "ulite" else NoisyOperator(net, shape)
        self.operator.to(prior.device)
        graphed = cfg.cuda_graph and torch.device(prior.device).type == "cuda"
        self._optimizer = torch.optim.Adam(self.operator.parameters(), lr=cfg.operator_lr, capturable=graphed)
        self._update_and_map = CapturedStep(self.update_and_map) if graphed else self.update_and_map

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"operator": self._optimizer}

    def load_checkpoint_state(self, state) -> None:
        super().load_checkpoint_state(state)
        if isinstance(self._update_and_map, CapturedStep):
            self._update_and_map.reset()  # the optimiser's state tensors were replaced

    def _operator_update(self, eps_phi: Tensor, noise: Tensor) -> Tensor:
        """One Adam step on L_op(ψ) = mean ‖M_ψ(sg[ε_φ]) − ε‖²; the loss before the step (detached)."""
        self.operator.train()
        with torch.enable_grad():
            loss = (self.operator(eps_phi.detach()) - noise).pow(2).mean()
            self._optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self._optimizer.step()
        return loss.detach()

    def operator_step(self, eps_phi: Tensor, noise: Tensor) -> float:
        """One ψ update (eagerly); returns L_op before the step."""
        return self._operator_update(eps_phi, noise).item()

    def update_and_map(self, eps_phi: Tensor, noise: Tensor) -> tuple[Tensor, Tensor]:
        """Algorithm 1's ψ update(s), then M_ψ(ε_φ) with the updated ψ: ``(mapped, L_op)``."""
        op_loss = torch.full((), float("nan"), device=eps_phi.device)
        for _ in range(self.cfg.operator_steps):
            op_loss = self._operator_update(eps_phi, noise)
        with torch.no_grad():
            mapped = self.operator(eps_phi)
        return mapped, op_loss

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
        cfg = self.cfg
        n = noise_images(self.prior, images, cfg.t_range, t, noise, self.generator)
        B = n.z.shape[0]
        if cfg.cfg_scale == 1.0 and not cfg.perp_neg:
            (eps_phi,) = self.prior.predict_noise(n.x_t, n.t, [text.cond(cameras)])
        else:
            perp_neg = cfg.perp_neg_options if cfg.perp_neg else None
            eps_phi, _, _ = guided_noise(self.prior, n.x_t, n.t, text, cameras, text.uncond(B), cfg.cfg_scale, perp_neg)
        mapped, op_loss = self._update_and_map(eps_phi, n.noise)  # ψ first (Algorithm 1)
        lam = dca_lambda(self.prior.alphas_cumprod, n.t, cfg.dca_cutoff if cfg.dca else None)
        g = self.prepare_grad(weight(cfg.weighting, self.prior.alphas_cumprod, n.t) * (eps_phi - lam * mapped), cfg.grad_clip)
        logs = {**grad_logs(g, n.t), "lambda_t": lam.mean().item(), "operator_loss": op_loss.item()}
        return LossOutput(surrogate_loss(n.z, g), logs)


class VDMNoDCA(VDM):
    """VDM ablation (DreamMapping 5.6): no DCA, lambda_t = 1."""

    @dataclass(frozen=True)
    class Config(VDM.Config):
        dca: bool = False


class VDMCut100(VDM):
    """VDM ablation (DreamMapping 5.6): DCA cut-off at t = 100."""

    @dataclass(frozen=True)
    class Config(VDM.Config):
        dca_cutoff: int = 100


class VDMCut500(VDM):
    """VDM ablation (DreamMapping 5.6): DCA cut-off at t = 500."""

    @dataclass(frozen=True)
    class Config(VDM.Config):
        dca_cutoff: int = 500


class VDMLinear(VDM):
    """VDM ablation (DreamMapping 5.6): linear operator, a learnable element-wise scale."""

    @dataclass(frozen=True)
    class Config(VDM.Config):
        operator: Operator = "linear"


class VDMNoise(VDM):
    """VDM ablation (DreamMapping 5.6): operator with learnable observation noise."""

    @dataclass(frozen=True)
    class Config(VDM.Config):
        operator: Operator = "ulite_noise"
