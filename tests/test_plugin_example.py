"""examples/plugin-loss is a real, installable third-party package that sdbench picks up."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from sdbench.cameras import Cameras
from sdbench.priors.base import TextConditioning
from tests.conftest import run_cli

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "plugin-loss"


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """pip-install the example into a temporary target folder (the test venv stays untouched)."""
    import shutil

    target = tmp_path_factory.mktemp("site")
    source = tmp_path_factory.mktemp("src") / "plugin-loss"
    shutil.copytree(EXAMPLE, source, ignore=shutil.ignore_patterns("build", "*.egg-info"))  # keep the checkout clean
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--target",
            str(target),
            str(source),
        ],
        check=True,
        capture_output=True,
        env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
    )
    assert list(target.glob("sdbench_hifa-*.dist-info"))
    return target


def test_installed_plugin_is_listed_with_its_distribution(installed):
    proc = run_cli("list", env={"PYTHONPATH": str(installed), "COLUMNS": "250"})
    assert proc.returncode == 0, proc.stderr
    line = next(line for line in proc.stdout.splitlines() if "hifa_sds" in line)
    assert "sdbench-hifa 0.1.0" in line and "ok" in line


def test_installed_plugin_runs_a_trial(installed, tiny_pixel_checkpoint, tmp_path):
    out = tmp_path / "trial"
    proc = run_cli(
        "run",
        "--prompt",
        "a red cube",
        "--loss",
        "hifa_sds",
        "--rep",
        "image",
        "--prior",
        str(tiny_pixel_checkpoint),
        "--steps",
        "4",
        "--set",
        "loss.anneal_steps=4",
        "--out",
        str(out),
        "--quiet",
        env={"PYTHONPATH": str(installed)},
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads((out / "result.json").read_text())
    assert result["loss"] == "hifa_sds" and result["status"] == "completed" and result["cost"]["nfe"] == 8


def test_hifa_schedule_sweeps_t_from_max_to_min(stub_prior):
    sys.path.insert(0, str(EXAMPLE))
    try:
        from sdbench_hifa import HiFASDS
    finally:
        sys.path.remove(str(EXAMPLE))
    loss = HiFASDS(HiFASDS.Config(anneal_steps=100), stub_prior)
    ts = [loss.timestep(i) for i in (0, 25, 100, 200)]
    assert ts == [980, 980 - round(960 * 0.5), 20, 20]
    out = loss(torch.rand(1, 3, 8, 8, requires_grad=True), TextConditioning(stub_prior, "a red cube"), Cameras.orbit(1), step=50)
    assert out.logs["t"] == loss.timestep(50)
