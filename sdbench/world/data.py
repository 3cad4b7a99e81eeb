"""Training data for the toy prior and evaluator: cached ground-truth renders and prompt sampling.

Renders are cached as uint8 tensors (rendering costs more than a training step on a CPU) under
``$SDBENCH_CACHE`` (default ``~/.cache/sdbench``), keyed by everything that determines them.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import Tensor

from sdbench.cameras import CameraConfig, Cameras
from sdbench.io import atomic_write
from sdbench.world import degrade
from sdbench.world.grammar import DEGRADATIONS, ToyPrompt
from sdbench.world.scenes import COLOURS, SHAPES, render

# Cameras of the training data: full turn, from slightly below to nearly overhead, fixed distance.
TRAIN_CAMERAS = CameraConfig(elevation=(-10.0, 80.0))
# Out-of-vocabulary words mixed into some training prompts so that unknown words (``<unk>``)
# in real negative prompts are treated as noise by the toy text encoder.
FILLER_WORDS = ("ugly", "unrealistic", "quality", "tiling", "dull", "gloomy", "resolution", "focus")


def training_setup(seed: int, threads: int = 0) -> random.Random:
    """The common start of both training scripts: denormals flushed (an 18× CPU slowdown otherwise),
    thread count, torch seed; returns the Python RNG that drives batch sampling."""
    torch.set_flush_denormal(True)
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(seed)
    return random.Random(seed)


def cache_dir() -> Path:
    return Path(os.environ.get("SDBENCH_CACHE", Path.home() / ".cache" / "sdbench"))


@dataclass(frozen=True)
class RenderSet:
    """Ground-truth renders: ``images [N, 3, H, W]`` uint8, labels and camera angles."""

    images: Tensor
    alpha: Tensor  # [N, 1, H, W] uint8 coverage
    shape: Tensor  # [N] index into SHAPES
    colour: Tensor  # [N] index into COLOURS
    azimuth: Tensor  # [N]
    elevation: Tensor  # [N]

    def __len__(self) -> int:
        return self.images.shape[0]


def make_renders(
    per_class: int, seed: int, resolution: int = 32, cameras: CameraConfig = TRAIN_CAMERAS, progress: bool = True
) -> RenderSet:
    """Render ``per_class`` random views of every (shape, colour); cached on disk."""
    key = json.dumps(dict(per_class=per_class, seed=seed, res=resolution, cam=asdict(cameras), v=2), sort_keys=True)
    path = cache_dir() / "world" / f"renders-{hashlib.sha1(key.encode()).hexdigest()[:12]}.pt"
    if path.exists():
        return RenderSet(**torch.load(path))
    g = torch.Generator().manual_seed(seed)
    combos = [(s, c) for s in range(len(SHAPES)) for c in range(len(COLOURS))]
    parts: dict[str, list[Tensor]] = {k: [] for k in ("images", "alpha", "shape", "colour", "azimuth", "elevation")}
    iterator = combos
    if progress:
        from rich.progress import track

        iterator = track(combos, description=f"rendering {per_class * len(combos)} toy views")
    for s, c in iterator:
        cams = Cameras.sample(per_class, cameras, generator=g)
        rgb, alpha = render(SHAPES[s], list(COLOURS)[c], cams, resolution)
        parts["images"].append((rgb * 255).round().to(torch.uint8))
        parts["alpha"].append((alpha * 255).round().to(torch.uint8))
        parts["shape"].append(torch.full((per_class,), s))
        parts["colour"].append(torch.full((per_class,), c))
        parts["azimuth"].append(cams.azimuth)
        parts["elevation"].append(cams.elevation)
    data = {k: torch.cat(v) for k, v in parts.items()}
    atomic_write(path, lambda f: torch.save(data, f))
    return RenderSet(**data)


def sample_batch(
    data: RenderSet,
    batch_size: int,
    rng: random.Random,
    p_view: float = 0.5,
    p_degrade: float = 0.3,
    p_filler: float = 0.1,
    p_drop: float = 0.1,
) -> tuple[Tensor, list[str]]:
    """A batch of images ``[B, 3, H, W]`` in [0, 1] and their prompts.

    Each image is degraded with probability ``p_degrade`` (one random degradation, named in its
    prompt); prompts carry the view word with probability ``p_view``, get an out-of-vocabulary
    filler word with probability ``p_filler`` and are dropped to ``""`` with probability ``p_drop``
    (classifier-free guidance).
    """
    idx = [rng.randrange(len(data)) for _ in range(batch_size)]
    images = data.images[idx].float() / 255.0
    cams = Cameras(data.azimuth[idx], data.elevation[idx], torch.full((batch_size,), 3.0), torch.full((batch_size,), 40.0))
    views = cams.view_names(TRAIN_CAMERAS)
    prompts = []
    for j, i in enumerate(idx):
        degradations: tuple[str, ...] = ()
        if rng.random() < p_degrade:
            name = rng.choice(DEGRADATIONS)
            images[j : j + 1] = degrade.apply(name, images[j : j + 1])
            degradations = (name,)
        prompt = ToyPrompt(
            list(COLOURS)[int(data.colour[i])],
            SHAPES[int(data.shape[i])],
            views[j] if rng.random() < p_view else None,
            degradations,
        ).text()
        if rng.random() < p_filler:
            prompt = f"{prompt}, {rng.choice(FILLER_WORDS)}"
        if rng.random() < p_drop:
            prompt = ""
        prompts.append(prompt)
    return images, prompts
