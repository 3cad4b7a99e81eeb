"""``sdbench export``: render a trial's saved representation in the view layouts that text-to-3D
evaluators read, so its result can be handed to them.

Formats (each layout as read from the evaluator's code; file names exactly theirs):

``gpteval3d`` — GPTEval3D (Wu et al., CVPR 2024), github.com/3DTopia/GPTEval3D @ 2382bdd: README
"Step 2", ``assets/data_format.md`` and ``utils/t23d_tournament.py`` (``T23DMethod``, which globs
``<method>/<prompt-id>/<seed>/rgb_*.png`` and ``normal_*.png``, opens ``rgb_%d.png`` and calls
``int()`` on every prompt-id and seed folder name)::

    OUT/prompts.json                                   the prompts; a prompt's index is its <prompt-id>
    OUT/methods/<method>/<prompt-id>/<seed>/rgb_0.png … rgb_119.png, normal_0.png … normal_119.png
    OUT/export.json                                    which trial went where, and these conventions

  120 views, 512 × 512, "evenly spaced … using the camera angle chosen by the threestudio codebase":
  threestudio (28d9d80) ``data/uncond.py`` ``RandomCameraDataset``, test split: azimuth
  ``torch.linspace(0, 360, 120)`` (so its first and last views coincide, as there), elevation 15°.
  Camera distance and field of view are the trial's own (``trial.cameras`` radius and fovy, as its
  evaluation views), because threestudio's (1.5–2.0 at 70°) belong to its scene scale, not ours;
  both frame an object of the scene's unit size alike. Normal maps as threestudio's
  ``comp_normal``: world-frame normals, ``(n + 1) / 2 · opacity`` (black background). ``<method>``
  is ``<loss>-<representation>-<prior>`` (plus a hash of the rest of the config where two
  different configs would share a name); ``--prompts`` gives the prompt ids of an existing
  ``prompts.json`` (e.g. GPTEval3D's ``data/tournament-v0/prompts.json``).

``t3bench`` — T³Bench (He et al. 2023), github.com/THU-LYJ-Lab/T3Bench @ 6367462. T³Bench renders
an exported mesh itself (``render/meshrender.py``, ``render/meshrender_cap.py``, pyrender,
512 × 512, black background, flat unlit colour, the mesh centred and scaled to ``max |v| = 1``)
and then scores the images in a temporary folder; this export writes those images::

    OUT/quality/<idx:03d>_<j>.png   quality (ImageReward): trimesh.creation.icosphere(subdivisions=2,
                                    radius=2.2) vertices idx = 0..161, yfov j = 0..4 of
                                    π/3, π/4, π/5, π/6, π/7.5, looking at the centre, z up
    OUT/caption/<idx:03d>.png       alignment (BLIP-2 captions): icosphere(subdivisions=0, radius=2.2)
                                    with its vertices multiplied by 2.2 again (radius 4.84, as
                                    meshrender_cap.py does), idx = 0..11, yfov π/3
    OUT/export.json

  The camera radii are scaled by the object's extent, max |p| over the surface points seen from
  the 12 caption views (T³Bench's normalisation; the object is not re-centred: sdbench's objects
  sit at the origin). Colour is the representation's over black. No normal maps (T³Bench reads
  none). The vertex order (idx) is trimesh's: its scorer smooths scores over
  ``icosphere.vertex_neighbors[idx]``.

``frames`` — a plain orbit for any other tool::

    OUT/rgb_<i:03d>.png, OUT/normal_<i:03d>.png   (--views, default 120; azimuth 360·i/n from 0°)
    OUT/cameras.json                                each view's azimuth, elevation, radius, fovy, c2w (OpenCV), K
    OUT/export.json

  at the trial's evaluation elevation, radius and fovy, in the representation's own colours; the
  2D image representation writes its one image as ``rgb_000.png``.

A sweep directory exports every completed trial: ``t3bench`` and ``frames`` into ``OUT/<trial-id>/``,
``gpteval3d`` into the one tree above (its methods and prompt ids are the trials' groups and prompts).

Normal maps are in the world frame (threestudio's convention, z up) unless ``normals="camera"``:
then in the camera frame with OpenGL axes (x right, y up, z towards the viewer), the usual
colouring of view-space normal maps (a surface facing the camera is (0.5, 0.5, 1)).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from sdbench.cameras import Cameras
from sdbench.errors import UserError
from sdbench.io import slug
from sdbench.results import TrialResult, load_result

FORMATS = ("gpteval3d", "t3bench", "frames")
NORMAL_FRAMES = ("world", "camera")
LAYOUT_SOURCES = {
    "gpteval3d": "github.com/3DTopia/GPTEval3D@2382bdd (README Step 2, assets/data_format.md, utils/t23d_tournament.py); "
    "cameras: github.com/threestudio-project/threestudio@28d9d80 threestudio/data/uncond.py (test split)",
    "t3bench": "github.com/THU-LYJ-Lab/T3Bench@6367462 (render/meshrender.py, render/meshrender_cap.py, run_eval_quality.py)",
    "frames": "sdbench",
}
DEFAULT_SIZE = {"gpteval3d": 512, "t3bench": 512}
GPTEVAL3D_VIEWS, GPTEVAL3D_ELEVATION = 120, 15.0
T3BENCH_RADIUS = 2.2
T3BENCH_QUALITY_FOVY = tuple(math.degrees(math.pi / k) for k in (3.0, 4.0, 5.0, 6.0, 7.5))
T3BENCH_CAPTION_FOVY = 60.0


@dataclass
class Layout:
    """The images of one exported trial: ``cameras[i]`` renders ``rgb[i]`` (and ``normal[i]``)."""

    cameras: Cameras
    rgb: list[str]
    """File names relative to the trial's export folder."""
    normal: list[str]
    """Normal-map file names ([] when the format has none)."""
    over_black: bool = False
    """Colour over black (T³Bench) instead of the representation's own background."""


