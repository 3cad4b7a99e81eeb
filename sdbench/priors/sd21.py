"""Stable Diffusion 2.1 base from local weights (a folder, or the offline Hugging Face cache).

Where the weights are looked for, in order: ``--set prior.path=DIR``; the environment variable
``SDBENCH_SD21_PATH``; the Hugging Face cache entry of ``stabilityai/stable-diffusion-2-1-base``
(``HF_HOME`` / ``HF_HUB_CACHE``), looked up with ``local_files_only=True``. Nothing is downloaded.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, replace
from pathlib import Path

from sdbench.errors import UserError
from sdbench.priors.diffusers_prior import DiffusersPrior

REPO_ID = "stabilityai/stable-diffusion-2-1-base"
ENV_VAR = "SDBENCH_SD21_PATH"


def find_weights() -> str | None:
    """The local folder of SD 2.1 base, or None."""
    if os.environ.get(ENV_VAR):
        return os.environ[ENV_VAR]
    try:
        from huggingface_hub import snapshot_download

        return snapshot_download(REPO_ID, local_files_only=True)
    except Exception:
        return None


class SD21Prior(DiffusersPrior):
    """Stable Diffusion 2.1 base (512x512, latent), from local weights only."""

    name = "sd21"

    @dataclass(frozen=True)
    class Config(DiffusersPrior.Config):
        path: str = ""
        """Checkpoint folder; empty: $SDBENCH_SD21_PATH, then the offline Hugging Face cache."""
        allow_cpu: bool = False
        """Run a full-size UNet on a CPU anyway (about a minute per UNet call: hours per trial)."""

    def __init__(self, cfg: SD21Prior.Config = Config()):
        super().__init__(replace(cfg, path=self.locate(cfg)))

    @classmethod
    def check_available(cls, cfg: SD21Prior.Config) -> None:
        cls.locate(cfg)

    @staticmethod
    def locate(cfg: SD21Prior.Config) -> str:
        """The checkpoint folder to load; ``UserError`` when there is none, or when a full-size UNet
        would run on a CPU without ``allow_cpu``."""
        path = cfg.path or find_weights()
        if not path:
            raise UserError(
                f"Stable Diffusion 2.1 base weights not found; put the diffusers folder of {REPO_ID} somewhere and "
                f"set {ENV_VAR}=/path/to/it (or --set prior.path=...), or place it in the Hugging Face cache"
            )
        from sdbench.priors.diffusers_prior import resolve_device

        if resolve_device(cfg.device).type == "cpu" and not cfg.allow_cpu and _full_size(Path(path)):
            raise UserError(
                "Stable Diffusion 2.1 on a CPU takes about a minute per UNet call (hours per trial); run on a CUDA machine, "
                "use --prior toy here, or --set prior.allow_cpu=true to insist"
            )
        return path


def _full_size(path: Path) -> bool:
    """Whether the checkpoint's UNet is SD-sized (from its config, before loading any weights)."""
    try:
        widths = json.loads((path / "unet" / "config.json").read_text()).get("block_out_channels", [])
    except (OSError, ValueError):
        return False
    return bool(widths) and max(widths) >= 640
