"""NeRF: compositing against the analytic slab, ray bounds, rendering, occupancy skipping."""

from __future__ import annotations

import math

import pytest
import torch

from sdbench.cameras import Cameras
from sdbench.representations.nerf import NeRF, composite, ray_sphere, stratified_bins


@pytest.mark.parametrize("sigma", [0.5, 2.0, 8.0])
def test_constant_density_slab_transmits_exp_minus_sigma_d(sigma):
    """Rays cross a slab of thickness d = 0.6 with density σ between empty space: T = e^{−σd}."""
    rays, S = 4, 50
    t_starts, t_ends, t = stratified_bins(torch.zeros(rays), torch.full((rays,), 2.0), S, jitter=False)
    inside = (t > 0.72) & (t < 1.32)  # bins are 0.04 long: the slab [0.72, 1.32] is 15 whole bins
    sigmas = torch.where(inside, torch.full_like(t, sigma), torch.zeros_like(t))
    colour = torch.tensor([0.2, 0.6, 0.9])
    rgb, acc = composite(t_starts, t_ends, sigmas, colour.expand(rays, S, 3), torch.ones(3))
    T = math.exp(-sigma * 0.6)
    torch.testing.assert_close(acc, torch.full((rays, 1), 1 - T), atol=1e-6, rtol=0)
    torch.testing.assert_close(rgb, (1 - T) * colour.expand(rays, 3) + T * torch.ones(rays, 3), atol=1e-6, rtol=0)


def test_misaligned_bins_approach_the_analytic_value():
    t_starts, t_ends, t = stratified_bins(torch.zeros(1), torch.full((1,), 2.0), 512, jitter=False)
    sigmas = torch.where((t > 0.55) & (t < 1.45), 3.0, 0.0)
    _, acc = composite(t_starts, t_ends, sigmas, torch.zeros(1, 512, 3), torch.zeros(3))
    assert abs(acc.item() - (1 - math.exp(-3.0 * 0.9))) < 5e-3


def test_ray_sphere_bounds():
    origins = torch.tensor([[3.0, 0, 0], [3.0, 0.5, 0], [3.0, 2.0, 0], [0.0, 0, 0]])
    dirs = torch.tensor([[-1.0, 0, 0]] * 4)
    near, far, hit = ray_sphere(origins, dirs, 1.0)
    assert hit.tolist() == [True, True, False, True]
    torch.testing.assert_close(near[:2], torch.tensor([2.0, 3 - math.sqrt(0.75)]))
    torch.testing.assert_close(far[:2], torch.tensor([4.0, 3 + math.sqrt(0.75)]))
    assert near[3] == 0 and far[3] == 1  # from inside the sphere


def test_render_shapes_gradients_and_blob_start():
    torch.manual_seed(0)
    rep = NeRF(NeRF.Config(), 16)
    out = rep.render(Cameras.orbit(2, elevation=20.0), 16, 16)
    assert out.rgb.shape == (2, 3, 16, 16) and out.alpha.shape == (2, 1, 16, 16)
    # the density blob makes an opaque ball in the middle and leaves the corners to the background
    assert out.alpha[:, 0, 8, 8].min() > 0.9 and out.alpha[:, 0, 0, 0].max() < 0.05
    (out.rgb.mean()).backward()
    for group in rep.parameter_groups():
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in group["params"]), group["name"]


def test_occupancy_skipping_changes_nothing_visible():
    """Skipped samples are those whose one-step opacity is below the threshold (here 0.1 %)."""
    torch.manual_seed(0)
    rep = NeRF(NeRF.Config(occupancy_threshold=1e-3), 16)
    rep.eval()
    cams = Cameras.orbit(2, elevation=10.0)
    full = rep.render(cams, 16, 16)
    rep.post_step(0, {}, full)  # builds the occupancy grid
    occupied = rep.estimator().binaries.float().mean().item()
    assert 0.0 < occupied < 0.5
    skipped = rep.render(cams, 16, 16)
    # each skipped sample has one-step opacity < 0.1 %, and a ray crosses at most ~20 such samples
    torch.testing.assert_close(skipped.rgb, full.rgb, atol=2e-2, rtol=0)
    torch.testing.assert_close(skipped.alpha, full.alpha, atol=2e-2, rtol=0)


def test_learned_background_is_trained():
    rep = NeRF(NeRF.Config(background="learned", blob_density=0.0, density_bias=-10.0), 8)
    out = rep.render(Cameras.orbit(1), 8, 8)
    out.rgb.mean().backward()
    names = [g["name"] for g in rep.parameter_groups()]
    assert "background" in names and rep.background_mlp[0].weight.grad.abs().sum() > 0


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="nerfacc's occupancy-grid sampler needs CUDA")
def test_cuda_occupancy_path_matches_cpu_stratified_path():
    torch.manual_seed(0)
    rep = NeRF(NeRF.Config(render_step_size=0.005), 32)
    rep.eval()
    cams = Cameras.orbit(2, elevation=15.0)
    cpu = rep.render(cams, 32, 32)
    rep = rep.cuda()
    for step in range(0, 64, 16):
        rep.post_step(step, {}, cpu)
    gpu = rep.render(cams.to("cuda"), 32, 32)
    assert (gpu.rgb.cpu() - cpu.rgb).abs().mean() < 2e-2