@dataclass
class Trial:
    """A completed trial directory, its config and its rebuilt representation."""

    path: Path
    result: TrialResult
    trial: Any
    """Its ``TrialConfig``."""
    representation: Any


# ------------------------------------------------------------------- layouts
def gpteval3d_layout(trial) -> Layout:
    """120 views on threestudio's test orbit at the trial's camera radius and fovy."""
    az = torch.linspace(0.0, 360.0, GPTEVAL3D_VIEWS)
    full = lambda v: torch.full_like(az, float(v))  # noqa: E731
    cams = Cameras(az, full(GPTEVAL3D_ELEVATION), full(trial.cameras.radius[0]), full(trial.cameras.fovy[0]))
    return Layout(cams, [f"rgb_{i}.png" for i in range(len(az))], [f"normal_{i}.png" for i in range(len(az))])


def cameras_at(positions: Tensor, fovy: float | Tensor) -> Cameras:
    """Cameras at world ``positions [N, 3]`` looking at the origin, z up; ``fovy`` in degrees (one or ``[N]``)."""
    r = positions.norm(dim=-1)
    az = torch.rad2deg(torch.atan2(positions[:, 1], positions[:, 0]))
    el = torch.rad2deg(torch.asin((positions[:, 2] / r).clamp(-1, 1)))
    return Cameras(az.float(), el.float(), r.float(), torch.as_tensor(fovy, dtype=torch.float32).expand(len(r)).clone())


def icosphere_vertices(subdivisions: int, radius: float) -> Tensor:
    """``trimesh.creation.icosphere(subdivisions, radius).vertices`` (T³Bench's camera positions, in
    trimesh's order), ``[V, 3]``."""
    try:
        import trimesh
    except ImportError:
        raise UserError("the t3bench layout places its cameras on trimesh's icosphere; pip install trimesh") from None
    return torch.as_tensor(trimesh.creation.icosphere(subdivisions=subdivisions, radius=radius).vertices, dtype=torch.float64)


