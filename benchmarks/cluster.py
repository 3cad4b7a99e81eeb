"""A sweep on a multi-node Ray cluster on this machine: where its trials run, and what losing a node costs.

The cluster (``ray.cluster_utils.Cluster``): a head node with 0 CPUs (it hosts the driver only, as on a
real cluster, so no trial runs there) and two worker nodes with 1 CPU each, every node with its own
raylet, object store and worker processes. The driver is the real CLI in a subprocess,
``sdbench sweep ... --address <head>``, run three times:

1. **storage refused**: ``--storage mock:///...``, a pyarrow in-memory filesystem that is a different
   one in every process, stands in for a storage that the nodes cannot see; the sweep must stop with
   one line (exit 2) before any trial runs.
2. **steady**: a few toy trials (image, SDS, toy prior, 5 steps; prompts × seeds); trials per node
   from each ``result.json``'s ``hardware.node_id``; every trial's files in ``OUT/trials/<id>/`` on
   the driver's side (the workers wrote them into their own temp dirs: they came through the storage).
3. **node loss**: the same grid at 40 steps with a partial checkpoint every 10; as soon as one trial
   has finished and another, on a worker node, has reported a partial checkpoint, that node is removed
   (its raylet and workers SIGKILLed). Counted before and after: which trials had finished (their
   ``finished_at``), which ran on the lost node and from which step it continued, how often each trial
   was started, retried and fetched (``OUT/attempts.jsonl``).

``python -m benchmarks.cluster`` writes ``benchmarks/results/cluster.json``; tests/test_sweep_cluster.py
runs :func:`measure` and checks the same runs.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

PROMPTS = ("a red cube", "a blue cone", "a green torus", "a yellow sphere")


@contextlib.contextmanager
def local_cluster(workers: int = 2, cpus_per_worker: int = 1, head_cpus: int = 0) -> Iterator[Any]:
    """A Ray cluster of a head and ``workers`` worker nodes, all on this machine; shut down on exit.

    Ray's session files and its "current cluster" address file go to a private temp dir (``RAY_TMPDIR``),
    so ``--address auto`` elsewhere on the machine never finds this cluster."""
    from ray.cluster_utils import Cluster

    root = Path(tempfile.mkdtemp(prefix="sdb-cl-"))  # short: Ray's socket paths must stay under ~100 characters
    (root / "ray").mkdir()
    saved = os.environ.get("RAY_TMPDIR")
    os.environ["RAY_TMPDIR"] = str(root)
    cluster = None
    try:
        cluster = Cluster(
            initialize_head=True,
            head_node_args={"num_cpus": head_cpus, "include_dashboard": False, "temp_dir": str(root / "ray")},
        )
        for _ in range(workers):
            cluster.add_node(num_cpus=cpus_per_worker)
        cluster.wait_for_nodes()
        yield cluster
    finally:
        if cluster is not None:
            cluster.shutdown()
        if saved is None:
            os.environ.pop("RAY_TMPDIR", None)
        else:
            os.environ["RAY_TMPDIR"] = saved
        shutil.rmtree(root, ignore_errors=True)


def node_names(cluster: Any) -> dict[str, str]:
    """Node id → ``head`` / ``worker-1`` / ``worker-2`` ..."""
    names = {cluster.head_node.node_id: "head"} if cluster.head_node is not None else {}
    for n, node in enumerate(sorted(cluster.worker_nodes, key=lambda node: node.node_id), 1):
        names[node.node_id] = f"worker-{n}"
    return names


def sweep_command(prompts: Path, out: Path, address: str, steps: int, seeds: str, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "sdbench.cli",
        "sweep",
        str(prompts),
        "--loss",
        "sds",
        "--rep",
        "image",
        "--steps",
        str(steps),
        "--seeds",
        seeds,
        "--no-fid",
        "--address",
        address,
        "--out",
        str(out),
        *extra,
    ]


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_SILENT": "true"}


def attempts(out: Path) -> list[dict]:
    path = out / "attempts.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []


def trials(out: Path) -> dict[str, dict]:
    """Every trial directory's ``result.json`` (as JSON), with the file names the directory holds."""
    found = {}
    for d in sorted((out / "trials").iterdir()) if (out / "trials").is_dir() else []:
        if d.name.startswith("."):
            continue
        result = json.loads((d / "result.json").read_text()) if (d / "result.json").is_file() else None
        found[d.name] = {
            "result": result,
            "files": sorted(p.relative_to(d).as_posix() for p in d.rglob("*") if p.is_file()),
            "result_mtime_ns": (d / "result.json").stat().st_mtime_ns if result else None,
        }
    return found


