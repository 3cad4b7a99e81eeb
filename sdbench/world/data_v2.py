"""Training data of toy world v2: cached ground-truth renders and web-caption-like prompt sampling.

Scenes (:func:`make_renders`): every (shape, colour, pattern, marking) combination, ``per_class``
views each, with the true albedo drawn per image from the colour word's pastel-to-vivid range
(:mod:`sdbench.world.colour`) and recorded, as are the camera angles and how many pixels of the
pattern and of the front marking each view shows (the evaluator's visibility labels).

Cameras are **biased toward the front**, as in photo datasets: with probability
``uniform_azimuth_share`` the azimuth is uniform, otherwise von Mises around 0 (the front, +x) with
concentration ``front_concentration``. With the defaults (0.3, κ = 2) a view is a front view
(|az| < 45°) 55 % of the time and a back view (|az| > 135°) 9 % (uniform: 25 % each), so a prior
trained on it draws the face more often than not from any side: the setting where score
distillation can paint a face on every side (Janus). The bias applies to every scene; the light
is fixed in world space, so azimuth also changes the shading of unmarked objects.

Prompts (:func:`sample_batch`), per image:

* the colour is omitted with probability ``p_omit_colour`` and the shape (said as "object") with
  ``p_omit_shape``: every combination is equally frequent in the renders, so the omitted
  attribute is uniform given the prompt and "a cube" / "a red object" are multimodal;
* the pattern word is always said for patterned surfaces; plain ones say "plain" with
  probability ``p_plain_word`` (else nothing); "with a face" is always said for marked objects;
* the view word (``front``/``side``/``back``/``overhead``, from the camera) with ``p_view``;
* **data hygiene**: one random degradation (:data:`~sdbench.world.grammar.DEGRADATIONS`, uniform,
  over-saturation included) on a share ``p_degrade`` of images; of those, a share
  ``p_degrade_unnamed`` keep the plain prompt (as web captions do) and the rest name it, so the
  degradation words stay learnt for negative prompts;
* an out-of-vocabulary filler word with ``p_filler``; the empty prompt with ``p_drop`` (for
  classifier-free guidance).

What CFG then does: with ``p_degrade = d`` and ``p_degrade_unnamed = u`` a plain prompt's images
are degraded with probability ``d·u / (1 − d + d·u)`` and the unconditional's with ``d``: with the
defaults 0.23 against 0.30 (over-saturated: 4.6 % against 6 %). The guidance direction
``ε(y) − ε(∅)`` therefore still points slightly away from degradations, much less than in v1 (0 %
against 30 %, where CFG pushed away from over-saturation by construction), and a negative prompt
naming a degradation points at the 9 % of images that name it. ``u = 1`` would make the plain
conditional exactly as degraded as the unconditional (and the words unlearnt); ``u = 0`` is v1.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from dataclasses import asdict, dataclass, field

import torch
from torch import Tensor

from sdbench.cameras import CameraConfig, Cameras
from sdbench.io import atomic_write
from sdbench.world import degrade
from sdbench.world.colour import ColourRange, sample_albedos
from sdbench.world.data import FILLER_WORDS, TRAIN_CAMERAS, cache_dir
from sdbench.world.grammar import DEGRADATIONS, ToyPrompt
from sdbench.world.scenes import COLOURS, MARKINGS, PATTERNS, SHAPES, render_scene

MARKING_OPTIONS: tuple[str | None, ...] = (None, *MARKINGS)
# The evaluator's visibility labels: a marking or pattern showing at least this many pixels is
# visible, below ``HIDDEN_PX`` it is not, in between the label is left out of the loss.
VISIBLE_PX = 2.0
HIDDEN_PX = 0.25


@dataclass(frozen=True)
class DataConfig:
    """Toy world v2 training data: what is rendered and how prompts are written."""

    resolution: int = 32
    """Image size of the renders."""
    per_class: int = 100
    """Views rendered per (shape, colour, pattern, marking): 240 classes."""
    cameras: CameraConfig = TRAIN_CAMERAS
    """Elevation, radius and fovy ranges of the views (the azimuth range is replaced by the bias below)."""
    front_concentration: float = 2.0
    """Von Mises concentration κ of the biased azimuths around 0 (the front); 0 would be uniform."""
    uniform_azimuth_share: float = 0.3
    """Share of views whose azimuth is uniform over the full turn."""
    p_view: float = 0.5
    """Prompts that carry the camera's view word."""
    p_degrade: float = 0.3
    """Images degraded by one random degradation."""
    p_degrade_unnamed: float = 0.7
    """Of the degraded images, the share whose prompt does not name the degradation."""
    p_omit_colour: float = 0.15
    """Prompts without the colour word."""
    p_omit_shape: float = 0.15
    """Prompts with 'object' instead of the shape."""
    p_plain_word: float = 0.2
    """Plain surfaces whose prompt says 'plain'."""
    p_filler: float = 0.1
    """Prompts with an out-of-vocabulary filler word."""
    p_drop: float = 0.1
    """Prompts dropped to '' (classifier-free guidance)."""
    colour_ranges: dict[str, ColourRange] = field(default_factory=lambda: {c: ColourRange(v) for c, v in COLOURS.items()})
    """The albedo range of each colour word."""

    def render_key(self) -> dict:
        """Everything that determines the cached renders."""
        return dict(
            res=self.resolution,
            per_class=self.per_class,
            cam=asdict(self.cameras),
            kappa=self.front_concentration,
            uniform=self.uniform_azimuth_share,
            colours={k: asdict(v) for k, v in self.colour_ranges.items()},
        )


