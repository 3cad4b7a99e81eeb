"""3D Gaussian Splatting (Kerbl et al. 2023) as a text-to-3D representation.

Parameters (one ``nn.Parameter`` each, in gsplat's naming): ``means [N, 3]``, ``scales [N, 3]``
(log), ``quats [N, 4]`` (w, x, y, z; normalised when rendering), ``opacities [N]`` (logit),
``sh0 [N, 1, 3]`` and ``shN [N, K−1, 3]`` (spherical-harmonic colour, ``K = (degree + 1)²``).
Rendering: :func:`sdbench.representations.splat.rasterize` (gsplat on CUDA, a tested pure-torch
twin on CPU). Densification and pruning: gsplat's ``DefaultStrategy`` (pure torch, so the same on
CPU and CUDA), with a cap on the number of Gaussians. Export: ``model.ply`` in the INRIA 3DGS layout.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from sdbench.cameras import Cameras, depth_to_normals
from sdbench.config import StepSchedule
from sdbench.errors import UserError
from sdbench.representations.base import RenderOutput, Representation, SurfaceOutput
from sdbench.representations.splat import rasterize, rasterize_surface

SH_C0 = 0.28209479177387814  # Y_0^0: colour = SH_C0 · sh0 + 0.5
SURFACE_ALPHA = 0.1
"""Opacity above which a pixel's expected depth counts as surface (for normals from depth)."""


def rgb_to_sh0(rgb: Tensor) -> Tensor:
    return (rgb - 0.5) / SH_C0