def per_node(found: dict[str, dict], names: dict[str, str]) -> dict[str, int]:
    counts = Counter(names.get(t["result"]["hardware"]["node_id"], "unknown") for t in found.values() if t["result"])
    return dict(sorted(counts.items()))


def run_refused(cluster: Any, tmp: Path, prompts: Path) -> dict:
    """A storage the nodes cannot read: refused with one line before any trial runs."""
    out = tmp / "refused"
    start = time.perf_counter()
    proc = subprocess.run(
        sweep_command(prompts, out, cluster.address, 5, "0", "--wandb", "disabled", "--storage", "mock:///bucket/sweep"),
        capture_output=True,
        text=True,
        env=_env(),
        timeout=600,
    )
    return {
        "out": str(out),
        "exit_code": proc.returncode,
        "stderr": proc.stderr.strip(),
        "trial_dirs": len(list((out / "trials").glob("*"))) if (out / "trials").is_dir() else 0,
        "seconds": round(time.perf_counter() - start, 1),
    }


def run_steady(cluster: Any, tmp: Path, prompts: Path, steps: int = 5, seeds: str = "0,1") -> dict:
    out = tmp / "steady"
    start = time.perf_counter()
    proc = subprocess.run(
        sweep_command(prompts, out, cluster.address, steps, seeds, "--wandb", "offline"),
        capture_output=True,
        text=True,
        env=_env(),
        timeout=900,
    )
    found = trials(out)
    return {
        "out": str(out),
        "exit_code": proc.returncode,
        "stderr_tail": proc.stderr[-2000:],
        "failed_lines": [line for line in proc.stdout.splitlines() if line.startswith("failed ")],
        "attempt_problems": [e for e in attempts(out) if e["event"] in ("retry", "error")],
        "seconds": round(time.perf_counter() - start, 1),
        "trials": len(found),
        "trials_per_node": per_node(found, node_names(cluster)),
        "wandb_runs": len(list((out / "wandb").glob("offline-run-*"))),
    }