def t3bench_layout(extent: float = 1.0) -> Layout:
    """T³Bench's quality views (162 positions × 5 fields of view) and caption views (12), with the
    radii scaled by the object's ``extent`` (its max |p|)."""
    quality = icosphere_vertices(2, T3BENCH_RADIUS) * extent
    caption = icosphere_vertices(0, T3BENCH_RADIUS) * T3BENCH_RADIUS * extent  # meshrender_cap.py scales twice
    fovs = torch.tensor(T3BENCH_QUALITY_FOVY)
    cams = Cameras.cat(
        [
            cameras_at(quality.repeat_interleave(len(fovs), dim=0), fovs.repeat(len(quality))),  # idx-major, then j
            cameras_at(caption, T3BENCH_CAPTION_FOVY),
        ]
    )
    names = [f"quality/{idx:03d}_{j}.png" for idx in range(len(quality)) for j in range(len(fovs))]
    names += [f"caption/{idx:03d}.png" for idx in range(len(caption))]
    return Layout(cams, names, [], over_black=True)


def frames_layout(trial, views: int, is_3d: bool) -> Layout:
    """An orbit of ``views`` cameras at the trial's evaluation elevation, radius and fovy."""
    n = views if is_3d else 1
    cams = Cameras.orbit(n, elevation=trial.eval_elevation, radius=trial.cameras.radius[0], fovy=trial.cameras.fovy[0])
    return Layout(cams, [f"rgb_{i:03d}.png" for i in range(n)], [f"normal_{i:03d}.png" for i in range(n)] if is_3d else [])


# ------------------------------------------------------------------- loading
def find_trials(source: Path) -> tuple[list[Path], list[str]]:
    """The completed trial directories of a trial or sweep directory, and notes on those skipped."""
    source = Path(source).expanduser()
    if (source / "result.json").is_file():
        return [source], []
    if not (source / "trials").is_dir():
        raise UserError(f"{source} is not a trial directory (no result.json) or a sweep directory (no trials/)")
    done, skipped = [], []
    for d in sorted(p for p in (source / "trials").iterdir() if p.is_dir()):
        status = _status(d)
        (done if status == "completed" else skipped).append(d if status == "completed" else f"{d.name}: {status}")
    if not done:
        raise UserError(f"{source} has no completed trial to export")
    return done, skipped


def _status(trial_dir: Path) -> str:
    try:  # leniently: a half-written or foreign result.json only means "not exportable"
        return json.loads((trial_dir / "result.json").read_text()).get("status", "missing")
    except (OSError, ValueError):
        return "missing"


def load_trial(trial_dir: Path, device: str = "cpu") -> Trial:
    """Rebuild a completed trial's representation from ``result.json`` and ``checkpoint.pt``.

    The prior is not built (an export needs none, and its weights may live on another machine).
    The representation is constructed from its recorded config with its default initialisation
    (a Shap-E or .ply initialisation would be overwritten by the saved weights anyway) at the
    resolution it trained at (``trial.resolution``, else the size of its saved evaluation views),
    then the saved weights are loaded.
    """
    from sdbench import config as cfgutil
    from sdbench import registry
    from sdbench.trial import CHECKPOINT_FILE, TrialConfig

    trial_dir = Path(trial_dir)
    if _status(trial_dir) != "completed":
        raise UserError(f"{trial_dir}: the trial did not complete (status {_status(trial_dir)!r}); nothing to export")
    if not (trial_dir / CHECKPOINT_FILE).is_file():
        raise UserError(f"{trial_dir} has no {CHECKPOINT_FILE}; rerun the trial")
    result = load_result(trial_dir)
    config = result.config
    trial = cfgutil.from_dict(TrialConfig, config["trial"], "trial")
    rep_cls = registry.REPRESENTATIONS.get(trial.representation)
    rep_cfg = cfgutil.from_dict(rep_cls.Config, config["representation"], "representation")
    if isinstance(getattr(rep_cfg, "init", None), str):
        rep_cfg = dataclasses.replace(rep_cfg, init=type(rep_cfg)().init)
    state = torch.load(trial_dir / CHECKPOINT_FILE, map_location="cpu", weights_only=False)["representation"]
    with torch.random.fork_rng(devices=[]):
        rep = rep_cls(rep_cfg, resolution=trial.resolution or _trained_resolution(trial_dir), prompt=trial.prompt)
    rep.load_weights(state)
    return Trial(trial_dir, result, trial, rep.to(device).eval())