class Gaussians(Representation):
    """3D Gaussian splatting (gsplat on CUDA, a pure-torch rasteriser on CPU)."""

    aliases = ("3dgs",)

    @dataclass(frozen=True)
    class Config:
        num_points: int = 4096
        """Initial number of Gaussians (DreamMapping/LucidDreamer: ~50k on SD at 512²)."""
        init: str = "sphere"
        """'sphere' (random in a ball), 'shape:<toy shape>' (e.g. shape:cube), 'ply:<path>', or 'shap-e'."""
        init_radius: float = 0.6
        """Radius of the 'sphere' initialisation (world units; toy objects fit in the unit ball)."""
        init_opacity: float = 0.1
        init_scale: float = 0.0
        """Initial isotropic scale; 0 derives it from the point density."""
        shap_e_path: str = ""
        """Local Shap-E (diffusers ShapEPipeline) folder for init='shap-e'; empty: $SDBENCH_SHAPE_PATH or the HF cache."""
        sh_degree: int = 0
        """Spherical-harmonic degree of the colours (0: view-independent RGB)."""
        background: tuple[float, float, float] = (1.0, 1.0, 1.0)
        """Background colour composited behind the Gaussians."""
        lr_means: float = 0.002
        lr_scales: float = 0.005
        lr_quats: float = 0.001
        lr_opacities: float = 0.05
        lr_sh0: float = 0.01
        lr_shN: float = 0.0005
        densify: bool = True
        """Run gsplat's DefaultStrategy (clone/split/prune)."""
        densify_from: int = 100
        """Densification starts after this step (gsplat's ``refine_start_iter``: steps count from 0, and a
        refinement runs at each step ``s > densify_from`` with ``s % densify_every == 0`` and ``s < densify_until``).
        Budget-relative: 20 % of the trial's steps (the 100 of a 500-step trial; see ``step_schedule``)."""
        densify_until: int = 400
        """Densification stops at this step (DreamMapping/LucidDreamer densify early and then only refine).
        Budget-relative: 80 % of the trial's steps."""
        densify_every: int = 100
        """Steps between refinements (screen-space gradients are averaged over them). Budget-relative: 20 % of
        the trial's steps, so every budget refines twice, at 40 % and 60 % (steps 200 and 300 of 500, 48 and
        72 of 120); set the three explicitly (``--set rep.densify_every=100``) for an absolute schedule."""
        densify_grad: float = 0.0002
        """gsplat's grow_grad2d: mean screen-space gradient above which Gaussians grow."""
        prune_opacity: float = 0.005
        max_points: int = 6144
        """At most this many Gaussians after a growth (keeps CPU steps bounded; raise it for SD-scale runs).
        When more Gaussians qualify than there is room for, only those with the largest screen-space
        gradients grow (gsplat's rule with a raised threshold), so the count never exceeds the cap."""

        step_schedule: ClassVar[StepSchedule] = StepSchedule(500, ("densify_from", "densify_until", "densify_every"))
        """The densification steps above are those of a 500-step trial; a trial scales them to its own length."""

    def __init__(self, cfg: Gaussians.Config, resolution: int, prompt: str = "", generator: torch.Generator | None = None):
        super().__init__(cfg, resolution, prompt, generator)
        if cfg.sh_degree < 0 or cfg.sh_degree > 4:
            raise UserError(f"sh_degree must be 0..4, got {cfg.sh_degree}")
        means, colours = self._initial_points()
        n = len(means)
        k = (cfg.sh_degree + 1) ** 2
        scale = cfg.init_scale or 0.6 * (4 / 3 * math.pi * cfg.init_radius**3 / n) ** (1 / 3)
        self.params = nn.ParameterDict(
            {
                "means": nn.Parameter(means),
                "scales": nn.Parameter(torch.full((n, 3), math.log(scale))),
                "quats": nn.Parameter(torch.tensor([1.0, 0.0, 0.0, 0.0]).repeat(n, 1)),
                "opacities": nn.Parameter(torch.full((n,), math.log(cfg.init_opacity / (1 - cfg.init_opacity)))),
                "sh0": nn.Parameter(rgb_to_sh0(colours)[:, None, :]),
                "shN": nn.Parameter(torch.zeros(n, k - 1, 3)),
            }
        )
        self.register_buffer("background", torch.tensor(cfg.background, dtype=torch.float32))
        self.strategy = None
        self.strategy_state: dict[str, Any] = {}
        if cfg.densify:
            self.strategy = _CappedStrategy(
                max_points=cfg.max_points,
                generator=self.generator,
                prune_opa=cfg.prune_opacity,
                grow_grad2d=cfg.densify_grad,
                refine_start_iter=cfg.densify_from,
                refine_stop_iter=cfg.densify_until,
                refine_every=cfg.densify_every,
                reset_every=10**9,
            )
            self.strategy_state = self.strategy.initialize_state(scene_scale=1.0)

    # ------------------------------------------------------------ initialise
    def _initial_points(self) -> tuple[Tensor, Tensor]:
        """Initial means ``[N, 3]`` and colours ``[N, 3]`` in [0, 1]."""
        cfg = self.cfg
        n = cfg.num_points
        grey = lambda m: torch.full((m, 3), 0.5)  # noqa: E731
        if cfg.init == "sphere":
            return _ball(n, cfg.init_radius, self.generator), grey(n)
        if cfg.init.startswith("shape:"):
            from sdbench.world.scenes import SHAPES, sdf

            shape = cfg.init.split(":", 1)[1]
            if shape not in SHAPES:
                raise UserError(f"unknown toy shape {shape!r} for init; use one of {', '.join(SHAPES)}")
            pts = _ball(20 * n, 1.0, self.generator)
            pts = pts[sdf(shape, pts) < 0][:n]
            return pts, grey(len(pts))
        if cfg.init.startswith("ply:"):
            return load_points(Path(cfg.init.split(":", 1)[1]).expanduser(), n, self.generator)
        if cfg.init == "shap-e":
            from sdbench.representations.shap_e import shap_e_points

            return shap_e_points(cfg.shap_e_path, self.prompt, n, generator=self.generator)
        raise UserError(f"unknown init {cfg.init!r}; use sphere, shape:<name>, ply:<path> or shap-e")

    @property
    def num_points(self) -> int:
        return self.params["means"].shape[0]

    # ---------------------------------------------------------------- render
    def activated(self) -> dict[str, Tensor]:
        p = self.params
        return {
            "means": p["means"],
            "quats": p["quats"],
            "scales": torch.exp(p["scales"]),
            "opacities": torch.sigmoid(p["opacities"]),
            "sh": torch.cat([p["sh0"], p["shN"]], dim=1),
        }

    def render(self, cameras: Cameras, height: int, width: int) -> RenderOutput:
        a = self.activated()
        cams = cameras.to(a["means"].device)
        rgb, alpha, meta = rasterize(
            a["means"],
            a["quats"],
            a["scales"],
            a["opacities"],
            a["sh"],
            cams.viewmats,
            cams.intrinsics(height, width),
            width,
            height,
            self.cfg.sh_degree,
            self.background,
        )
        return RenderOutput(rgb.permute(0, 3, 1, 2), alpha.permute(0, 3, 1, 2), {"meta": meta})

    def render_surface(self, cameras: Cameras, height: int, width: int) -> SurfaceOutput:
        """Depth is the α-weighted camera-space depth of the Gaussians' centres (gsplat's ``RGB+D``
        divided by α); normals are finite differences of that depth map, back-projected
        (:func:`sdbench.cameras.depth_to_normals`), rotated into the world frame."""
        a = self.activated()
        cams = cameras.to(a["means"].device)
        K = cams.intrinsics(height, width)
        color, alpha, depth_sum = (
            t.permute(0, 3, 1, 2)
            for t in rasterize_surface(
                a["means"], a["quats"], a["scales"], a["opacities"], a["sh"], cams.viewmats, K, width, height, self.cfg.sh_degree
            )
        )
        depth = torch.where(alpha > 0, depth_sum / alpha.clamp_min(1e-12), torch.zeros_like(alpha))
        normal = cams.to_world(depth_to_normals(depth, K, alpha > SURFACE_ALPHA))
        return SurfaceOutput(color, alpha, depth, normal)

    # -------------------------------------------------------------- optimise
    def parameter_groups(self) -> list[dict[str, Any]]:
        return [{"name": k, "params": [p], "lr": getattr(self.cfg, f"lr_{k}")} for k, p in self.params.items()]

    def make_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """One Adam per parameter, the layout gsplat's strategies update in place."""
        return {
            g["name"]: torch.optim.Adam([g["params"][0]], lr=g["lr"], betas=(0.9, 0.99), eps=1e-15)
            for g in self.parameter_groups()
        }

    def pre_backward(self, step: int, render: RenderOutput) -> None:
        if self.strategy is not None and render.rgb.requires_grad:
            self.strategy.step_pre_backward(self.params, {}, self.strategy_state, step, render.extras["meta"])

    def post_step(self, step: int, optimizers: dict[str, torch.optim.Optimizer], render: RenderOutput) -> None:
        if self.strategy is not None and render.extras["meta"]["means2d"].grad is not None:
            self.strategy.step_post_backward(
                self.params, optimizers, self.strategy_state, step, render.extras["meta"], packed=False
            )

    # ----------------------------------------------------------------- files
    def get_extra_state(self) -> dict[str, Any]:
        """gsplat's strategy accumulators (screen-space gradients, counts) travel with the weights."""
        return {"strategy": self.strategy_state}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        self.strategy_state = state["strategy"]

    def load_weights(self, state: dict[str, Tensor]) -> None:
        """Load saved parameters whatever their number of Gaussians."""
        for name in list(self.params.keys()):
            self.params[name] = nn.Parameter(state[f"params.{name}"].to(self.params[name].device).clone())
        self.background.copy_(state["background"])
        if "_extra_state" in state:
            self.set_extra_state(state["_extra_state"])

    def export(self, directory: Path) -> list[Path]:
        path = Path(directory) / "model.ply"
        save_ply(self, path)
        return [path]


