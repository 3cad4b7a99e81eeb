"""The CPU rasteriser against a brute-force per-pixel reference, against its previous implementation
(``SDBENCH_LEGACY_PATH=1``) and finite differences (and gsplat CUDA when present)."""

from __future__ import annotations

import math

import pytest
import torch

from sdbench.cameras import Cameras
from sdbench.representations import splat


def scene(n: int = 200, seed: int = 0, sh_degree: int = 1):
    g = torch.Generator().manual_seed(seed)
    means = (torch.rand(n, 3, generator=g) * 2 - 1) * 0.7
    quats = torch.randn(n, 4, generator=g)
    scales = torch.exp(torch.randn(n, 3, generator=g) * 0.5 - 2.5)
    opacities = torch.sigmoid(torch.randn(n, generator=g) * 2)
    sh = torch.randn(n, (sh_degree + 1) ** 2, 3, generator=g) * 0.4
    return [t.requires_grad_(True) for t in (means, quats, scales, opacities, sh)]


@pytest.mark.parametrize("n_cams,size,sh_degree", [(1, 16, 0), (3, 20, 1), (2, 24, 2)])
def test_sparse_matches_dense_reference_forward_and_backward(n_cams, size, sh_degree):
    params = scene(sh_degree=sh_degree)
    cams = Cameras(
        torch.linspace(-170, 170, n_cams), torch.linspace(-5, 50, n_cams), torch.full((n_cams,), 3.0), torch.full((n_cams,), 40.0)
    )
    args = (cams.viewmats, cams.intrinsics(size, size), size, size, sh_degree, torch.tensor([0.2, 0.5, 1.0]))
    cot = torch.randn(n_cams, size, size, 3, generator=torch.Generator().manual_seed(1))
    results = []
    for dense in (False, True):
        rgb, alpha, meta = splat.rasterize_torch(*params, *args, dense=dense)
        grads = torch.autograd.grad((rgb * cot).sum() + alpha.sum(), params)
        results.append((rgb.detach(), alpha.detach(), grads))
    (rgb_s, a_s, g_s), (rgb_d, a_d, g_d) = results
    # forward: the sparse path projects with its own arithmetic (dense: gsplat's functions) and sums
    # the same terms in a different order (float32 rounding, ~1e-7)
    torch.testing.assert_close(rgb_s, rgb_d, atol=1e-5, rtol=0)
    torch.testing.assert_close(a_s, a_d, atol=1e-5, rtol=0)
    # backward: the sparse path takes transmittance from a float64 log-sum and differentiates it by
    # hand, the dense one autograds a cumulative product; gradients reach |g| ~ 50, so compare
    # relative to each tensor's scale
    for name, gs, gd in zip(("means", "quats", "scales", "opacities", "sh"), g_s, g_d):
        torch.testing.assert_close(gs, gd, atol=1e-5 * max(1.0, gd.abs().max().item()), rtol=0, msg=name)


def test_empty_and_offscreen_scenes_render_the_background():
    params = [t.detach() for t in scene(5)]
    params[0] = params[0] + torch.tensor([0.0, 0.0, 100.0])  # far above every view
    cams = Cameras.orbit(2)
    bg = torch.tensor([0.1, 0.2, 0.3])
    rgb, alpha, _ = splat.rasterize_torch(*params, cams.viewmats, cams.intrinsics(8, 8), 8, 8, 1, bg)
    torch.testing.assert_close(rgb, bg.expand(2, 8, 8, 3))
    assert alpha.abs().max() == 0


