"""3D-FID: rendered views of a group of trials against reference images sampled from the prior.

As in DreamMapping: references are drawn from the trial's prior with 50-step DPM-Solver++
(diffusers' ``DPMSolverMultistepScheduler``) and CFG 7.5, and cached per (prior, prompt, count,
seed). FID is computed by clean-fid (``mode="clean"``) with a feature extractor named in the
results:

* ``inception``: clean-fid's Inception-V3 (``inception-2015-12-05.pt``) from a local folder,
  ``$SDBENCH_INCEPTION_DIR`` (clean-fid would download it; here nothing is downloaded);
* ``toy``: the toy evaluator's image embedding (for the toy prior, where Inception is meaningless
  on 32×32 renders of five shapes).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from sdbench.errors import UserError
from sdbench.io import save_image, slug

INCEPTION_ENV = "SDBENCH_INCEPTION_DIR"
INCEPTION_FILE = "inception-2015-12-05.pt"


def reference_dir(cache: Path, prior_key: str, prompt: str, count: int, seed: int) -> Path:
    key = hashlib.sha1(f"{prior_key}|{prompt}|{count}|{seed}".encode()).hexdigest()[:10]
    return Path(cache) / "fid-references" / f"{slug(prompt, 48)}-n{count}-s{seed}-{key}"


def reference_images(prior, prior_key: str, prompt: str, count: int, seed: int, cache: Path, guidance_scale: float = 7.5) -> Path:
    """A folder of ``count`` PNG samples of ``prompt`` (50-step DPM-Solver++), made once and cached."""
    folder = reference_dir(cache, prior_key, prompt, count, seed)
    done = folder / ".complete"
    if done.exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    images = prior.sample(
        [prompt] * count,
        num_steps=50,
        guidance_scale=guidance_scale,
        scheduler="dpmsolver++",
        generator=torch.Generator().manual_seed(seed),
    )
    for i, img in enumerate(images):
        save_image(img, folder / f"{i:05d}.png")
    done.write_text("")
    return folder


def toy_features() -> Callable[[Tensor], Tensor]:
    """clean-fid feature extractor: the toy evaluator's image embedding of ``[B, 3, 299, 299]`` in 0–255."""
    from sdbench.evaluation.toy import load_evaluator

    scorer = load_evaluator("cpu")

    def extract(batch: Tensor) -> Tensor:
        x = F.interpolate(batch.float() / 255.0, size=scorer.size, mode="bilinear", align_corners=False, antialias=True)
        with torch.no_grad():
            return scorer.encode_images(x)

    return extract


def inception_features(folder: str | None = None) -> Callable[[Tensor], Tensor]:
    """clean-fid's Inception-V3 from a local folder holding ``inception-2015-12-05.pt``."""
    folder = folder or os.environ.get(INCEPTION_ENV, "")
    if not folder or not (Path(folder) / INCEPTION_FILE).is_file():
        raise UserError(
            f"Inception weights for FID not found; put clean-fid's {INCEPTION_FILE} in a folder "
            f"and set {INCEPTION_ENV}=/that/folder"
        )
    from cleanfid.inception_torchscript import InceptionV3W

    model = InceptionV3W(str(folder), download=False, resize_inside=False).eval()

    def extract(batch: Tensor) -> Tensor:
        with torch.no_grad():
            return model(batch)

    return extract


def feature_extractor(kind: str) -> Callable[[Tensor], Tensor]:
    if kind == "toy":
        return toy_features()
    if kind == "inception":
        return inception_features()
    raise UserError(f"unknown FID feature space {kind!r}; use toy or inception")


def fid(dir_a: Path, dir_b: Path, features: str | Callable[[Tensor], Tensor] = "toy") -> float:
    """FID between two folders of images (clean-fid, clean resizing, on the CPU unless CUDA is present)."""
    from cleanfid import fid as cfid

    fn = feature_extractor(features) if isinstance(features, str) else features
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return float(
        cfid.compute_fid(
            str(dir_a),
            str(dir_b),
            mode="clean",
            custom_feat_extractor=fn,
            device=device,
            num_workers=0,
            verbose=False,
            batch_size=64,
        )
    )