def _ball(n: int, radius: float, generator: torch.Generator | None = None) -> Tensor:
    """``n`` points uniform in a ball, drawn from ``generator``."""
    d = torch.nn.functional.normalize(torch.randn(n, 3, generator=generator), dim=-1)
    return d * radius * torch.rand(n, 1, generator=generator) ** (1 / 3)


class _CappedStrategy:
    """gsplat's DefaultStrategy that grows to at most ``max_points`` Gaussians, and whose splits draw
    from ``generator`` (the representation's stream) rather than torch's global generator: gsplat's
    ``split`` samples the new means with ``torch.randn``, so each growth runs under a forked global
    generator seeded from ``generator`` (None: the global generator, as gsplat does).

    The cap is hard: gsplat adds one Gaussian per duplicated or split one (those whose mean
    screen-space gradient exceeds ``grow_grad2d``), so when more qualify than ``max_points − N``, the
    threshold is raised for that growth to the gradient of the first one left out, and only the
    largest gradients grow."""

    def __new__(cls, max_points: int, generator: torch.Generator | None = None, **kwargs: Any):
        from gsplat.strategy import DefaultStrategy

        class Capped(DefaultStrategy):
            def _grow_gs(self, params, optimizers, state, step):  # type: ignore[override]
                room = max_points - len(params["means"])
                if room <= 0:
                    return 0, 0
                threshold = self.grow_grad2d
                grads = state["grad2d"] / state["count"].clamp_min(1)
                if int((grads > threshold).sum()) > room and self.refine_scale2d_stop_iter <= step:
                    self.grow_grad2d = max(threshold, float(grads.flatten().sort(descending=True).values[room]))
                try:
                    if generator is None:
                        return super()._grow_gs(params, optimizers, state, step)
                    seed = int(torch.randint(0, 2**62, (1,), generator=generator))
                    device = params["means"].device
                    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
                        torch.manual_seed(seed)
                        return super()._grow_gs(params, optimizers, state, step)
                finally:
                    self.grow_grad2d = threshold

        return Capped(**kwargs)


