"""Trial files through the sweep's storage: sealing, fetching (complete or refused), recovery, the reachability check."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from sdbench.errors import UserError
from sdbench.sweep import storage
from tests.conftest import run_cli


def make_trial(root: Path) -> Path:
    """A trial directory as a worker leaves it: files, a subfolder, W&B's run with its ``latest-run`` link."""
    root.mkdir(parents=True)
    (root / "result.json").write_text('{"status": "completed"}')
    (root / "views").mkdir()
    (root / "views" / "000.png").write_bytes(b"\x89PNG" + b"0" * 100)
    run = root / "wandb" / "offline-run-1"
    run.mkdir(parents=True)
    (run / "run-1.wandb").write_bytes(b"w" * 10)
    (root / "wandb" / "latest-run").symlink_to(run)
    return root


def test_seal_drops_links_and_lists_every_file_with_its_size(tmp_path):
    trial = make_trial(tmp_path / "t")
    storage.seal(trial)
    assert not (trial / "wandb" / "latest-run").exists()
    listed = json.loads((trial / storage.MANIFEST_FILE).read_text())["files"]
    assert listed == {"result.json": 23, "views/000.png": 104, "wandb/offline-run-1/run-1.wandb": 10}


def test_fetch_replaces_the_trial_dir_and_moves_wandb_runs(tmp_path):
    import pyarrow.fs

    source = make_trial(tmp_path / "storage" / "checkpoint_000000")
    storage.seal(source)
    dest = tmp_path / "out" / "trials" / "t1"
    dest.mkdir(parents=True)
    (dest / "stale.txt").write_text("from a failed attempt")
    storage.fetch(pyarrow.fs.LocalFileSystem(), str(source), dest, tmp_path / "out" / "wandb")
    assert sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*")) == ["result.json", "views", "views/000.png"]
    assert (tmp_path / "out" / "wandb" / "offline-run-1" / "run-1.wandb").read_bytes() == b"w" * 10
    assert not source.exists()  # a local storage: moved, not copied
    assert [p.name for p in dest.parent.iterdir()] == ["t1"]  # no .incoming-/.old- leftovers


@pytest.mark.parametrize("damage", ["missing", "truncated", "no list"])
def test_fetch_refuses_a_copy_cut_short_and_keeps_what_was_there(tmp_path, damage):
    import pyarrow.fs

    source = make_trial(tmp_path / "storage" / "checkpoint_000000")
    storage.seal(source)
    if damage == "missing":
        (source / "views" / "000.png").unlink()
    elif damage == "truncated":
        (source / "views" / "000.png").write_bytes(b"\x89PNG")
    else:
        (source / storage.MANIFEST_FILE).unlink()
    dest = tmp_path / "out" / "trials" / "t1"
    dest.mkdir(parents=True)
    (dest / "result.json").write_text('{"status": "failed"}')
    with pytest.raises(RuntimeError, match="did not arrive"):
        storage.fetch(pyarrow.fs.LocalFileSystem(), str(source), dest, tmp_path / "out" / "wandb")
    assert [p.name for p in dest.iterdir()] == ["result.json"] and "failed" in (dest / "result.json").read_text()
    assert [p.name for p in dest.parent.iterdir()] == ["t1"]


def test_tidy_finishes_what_a_fetch_cut_short_left(tmp_path):
    trials = tmp_path / "trials"
    for name in ("a", ".incoming-a", ".old-a", ".old-b", "c"):
        (trials / name).mkdir(parents=True)
        (trials / name / "result.json").write_text(name)
    storage.tidy(trials)
    assert sorted(p.name for p in trials.iterdir()) == ["a", "b", "c"]
    assert (trials / "a" / "result.json").read_text() == "a" and (trials / "b" / "result.json").read_text() == ".old-b"