def test_an_opaque_gaussian_stops_compositing():
    """A near-opaque Gaussian in front hides one behind it: gsplat's T < 1e-4 stop rule."""
    means = torch.tensor([[0.0, 0.0, 0.5], [0.0, 0.0, -0.5]])  # camera on +z... placed via orbit below
    cams = Cameras(torch.tensor([0.0]), torch.tensor([90.0]), torch.tensor([3.0]), torch.tensor([40.0]))  # looking down -z
    quats = torch.tensor([[1.0, 0, 0, 0]] * 2)
    scales = torch.full((2, 3), 0.5)
    sh = torch.stack([torch.full((1, 3), 2.0), torch.full((1, 3), -2.0)])  # front bright, back dark
    rgb, alpha, _ = splat.rasterize_torch(
        means, quats, scales, torch.tensor([0.9999, 0.9999]), sh, cams.viewmats, cams.intrinsics(9, 9), 9, 9, 0, torch.zeros(3)
    )
    centre = rgb[0, 4, 4]
    front_colour = 2.0 * 0.28209479177387814 + 0.5
    # α is clamped to 0.999, T after it is 0.001 > 1e-4, so the back one still adds 0.001·0.999·its colour
    expected = 0.999 * front_colour + 0.001 * 0.999 * max(0.0, -2.0 * 0.28209479177387814 + 0.5)
    torch.testing.assert_close(centre, torch.full((3,), expected), atol=1e-4, rtol=0)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA for gsplat's kernels")
def test_torch_path_matches_gsplat_cuda():
    params = [t.detach().cuda() for t in scene(500, sh_degree=1)]
    cams = Cameras.orbit(3, elevation=20.0).to("cuda")
    args = (cams.viewmats, cams.intrinsics(64, 64), 64, 64, 1, torch.ones(3, device="cuda"))
    rgb_t, a_t, _ = splat.rasterize_torch(*params, *args)
    rgb_c, a_c, _ = splat.rasterize(*params, *args)
    # gsplat composites per 16×16 tile in float32 with its own sort; expect agreement to ~1e-3
    assert (rgb_t - rgb_c).abs().max() < 2e-3 and (a_t - a_c).abs().max() < 2e-3