# --------------------------------------------------------------------- PLY
def ply_properties(sh_degree: int) -> list[str]:
    """The INRIA 3DGS vertex properties, in order."""
    rest = 3 * ((sh_degree + 1) ** 2 - 1)
    return (
        ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"]
        + [f"f_rest_{i}" for i in range(rest)]
        + ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
    )


def save_ply(rep: Gaussians, path: Path) -> Path:
    """Write ``model.ply`` (binary little-endian, INRIA layout; ``f_rest`` channel-major)."""
    import numpy as np
    from plyfile import PlyData, PlyElement

    from sdbench.io import atomic_write

    p = {k: v.detach().cpu() for k, v in rep.params.items()}
    n = p["means"].shape[0]
    f_rest = p["shN"].transpose(1, 2).reshape(n, -1)  # [N, 3·(K−1)]: all of R, then G, then B
    columns = torch.cat(
        [p["means"], torch.zeros(n, 3), p["sh0"][:, 0, :], f_rest, p["opacities"][:, None], p["scales"], p["quats"]], dim=1
    ).numpy()
    names = ply_properties(rep.cfg.sh_degree)
    data = np.empty(n, dtype=[(name, "f4") for name in names])
    for i, name in enumerate(names):
        data[name] = columns[:, i]
    ply = PlyData([PlyElement.describe(data, "vertex")])
    return atomic_write(path, lambda f: ply.write(f))