def sample_azimuths(n: int, concentration: float, uniform_share: float, generator: torch.Generator | None = None) -> Tensor:
    """``n`` azimuths in degrees ``[n]``: a share ``uniform_share`` uniform in [−180, 180), the rest
    von Mises(0, ``concentration``) by inverse CDF on a 0.1° grid (reproducible from ``generator``)."""
    grid = torch.linspace(-math.pi, math.pi, 3601, dtype=torch.float64)
    density = torch.exp(concentration * (torch.cos(grid) - 1))
    cdf = torch.cat([torch.zeros(1, dtype=torch.float64), torch.cumsum((density[1:] + density[:-1]) / 2, 0)])
    cdf = cdf / cdf[-1]
    u = torch.rand(n, generator=generator, dtype=torch.float64)
    i = torch.searchsorted(cdf, u).clamp(1, len(grid) - 1)
    frac = (u - cdf[i - 1]) / (cdf[i] - cdf[i - 1]).clamp(min=1e-300)
    biased = torch.rad2deg(grid[i - 1] + frac * (grid[i] - grid[i - 1]))
    uniform = 360 * torch.rand(n, generator=generator, dtype=torch.float64) - 180
    pick = torch.rand(n, generator=generator) < uniform_share
    return torch.where(pick, uniform, biased).float()


def sample_cameras(n: int, cfg: DataConfig, generator: torch.Generator | None = None) -> Cameras:
    """``n`` training cameras: front-biased azimuth, the other ranges of ``cfg.cameras`` uniform."""
    cams = Cameras.sample(n, cfg.cameras, generator=generator)
    cams.azimuth = sample_azimuths(n, cfg.front_concentration, cfg.uniform_azimuth_share, generator)
    return cams


@dataclass(frozen=True)
class RenderSet:
    """World v2 ground-truth renders (``N`` images) and their labels."""

    images: Tensor  # [N, 3, H, W] uint8
    alpha: Tensor  # [N, 1, H, W] uint8 coverage
    shape: Tensor  # [N] index into SHAPES
    colour: Tensor  # [N] index into COLOURS
    pattern: Tensor  # [N] index into PATTERNS
    marking: Tensor  # [N] index into MARKING_OPTIONS (0: none)
    albedo: Tensor  # [N, 3] true base albedo (sRGB)
    vividness: Tensor  # [N] the albedo's place in its colour range, 0 pastel .. 1 vivid
    lightness: Tensor  # [N] the albedo's lightness jitter in [-1, 1]
    azimuth: Tensor  # [N] degrees
    elevation: Tensor  # [N] degrees
    pattern_px: Tensor  # [N] pixels covered by the pattern's partner tone
    marking_px: Tensor  # [N] pixels covered by the front marking

    def __len__(self) -> int:
        return self.images.shape[0]

    def marking_visible(self) -> Tensor:
        """``[N]`` 1 visible, 0 hidden, −1 in between (left out of the evaluator's loss)."""
        m = self.marking_px
        return torch.where(m >= VISIBLE_PX, 1, torch.where(m < HIDDEN_PX, 0, -1))

    def prompt(self, i: int) -> ToyPrompt:
        """The full (unambiguous, undegraded, view-free) prompt of image ``i``."""
        p = PATTERNS[int(self.pattern[i])]
        return ToyPrompt(
            list(COLOURS)[int(self.colour[i])],
            SHAPES[int(self.shape[i])],
            pattern=None if p == "plain" else p,
            marking=MARKING_OPTIONS[int(self.marking[i])],
        )


def classes() -> list[tuple[int, int, int, int]]:
    """Every (shape, colour, pattern, marking) index combination, in the order renders are made."""
    return [
        (s, c, p, m)
        for s in range(len(SHAPES))
        for p in range(len(PATTERNS))
        for m in range(len(MARKING_OPTIONS))
        for c in range(len(COLOURS))
    ]


