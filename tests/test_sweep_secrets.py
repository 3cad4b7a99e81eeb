"""A W&B key in the environment is written to no file of a trial or a sweep (W&B offline, the Ray layer)."""

from __future__ import annotations

import secrets
from pathlib import Path

from tests.conftest import run_cli


def files_holding(root: Path, needle: bytes) -> list[str]:
    return [str(p.relative_to(root)) for p in sorted(root.rglob("*")) if p.is_file() and needle in p.read_bytes()]


def test_the_wandb_key_is_in_no_output_file(tmp_path, tiny_pixel_checkpoint):
    key = secrets.token_hex(20)  # 40 characters, the shape of a W&B key
    env = {"WANDB_API_KEY": key, "WANDB_MODE": "offline"}
    prompts = tmp_path / "p.txt"
    prompts.write_text("a red cube\n")
    sweep = tmp_path / "sweep"
    args = ["sweep", str(prompts), "--loss", "sds", "--rep", "image", "--prior", str(tiny_pixel_checkpoint), "--steps", "2"]
    proc = run_cli(*args, "--workers", "1", "--wandb", "offline", "--no-fid", "--out", str(sweep), env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert list((sweep / "wandb").glob("offline-run-*")), "W&B ran (offline) and wrote its run"
    trial = tmp_path / "trial"
    proc = run_cli(
        "run", "--prompt", "a red cube", "--loss", "sds", "--rep", "image", "--steps", "2", "--out", str(trial), env=env
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    written = [p for p in sweep.rglob("*") if p.is_file()] + [p for p in trial.rglob("*") if p.is_file()]
    assert len(written) > 10
    assert files_holding(sweep, key.encode()) == [] and files_holding(trial, key.encode()) == []
    assert key not in proc.stdout + proc.stderr
