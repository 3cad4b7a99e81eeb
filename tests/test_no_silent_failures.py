"""No silent failures: bad numbers are refused, NaN gradients are counted and can fail a trial, corrupt
inputs are one-line errors, a sweep directory has one driver, an interrupted write keeps the old file."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from sdbench import config as cfgutil
from sdbench import trial as T
from sdbench.budget import Budget
from sdbench.errors import TrialFailed, UserError
from tests.conftest import run_cli


def one_line(proc) -> str:
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), (proc.returncode, proc.stderr[-2000:])
    return lines[0]


# ----------------------------------------------------------------------------------- config values
@pytest.mark.parametrize("value", ["nan", "NaN", "inf", "-inf", "Infinity", "1e999"])
def test_non_finite_config_values_are_refused(value):
    from sdbench.losses.sds import SDS
    from sdbench.trial.spec import TrialConfig

    with pytest.raises(UserError, match=r"bad value for loss.cfg_scale: .* is not a finite number"):
        cfgutil.override(SDS.Config(), "cfg_scale", value, "loss")
    with pytest.raises(UserError, match="trial.cameras.elevation"):
        cfgutil.override(TrialConfig(prompt="a"), "cameras.elevation", f"0,{value}", "trial")
    assert cfgutil.override(SDS.Config(), "cfg_scale", "1e30", "loss").cfg_scale == 1e30  # large but finite is allowed


@pytest.mark.parametrize("text", ["seconds:inf", "seconds:nan", "steps:inf", "nfe:1e999"])
def test_non_finite_budgets_are_refused(text):
    with pytest.raises(UserError, match="budget"):
        Budget.parse(text)


def test_cli_refuses_a_nan_override_with_one_line(tmp_path):
    line = one_line(
        run_cli("run", "--prompt", "a red cube", "--loss", "sds", "--set", "loss.cfg_scale=nan", "--out", str(tmp_path))
    )
    assert line == "error: bad value for loss.cfg_scale: 'nan' is not a finite number"
    assert not list(tmp_path.iterdir())


# ------------------------------------------------------------------------------- NaN gradients
def _spec(prior, loss="sds", overrides=(), steps=6):
    cfg = T.TrialConfig(prompt="a red cube", loss=loss, representation="image", prior=str(prior), budget=Budget("steps", steps))
    return T.resolve(cfg, ("trial.eval_views=1", "trial.metrics=denoise", *overrides))


def test_a_trial_whose_gradients_are_all_non_finite_fails_with_the_reason(tiny_pixel_checkpoint, tmp_path):
    """CFG 1e39 overflows float32: every gradient is inf/NaN. Today's zeroing would 'complete' a trial that never moved."""
    with pytest.raises(TrialFailed, match="non-finite gradients"):
        T.run_trial(_spec(tiny_pixel_checkpoint, overrides=("loss.cfg_scale=1e39",)), tmp_path / "t", progress=False)
    result = json.loads((tmp_path / "t" / "result.json").read_text())
    assert (
        result["status"] == "failed"
        and "in 6 of 6 steps" in result["error"]
        and "max_nonfinite_grad_share=0.1" in result["error"]
    )
    assert result["cost"]["nonfinite_grad_steps"] == 6 and result["cost"]["steps"] == 6
    history = [json.loads(line) for line in (tmp_path / "t" / "history.jsonl").read_text().splitlines()]
    assert history[-1]["nonfinite_grad_steps"] == 6
    # the share is a trial setting: allowing every step lets it complete, still counted
    allowed = T.run_trial(
        _spec(tiny_pixel_checkpoint, overrides=("loss.cfg_scale=1e39", "trial.max_nonfinite_grad_share=1")),
        tmp_path / "u",
        progress=False,
    )
    assert allowed.completed and allowed.cost.nonfinite_grad_steps == 6


