"""Adapter for any local diffusers text-to-image checkpoint folder, strictly offline.

The folder holds ``model_index.json`` and the components ``unet``, ``scheduler``, ``text_encoder``,
``tokenizer`` and optionally ``vae`` (Stable Diffusion's layout). Each component's class is read
from ``model_index.json`` and loaded with ``from_pretrained(..., local_files_only=True)``.
With a VAE the prior works in latent space (``z = scaling_factor · sample(E(2x − 1))``),
without one in pixel space (``z = 2x − 1``). fp16 on CUDA, fp32 on CPU.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from sdbench.errors import UserError
from sdbench.io import file_id
from sdbench.priors.base import NFECounter, Prior

REQUIRED = ("unet", "scheduler", "text_encoder", "tokenizer")
SCHEDULERS = {
    "dpmsolver++": ("DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++"}),
    "ddim": ("DDIMScheduler", {}),
    "ddpm": ("DDPMScheduler", {}),
    "euler": ("EulerDiscreteScheduler", {}),
    "pndm": ("PNDMScheduler", {}),
}


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _component_class(library: str, name: str) -> Any:
    try:
        return getattr(importlib.import_module(library), name)
    except (ImportError, AttributeError) as e:
        raise UserError(f"cannot load component class {library}.{name}: {e}") from None


def _quiet_libraries() -> None:
    """Keep diffusers/transformers from printing progress bars and notices over ours."""
    from diffusers.utils import logging as dlog
    from transformers.utils import logging as tlog

    for log in (dlog, tlog):
        log.set_verbosity_error()
        log.disable_progress_bar()


class DiffusersPrior(Prior):
    """Any local diffusers text-to-image checkpoint folder (e.g. Stable Diffusion), offline."""

    name = "diffusers"

    @dataclass(frozen=True)
    class Config:
        path: str = ""
        """Checkpoint folder in the diffusers layout (model_index.json, unet/, scheduler/, ...)."""
        device: str = "auto"
        """'auto' (CUDA if available, else CPU), 'cpu', 'cuda', 'cuda:1', ..."""
        dtype: Literal["auto", "float32", "float16", "bfloat16"] = "auto"
        """Network precision; 'auto' is float16 on CUDA and float32 on CPU."""
        resolution: int | None = None
        """Image size renders are resized to; default: the UNet's sample size × the VAE's factor."""

    def __init__(self, cfg: DiffusersPrior.Config, components: dict[str, Any] | None = None):
        self.cfg = cfg
        self.device = resolve_device(cfg.device)
        if cfg.dtype == "auto":
            self.dtype = torch.float16 if self.device.type == "cuda" else torch.float32
        else:
            self.dtype = getattr(torch, cfg.dtype)
        self.nfe = NFECounter()
        self._text_cache: dict[str, Tensor] = {}
        self.root: Path | None = None
        if components is None:
            self.root = self._check_folder(Path(cfg.path).expanduser())
            components = self._read_folder()
        self._assemble(components)

    def weights_id(self) -> str | None:
        """:func:`~sdbench.io.file_id` of the UNet's weights file in the folder (None: built in memory)."""
        if self.root is None:
            return None
        files = sorted(p for ext in ("safetensors", "bin") for p in (self.root / "unet").glob(f"*.{ext}"))
        return file_id(files[0]) if files else None

    @classmethod
    def from_components(cls, cfg: DiffusersPrior.Config | None = None, **components: Any) -> DiffusersPrior:
        """A prior from in-memory components (``unet``, ``scheduler``, ``text_encoder``, ``tokenizer``,
        optional ``vae``), e.g. an SD-architecture UNet with random weights for a CPU benchmark."""
        missing = [c for c in REQUIRED if c not in components]
        if missing:
            raise ValueError(f"missing components: {', '.join(missing)}")
        return cls(cfg or cls.Config(), components)

    # --------------------------------------------------------------- loading
    @staticmethod
    def _check_folder(root: Path) -> Path:
        if not root.is_dir():
            raise UserError(
                f"prior checkpoint folder {root} does not exist; pass a local diffusers folder (with model_index.json)"
            )
        if not (root / "model_index.json").is_file():
            raise UserError(f"{root} is not a diffusers checkpoint folder: model_index.json is missing")
        index = json.loads((root / "model_index.json").read_text())
        missing = [c for c in REQUIRED if c not in index or not (root / c).is_dir()]
        if missing:
            raise UserError(
                f"checkpoint folder {root} lacks {', '.join(missing)}; a text-to-image folder needs {', '.join(REQUIRED)}"
            )
        return root

    def _read_folder(self) -> dict[str, Any]:
        assert self.root is not None
        _quiet_libraries()
        index = json.loads((self.root / "model_index.json").read_text())
        comps = {}
        try:
            for name in (*REQUIRED, "vae"):
                entry = index.get(name)
                if not entry or entry[0] is None or not (self.root / name).is_dir():
                    continue
                cls = _component_class(*entry)
                # a local folder and local_files_only: the network is never touched, and no process-wide switch is needed
                comps[name] = cls.from_pretrained(self.root / name, local_files_only=True)
        except OSError as e:
            raise UserError(f"cannot load checkpoint {self.root}: {str(e).splitlines()[0]}") from None
        return comps

    def _assemble(self, comps: dict[str, Any]) -> None:
        self.tokenizer = comps["tokenizer"]
        self.scheduler = comps["scheduler"]
        self.unet = self._place(comps["unet"])
        self.text_encoder = self._place(comps["text_encoder"])
        self.vae = comps.get("vae")
        scale = 1
        if self.vae is not None:
            self.vae = self._place(self.vae)
            scale = 2 ** (len(self.vae.config.block_out_channels) - 1)
        self.latent_scale = scale
        sample_size = self.unet.config.sample_size
        sample_size = sample_size[0] if isinstance(sample_size, (list, tuple)) else sample_size
        self.resolution = self.cfg.resolution or int(sample_size) * scale
        self.alphas_cumprod = self.scheduler.alphas_cumprod.to(self.device, torch.float32)
        self.prediction_type = self.scheduler.config.get("prediction_type", "epsilon")
        self.channels = self.unet.config.in_channels
        h = self.resolution // scale
        self.latent_shape = (self.channels, h, h)

    def _place(self, module: torch.nn.Module) -> torch.nn.Module:
        """Frozen, in eval mode, on the prior's device and dtype."""
        module = module.to(self.device)
        if next(module.parameters()).dtype != self.dtype:
            module = module.to(self.dtype)
        return module.eval().requires_grad_(False)

    # ------------------------------------------------------------------ text
    def encode_text(self, prompts: Sequence[str]) -> Tensor:
        missing = [p for p in dict.fromkeys(prompts) if p not in self._text_cache]
        if missing:
            tok = self.tokenizer(
                missing, padding="max_length", max_length=self.tokenizer.model_max_length, truncation=True, return_tensors="pt"
            )
            kwargs = {}
            if getattr(self.text_encoder.config, "use_attention_mask", False):
                kwargs["attention_mask"] = tok.attention_mask.to(self.device)
            with torch.no_grad():
                emb = self.text_encoder(tok.input_ids.to(self.device), **kwargs)[0].float()
            for p, e in zip(missing, emb):
                self._text_cache[p] = e
        return torch.stack([self._text_cache[p] for p in prompts])

    # ------------------------------------------------------------- networks
    def unet_forward(
        self, x_t: Tensor, t: Tensor, embeddings: Tensor, *, network: Any = None, raw: bool = False, **kwargs: Any
    ) -> Tensor:
        n = x_t.shape[0]
        self.nfe.forward += n
        if torch.is_grad_enabled():
            self.nfe.with_grad += n
        kwargs = {k: v.to(self.dtype) if isinstance(v, Tensor) and v.is_floating_point() else v for k, v in kwargs.items()}
        net = self.unet if network is None else network
        out = net(x_t.to(self.dtype), t, encoder_hidden_states=embeddings.to(self.dtype), **kwargs).sample.float()
        return out if raw else self._to_epsilon(out, x_t, t)

    def _to_epsilon(self, out: Tensor, x_t: Tensor, t: Tensor) -> Tensor:
        if self.prediction_type == "epsilon":
            return out
        a = self.alphas_cumprod[t].view(-1, 1, 1, 1)
        if self.prediction_type == "v_prediction":
            return a.sqrt() * out + (1 - a).sqrt() * x_t.float()
        if self.prediction_type == "sample":
            return (x_t.float() - a.sqrt() * out) / (1 - a).sqrt()
        raise ValueError(f"unsupported prediction type {self.prediction_type!r}")

    # ---------------------------------------------------------------- spaces
    def encode_images(self, images: Tensor) -> Tensor:
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be [B, 3, H, W], got {tuple(images.shape)}")
        if images.shape[-2:] != (self.resolution, self.resolution):
            images = F.interpolate(images, size=(self.resolution, self.resolution), mode="bilinear", align_corners=False)
        x = images * 2 - 1
        if self.vae is None:
            return x
        posterior = self.vae.encode(x.to(self.dtype)).latent_dist
        return (posterior.sample() * self.vae.config.scaling_factor).float()

    def decode(self, z: Tensor) -> Tensor:
        with torch.no_grad():
            if self.vae is not None:
                z = self.vae.decode((z / self.vae.config.scaling_factor).to(self.dtype)).sample.float()
            return ((z + 1) / 2).clamp(0, 1)

    # -------------------------------------------------------------- sampling
    def make_scheduler(self, name: str):
        """A diffusers scheduler built from this prior's training schedule (``dpmsolver++``, ``ddim``, ...
        or any diffusers scheduler class name)."""
        import diffusers

        cls_name, extra = SCHEDULERS.get(name, (name, {}))
        cls = getattr(diffusers, cls_name, None)
        if cls is None:
            raise UserError(f"unknown scheduler {name!r}; use one of {', '.join(SCHEDULERS)} or a diffusers scheduler class name")
        return cls.from_config(self.scheduler.config, **extra)

    @torch.no_grad()
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
        out = []
        h = self.resolution // self.latent_scale
        for i in range(0, len(prompts), batch_size):
            chunk = list(prompts[i : i + batch_size])
            sched = self.make_scheduler(scheduler)
            sched.set_timesteps(num_steps, device=self.device)
            x = torch.randn((len(chunk), self.channels, h, h), generator=generator, dtype=torch.float32)
            x = x.to(self.device) * sched.init_noise_sigma
            cond, uncond = self.encode_text(chunk), self.encode_text([negative_prompt] * len(chunk))
            for t in sched.timesteps:
                model_in = sched.scale_model_input(x, t)
                tt = torch.full((len(chunk),), int(t), device=self.device, dtype=torch.long)
                eps, _, _ = self.predict_cfg(model_in, tt, cond, uncond, guidance_scale)
                x = sched.step(self._from_epsilon(eps, model_in, tt), t, x).prev_sample
            out.append(self.decode(x))
        return torch.cat(out)

    def _from_epsilon(self, eps: Tensor, x_t: Tensor, t: Tensor) -> Tensor:
        """Convert ε back to the scheduler's prediction type (schedulers step in their own type)."""
        if self.prediction_type == "epsilon":
            return eps
        a = self.alphas_cumprod[t].view(-1, 1, 1, 1)
        x0 = (x_t - (1 - a).sqrt() * eps) / a.sqrt()
        if self.prediction_type == "v_prediction":
            return a.sqrt() * eps - (1 - a).sqrt() * x0
        return x0