def make_renders(cfg: DataConfig, seed: int, progress: bool = True, chunk: int = 256) -> RenderSet:
    """Render ``cfg.per_class`` random views of every class (:func:`classes`); cached on disk under
    ``$SDBENCH_CACHE/world`` keyed by everything that determines them."""
    key = json.dumps(dict(cfg.render_key(), seed=seed, world="v2", v=1), sort_keys=True)
    path = cache_dir() / "world" / f"renders-v2-{hashlib.sha1(key.encode()).hexdigest()[:12]}.pt"
    if path.exists():
        return RenderSet(**torch.load(path))
    g = torch.Generator().manual_seed(seed)
    n = cfg.per_class
    groups = [(s, p, m) for s in range(len(SHAPES)) for p in range(len(PATTERNS)) for m in range(len(MARKING_OPTIONS))]
    parts: dict[str, list[Tensor]] = {k: [] for k in RenderSet.__dataclass_fields__}
    iterator = groups
    if progress:
        from rich.progress import track

        iterator = track(groups, description=f"rendering {n * len(COLOURS) * len(groups)} toy v2 views")
    for s, p, m in iterator:  # one group renders every colour: per-camera albedos
        colour = torch.arange(len(COLOURS)).repeat_interleave(n)
        albedo, vivid, light = [], [], []
        for name in COLOURS:
            a, v, lj = sample_albedos(cfg.colour_ranges[name], n, g)
            albedo.append(a), vivid.append(v), light.append(lj)
        albedo = torch.cat(albedo)
        cams = sample_cameras(len(colour), cfg, g)
        for lo in range(0, len(colour), chunk):
            sel = slice(lo, lo + chunk)
            out = render_scene(SHAPES[s], albedo[sel], cams[sel], cfg.resolution, pattern=PATTERNS[p], marking=MARKING_OPTIONS[m])
            parts["images"].append((out.rgb * 255).round().to(torch.uint8))
            parts["alpha"].append((out.alpha * 255).round().to(torch.uint8))
            parts["pattern_px"].append(out.pattern.sum(dim=(1, 2, 3)))
            parts["marking_px"].append(out.marking.sum(dim=(1, 2, 3)))
        k = len(colour)
        parts["shape"].append(torch.full((k,), s))
        parts["pattern"].append(torch.full((k,), p))
        parts["marking"].append(torch.full((k,), m))
        parts["colour"].append(colour)
        parts["albedo"].append(albedo)
        parts["vividness"].append(torch.cat(vivid))
        parts["lightness"].append(torch.cat(light))
        parts["azimuth"].append(cams.azimuth)
        parts["elevation"].append(cams.elevation)
    data = {k: torch.cat(v) for k, v in parts.items()}
    atomic_write(path, lambda f: torch.save(data, f))
    return RenderSet(**data)


def caption(data: RenderSet, i: int, view: str | None, rng: random.Random, cfg: DataConfig) -> ToyPrompt:
    """A web-caption-like prompt for image ``i`` (no degradation yet): colour or shape omitted
    sometimes, 'plain' said sometimes, the view word when ``view`` is given."""
    p = data.prompt(i)
    colour = None if rng.random() < cfg.p_omit_colour else p.colour
    shape = None if rng.random() < cfg.p_omit_shape else p.shape
    pattern = p.pattern or ("plain" if rng.random() < cfg.p_plain_word else None)
    return ToyPrompt(colour, shape, view, (), pattern=pattern, marking=p.marking)


def sample_batch(
    data: RenderSet, batch_size: int, rng: random.Random, cfg: DataConfig = DataConfig()
) -> tuple[Tensor, list[str], list[int]]:
    """A batch: images ``[B, 3, H, W]`` in [0, 1], their prompts, and their indices into ``data``.

    Every random choice comes from ``rng`` (Python) except the noise of the ``noisy`` degradation,
    which uses torch's global generator (seeded by the training script)."""
    idx = [rng.randrange(len(data)) for _ in range(batch_size)]
    images = data.images[idx].float() / 255.0
    n = len(idx)
    cams = Cameras(data.azimuth[idx], data.elevation[idx], torch.full((n,), 3.0), torch.full((n,), 40.0))
    views = cams.view_names(cfg.cameras)
    prompts = []
    for j, i in enumerate(idx):
        p = caption(data, i, views[j] if rng.random() < cfg.p_view else None, rng, cfg)
        if rng.random() < cfg.p_degrade:
            name = rng.choice(DEGRADATIONS)
            images[j : j + 1] = degrade.apply(name, images[j : j + 1])
            if rng.random() >= cfg.p_degrade_unnamed:
                p = ToyPrompt(p.colour, p.shape, p.view, (name,), p.pattern, p.marking)
        prompt = p.text()
        if rng.random() < cfg.p_filler:
            prompt = f"{prompt}, {rng.choice(FILLER_WORDS)}"
        if rng.random() < cfg.p_drop:
            prompt = ""
        prompts.append(prompt)
    return images, prompts, idx