@pytest.mark.parametrize("loss,expected", [("onebad", 1), ("nanback", 10)])
def test_non_finite_gradients_are_zeroed_and_counted_per_step(tiny_pixel_checkpoint, tmp_path, monkeypatch, loss, expected):
    from sdbench import registry

    plugins = "sdbench.losses:onebad=tests.fake_plugins:OneBadStepLoss sdbench.losses:nanback=tests.fake_plugins:NaNBackwardLoss"
    monkeypatch.setenv(registry.ENV_VAR, plugins)
    registry.LOSSES.refresh()
    try:
        spec = _spec(
            tiny_pixel_checkpoint, loss=loss, overrides=("trial.log_every=1", "trial.max_nonfinite_grad_share=1"), steps=10
        )
        result = T.run_trial(spec, tmp_path / loss, progress=False)
    finally:
        registry.LOSSES.refresh()
    assert result.completed and result.cost.nonfinite_grad_steps == expected
    history = [json.loads(line) for line in (tmp_path / loss / "history.jsonl").read_text().splitlines()]
    assert [h["nonfinite_grad_steps"] for h in history] == (
        [0, 0, 1, 1, 1, 1, 1, 1, 1, 1] if loss == "onebad" else list(range(1, 11))
    )
    assert (tmp_path / loss / "views.png").is_file()  # the zeroed steps did no harm: the image renders finite


def test_the_share_is_validated(tiny_pixel_checkpoint):
    with pytest.raises(UserError, match="max_nonfinite_grad_share"):
        _spec(tiny_pixel_checkpoint, overrides=("trial.max_nonfinite_grad_share=1.5",))


# ------------------------------------------------------------------------------- corrupt inputs
def _write_ply(path, n=10):
    from plyfile import PlyData, PlyElement

    v = np.zeros(n, dtype=[("x", "f4"), ("y", "f4"), ("z", "f4")])
    PlyData([PlyElement.describe(v, "vertex")]).write(str(path))
    return path


@pytest.mark.parametrize(
    "content,fragment",
    [
        (b"this is not a ply file\n", "is not a readable .ply file: line 1: expected 'ply'"),
        (b"", "is not a readable .ply file"),
        ("truncated", "early end-of-file"),
        ("directory", "is not a file"),
    ],
)
def test_a_corrupt_ply_init_is_one_line_exit_2(tmp_path, content, fragment):
    path = tmp_path / "cloud.ply"
    if content == "truncated":
        data = _write_ply(tmp_path / "good.ply").read_bytes()
        path.write_bytes(data[:-20])
    elif content == "directory":
        path.mkdir()
    else:
        path.write_bytes(content)
    proc = run_cli(
        "run",
        "--prompt",
        "a red cube",
        "--loss",
        "sds",
        "--steps",
        "2",
        "--set",
        f"rep.init=ply:{path}",
        "--out",
        str(tmp_path / "o"),
    )
    assert fragment in one_line(proc) and str(path) in proc.stderr
    assert not (tmp_path / "o" / "result.json").exists()


def test_ply_loading_checks_vertices(tmp_path):
    from plyfile import PlyData, PlyElement

    from sdbench.representations.gaussians import load_points

    faces = np.zeros(3, dtype=[("a", "f4")])
    PlyData([PlyElement.describe(faces, "face")]).write(str(tmp_path / "faces.ply"))
    with pytest.raises(UserError, match="has no vertex element"):
        load_points(tmp_path / "faces.ply", 5)
    colours = np.zeros(3, dtype=[("red", "u1")])
    PlyData([PlyElement.describe(colours, "vertex")]).write(str(tmp_path / "noxyz.ply"))
    with pytest.raises(UserError, match="no x, y, z"):
        load_points(tmp_path / "noxyz.ply", 5)
    means, _ = load_points(_write_ply(tmp_path / "ok.ply"), 5)
    assert means.shape == (5, 3)


# ------------------------------------------------------------------------------------ sweep lock
HOLD = """
import sys, time
from pathlib import Path
from sdbench.sweep.driver import acquire
lock = acquire(Path(sys.argv[1]))
lock.record(ray_temp="/tmp/sdbench-ray-none-such")
print("locked", flush=True)
time.sleep(120)
"""


