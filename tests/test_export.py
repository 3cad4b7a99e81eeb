"""``sdbench export``: the evaluators' layouts (file names, counts, sizes, cameras) on toy-world
trials, outward normals of a sphere, sweeps, and bad input (one line, exit 2)."""

from __future__ import annotations

import json
import math
import re
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from sdbench import export as E
from sdbench import trial as T
from sdbench.budget import Budget
from sdbench.cli import main


def _run(tmp, name, rep, steps=2, overrides=(), prompt="a red cube", seed=0):
    cfg = T.TrialConfig(
        prompt=prompt, loss="sds", representation=rep, seed=seed, budget=Budget("steps", steps), eval_views=2, turntable_frames=0
    )
    cfg = T.TrialConfig(**{**cfg.__dict__, "metrics": ()})
    out = tmp / name
    T.run_trial(T.resolve(cfg, list(overrides)), out, progress=False)
    return out


@pytest.fixture(scope="module")
def trials(tmp_path_factory):
    """Toy-world trials: 3DGS, NeRF, a 2D image, and a 3DGS sphere (its initial solid ball, 1 step)."""
    tmp = tmp_path_factory.mktemp("trials")
    return {
        "gaussians": _run(tmp, "g", "gaussians", overrides=["rep.num_points=400"]),
        "nerf": _run(tmp, "n", "nerf", prompt="a blue sphere", seed=1),
        "image": _run(tmp, "i", "image"),
        "sphere": _run(
            tmp,
            "s",
            "gaussians",
            steps=1,
            overrides=["rep.init=shape:sphere", "rep.num_points=3000", "rep.init_opacity=0.95", "rep.densify=false"],
        ),
    }


def _png(path):
    with Image.open(path) as im:
        return im.size, np.asarray(im.convert("RGB"), dtype=np.float32) / 255


def test_gpteval3d_layout_is_threestudios_test_orbit():
    lay = E.gpteval3d_layout(T.TrialConfig(prompt="x"))
    torch.testing.assert_close(lay.cameras.azimuth, torch.linspace(0, 360, 120))  # threestudio: first and last coincide
    assert lay.cameras.elevation.unique().tolist() == [15.0]
    assert lay.rgb[:2] == ["rgb_0.png", "rgb_1.png"] and lay.rgb[-1] == "rgb_119.png"
    assert lay.normal[-1] == "normal_119.png" and len(set(lay.rgb + lay.normal)) == 240


def test_t3bench_cameras_are_its_pyrender_poses():
    """T3Bench's render/meshrender.py: camera at icosphere vertex v, pose columns (−r, u', f) with
    f = v/|v|, u = z (y near the poles), r = u × (−v), u' = (−v) × r (OpenGL axes)."""
    lay = E.t3bench_layout(extent=0.8)
    assert len(lay.cameras) == 162 * 5 + 12 and not lay.normal and lay.over_black
    assert lay.rgb[:6] == ["quality/000_0.png", *(f"quality/000_{j}.png" for j in range(1, 5)), "quality/001_0.png"]
    assert lay.rgb[809] == "quality/161_4.png" and lay.rgb[810] == "caption/000.png" and lay.rgb[-1] == "caption/011.png"
    fovs = [math.degrees(math.pi / k) for k in (3, 4, 5, 6, 7.5)]
    torch.testing.assert_close(lay.cameras.fovy[:5], torch.tensor(fovs))
    verts = E.icosphere_vertices(2, 2.2).numpy() * 0.8
    cap = E.icosphere_vertices(0, 2.2).numpy() * 2.2 * 0.8
    c2w = lay.cameras.c2w.double().numpy()
    for k, v in [*((5 * i, verts[i]) for i in range(162)), *((810 + i, cap[i]) for i in range(12))]:
        f = v / np.linalg.norm(v)
        u = np.array([0, 0, 1.0]) if abs(f @ [0, 0, 1]) < 0.99 else np.array([0, 1.0, 0])
        r = np.cross(u, -v)
        r /= np.linalg.norm(r)
        u2 = np.cross(-v, r)
        u2 /= np.linalg.norm(u2)
        gl = np.stack([-r, u2, f], axis=1)  # OpenGL camera: x right, y up, z backwards
        np.testing.assert_allclose(c2w[k, :3, :3], gl * [1, -1, -1], atol=1e-5)  # ours: OpenCV (y down, z forwards)
        np.testing.assert_allclose(c2w[k, :3, 3], v, atol=1e-5)
    assert np.allclose(np.linalg.norm(cap, axis=1), 4.84 * 0.8)  # meshrender_cap.py scales the radius twice