def run_node_loss(cluster: Any, tmp: Path, prompts: Path, steps: int = 40, seeds: str = "0,1", every: int = 10) -> dict:
    """Remove a worker node while one of its trials runs (past its first partial checkpoint, every
    ``every`` steps), after at least one trial has finished."""
    out = tmp / "node-loss"
    names = node_names(cluster)
    workers = {node.node_id: node for node in cluster.worker_nodes}
    start = time.perf_counter()
    driver = subprocess.Popen(
        sweep_command(
            prompts, out, cluster.address, steps, seeds, "--wandb", "disabled", "--set", f"trial.checkpoint_every={every}"
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
    )
    victim = victim_trial = None
    deadline = time.time() + 600
    while victim is None and driver.poll() is None and time.time() < deadline:
        events = attempts(out)
        fetched = {e["trial"] for e in events if e["event"] == "fetched"}
        latest = {e["trial"]: e for e in events if e["event"] in ("running", "checkpoint")}  # per trial, its last
        candidates = [  # mid-way: past a partial checkpoint, with at least one more to go (not about to finish)
            e
            for e in latest.values()
            if e["event"] == "checkpoint" and e["step"] <= steps - every and e["trial"] not in fetched and e["node"] in workers
        ]
        if fetched and candidates:
            victim, victim_trial, victim_step = candidates[0]["node"], candidates[0]["trial"], candidates[0]["step"]
            before = trials(out)
            removed_at = time.time()
            cluster.remove_node(workers[victim], allow_graceful=False)  # a crash: raylet and workers SIGKILLed
            removed_after = round(time.perf_counter() - start, 1)
        else:
            time.sleep(0.1)
    if victim is None:
        driver.send_signal(signal.SIGKILL)
        driver.wait()
        raise RuntimeError("no moment with a finished trial and a checkpointed one on a worker node: nothing was removed")
    stdout, stderr = driver.communicate(timeout=900)
    after = trials(out)
    events = attempts(out)
    finished_before = {
        name: t["result"]["cost"]["finished_at"]
        for name, t in before.items()
        if t["result"] and t["result"]["status"] == "completed"
    }
    count = {kind: Counter(e["trial"] for e in events if e["event"] == kind) for kind in ("start", "running", "retry", "fetched")}
    later = {e["trial"] for e in events if e["time"] > removed_at and e["event"] in ("start", "running")}
    return {
        "out": str(out),
        "exit_code": driver.returncode,
        "stderr_tail": stderr[-2000:],
        "seconds": round(time.perf_counter() - start, 1),
        "removed_node": names[victim],
        "removed_node_id": victim,
        "removed_after_seconds": removed_after,
        "running_on_removed_node": victim_trial,
        "its_last_partial_checkpoint_step": victim_step,
        "it_continued_from_step": [e.get("from_step") for e in events if e["event"] == "running" and e["trial"] == victim_trial],
        "trials": len(after),
        "completed_before_removal": len(finished_before),
        "completed_after": sum(t["result"] is not None and t["result"]["status"] == "completed" for t in after.values()),
        "finished_at_unchanged": sum(
            after[name]["result"]["cost"]["finished_at"] == stamp
            and after[name]["result_mtime_ns"] == before[name]["result_mtime_ns"]
            for name, stamp in finished_before.items()
        ),
        "restarted_after_removal_among_finished": sorted(later & set(finished_before)),
        "attempts_started": dict(count["start"]),
        "attempts_running": dict(count["running"]),
        "retries": dict(count["retry"]),
        "retry_errors": [e.get("error", "") for e in events if e["event"] == "retry"],
        "fetched": dict(count["fetched"]),
        "trials_per_node": per_node(after, names),
        "victim_trial_final_node": names.get((after[victim_trial]["result"] or {}).get("hardware", {}).get("node_id"), "?"),
    }


def measure(tmp: Path, steady_steps: int = 5, loss_steps: int = 40, seeds: str = "0,1") -> dict:
    """The three runs on one 3-node cluster (head + 2 workers); returns what they showed."""
    prompts = tmp / "prompts.txt"
    prompts.write_text("\n".join(PROMPTS) + "\n", encoding="utf-8")
    started = time.perf_counter()
    with local_cluster(workers=2) as cluster:
        up = round(time.perf_counter() - started, 1)
        names = node_names(cluster)
        results: dict[str, Any] = {
            "nodes": {name: {"cpus": 0 if name == "head" else 1, "node_id": nid} for nid, name in names.items()},
            "cluster_start_seconds": up,
        }
        results["refused"] = run_refused(cluster, tmp, prompts)
        results["steady"] = run_steady(cluster, tmp, prompts, steady_steps, seeds)
        results["node_loss"] = run_node_loss(cluster, tmp, prompts, loss_steps, seeds)
    return results


def main() -> dict:
    from benchmarks.common import save

    with tempfile.TemporaryDirectory() as tmp:
        results = measure(Path(tmp))
    for run in ("refused", "steady", "node_loss"):
        results[run].pop("out", None)
    save("cluster", results)
    return results


if __name__ == "__main__":
    main()