def test_a_second_sweep_on_the_same_out_is_refused_and_a_dead_drivers_lock_is_taken_over(tmp_path, tiny_pixel_checkpoint):
    from sdbench.sweep.driver import LOCK_FILE, acquire

    out = tmp_path / "sweep"
    out.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(out)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        prompts = tmp_path / "p.txt"
        prompts.write_text("a red cube\n")
        args = ["sweep", str(prompts), "--loss", "sds", "--rep", "image", "--prior", str(tiny_pixel_checkpoint), "--steps", "2"]
        line = one_line(run_cli(*args, "--wandb", "disabled", "--out", str(out)))
        assert f"another sdbench sweep (pid {holder.pid} on " in line and f"is writing to {out}" in line
        with pytest.raises(UserError, match=f"pid {holder.pid}"):
            acquire(out)
        assert not (out / "trials").exists()  # refused before anything was written
    finally:
        holder.send_signal(signal.SIGKILL)  # the driver dies holding the lock
        holder.wait()
    assert json.loads((out / LOCK_FILE).read_text())["pid"] == holder.pid  # its record is still there
    lock = acquire(out)  # ... but the lock is free: taken over
    try:
        assert lock.taken_over["pid"] == holder.pid and lock.taken_over["ray_temp"] == "/tmp/sdbench-ray-none-such"
        assert json.loads((out / LOCK_FILE).read_text())["pid"] == os.getpid()
    finally:
        lock.release()
    assert (out / LOCK_FILE).read_text() == ""  # a driver that ends normally leaves no record
    again = acquire(out)
    assert again.taken_over is None
    again.release()


def test_a_lock_record_without_flock_falls_back_to_pid_and_host(tmp_path, monkeypatch):
    """On a filesystem without flock, a live pid on this host holds the directory and a dead one does not."""
    import errno
    import fcntl
    import socket

    from sdbench.sweep import driver

    def no_flock(fd, op):
        raise OSError(errno.ENOLCK, "no locks")

    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        time.sleep(0.5)
        record = {"pid": sleeper.pid, "host": socket.gethostname(), "process_started": driver._process_started(sleeper.pid)}
        (tmp_path / driver.LOCK_FILE).write_text(json.dumps(record))
        monkeypatch.setattr(fcntl, "flock", no_flock)
        with pytest.raises(UserError, match=f"pid {sleeper.pid}"):
            driver.acquire(tmp_path)
    finally:
        sleeper.kill()
        sleeper.wait()
    lock = driver.acquire(tmp_path)
    assert lock.taken_over["pid"] == sleeper.pid
    lock.release()


# ---------------------------------------------------------------------------------- atomic writes
def test_an_interrupted_write_leaves_the_previous_file_intact(tmp_path):
    import torch

    from sdbench.io import atomic_write, write_json, write_text

    path = tmp_path / "result.json"
    write_json(path, {"status": "completed"})
    before = path.read_bytes()

    def half_then_fail(f):
        f.write(b'{"status": "fai')
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError, match="disk on fire"):
        atomic_write(path, half_then_fail)
    with pytest.raises(TypeError):
        write_json(path, {"status": object()})  # cannot be serialised

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("cannot pickle this")

    with pytest.raises(RuntimeError, match="cannot pickle"):
        atomic_write(path, lambda f: torch.save({"weights": torch.zeros(1000), "bad": Unpicklable()}, f))
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result.json"]  # no temporary file left behind
    write_text(path, "new\n")
    umask = os.umask(0o022)
    os.umask(umask)
    assert path.read_text() == "new\n" and path.stat().st_mode & 0o777 == 0o666 & ~umask


def test_every_loss_counts_the_gradients_it_zeroes():
    """A loss that called the bare ``common.prepare_grad`` would zero NaN/inf without the trial knowing."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    files = [p for p in sorted((root / "sdbench" / "losses").glob("*.py")) if p.name not in ("common.py", "base.py")]
    files += sorted((root / "examples").rglob("*.py"))
    bare = [
        f"{p.relative_to(root)}:{node.lineno}"
        for p in files
        for node in ast.walk(ast.parse(p.read_text(encoding="utf-8")))
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "prepare_grad"
    ]
    assert len(files) > 5 and not bare, f"call self.prepare_grad(...) (it counts what it zeroes) at {', '.join(bare)}"