def load_ply(path: Path, cfg: Gaussians.Config | None = None, resolution: int = 32) -> Gaussians:
    """Rebuild a :class:`Gaussians` from an INRIA-layout ``.ply`` (the SH degree is read from it)."""
    from dataclasses import replace

    from plyfile import PlyData

    v = PlyData.read(str(path))["vertex"]
    names = v.data.dtype.names
    n_rest = sum(1 for nm in names if nm.startswith("f_rest_"))
    degree = int(round(math.sqrt(n_rest / 3 + 1))) - 1
    cfg = replace(cfg or Gaussians.Config(), num_points=1, sh_degree=degree, init="sphere")
    rep = Gaussians(cfg, resolution)
    col = lambda nm: torch.as_tensor(v[nm].copy(), dtype=torch.float32)  # noqa: E731
    n = len(v.data)
    values = {
        "means": torch.stack([col("x"), col("y"), col("z")], 1),
        "sh0": torch.stack([col(f"f_dc_{i}") for i in range(3)], 1)[:, None, :],
        "shN": (torch.stack([col(f"f_rest_{i}") for i in range(n_rest)], 1) if n_rest else torch.zeros(n, 0))
        .reshape(n, 3, -1)
        .transpose(1, 2),
        "opacities": col("opacity"),
        "scales": torch.stack([col(f"scale_{i}") for i in range(3)], 1),
        "quats": torch.stack([col(f"rot_{i}") for i in range(4)], 1),
    }
    for k, val in values.items():
        rep.params[k] = nn.Parameter(val.contiguous())
    return rep


def load_points(path: Path, n: int, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """Means and colours from a ``.ply`` point cloud (``red/green/blue``) or 3DGS file (``f_dc``),
    resampled to ``n`` points (with small jitter when upsampling, drawn from ``generator``)."""
    from plyfile import PlyData, PlyParseError

    if not path.is_file():
        raise UserError(f"point cloud {path} does not exist" if not path.exists() else f"point cloud {path} is not a file")
    try:
        ply = PlyData.read(str(path))
    except (PlyParseError, OSError, ValueError, EOFError, UnicodeDecodeError) as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise UserError(f"point cloud {path} is not a readable .ply file: {first}") from None
    if "vertex" not in [element.name for element in ply.elements]:
        raise UserError(f"point cloud {path} has no vertex element")
    v = ply["vertex"]
    names = v.data.dtype.names
    if not {"x", "y", "z"} <= set(names):
        raise UserError(f"point cloud {path} has no x, y, z vertex properties (it has {', '.join(names)})")
    xyz = torch.stack([torch.as_tensor(v[c].copy(), dtype=torch.float32) for c in ("x", "y", "z")], 1)
    if not torch.isfinite(xyz).all():
        raise UserError(f"point cloud {path} holds NaN or infinite coordinates")
    if {"red", "green", "blue"} <= set(names):
        rgb = torch.stack([torch.as_tensor(v[c].copy(), dtype=torch.float32) for c in ("red", "green", "blue")], 1)
        rgb = rgb / 255.0 if rgb.max() > 1.0 else rgb
    elif "f_dc_0" in names:
        rgb = (
            torch.stack([torch.as_tensor(v[f"f_dc_{i}"].copy(), dtype=torch.float32) for i in range(3)], 1) * SH_C0 + 0.5
        ).clamp(0, 1)
    else:
        rgb = torch.full_like(xyz, 0.5)
    return resample_points(xyz, rgb, n, generator)


def resample_points(xyz: Tensor, rgb: Tensor, n: int, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """Sub- or up-sample a point cloud to ``n`` points; up-sampled copies are jittered by a fraction
    of the mean point spacing (LucidDreamer/DreamMapping upsample Shap-E's ~4k points to ~50k).
    Every draw comes from ``generator``."""
    m = len(xyz)
    if m == 0:
        raise UserError("the point cloud is empty")
    if m >= n:
        idx = torch.randperm(m, generator=generator)[:n]
        return xyz[idx], rgb[idx]
    idx = torch.randint(0, m, (n - m,), generator=generator)
    extent = (xyz.max(0).values - xyz.min(0).values).max().clamp(min=1e-6)
    spacing = extent / m ** (1 / 3)
    extra = xyz[idx] + 0.5 * spacing * torch.randn(n - m, 3, generator=generator)
    return torch.cat([xyz, extra]), torch.cat([rgb, rgb[idx]])
