"""A sweep on a real multi-node Ray cluster (3 nodes on this machine): trials on every worker node,
their files on the driver's side, a storage the nodes cannot read refused, a node lost mid-sweep."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest


@pytest.mark.slow
def test_a_sweep_on_a_three_node_cluster_survives_losing_a_node(tmp_path):
    from benchmarks.cluster import PROMPTS, measure

    r = measure(tmp_path, steady_steps=5, loss_steps=40, seeds="0,1")
    n = len(PROMPTS) * 2
    print(json.dumps(r, indent=1))  # the numbers, shown with pytest -s
    assert set(r["nodes"]) == {"head", "worker-1", "worker-2"}

    # a storage that the nodes cannot read: one line, exit 2, nothing ran
    refused = r["refused"]
    assert refused["exit_code"] == 2 and len(refused["stderr"].splitlines()) == 1, refused
    assert refused["stderr"].startswith("error: trial outputs cannot reach the driver: node ") and refused["trial_dirs"] == 0

    # steady: trials on both worker nodes (none on the 0-CPU head), every file on the driver's side
    steady = r["steady"]
    assert steady["exit_code"] == 0, steady["stderr_tail"]
    assert steady["trials"] == n and set(steady["trials_per_node"]) == {"worker-1", "worker-2"}, steady
    assert sum(steady["trials_per_node"].values()) == n and steady["wandb_runs"] == n
    out = Path(steady["out"])
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert len(rows) == n and len({row["trial"] for row in rows}) == n and {row["status"] for row in rows} == {"completed"}
    report = (out / "report.html").read_text()
    for prompt in PROMPTS:  # each prompt's section, with the views of its lowest seed read from the trial directory
        assert f">{prompt}</h3>" in report and f"alt='{prompt}: sds · image, seed 0, view 0'" in report
    for d in (out / "trials").iterdir():
        files = {p.relative_to(d).as_posix() for p in d.rglob("*") if p.is_file()}
        assert {"result.json", "history.jsonl", "views.png", "image.png", "checkpoint.pt"} <= files, (d.name, files)
        result = json.loads((d / "result.json").read_text())
        assert result["status"] == "completed" and result["hardware"]["node_id"] in (
            r["nodes"]["worker-1"]["node_id"],
            r["nodes"]["worker-2"]["node_id"],
        )
    assert not list((out / "trials").glob(".*"))  # no half-fetched directories left

    # node loss: the trial running on the removed node ran again elsewhere; each trial completed once
    loss = r["node_loss"]
    assert loss["exit_code"] == 0, loss["stderr_tail"]
    victim = loss["running_on_removed_node"]
    assert loss["trials"] == n and loss["completed_after"] == n
    assert loss["completed_before_removal"] >= 1 and loss["finished_at_unchanged"] == loss["completed_before_removal"]
    assert loss["restarted_after_removal_among_finished"] == []  # nothing already finished was redone
    assert loss["fetched"] == {name: 1 for name in loss["attempts_started"]} and len(loss["fetched"]) == n
    assert loss["retries"].get(victim, 0) >= 1 and loss["attempts_running"][victim] >= 2
    # the retry continued from the partial checkpoint that had reached the storage, not from step 0
    steps = loss["it_continued_from_step"]
    assert steps[0] == 0 and steps[-1] >= loss["its_last_partial_checkpoint_step"] > 0, steps
    assert loss["victim_trial_final_node"] not in (loss["removed_node"], "?")
    assert all(count == 1 for name, count in loss["attempts_running"].items() if name not in loss["retries"])
    out = Path(loss["out"])
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert len(rows) == n and {row["status"] for row in rows} == {"completed"}