def test_resolve_defaults_to_out_ray_and_refuses_bad_storage(tmp_path):
    out = tmp_path / "sweep"
    assert storage.resolve(None, out) == storage.Storage(str(out / "ray"), "tune")
    shared = storage.resolve(str(tmp_path / "shared" / ".." / "shared"), out)
    assert shared.uri == str(tmp_path / "shared") and shared.experiment.startswith("sweep-") and shared.is_local_path
    other = storage.resolve(str(tmp_path / "shared"), tmp_path / "elsewhere" / "sweep")
    assert other.experiment != shared.experiment  # two sweeps named alike share a bucket without mixing
    assert not storage.resolve("mock:///bucket/prefix/", out).is_local_path
    with pytest.raises(UserError, match="--storage"):
        storage.resolve("nosuchscheme://bucket/x", out)
    with pytest.raises(UserError, match="--storage is empty"):
        storage.resolve(" ", out)


def test_probe_reads_the_token_back(tmp_path):
    store = storage.resolve(str(tmp_path / "shared"), tmp_path / "sweep")
    token = storage.write_marker(store)
    assert storage.probe(store.uri, store.experiment, token) is None
    assert "another driver" in storage.probe(store.uri, store.experiment, "0" * 32)
    assert "not there" in storage.probe(store.uri, "another-sweep", token)
    # an in-memory filesystem is per process: a new one sees no marker, like a node with its own disk
    assert "not there" in storage.probe("mock:///bucket", "x", token)


def test_trial_resources_fit_on_one_node(monkeypatch):
    import ray

    from sdbench.sweep.ray_backend import fit_one_node

    nodes = [{"Alive": True, "Resources": {"CPU": 4.0, "GPU": 1.0}} for _ in range(2)]
    nodes.append({"Alive": True, "Resources": {}})  # a head with 0 CPUs
    monkeypatch.setattr(ray, "nodes", lambda: nodes)
    assert fit_one_node({"cpu": 8, "gpu": 2.0}) == {"cpu": 4, "gpu": 1}  # 1 worker: no node has 8 CPUs and 2 GPUs
    assert fit_one_node({"cpu": 2, "gpu": 0.5}) == {"cpu": 2, "gpu": 0.5}  # what fits is kept


def test_a_trial_that_reached_the_storage_is_recovered_not_rerun(tmp_path):
    """The driver died after a trial's files reached the storage but before it fetched them."""
    from sdbench import trial as T
    from sdbench.budget import Budget
    from sdbench.sweep import SweepConfig, plan, run_sweep
    from sdbench.sweep.ray_backend import ATTEMPTS_FILE

    cfg = SweepConfig(prompts=("a red cube",), losses=("sds",), representations=("image",), budget=Budget("steps", 2))
    ((trial_id, spec),) = plan(cfg)
    out = tmp_path / "sweep"
    checkpoint = out / "ray" / "tune" / trial_id / "checkpoint_000000"
    T.run_trial(spec, checkpoint, progress=False)  # what a worker ran and reported
    storage.seal(checkpoint)
    finished = json.loads((checkpoint / "result.json").read_text())["cost"]["finished_at"]
    cut = out / "ray" / "tune" / "other-trial" / "checkpoint_000000"  # a copy cut short: no file list
    cut.mkdir(parents=True)
    (cut / "result.json").write_text("{}")
    assert not storage.recover(storage.resolve(None, out), "other-trial", out / "trials" / "other-trial", out / "wandb")
    assert not (out / "trials" / "other-trial").exists()
    summary = run_sweep(cfg, out, wandb_mode="disabled", progress=False, fid=False)
    assert (summary.total, summary.completed, summary.skipped) == (1, 1, 1)  # nothing ran again: no Ray was started
    assert json.loads((out / "trials" / trial_id / "result.json").read_text())["cost"]["finished_at"] == finished
    assert [json.loads(line)["event"] for line in (out / ATTEMPTS_FILE).read_text().splitlines()] == ["recovered"]
    assert not (out / "ray" / "tune" / trial_id).joinpath("checkpoint_000000").exists()


