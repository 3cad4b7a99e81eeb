"""Shared fixtures: tiny random checkpoints (built once per session) and the closed-form stub prior."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch

torch.set_flush_denormal(True)
os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def tiny_pixel_checkpoint(tmp_path_factory) -> Path:
    from sdbench.testing import tiny_checkpoint

    return tiny_checkpoint(tmp_path_factory.mktemp("tiny-pixel"), latent=False)


@pytest.fixture(scope="session")
def tiny_latent_checkpoint(tmp_path_factory) -> Path:
    from sdbench.testing import tiny_checkpoint

    return tiny_checkpoint(tmp_path_factory.mktemp("tiny-latent"), latent=True)


@pytest.fixture()
def stub_prior():
    from sdbench.testing import StubPrior

    return StubPrior()


def run_cli(*args: str, env: dict | None = None, cwd: Path | None = None):
    """Run the real console entry point in a subprocess; returns CompletedProcess."""
    import subprocess

    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "sdbench.cli", *args], capture_output=True, text=True, env=full_env, cwd=cwd, timeout=600
    )


@pytest.fixture(scope="session")
def tiny_evaluator_v2_dir(tmp_path_factory) -> Path:
    """A tiny random v2 toy evaluator folder (open_clip ``local-dir:``)."""
    from sdbench.testing import tiny_evaluator

    return tiny_evaluator(tmp_path_factory.mktemp("tiny-evaluator-v2"))


@pytest.fixture()
def evaluator_v2(tiny_evaluator_v2_dir, monkeypatch) -> Path:
    """The tiny random v2 evaluator in place of the shipped one (``sdbench.evaluation.toy.EVALUATOR_V2_DIR``)."""
    from sdbench.evaluation import toy

    monkeypatch.setattr(toy, "EVALUATOR_V2_DIR", tiny_evaluator_v2_dir)
    return tiny_evaluator_v2_dir