# ---------------------------------------------------------------- new against the previous implementation
def _scene(kind: str, n: int = 300, seed: int = 0):
    """Random Gaussians around the origin, with the edge case ``kind`` built in."""
    g = torch.Generator().manual_seed(seed)
    means = (torch.rand(n, 3, generator=g) * 2 - 1) * 0.7
    quats = torch.randn(n, 4, generator=g)
    scales = torch.exp(torch.randn(n, 3, generator=g) * 0.5 - 2.5)
    opacities = torch.sigmoid(torch.randn(n, generator=g) * 2)
    sh = torch.randn(n, 4, 3, generator=g) * 0.4
    if kind == "opaque":  # many layers near α's clamp: most pixels stop at T ≤ 1e-4
        opacities = 0.97 + 0.03 * torch.rand(n, generator=g)
        opacities[::7] = 1.0  # o e^{−σ} > 0.999 near the centre: α clamped, no gradient through it
        scales = scales * 2
    elif kind == "offscreen":  # behind the camera, far outside the view, and straddling the border
        means[: n // 3] += torch.tensor([0.0, 0.0, 40.0])
        means[n // 3 : n // 2] *= 6.0
    elif kind == "large":  # a few splats wider than the image (several blocks each)
        scales[:5] = 1.5
    elif kind == "faint":  # opacities below 1/255 never reach α ≥ 1/255
        opacities[::2] = 1e-3
    elif kind == "ties":  # exact copies (gsplat's clone): equal depths, ordered by index
        means[n // 2 :] = means[: n - n // 2]
        scales[n // 2 :] = scales[: n - n // 2]
    return [t.requires_grad_(True) for t in (means, quats, scales, opacities, sh)]


def _render_both(monkeypatch, params, cams, size, sh_degree, bg):
    """rgb, alpha, gradients of (params…, means2d) under a fixed cotangent, new path then old."""
    cot = torch.randn(len(cams), size, size, 3, generator=torch.Generator().manual_seed(3))
    out = []
    for legacy in ("0", "1"):
        monkeypatch.setenv("SDBENCH_LEGACY_PATH", legacy)
        rgb, alpha, meta = splat.rasterize_torch(*params, cams.viewmats, cams.intrinsics(size, size), size, size, sh_degree, bg)
        grads = torch.autograd.grad((rgb * cot).sum() + 2 * alpha.sum(), [*params, meta["means2d"]])
        out.append((rgb.detach(), alpha.detach(), grads, meta["radii"]))
    return out


def _assert_same(new, old):
    (rgb_n, a_n, g_n, r_n), (rgb_o, a_o, g_o, r_o) = new, old
    assert torch.equal(r_n, r_o)
    # images: float32 rounding of a regrouped projection and of the compositing sums (~1e-7; 1e-5 leaves
    # room for ~100 pairs per pixel)
    torch.testing.assert_close(rgb_n, rgb_o, atol=1e-5, rtol=0)
    torch.testing.assert_close(a_n, a_o, atol=1e-5, rtol=0)
    # gradients: sums of ~100 pair terms whose ∂/∂α carries 1 / (1 − α) ≤ 1000, so float32 rounding
    # (~1e-7) can reach ~1e-4 of a tensor's largest entry; relative to each tensor's scale
    for name, gn, go in zip(("means", "quats", "scales", "opacities", "sh", "means2d"), g_n, g_o):
        torch.testing.assert_close(gn, go, atol=1e-4 * max(go.abs().max().item(), 1e-6), rtol=0, msg=name)


@pytest.mark.parametrize("kind", ["random", "opaque", "offscreen", "large", "faint", "ties"])
@pytest.mark.parametrize("size,n_cams,sh_degree", [(32, 1, 0), (24, 3, 1)])
def test_new_path_matches_the_previous_implementation(kind, size, n_cams, sh_degree, monkeypatch):
    params = _scene(kind)
    cams = Cameras(
        torch.linspace(-150, 150, n_cams),
        torch.linspace(-10, 40, n_cams),
        torch.full((n_cams,), 2.5),
        torch.full((n_cams,), 40.0),
    )
    new, old = _render_both(monkeypatch, params, cams, size, sh_degree, torch.tensor([1.0, 1.0, 1.0]))
    _assert_same(new, old)
    assert old[1].max() > 0  # something was drawn
    if kind == "opaque":
        assert (new[1] > 0.99).float().mean() > 0.3  # T ≤ 1e-4 stops many pixels


def test_an_empty_view_renders_the_background_with_zero_gradients_on_both_paths(monkeypatch):
    params = _scene("random", n=20)
    with torch.no_grad():
        params[0] += torch.tensor([0.0, 0.0, 100.0])  # far above every view
    cams = Cameras.orbit(2)
    bg = torch.tensor([0.1, 0.2, 0.3])
    new, old = _render_both(monkeypatch, params, cams, 16, 1, bg)
    _assert_same(new, old)
    torch.testing.assert_close(new[0], bg.expand(2, 16, 16, 3))
    assert all(g.abs().max() == 0 for g in new[2])


def test_the_compositors_agree_on_the_same_projection():
    """composite_sparse (hand-written backward) against the previous autograd compositor on one
    projection: only the float64 running sums differ, so outputs and gradients agree to ~1e-7."""
    params = _scene("opaque", n=400, seed=4)
    cams = Cameras.orbit(2, elevation=20.0, radius=2.5)
    proj = splat.project(*params[:3], params[4], cams.viewmats, cams.intrinsics(32, 32), 32, 32, 1)
    bg = torch.tensor([0.3, 0.6, 0.9], requires_grad=True)
    inputs = [proj.means2d, proj.conics, params[3], proj.colors, bg]
    cot = torch.randn(2, 32, 32, 3, generator=torch.Generator().manual_seed(5))
    res = []
    for fn in (splat.composite_sparse, splat._composite_sparse_legacy):
        rgb, alpha = fn(proj, params[3], 32, 32, bg)
        res.append((rgb, alpha, torch.autograd.grad((rgb * cot).sum() - alpha.sum(), inputs, retain_graph=True)))
    (rgb_n, a_n, g_n), (rgb_o, a_o, g_o) = res
    torch.testing.assert_close(rgb_n, rgb_o, atol=1e-6, rtol=0)
    torch.testing.assert_close(a_n, a_o, atol=1e-6, rtol=0)
    for name, gn, go in zip(("means2d", "conics", "opacities", "colors", "background"), g_n, g_o):
        torch.testing.assert_close(gn, go, atol=1e-5 * max(go.abs().max().item(), 1e-6), rtol=0, msg=name)


def test_projection_matches_gsplats_reference_functions():
    params = _scene("offscreen", n=300, seed=2)
    cams = Cameras.orbit(3, elevation=25.0, radius=2.5)
    args = (params[0], params[1], params[2], params[4], cams.viewmats, cams.intrinsics(20, 28), 28, 20, 1)
    new, ref = splat.project(*args), splat._project_gsplat(*args)
    assert torch.equal(new.radii, ref.radii) and (new.radii > 0).any() and (new.radii == 0).any()
    outs = ("means2d", "depths", "conics", "colors")
    for name in outs:
        torch.testing.assert_close(getattr(new, name), getattr(ref, name), rtol=1e-5, atol=1e-5, msg=name)
    cots = [torch.randn_like(getattr(new, name), generator=torch.Generator().manual_seed(i)) for i, name in enumerate(outs)]
    grads = [
        torch.autograd.grad(sum((getattr(p, name) * c).sum() for name, c in zip(outs, cots)), [params[i] for i in (0, 1, 2, 4)])
        for p in (new, ref)
    ]
    for name, gn, gr in zip(("means", "quats", "scales", "sh"), *grads):
        torch.testing.assert_close(gn, gr, atol=1e-5 * max(gr.abs().max().item(), 1e-6), rtol=0, msg=name)


def test_the_hand_written_backward_matches_finite_differences():
    """gradcheck in float64 (means2d, conics, opacities, 4-channel colours, background) on a scene
    where no pair is near a threshold, so that a step of 1e-6 changes no pair's membership: every
    ``o e^{−σ}`` at least 0.5 % away from 1/255, opacities ≤ 0.7 (six layers keep T > 1e-4, α < 0.999),
    radius boxes covering the whole image."""
    torch.manual_seed(0)
    C, N, size = 2, 6, 8
    means2d = (torch.rand(C, N, 2, dtype=torch.float64) * 4 + 2).requires_grad_(True)
    conics = torch.tensor([0.6, 0.1, 0.5], dtype=torch.float64).repeat(C, N, 1).requires_grad_(True)
    opacities = torch.linspace(0.3, 0.7, N, dtype=torch.float64).requires_grad_(True)
    colors = torch.rand(C, N, 4, dtype=torch.float64).requires_grad_(True)
    bg = torch.rand(4, dtype=torch.float64).requires_grad_(True)
    radii = torch.full((C, N, 2), size, dtype=torch.int32)
    depths = torch.rand(C, N, dtype=torch.float64) + 2
    with torch.no_grad():
        ys, xs = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
        dx, dy = xs + 0.5 - means2d[..., 0, None, None], ys + 0.5 - means2d[..., 1, None, None]
        sigma = 0.5 * (0.6 * dx * dx + 0.5 * dy * dy) + 0.1 * dx * dy
        raw = opacities[:, None, None] * torch.exp(-sigma)
        assert ((raw - splat.ALPHA_MIN).abs() > 5e-3 * splat.ALPHA_MIN).all() and (raw > splat.ALPHA_MIN).any()

    def fn(m, q, o, c, b):
        return splat.composite_sparse(splat.Projected(radii, m, depths, q, c), o, size, size, b)

    assert torch.autograd.gradcheck(fn, (means2d, conics, opacities, colors, bg), eps=1e-6, atol=1e-6)


def test_the_legacy_switch_selects_the_previous_compositor(monkeypatch):
    params = [t.detach() for t in _scene("random", n=50)]
    cams = Cameras.orbit(1)
    calls = []
    real = splat._composite_sparse_legacy
    monkeypatch.setattr(splat, "_composite_sparse_legacy", lambda *a: calls.append(1) or real(*a))
    for legacy, expected in (("0", 0), ("1", 1)):
        monkeypatch.setenv("SDBENCH_LEGACY_PATH", legacy)
        splat.rasterize_torch(*params, cams.viewmats, cams.intrinsics(8, 8), 8, 8, 1, torch.ones(3))
        splat.rasterize_surface(*params, cams.viewmats, cams.intrinsics(8, 8), 8, 8, 1)
        assert len(calls) == 2 * expected


def test_surface_render_matches_the_previous_implementation(monkeypatch):
    params = _scene("opaque", n=200, seed=6)
    cams = Cameras.orbit(2, elevation=10.0, radius=2.5)
    outs = []
    for legacy in ("0", "1"):
        monkeypatch.setenv("SDBENCH_LEGACY_PATH", legacy)
        rgb, alpha, depth = splat.rasterize_surface(*params, cams.viewmats, cams.intrinsics(16, 16), 16, 16, 1)
        outs.append((rgb, alpha, depth, torch.autograd.grad(depth.sum() + rgb.sum(), params)))
    for a, b in zip(outs[0][:3], outs[1][:3]):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-6)
    for gn, go in zip(outs[0][3], outs[1][3]):
        torch.testing.assert_close(gn, go, atol=1e-4 * max(go.abs().max().item(), 1e-6), rtol=0)
    assert math.isfinite(outs[0][2].sum().item())


def test_the_projection_backward_matches_finite_differences():
    """gradcheck in float64 of means2d, depths and conics against means, quats and scales, with one
    Gaussian outside the field of view (where the Jacobian's clamp stops the gradient of x / z)."""
    g = torch.Generator().manual_seed(0)
    means = ((torch.rand(12, 3, generator=g) * 2 - 1) * 0.7).double()
    means[0, 1] += 3.0  # beside both views, in front of them
    quats = torch.randn(12, 4, generator=g).double()
    scales = torch.exp(torch.randn(12, 3, generator=g) * 0.5 - 2).double()
    cams = Cameras.orbit(2, elevation=20.0, radius=2.5)
    viewmats, Ks = cams.viewmats.double(), cams.intrinsics(16, 20).double()
    with torch.no_grad():  # the clamped case is exercised
        t = viewmats[:, :3, :3] @ means.T + viewmats[:, :3, 3:]
        reach = (20 - Ks[:, 0, 2, None]) / Ks[:, 0, 0, None] * 1.3  # cx = W / 2: the limit on either side
        assert ((t[:, 0] / t[:, 2]).abs() > reach)[:, 0].all() and (t[:, 2] > 0).all()

    def fn(m, q, s):
        return splat._Projection.apply(m, q, s, viewmats, Ks, 20, 16, 0.3, 0.01, 1e10)[:3]

    inputs = tuple(t.requires_grad_(True) for t in (means, quats, scales))
    assert torch.autograd.gradcheck(fn, inputs, eps=1e-6, atol=1e-6)


def test_cameras_with_gradient_go_through_the_reference_projection():
    params = [t.detach() for t in _scene("random", n=40)]
    cams = Cameras.orbit(2)
    viewmats = cams.viewmats.clone().requires_grad_(True)
    rgb, _, _ = splat.rasterize_torch(*params, viewmats, cams.intrinsics(12, 12), 12, 12, 1, torch.ones(3))
    (grad,) = torch.autograd.grad(rgb.sum(), viewmats)
    assert grad.abs().max() > 0
