from __future__ import annotations

import pytest
import torch

from sdbench.cameras import Cameras
from sdbench.errors import UserError
from sdbench.representations.gaussians import Gaussians, load_ply, ply_properties, resample_points, save_ply


def rep(**kw):
    torch.manual_seed(0)
    return Gaussians(Gaussians.Config(**{"num_points": 300, **kw}), resolution=16)


def test_render_shapes_and_grey_start():
    g = rep()
    out = g.render(Cameras.orbit(2), 16, 16)
    assert out.rgb.shape == (2, 3, 16, 16) and out.alpha.shape == (2, 1, 16, 16)
    inside = out.alpha > 0.5
    assert inside.any()
    # grey Gaussians over white: covered pixels are darker than the background, none is coloured
    assert out.rgb.masked_select(inside.expand_as(out.rgb)).max() < 1.0
    torch.testing.assert_close(out.rgb[:, 0], out.rgb[:, 1])


def test_every_parameter_gets_a_gradient_and_its_own_optimizer():
    g = rep(sh_degree=1)
    with torch.no_grad():  # anisotropic scales, so that rotations matter
        g.params["scales"].normal_(-3.0, 0.5)
    out = g.render(Cameras.orbit(1), 16, 16)
    (out.rgb.mean() + out.alpha.mean()).backward()
    for name, p in g.params.items():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    opts = g.make_optimizers()
    assert set(opts) == set(g.params) and all(len(o.param_groups) == 1 for o in opts.values())
    assert opts["opacities"].param_groups[0]["lr"] == g.cfg.lr_opacities


def test_ply_has_the_inria_layout_and_round_trips(tmp_path):
    from plyfile import PlyData

    g = rep(sh_degree=2)
    with torch.no_grad():
        g.params["shN"].normal_(0, 0.1)
        g.params["quats"].normal_()
    path = save_ply(g, tmp_path / "model.ply")
    names = list(PlyData.read(str(path))["vertex"].data.dtype.names)
    assert names == ply_properties(2) and names[:9] == ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"]
    assert names[9] == "f_rest_0" and names[-8:] == [
        "opacity",
        "scale_0",
        "scale_1",
        "scale_2",
        "rot_0",
        "rot_1",
        "rot_2",
        "rot_3",
    ]
    v = PlyData.read(str(path))["vertex"]
    # f_rest is channel-major: the first K−1 entries are the red coefficients
    torch.testing.assert_close(torch.tensor(v["f_rest_1"].copy()), g.params["shN"][:, 1, 0].detach())
    torch.testing.assert_close(torch.tensor(v["f_rest_8"].copy()), g.params["shN"][:, 0, 1].detach())
    back = load_ply(path, resolution=16)
    cams = Cameras.orbit(3, elevation=30.0)
    with torch.no_grad():
        torch.testing.assert_close(back.render(cams, 16, 16).rgb, g.render(cams, 16, 16).rgb)


def test_initialisations(tmp_path):
    torch.manual_seed(0)
    g = rep(init="shape:cube", num_points=500)
    m = g.params["means"]
    assert m.abs().max() <= 0.5 + 1e-6 and len(m) == 500  # inside the toy cube
    with pytest.raises(UserError, match="unknown toy shape"):
        rep(init="shape:dragon")
    with pytest.raises(UserError, match="unknown init"):
        rep(init="voxels")
    # a .ply point cloud (red/green/blue in 0..255) upsampled with jitter
    import numpy as np
    from plyfile import PlyData, PlyElement

    pts = np.zeros(50, dtype=[("x", "f4"), ("y", "f4"), ("z", "f4"), ("red", "u1"), ("green", "u1"), ("blue", "u1")])
    pts["x"] = np.linspace(-0.5, 0.5, 50)
    pts["red"] = 255
    PlyData([PlyElement.describe(pts, "vertex")]).write(str(tmp_path / "pc.ply"))
    g = rep(init=f"ply:{tmp_path / 'pc.ply'}", num_points=200)
    assert len(g.params["means"]) == 200
    colour = g.activated()["sh"][:, 0] * 0.28209479177387814 + 0.5
    torch.testing.assert_close(colour, torch.tensor([1.0, 0.0, 0.0]).expand(200, 3), atol=1e-5, rtol=0)
    with pytest.raises(UserError, match="does not exist"):
        rep(init="ply:/no/such.ply")


def test_resample_points_keeps_originals_when_upsampling():
    xyz, rgb = torch.randn(10, 3), torch.rand(10, 3)
    up, up_rgb = resample_points(xyz, rgb, 25)
    assert torch.equal(up[:10], xyz) and up.shape == (25, 3) and up_rgb.shape == (25, 3)
    down, _ = resample_points(xyz, rgb, 4)
    assert down.shape == (4, 3)


def test_gsplat_default_strategy_densifies_on_cpu():
    """gsplat's DefaultStrategy is pure torch: it clones, splits and prunes on the CPU path too."""
    g = rep(
        num_points=200, densify_from=0, densify_every=2, densify_grad=0.0, prune_opacity=0.0, max_points=10_000, init_scale=0.02
    )
    opts = g.make_optimizers()
    cams = Cameras.orbit(1)
    before = g.num_points
    for step in range(1, 4):
        out = g.render(cams, 16, 16)
        g.pre_backward(step, out)
        ((out.rgb - 0.2) ** 2).mean().backward()
        for o in opts.values():
            o.step()
            o.zero_grad()
        g.post_step(step, opts, out)
    assert g.num_points > before
    assert all(o.param_groups[0]["params"][0] is g.params[k] for k, o in opts.items())  # optimisers follow the new tensors
    assert opts["means"].state[g.params["means"]]["exp_avg"].shape == g.params["means"].shape


def test_growth_stops_at_max_points():
    g = rep(num_points=200, densify_from=0, densify_every=1, densify_grad=0.0, prune_opacity=0.0, max_points=200)
    opts = g.make_optimizers()
    for step in range(1, 3):
        out = g.render(Cameras.orbit(1), 16, 16)
        g.pre_backward(step, out)
        out.rgb.mean().backward()
        g.post_step(step, opts, out)
    assert g.num_points == 200
