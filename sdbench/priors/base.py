"""The interface every diffusion prior offers to losses, evaluation and the trial loop.

A prior is a text-conditioned ε-prediction diffusion model with a discrete 1000-step (or other)
DDPM schedule. Shapes: rendered images ``[B, 3, H, W]`` in [0, 1]; the prior's space ``z``
``[B, C, h, w]`` (pixels in [-1, 1] for pixel-space priors, VAE latents for latent priors);
timesteps ``t`` ``[B]`` int64; text embeddings ``[B, L, D]``.

Every network evaluation goes through :meth:`Prior.unet_forward`, which counts it: losses read
the count, they never declare it.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor

from sdbench.cameras import VIEWS, CameraConfig, Cameras, view_prompt
from sdbench.errors import UserError
from sdbench.priors.guidance import PerpNeg, cfg_combine, perp_neg_views


@dataclass
class NFECounter:
    """Network evaluations: ``forward`` counts one per sample per UNet forward (a CFG pair of a
    view is 2); ``with_grad`` counts those run with autograd on (they will be back-propagated)."""

    forward: int = 0
    with_grad: int = 0


class Prior(abc.ABC):
    """A text-to-image ε-prediction diffusion model used as a score-distillation prior."""

    Config: ClassVar[type]
    name: ClassVar[str] = "prior"

    #: ``[T]`` float32 on :attr:`device`: ᾱ_t of the training schedule.
    alphas_cumprod: Tensor
    #: Native image size of the prior (renders are resized to it).
    resolution: int
    #: Shape ``(C, h, w)`` of one image in the prior's space (what ε and z look like).
    latent_shape: tuple[int, int, int]
    #: What the network predicts: "epsilon", "v_prediction" or "sample" (outputs are converted to ε).
    prediction_type: str = "epsilon"
    device: torch.device
    nfe: NFECounter

    @property
    def num_train_timesteps(self) -> int:
        return int(self.alphas_cumprod.shape[0])

    def weights_id(self) -> str | None:
        """A short identity of the denoiser's weights (:func:`sdbench.io.file_id`), recorded in every
        ``result.json`` (``versions.prior_weights``) so two results say whether the same weights made
        them (e.g. two versions of the toy world under one name); None when unknown (in-memory models)."""
        return None

    # ------------------------------------------------------------------ text
    @abc.abstractmethod
    def encode_text(self, prompts: Sequence[str]) -> Tensor:
        """Embeddings ``[len(prompts), L, D]`` of the prompts (no gradient; cached)."""

    @classmethod
    def check_prompt(cls, prompt: str) -> None:
        """Raise :class:`~sdbench.errors.UserError` if the prior cannot take this prompt (checked
        before the prior is loaded, so a bad grid fails fast)."""

    @classmethod
    def check_available(cls, cfg: Any) -> None:
        """Raise :class:`~sdbench.errors.UserError` if the prior cannot be built on this machine with
        ``cfg`` (e.g. its weights are missing); cheap, loads nothing. A sweep on a local Ray checks
        this before it starts any trial."""

    # ------------------------------------------------------------- networks
    @abc.abstractmethod
    def unet_forward(
        self, x_t: Tensor, t: Tensor, embeddings: Tensor, *, network: Any = None, raw: bool = False, **kwargs: Any
    ) -> Tensor:
        """One counted network evaluation: ``x_t [N, C, h, w]``, ``t [N]``, ``embeddings [N, L, D]``
        → ε prediction ``[N, C, h, w]`` (float32). Runs with autograd only if it is enabled.

        ``network``: another network of the same signature to evaluate instead (e.g. VSD's LoRA
        copy), counted the same way. ``raw``: return the network's own prediction type (v, x_0)
        instead of converting it to ε. Extra keyword arguments go to the network."""

    def network_target(self, z: Tensor, noise: Tensor, t: Tensor) -> Tensor:
        """The regression target of the network's own prediction type for x_t built from (z, ε, t)."""
        if self.prediction_type == "epsilon":
            return noise
        a = self.alphas_cumprod[t].view(-1, *([1] * (z.dim() - 1)))
        if self.prediction_type == "v_prediction":
            return a.sqrt() * noise - (1 - a).sqrt() * z
        if self.prediction_type == "sample":
            return z
        raise ValueError(f"unsupported prediction type {self.prediction_type!r}")

    def predict_noise(self, x_t: Tensor, t: Tensor, embeddings: Sequence[Tensor], **kwargs: Any) -> list[Tensor]:
        """ε predictions of ``x_t [B, C, h, w]`` at ``t [B]`` under each of K conditionings
        ``embeddings[k] [B, L, D]``, batched into **one** UNet call of K·B samples, without gradient.

        Returns K tensors ``[B, C, h, w]``.
        """
        k = len(embeddings)
        with torch.no_grad():
            eps = self.unet_forward(
                x_t.detach().repeat(k, 1, 1, 1),
                t.repeat(k),
                torch.cat(list(embeddings)),
                **{name: torch.cat([v] * k) if isinstance(v, Tensor) else v for name, v in kwargs.items()},
            )
        return list(eps.chunk(k))

    def predict_cfg(
        self,
        x_t: Tensor,
        t: Tensor,
        cond: Tensor,
        uncond: Tensor,
        scale: float,
        negatives: Sequence[Tensor] = (),
        negative_weights: Tensor | None = None,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Classifier-free guidance in the diffusers form ε_u + s(ε_c − ε_u), in one batched call
        (:func:`~sdbench.priors.guidance.cfg_combine`).

        ``negatives`` (K embeddings ``[B, L, D]``) with ``negative_weights [B, K]``: Perp-Neg, the
        same call with (2 + K)·B rows. Returns ``(eps_cfg, eps_cond, eps_uncond)``, each ``[B, C, h, w]``.
        """
        eps_c, eps_u, *eps_neg = self.predict_noise(x_t, t, [cond, uncond, *negatives])
        return cfg_combine(eps_c, eps_u, scale, eps_neg, negative_weights), eps_c, eps_u

    # ---------------------------------------------------------------- spaces
    @abc.abstractmethod
    def encode_images(self, images: Tensor) -> Tensor:
        """Rendered RGB ``[B, 3, H, W]`` in [0, 1] → prior space ``z [B, C, h, w]``, differentiable."""

    @abc.abstractmethod
    def decode(self, z: Tensor) -> Tensor:
        """Prior space ``z [B, C, h, w]`` → RGB ``[B, 3, H, W]`` in [0, 1] (for viewing only)."""

    def add_noise(self, z: Tensor, t: Tensor, noise: Tensor) -> Tensor:
        """The forward process x_t = √ᾱ_t z + √(1−ᾱ_t) ε."""
        a = self.alphas_cumprod[t].view(-1, *([1] * (z.dim() - 1)))
        return a.sqrt() * z + (1 - a).sqrt() * noise

    # -------------------------------------------------------------- sampling
    @abc.abstractmethod
    def sample(
        self,
        prompts: Sequence[str],
        num_steps: int = 50,
        guidance_scale: float = 7.5,
        scheduler: str = "dpmsolver++",
        negative_prompt: str = "",
        generator: torch.Generator | None = None,
        batch_size: int = 16,
    ) -> Tensor:
        """Images ``[len(prompts), 3, H, W]`` in [0, 1] drawn with a diffusers scheduler."""


class TextConditioning:
    """The text side of one trial: the prompt (optionally with view words), ``""`` and negatives.

    Losses call :meth:`cond` with the step's cameras, :meth:`uncond` for the empty prompt and
    :meth:`embed` for any other text (a negative prompt); embeddings are cached by the prior.
    """

    def __init__(self, prior: Prior, prompt: str, view_dependent: bool = True, cameras: CameraConfig = CameraConfig()):
        self.prior = prior
        self.prompt = prompt
        self.view_dependent = view_dependent
        self.camera_config = cameras

    def prompts_for(self, cameras: Cameras) -> list[str]:
        if not self.view_dependent:
            return [self.prompt] * len(cameras)
        return [view_prompt(self.prompt, v) for v in cameras.view_names(self.camera_config)]

    def cond(self, cameras: Cameras) -> Tensor:
        """``[B, L, D]``: the prompt with each camera's view word (if view-dependent)."""
        return self.prior.encode_text(self.prompts_for(cameras))

    def embed(self, text: str, n: int) -> Tensor:
        """``[n, L, D]``: ``text`` repeated for a batch of ``n``."""
        return self.prior.encode_text([text]).expand(n, -1, -1)

    def uncond(self, n: int) -> Tensor:
        """``[n, L, D]``: the empty prompt."""
        return self.embed("", n)

    def perp_neg(self, cameras: Cameras, opts: PerpNeg, uncond: Tensor) -> tuple[Tensor, list[Tensor], Tensor]:
        """Perp-Neg's conditioning of each camera (:mod:`sdbench.priors.guidance`): the interpolated
        positive embedding ``[B, L, D]``, two negative embeddings ``[B, L, D]`` (``uncond [B, L, D]``
        where unused) and their weights ``[B, 2]``."""
        if not self.view_dependent:
            raise UserError("Perp-Neg needs view-dependent prompts; drop trial.view_dependent=false or loss.perp_neg")
        plan = perp_neg_views(cameras.azimuth, cameras.elevation, opts, self.camera_config.overhead_elevation)
        views = dict(zip(VIEWS, self.prior.encode_text([view_prompt(self.prompt, v) for v in VIEWS])))
        r = plan.ratio.to(uncond.device, uncond.dtype)
        positive = torch.stack([r[i] * views[a] + (1 - r[i]) * views[b] for i, (a, b) in enumerate(plan.positive)])
        negatives = [
            torch.stack([views[pair[k]] if pair[k] else uncond[i] for i, pair in enumerate(plan.negatives)]) for k in range(2)
        ]
        return positive, negatives, plan.weights.to(uncond.device)