def test_a_storage_the_workers_cannot_read_is_refused_before_anything_runs(tmp_path):
    prompts = tmp_path / "p.txt"
    prompts.write_text("a red cube\n")
    out = tmp_path / "sweep"
    args = ["sweep", str(prompts), "--loss", "sds", "--rep", "image", "--steps", "2", "--wandb", "disabled", "--no-fid"]
    # mock:// is pyarrow's in-memory filesystem, a different one in every process: the Ray worker
    # cannot read the marker the driver wrote, as a node cannot read a driver's local disk
    proc = run_cli(*args, "--out", str(out), "--storage", "mock:///bucket/sweeps", env={"OMP_NUM_THREADS": "1"})
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr[-2000:]
    assert lines[0].startswith("error: trial outputs cannot reach the driver: node ") and "mock:///bucket/sweeps" in lines[0]
    assert not (out / "trials").exists()
    assert not any(p.name.startswith(".write-test") for p in out.iterdir())
    assert os.path.getsize(out / ".sweep.lock") == 0  # the lock was released


def test_a_trial_continues_from_its_partial_checkpoint_in_the_storage(tmp_path):
    """The driver died mid-trial (``trial.checkpoint_every``): the next run continues that trial from the
    last partial checkpoint that reached the storage, and ends where an uninterrupted run ends."""
    from sdbench import trial as T
    from sdbench.budget import Budget
    from sdbench.sweep import SweepConfig, plan, run_sweep
    from sdbench.sweep.ray_backend import ATTEMPTS_FILE

    overrides = ("trial.checkpoint_every=3", "trial.threads=1")
    cfg = SweepConfig(
        prompts=("a red cube",), losses=("sds",), representations=("image",), budget=Budget("steps", 6), overrides=overrides
    )
    ((trial_id, spec),) = plan(cfg)
    out = tmp_path / "sweep"

    def killed_at_3(state):
        if state.step == 3:
            raise KeyboardInterrupt  # stands in for the worker dying (run_trial records an Exception as failed)

    partial = out / "ray" / "tune" / trial_id / "checkpoint_000000"
    with pytest.raises(KeyboardInterrupt):
        T.run_trial(spec, tmp_path / "worker", progress=False, on_step=killed_at_3)
    partial.mkdir(parents=True)
    (tmp_path / "worker" / "checkpoint.pt").rename(partial / "checkpoint.pt")
    (partial / storage.PROGRESS_FILE).write_text('{"step": 3}')
    summary = run_sweep(cfg, out, workers=1, wandb_mode="disabled", progress=False, fid=False)
    assert (summary.total, summary.completed, summary.skipped) == (1, 1, 0)
    running = [json.loads(line) for line in (out / ATTEMPTS_FILE).read_text().splitlines()]
    assert [e["from_step"] for e in running if e["event"] == "running"] == [3]
    assert [e["step"] for e in running if e["event"] == "checkpoint"] == [6]  # the worker reports its own
    clean = T.run_trial(spec, tmp_path / "clean", progress=False)
    resumed = json.loads((out / "trials" / trial_id / "result.json").read_text())
    assert resumed["metrics"] == clean.metrics and resumed["cost"]["steps"] == 6
    assert not (out / "ray" / "tune" / f"{trial_id}{storage.RESUME_SUFFIX}").exists()  # used, then removed


def test_trial_dirs_of_dead_workers_are_cleared_from_the_node(tmp_path, monkeypatch):
    import subprocess
    import sys
    import tempfile

    from sdbench.sweep.ray_backend import _clear_stale_stages

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (tmp_path / f"sdbench-trial-{dead.stdout.strip()}-abc").mkdir()  # its worker was killed mid-trial
    (tmp_path / f"sdbench-trial-{os.getpid()}-def").mkdir()  # a trial running now
    (tmp_path / "sdbench-trial-other").mkdir()  # not ours to judge
    _clear_stale_stages()
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"sdbench-trial-{os.getpid()}-def", "sdbench-trial-other"]
