"""Shap-E initialisation: local loading (tiny random pipeline), surface sampling, axes, failures.

A tiny random Shap-E (diffusers' fast-test sizes) loads and samples latents offline, but its random
renderer has no surface for marching cubes to find, so the mesh step is checked on a known mesh and
its failure mode on the tiny pipeline. Real weights: ``SDBENCH_SHAPE_PATH`` (not available here).
"""

from __future__ import annotations

import pytest
import torch

from sdbench.errors import UserError
from sdbench.representations import shap_e


def cube_mesh():
    v = torch.tensor([[x, y, z] for x in (-0.5, 0.5) for y in (-0.5, 0.5) for z in (-0.5, 0.5)], dtype=torch.float32)
    faces = torch.tensor(
        [
            [0, 1, 3],
            [0, 3, 2],
            [4, 6, 7],
            [4, 7, 5],
            [0, 4, 5],
            [0, 5, 1],
            [2, 3, 7],
            [2, 7, 6],
            [0, 2, 6],
            [0, 6, 4],
            [1, 5, 7],
            [1, 7, 3],
        ]
    )
    colours = torch.tensor([[1.0, 0.0, 0.0]] * 8)
    return v, faces, colours


def test_surface_samples_lie_on_the_mesh_with_its_colours():
    v, f, c = cube_mesh()
    pts, col = shap_e.sample_surface(v, f, c, 2000, generator=torch.Generator().manual_seed(0))
    assert pts.shape == (2000, 3) and torch.allclose(col, torch.tensor([1.0, 0.0, 0.0]).expand(2000, 3))
    assert torch.allclose(pts.abs().max(dim=1).values, torch.full((2000,), 0.5), atol=1e-5)  # on a face of the cube
    # area-weighted: each of the six faces gets about a sixth
    face_axis = (pts.abs() > 0.5 - 1e-5).float().argmax(dim=1)
    counts = torch.bincount(face_axis, minlength=3).float() / 2000
    assert torch.allclose(counts, torch.full((3,), 1 / 3), atol=0.05)


def test_y_up_becomes_z_up():
    up = shap_e.y_up_to_z_up(torch.tensor([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]))
    torch.testing.assert_close(up, torch.tensor([[0.0, 0.0, 1.0], [0.0, -1.0, 0.0]]))


def test_tiny_random_pipeline_loads_offline_and_reports_no_surface(tmp_path):
    from sdbench.testing import tiny_shap_e

    folder = tiny_shap_e(tmp_path / "shap-e")
    from diffusers import ShapEPipeline

    pipe = ShapEPipeline.from_pretrained(folder, local_files_only=True)
    latents = pipe("a red cube", num_inference_steps=2, guidance_scale=15.0, output_type="latent").images
    assert latents.shape[0] == 1 and torch.isfinite(latents).all()
    with pytest.raises(UserError, match="no surface|empty mesh"):
        shap_e.shap_e_points(str(folder), "a red cube", 100, num_inference_steps=2)


def test_missing_weights_name_the_env_var(monkeypatch, tmp_path):
    monkeypatch.delenv(shap_e.ENV_VAR, raising=False)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    with pytest.raises(UserError, match=shap_e.ENV_VAR):
        shap_e.find_weights("")