def test_gpteval3d_export_of_a_sweep_is_the_tournament_tree(trials, tmp_path):
    sweep = tmp_path / "sweep"
    for key, tid in (("gaussians", "a-g"), ("nerf", "b-n")):
        shutil.copytree(trials[key], sweep / "trials" / tid)
    (sweep / "trials" / "c-failed").mkdir()
    (sweep / "trials" / "c-failed" / "result.json").write_text(json.dumps({"status": "failed"}))
    out = tmp_path / "gpt"
    assert main(["export", str(sweep), "--format", "gpteval3d", "--size", "16", "--out", str(out), "--quiet"]) == 0
    assert json.loads((out / "prompts.json").read_text()) == ["a blue sphere", "a red cube"]  # ids: sorted prompts
    assert sorted(p.name for p in (out / "methods").iterdir()) == ["sds-gaussians-toy", "sds-nerf-toy"]
    for method, pid, seed in (("sds-gaussians-toy", 1, 0), ("sds-nerf-toy", 0, 1)):
        folder = out / "methods" / method / str(pid) / str(seed)
        names = sorted(p.name for p in folder.iterdir())
        assert names == sorted([f"rgb_{i}.png" for i in range(120)] + [f"normal_{i}.png" for i in range(120)])
        size, rgb = _png(folder / "rgb_0.png")
        assert size == (16, 16) and rgb[0, 0].tolist() == [1.0, 1.0, 1.0]  # the toy world's white background
        _, normal = _png(folder / "normal_0.png")
        assert normal[0, 0].tolist() == [0.0, 0.0, 0.0] and normal[8, 8].sum() > 0.5  # black where empty
    manifest = json.loads((out / "export.json").read_text())
    assert [t["id"] for t in manifest["trials"]] == ["a-g", "b-n"] and manifest["skipped"] == ["c-failed: failed"]
    assert "3DTopia/GPTEval3D" in manifest["layout_source"]


def test_prompt_ids_follow_a_given_prompts_json(trials, tmp_path):
    listed = tmp_path / "prompts.json"
    listed.write_text(json.dumps(["A torn hat", "a red cube"]))
    out = tmp_path / "gpt"
    E.export(trials["gaussians"], "gpteval3d", out, size=8, prompts=listed)
    assert (out / "methods" / "sds-gaussians-toy" / "1" / "0" / "normal_119.png").is_file()
    assert json.loads((out / "prompts.json").read_text()) == ["A torn hat", "a red cube"]


@pytest.mark.parametrize("frame", ["world", "camera"])
def test_sphere_normals_point_outwards_towards_the_camera(trials, tmp_path, frame):
    """The centre pixel of a sphere faces the camera: world (n+1)/2 is (d+1)/2 for the direction d
    to the camera; in the camera frame (OpenGL axes) it is (0.5, 0.5, 1)."""
    out = tmp_path / frame
    E.export(trials["sphere"], "frames", out, size=33, views=4, normals=frame)
    cams = json.loads((out / "cameras.json").read_text())["frames"]
    assert [c["rgb"] for c in cams] == ["rgb_000.png", "rgb_001.png", "rgb_002.png", "rgb_003.png"]
    for i, cam in enumerate(cams):
        size, colour = _png(out / f"normal_{i:03d}.png")
        assert size == (33, 33)
        centre = colour[15:18, 15:18].reshape(-1, 3).mean(0)
        if frame == "camera":
            expected = np.array([0.5, 0.5, 1.0])
        else:
            to_cam = -np.array(cam["c2w"])[:3, 2]  # the optical axis, reversed
            expected = (to_cam + 1) / 2
        np.testing.assert_allclose(centre, expected, atol=0.08)  # a ball of 3000 random splats is bumpy


def test_t3bench_export_writes_its_822_images_over_black(trials, tmp_path):
    out = tmp_path / "t3"
    summary = E.export(trials["gaussians"], "t3bench", out, size=8)
    quality = sorted(p.name for p in (out / "quality").iterdir())
    assert quality == sorted(f"{i:03d}_{j}.png" for i in range(162) for j in range(5))
    assert sorted(p.name for p in (out / "caption").iterdir()) == [f"{i:03d}.png" for i in range(12)]
    size, img = _png(out / "caption" / "000.png")
    assert size == (8, 8) and img[0, 0].tolist() == [0.0, 0.0, 0.0] and img.max() > 0.05
    extent = summary.trials[0]["extent"]
    assert 0.2 < extent < 1.0  # a 400-point ball of radius 0.6, barely trained


def test_frames_of_a_2d_image_is_its_one_image(trials, tmp_path):
    out = tmp_path / "f"
    E.export(trials["image"], "frames", out)
    assert sorted(p.name for p in out.iterdir()) == ["cameras.json", "export.json", "rgb_000.png"]
    assert _png(out / "rgb_000.png")[0] == (32, 32)  # the toy prior's resolution


def _error(capsys, args):
    rc = main(args)
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and err[0].startswith("error: "), (rc, err)
    return err[0]


def test_bad_input_is_one_line_and_exit_2(trials, tmp_path, capsys):
    assert "not a trial directory" in _error(capsys, ["export", str(tmp_path), "--format", "frames"])
    g = str(trials["gaussians"])
    assert re.search(r"unknown export format 'obj'.*gpteval3d, t3bench, frames", _error(capsys, ["export", g, "--format", "obj"]))
    msg = _error(capsys, ["export", str(trials["image"]), "--format", "gpteval3d", "--out", str(tmp_path / "x")])
    assert "needs a 3D representation" in msg and "2D" in msg
    assert "fixes its views" in _error(capsys, ["export", g, "--format", "t3bench", "--views", "3"])
    assert "world or camera" in _error(capsys, ["export", g, "--format", "frames", "--normals", "screen"])
    (tmp_path / "sw" / "trials" / "x").mkdir(parents=True)
    assert "no completed trial" in _error(capsys, ["export", str(tmp_path / "sw"), "--format", "frames"])
