"""Shap-E initialisation (Jun & Nichol 2023) through diffusers' ``ShapEPipeline``, local weights only.

LucidDreamer and DreamMapping initialise 3D Gaussians from a Shap-E point cloud of the prompt,
upsampled to ~50k points. Here: text → Shap-E latent → mesh (diffusers' marching-cubes decoder)
→ ``n`` points sampled on the surface (area-weighted), coloured by the mesh's vertex colours.
Shap-E meshes are y-up; they are rotated to sdbench's z-up world.
"""

from __future__ import annotations

import os

import torch
from torch import Tensor

from sdbench.errors import UserError

REPO_ID = "openai/shap-e"
ENV_VAR = "SDBENCH_SHAPE_PATH"


def find_weights(path: str = "") -> str:
    if path:
        return path
    if os.environ.get(ENV_VAR):
        return os.environ[ENV_VAR]
    try:
        from huggingface_hub import snapshot_download

        return snapshot_download(REPO_ID, local_files_only=True)
    except Exception:
        raise UserError(
            f"Shap-E weights not found; put the diffusers folder of {REPO_ID} somewhere and set {ENV_VAR}=/path "
            "(or --set rep.shap_e_path=...), or use --set rep.init=sphere"
        ) from None


def sample_surface(
    verts: Tensor, faces: Tensor, colours: Tensor, n: int, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor]:
    """``n`` points on a triangle mesh (area-weighted) and their interpolated vertex colours.

    Args: ``verts [V, 3]``, ``faces [F, 3]`` (int), ``colours [V, 3]``. Returns ``[n, 3]``, ``[n, 3]``.
    """
    tri = verts[faces]  # [F, 3, 3]
    area = torch.linalg.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0], dim=-1).norm(dim=-1)
    face = torch.multinomial(area / area.sum(), n, replacement=True, generator=generator)
    u, v = torch.rand(n, generator=generator), torch.rand(n, generator=generator)
    flip = u + v > 1
    u, v = torch.where(flip, 1 - u, u), torch.where(flip, 1 - v, v)
    w = torch.stack([1 - u - v, u, v], dim=1)  # [n, 3] barycentric
    pts = (w[:, :, None] * tri[face]).sum(1)
    col = (w[:, :, None] * colours[faces[face]]).sum(1)
    return pts, col


def y_up_to_z_up(points: Tensor) -> Tensor:
    """(x, y, z) with y up → (x, −z, y) with z up (a rotation about x)."""
    return torch.stack([points[:, 0], -points[:, 2], points[:, 1]], dim=1)


@torch.no_grad()
def shap_e_points(
    path: str,
    prompt: str,
    n: int,
    num_inference_steps: int = 64,
    guidance_scale: float = 15.0,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """Means ``[n, 3]`` and colours ``[n, 3]`` from a local Shap-E pipeline for ``prompt``; the latent's
    noise and the surface samples are drawn from ``generator`` (a CPU generator)."""
    from diffusers import ShapEPipeline

    folder = find_weights(path)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        pipe = ShapEPipeline.from_pretrained(folder, local_files_only=True).to(device)
    except (OSError, ValueError) as e:
        raise UserError(f"cannot load Shap-E from {folder}: {str(e).splitlines()[0]}") from None
    pipe.set_progress_bar_config(disable=True)
    try:
        latents = None
        if generator is not None:  # the pipeline's own draw would use a generator on its device
            shape = (1, pipe.prior.config.num_embeddings * pipe.prior.config.embedding_dim)
            latents = torch.randn(shape, generator=generator).to(device)
        mesh = pipe(
            prompt,
            num_inference_steps=num_inference_steps,
            guidance_scale=guidance_scale,
            output_type="mesh",
            latents=latents,
        ).images[0]
    except (ValueError, RuntimeError, IndexError) as e:  # marching cubes found no surface
        raise UserError(
            f"Shap-E produced no surface for {prompt!r} ({str(e).splitlines()[0]}); use --set rep.init=sphere"
        ) from None
    if mesh.faces.numel() == 0:
        raise UserError(f"Shap-E produced an empty mesh for {prompt!r}; use --set rep.init=sphere")
    verts = mesh.verts.float().cpu()
    faces = mesh.faces.long().cpu()
    colours = torch.stack([mesh.vertex_channels[c].float().cpu() for c in ("R", "G", "B")], dim=1).clamp(0, 1)
    pts, col = sample_surface(verts, faces, colours, n, generator)
    return y_up_to_z_up(pts), col
