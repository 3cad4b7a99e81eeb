"""The Ray sweep runner: grid, failure isolation, plugins on workers, W&B offline, resume after kill -9."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import run_cli
from tests.test_plugin_example import installed  # noqa: F401  (fixture: the example plugin pip-installed)


def prompts(tmp_path: Path, *lines: str) -> Path:
    p = tmp_path / f"prompts-{abs(hash(lines)) % 10**8}.txt"
    p.write_text("\n".join(["# a comment", "", *lines]) + "\n", encoding="utf-8")
    return p


def results(out: Path) -> list[dict]:
    return list(csv.DictReader((out / "results.csv").open()))


def test_bad_sweep_input_fails_fast_with_one_line(tmp_path):
    for args, fragment in [
        ([str(tmp_path / "missing.txt"), "--loss", "sds"], "does not exist"),
        ([str(prompts(tmp_path)), "--loss", "sds"], "holds no prompts"),
        ([str(prompts(tmp_path, "a red cube")), "--loss", "sdss"], "unknown loss 'sdss'"),
        ([str(prompts(tmp_path, "a dragon")), "--loss", "sds"], "outside the toy prior's vocabulary"),
        ([str(prompts(tmp_path, "a red cube")), "--loss", "sds", "--seeds", "0,x"], "--seeds"),
        ([str(prompts(tmp_path, "a red cube")), "--loss", "sds", "--wandb", "maybe"], "--wandb"),
    ]:
        proc = run_cli("sweep", *args, "--out", str(tmp_path / "o"))
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 2 and len(lines) == 1 and fragment in lines[0], (args, proc.stderr)


def test_sweep_isolates_failures_runs_plugins_on_workers_and_logs_offline(tmp_path, tiny_pixel_checkpoint, installed):  # noqa: F811
    out = tmp_path / "sweep"
    env = {"PYTHONPATH": str(installed), "SDBENCH_PLUGINS": "sdbench.losses:nan=tests.fake_plugins:NaNLoss"}
    env["PYTHONPATH"] += os.pathsep + str(Path(__file__).resolve().parent.parent)  # tests.fake_plugins on workers
    args = [
        "sweep",
        str(prompts(tmp_path, "a red cube", "a blue cone")),
        "--loss",
        "sds,hifa_sds",
        "--loss",
        "nan",
        "--rep",
        "image",
        "--prior",
        str(tiny_pixel_checkpoint),
        "--steps",
        "4",
        "--workers",
        "2",
        "--out",
        str(out),
    ]
    proc = run_cli(*args, env=env)
    assert proc.returncode == 1, proc.stderr[-2000:]
    rows = results(out)
    assert len(rows) == 6 and len({r["trial"] for r in rows}) == 6
    by_loss = {}
    for r in rows:
        by_loss.setdefault(r["loss"], set()).add(r["status"])
    assert by_loss == {"sds": {"completed"}, "hifa_sds": {"completed"}, "nan": {"failed"}}
    assert all("NaN" in r["error"] for r in rows if r["loss"] == "nan")
    report = (out / "report.html").read_text()
    assert "Failed trials" in report and "data:image/png;base64" in report and "±" in report
    runs = list((out / "wandb").glob("offline-run-*"))
    assert len(runs) == 6  # one W&B run per trial, nothing sent anywhere
    # the same command again keeps the completed trials and reruns only the failed ones
    stamps = {p: p.stat().st_mtime_ns for p in out.glob("trials/*/result.json")}
    proc = run_cli(*args, env=env)
    assert proc.returncode == 1 and "4 kept from before" in proc.stdout.replace("\n", " ")
    for p, t in stamps.items():
        if json.loads(p.read_text())["status"] == "completed":
            assert p.stat().st_mtime_ns == t
    assert len(results(out)) == 6
    # a different grid on the same --out is refused, not mixed in
    other = run_cli(
        "sweep",
        str(prompts(tmp_path, "a red cube")),
        "--loss",
        "sds",
        "--rep",
        "image",
        "--prior",
        str(tiny_pixel_checkpoint),
        "--steps",
        "5",
        "--out",
        str(out),
    )
    assert other.returncode == 2 and "different sweep" in other.stderr


def test_resume_after_the_driver_is_killed(tmp_path, tiny_pixel_checkpoint):
    args = [
        "sweep",
        str(prompts(tmp_path, "a red cube", "a blue cone", "a green torus", "a purple sphere")),
        "--loss",
        "sds",
        "--rep",
        "image",
        "--prior",
        str(tiny_pixel_checkpoint),
        "--steps",
        "60",
        "--workers",
        "2",
        "--wandb",
        "disabled",
        "--no-fid",
    ]
    killed = tmp_path / "killed"
    driver = subprocess.Popen(
        [sys.executable, "-m", "sdbench.cli", *args, "--out", str(killed)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.time() + 300
    while time.time() < deadline and not any(
        json.loads(p.read_text()).get("status") == "completed" for p in killed.glob("trials/*/result.json")
    ):
        time.sleep(0.5)
    driver.send_signal(signal.SIGKILL)  # kill -9 the driver mid-sweep
    driver.wait()
    done_before = {p.parent.name: p.stat().st_mtime_ns for p in killed.glob("trials/*/result.json")}
    assert 1 <= len(done_before) < 4
    proc = run_cli(*args, "--out", str(killed))
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = results(killed)
    assert len(rows) == 4 and len({r["trial"] for r in rows}) == 4 and {r["status"] for r in rows} == {"completed"}
    for name, stamp in done_before.items():  # completed trials are not run twice
        assert (killed / "trials" / name / "result.json").stat().st_mtime_ns == stamp
    # the same grid without interruption gives the same numbers
    clean = tmp_path / "clean"
    assert run_cli(*args, "--out", str(clean)).returncode == 0
    key = lambda r: r["trial"]  # noqa: E731
    for a, b in zip(sorted(rows, key=key), sorted(results(clean), key=key)):
        assert a["trial"] == b["trial"] and a["denoise_mse"] == b["denoise_mse"] and a["toy_acc"] == b["toy_acc"]