def _trained_resolution(trial_dir: Path) -> int:
    """The render size a trial trained at: its evaluation views are saved at that size."""
    view = trial_dir / "views" / "000.png"
    if view.is_file():
        from PIL import Image

        with Image.open(view) as im:
            return im.height
    return 64


# ----------------------------------------------------------------- rendering
def normal_colours(normal: Tensor, alpha: Tensor, cameras: Cameras, frame: str) -> Tensor:
    """World-frame normals ``[B, 3, H, W]`` → colours ``(n + 1) / 2 · alpha`` in [0, 1] (black where
    empty); ``frame="camera"`` first turns them into the camera frame with OpenGL axes."""
    if frame == "camera":
        rot = cameras.c2w[:, :3, :3].to(normal)  # camera (OpenCV) → world; its transpose: world → camera
        n_cv = torch.einsum("bji,bjhw->bihw", rot, normal)
        normal = n_cv * torch.tensor([1.0, -1.0, -1.0], device=normal.device, dtype=normal.dtype).view(1, 3, 1, 1)
    return ((normal + 1) / 2 * alpha).clamp(0, 1)


def render_layout(
    rep: Any, layout: Layout, size: int, out_dir: Path, normals: str = "world", batch: int = 4, progress: Any = None
) -> list[Path]:
    """Render every view of ``layout`` at ``size × size`` and write its PNGs under ``out_dir``."""
    from sdbench.io import save_image

    written = []
    device = next((t.device for t in rep.state_dict().values() if torch.is_tensor(t)), torch.device("cpu"))
    for start in range(0, len(layout.cameras), batch):
        cams = layout.cameras[start : start + batch].to(device)
        with torch.no_grad():
            surface = rep.render_surface(cams, size, size) if (layout.normal or layout.over_black) else None
            rgb = surface.color if layout.over_black else rep.render(cams, size, size).rgb
            for k in range(len(cams)):
                written.append(save_image(rgb[k], out_dir / layout.rgb[start + k]))
            if layout.normal:
                colours = normal_colours(surface.normal, surface.alpha, cams, normals)
                for k in range(len(cams)):
                    written.append(save_image(colours[k], out_dir / layout.normal[start + k]))
        if progress is not None:
            progress(len(cams))
    return written


def object_extent(rep: Any, size: int = 64) -> float:
    """max |p| over the surface points (α > 0.5) seen from T³Bench's 12 caption directions."""
    device = next((t.device for t in rep.state_dict().values() if torch.is_tensor(t)), torch.device("cpu"))
    cams = cameras_at(icosphere_vertices(0, 3.0), T3BENCH_CAPTION_FOVY).to(device)
    with torch.no_grad():
        s = rep.render_surface(cams, size, size)
    origins, dirs = cams.rays(size, size)
    cos = (dirs * cams.c2w[:, None, None, :3, 2]).sum(-1, keepdim=True)
    points = origins + dirs * (s.depth.permute(0, 2, 3, 1) / cos.clamp_min(1e-6))
    seen = s.alpha.permute(0, 2, 3, 1)[..., 0] > 0.5
    if not seen.any():
        raise UserError("the representation is empty (nothing opaque from any T3Bench caption view); nothing to frame")
    return float(points[seen].abs().max())


# -------------------------------------------------------------------- export
def method_names(trials: list[Trial]) -> dict[Path, str]:
    """``<loss>-<representation>-<prior>`` per trial; where trials of one name differ in more than
    prompt and seed, each gets a hash of its config (without prompt and seed) appended."""

    def rest(t: Trial) -> str:
        cfg = json.loads(json.dumps(t.result.config))
        cfg["trial"].pop("prompt", None)
        cfg["trial"].pop("seed", None)
        return hashlib.sha1(json.dumps(cfg, sort_keys=True).encode()).hexdigest()[:8]

    base = {
        t.path: slug(f"{t.trial.loss}-{t.trial.representation}-{Path(t.trial.prior).name or t.trial.prior}", 80) for t in trials
    }
    configs: dict[str, set[str]] = {}
    for t in trials:
        configs.setdefault(base[t.path], set()).add(rest(t))
    return {t.path: base[t.path] + (f"-{rest(t)}" if len(configs[base[t.path]]) > 1 else "") for t in trials}


def read_prompt_list(path: Path) -> list[str]:
    """A ``prompts.json`` (a JSON list of strings) or a text file with one prompt per line."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise UserError(f"prompts file {path} does not exist")
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".json":
        try:
            prompts = json.loads(text)
        except ValueError as e:
            raise UserError(f"{path} is not valid JSON: {e}") from None
        if not isinstance(prompts, list) or not all(isinstance(p, str) for p in prompts):
            raise UserError(f"{path} must hold a JSON list of prompt strings")
        return prompts
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


@dataclass
class ExportSummary:
    """What an export wrote."""

    out: Path
    format: str
    trials: list[dict[str, Any]]
    """One entry per exported trial: ``trial`` (its directory), ``folder`` and ``files``."""
    skipped: list[str]


def export(
    source: Path,
    fmt: str,
    out: Path | None = None,
    size: int = 0,
    views: int = 0,
    normals: str = "world",
    prompts: Path | None = None,
    device: str = "auto",
    progress: bool = False,
) -> ExportSummary:
    """Export a trial or sweep directory in format ``fmt`` (see the module docstring)."""
    if fmt not in FORMATS:
        raise UserError(f"unknown export format {fmt!r}; use one of {', '.join(FORMATS)}")
    if normals not in NORMAL_FRAMES:
        raise UserError(f"--normals must be world or camera, got {normals!r}")
    if views and fmt != "frames":
        raise UserError(f"the {fmt} layout fixes its views; --views is for --format frames")
    if views < 0 or size < 0:
        raise UserError("--views and --size must be positive")
    if prompts is not None and fmt != "gpteval3d":
        raise UserError("--prompts (prompt ids) is for --format gpteval3d")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    source = Path(source).expanduser()
    dirs, skipped = find_trials(source)
    out = Path(out).expanduser() if out is not None else source / "export" / fmt
    trials = [load_trial(d, device) for d in dirs]
    if fmt in ("gpteval3d", "t3bench"):
        flat = [t for t in trials if not t.representation.is_3d]
        if flat:
            raise UserError(
                f"{flat[0].path.name}: the {fmt} layout needs a 3D representation (RGB and normal views); "
                f"{flat[0].trial.representation!r} is 2D: use --format frames"
            )
    from sdbench.trial import check_writable

    check_writable(out)
    sweep = len(dirs) > 1 or dirs[0] != source
    entries = []
    bar = _Progress(progress)
    if fmt == "gpteval3d":
        prompt_ids = _prompt_ids(trials, prompts)
        names = method_names(trials)
        for t in trials:
            folder = out / "methods" / names[t.path] / str(prompt_ids[t.trial.prompt]) / str(t.trial.seed)
            layout = gpteval3d_layout(t.trial)
            files = render_layout(
                t.representation, layout, size or DEFAULT_SIZE[fmt], folder, normals, progress=bar.step(t, layout)
            )
            entries.append(_entry(t, folder, files, out, method=names[t.path], prompt_id=prompt_ids[t.trial.prompt]))
        from sdbench.io import write_json

        ordered = sorted(prompt_ids, key=prompt_ids.get)
        listed = read_prompt_list(prompts) if prompts is not None else ordered
        write_json(out / "prompts.json", listed)
    else:
        for t in trials:
            folder = out / t.path.name if sweep else out
            extra: dict[str, Any] = {}
            if fmt == "t3bench":
                extra["extent"] = round(object_extent(t.representation), 5)
                layout = t3bench_layout(extra["extent"])
            else:
                layout = frames_layout(t.trial, views or GPTEVAL3D_VIEWS, t.representation.is_3d)
            px = size or DEFAULT_SIZE.get(fmt, t.representation.resolution)
            files = render_layout(t.representation, layout, px, folder, normals, progress=bar.step(t, layout))
            if fmt == "frames":
                files.append(_write_cameras(layout, px, folder))
            entries.append(_entry(t, folder, files, out, **extra))
    bar.close()
    _write_manifest(out, fmt, size, normals, entries, skipped)
    return ExportSummary(out, fmt, entries, skipped)


def _prompt_ids(trials: list[Trial], prompts: Path | None) -> dict[str, int]:
    if prompts is None:
        return {p: i for i, p in enumerate(sorted({t.trial.prompt for t in trials}))}
    listed = read_prompt_list(prompts)
    ids = {p: i for i, p in reversed(list(enumerate(listed)))}
    missing = sorted({t.trial.prompt for t in trials} - set(ids))
    if missing:
        raise UserError(f"prompt {missing[0]!r} is not in {prompts} ({len(missing)} prompt(s) missing)")
    return ids


def _entry(t: Trial, folder: Path, files: list[Path], out: Path, **extra: Any) -> dict[str, Any]:
    return {
        "trial": str(t.path.resolve()),
        "id": t.path.name,
        "prompt": t.trial.prompt,
        "loss": t.trial.loss,
        "representation": t.trial.representation,
        "prior": t.trial.prior,
        "seed": t.trial.seed,
        "folder": str(folder.resolve().relative_to(out.resolve())),
        "files": len(files),
        **extra,
    }


def _write_cameras(layout: Layout, size: int, folder: Path) -> Path:
    from sdbench.io import write_json

    c = layout.cameras
    K = c.intrinsics(size, size)
    frames = [
        {
            "rgb": layout.rgb[i],
            "normal": layout.normal[i] if layout.normal else None,
            "azimuth": float(c.azimuth[i]),
            "elevation": float(c.elevation[i]),
            "radius": float(c.radius[i]),
            "fovy": float(c.fovy[i]),
            "c2w": [[round(float(v), 7) for v in row] for row in c.c2w[i]],
            "K": [[round(float(v), 5) for v in row] for row in K[i]],
        }
        for i in range(len(c))
    ]
    data = {"convention": "c2w: camera-to-world, OpenCV camera (x right, y down, z forward); world z up", "size": size}
    return write_json(folder / "cameras.json", {**data, "frames": frames})


def _write_manifest(out: Path, fmt: str, size: int, normals: str, entries: list[dict], skipped: list[str]) -> Path:
    from sdbench.io import write_json

    manifest = {
        "format": fmt,
        "layout_source": LAYOUT_SOURCES[fmt],
        "size": size or DEFAULT_SIZE.get(fmt, "the trial's resolution"),
        "normals": None
        if fmt == "t3bench"
        else (
            "world frame (z up), colour (n + 1) / 2 · opacity, black background"
            if normals == "world"
            else "camera frame, OpenGL axes (x right, y up, z towards the viewer), colour (n + 1) / 2 · opacity"
        ),
        "trials": entries,
        "skipped": skipped,
    }
    return write_json(out / "export.json", manifest)


class _Progress:
    """A rich progress bar over every image of every trial (off unless asked)."""

    def __init__(self, enabled: bool):
        self.enabled, self.bar, self.task = enabled, None, None

    def step(self, t: Trial, layout: Layout):
        if not self.enabled:
            return None
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        if self.bar is None:
            self.bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
            self.bar.start()
        if self.task is not None:
            self.bar.remove_task(self.task)
        self.task = self.bar.add_task(t.path.name[:40], total=len(layout.cameras))
        return lambda n: self.bar.update(self.task, advance=n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
