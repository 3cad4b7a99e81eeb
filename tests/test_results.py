"""The typed trial result: schema-1 files still load, schema 2 round-trips, bad files are one-line errors."""

from __future__ import annotations

import csv
import json
import math
import shutil
from pathlib import Path

import pytest

from sdbench.budget import Budget
from sdbench.errors import UserError
from sdbench.io import slug
from sdbench.results import (
    HEADLINE_METRICS,
    RESULT_FILE,
    SCHEMA_VERSION,
    Cost,
    GroupKey,
    TrialResult,
    group_key,
    load_result,
    load_results,
    write_result,
)

V1 = Path(__file__).resolve().parent / "fixtures" / "results_v1"


def trial_dir(tmp_path: Path, fixture: str, name: str | None = None) -> Path:
    d = tmp_path / (name or fixture)
    d.mkdir(parents=True)
    shutil.copy(V1 / f"{fixture}.json", d / RESULT_FILE)
    return d


def test_schema_1_files_load(tmp_path):
    done = load_result(trial_dir(tmp_path, "completed"))
    assert done.completed and done.error is None and done.schema_version == SCHEMA_VERSION
    assert done.budget == Budget("steps", 10) and done.budget.label == "steps:10"
    assert done.cost.steps == 10 and done.cost.nfe == 20 and done.cost.eval_seconds == 3.848
    assert done.cost.nonfinite_grad_steps is None  # not counted before schema 2: unknown, not 0
    assert done.hardware.device == "cpu" and done.hardware.hostname is None
    assert done.metrics["toy_acc"] == 1.0 and done.versions["torch"] == "2.14.1"
    assert done.config["loss"]["cfg_scale"] == 100.0 and done.started_at.startswith("2026-")
    assert group_key(done) == GroupKey("toy", "sds", "image", "steps:10") == ("toy", "sds", "image", "steps:10")

    failed = load_result(trial_dir(tmp_path, "failed"))
    assert not failed.completed and "step 3" in failed.error and failed.cost.steps == 3 and failed.cost.seconds_per_step is None

    died = load_result(trial_dir(tmp_path, "sweep_failed"))
    assert died.status == "failed" and died.started_at is None and died.versions == {} and died.cost == Cost()


@pytest.mark.parametrize("fixture", ["completed", "failed", "sweep_failed"])
def test_a_rewritten_schema_1_file_is_schema_2_and_round_trips(tmp_path, fixture):
    d = trial_dir(tmp_path, fixture)
    old = json.loads((d / RESULT_FILE).read_text())
    result = load_result(d)
    write_result(d, result)
    new = json.loads((d / RESULT_FILE).read_text())
    assert new["schema_version"] == 2 and load_result(d) == result
    for key in ("prompt", "loss", "representation", "prior", "seed", "budget", "status", "error", "metrics", "config"):
        assert new[key] == old[key], key
    assert {k: v for k, v in new["cost"].items() if v is not None} == old["cost"]
    assert set(new["cost"]) == {"seconds", "steps", "nfe", "seconds_per_step", "peak_memory_mb", "nfe_with_grad"} | {
        "eval_seconds",
        "started_at",
        "finished_at",
        "nonfinite_grad_steps",
    }
    assert set(new["hardware"]) >= {"device", "hostname", "node_id"}


def test_nan_metrics_survive_the_round_trip(tmp_path):
    result = TrialResult.from_dict({**json.loads((V1 / "completed.json").read_text()), "metrics": {"clip": float("nan")}})
    write_result(tmp_path, result)
    assert math.isnan(load_result(tmp_path).metrics["clip"]) and math.isnan(result.value("clip"))
    assert math.isnan(result.value("no_such_metric")) and result.value("cost.steps") == 10.0


@pytest.mark.parametrize(
    "change,fragment",
    [
        ({"schema_version": 3}, "schema_version 3"),
        ({"colour": "red"}, "unknown field 'colour'"),
        ({"status": "running"}, "status 'running'"),
        ({"seed": "zero"}, "seed must be int"),
        ({"cost": {"seconds": 1.0, "wall": 2}}, "cost.wall"),
        ({"budget": {"kind": "hours", "value": 1}}, "hours"),
        ({"metrics": {"acc": "high"}}, "metrics.acc must be a number"),
    ],
)
def test_an_invalid_result_is_a_user_error_naming_the_file_and_the_field(tmp_path, change, fragment):
    data = {**json.loads((V1 / "completed.json").read_text()), **change}
    (tmp_path / RESULT_FILE).write_text(json.dumps(data))
    with pytest.raises(UserError, match="result.json") as e:
        load_result(tmp_path)
    assert fragment in str(e.value) and "\n" not in str(e.value)


def test_a_missing_or_cut_short_result_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="not a trial directory"):
        load_result(tmp_path)
    (tmp_path / RESULT_FILE).write_text('{"prompt": "a red')
    with pytest.raises(UserError, match="cannot be read"):
        load_result(tmp_path)
    assert load_results([tmp_path / "nothing-here"]) == []


def test_report_study_and_sweep_status_read_schema_1_sweeps(tmp_path):
    from sdbench.report import build_report
    from sdbench.study import markdown
    from sdbench.sweep import trial_status

    out = tmp_path / "sweep"
    for fixture in ("completed", "failed", "sweep_failed"):
        trial_dir(out / "trials", fixture)
    build_report(out, fid=False)
    rows = {r["trial"]: r for r in csv.DictReader((out / "results.csv").open())}
    assert rows["completed"]["budget"] == "steps:10" and rows["completed"]["cost_steps"] == "10"
    assert rows["sweep_failed"]["error"].startswith("RayTaskError") and rows["sweep_failed"]["cost_steps"] == ""
    assert "RayTaskError" in (out / "report.html").read_text()
    text = markdown(load_results(sorted((out / "trials").iterdir())), tmp_path / "images", "doc")
    assert "1 of 3 trials completed" in text and "| sds | 1 |" in text
    assert [trial_status(out / "trials" / n) for n in ("completed", "failed", "sweep_failed", "none")] == [
        "completed",
        "failed",
        "failed",
        "missing",
    ]


def test_shared_definitions():
    assert slug("A Red Cube, front view!") == "a-red-cube-front-view" and slug("立方体") == "prompt"
    assert slug("a" * 60, 28) == "a" * 28
    assert Budget("steps", 500.0).label == "steps:500" and str(Budget("seconds", 2.5)) == "seconds:2.5"
    assert isinstance(Budget("nfe", 1000.0).value, int)
    assert list(HEADLINE_METRICS)[0] == "toy_acc"


def test_file_id_hashes_small_files_whole_and_large_ones_by_size_head_and_tail(tmp_path, monkeypatch):
    import hashlib
    import os

    from sdbench import io

    f = tmp_path / "w.safetensors"
    f.write_bytes(b"abc" * 1000)
    assert io.file_id(f) == hashlib.sha256(b"abc" * 1000).hexdigest()[:16]
    f.write_bytes(b"abd" * 1000)  # rewritten: a new mtime and new bytes, a new identity (the cache is keyed by both)
    os.utime(f, ns=(1, 2))
    assert io.file_id(f) == hashlib.sha256(b"abd" * 1000).hexdigest()[:16]

    monkeypatch.setattr(io, "FULL_HASH_BYTES", 10)
    big = tmp_path / "big.bin"
    data = bytearray(os.urandom(40 << 20))
    big.write_bytes(bytes(data))
    first = io.file_id(big)
    assert first.startswith("partial-") and len(first) == len("partial-") + 16
    data[20 << 20] ^= 1  # the middle is not read
    big.write_bytes(bytes(data))
    os.utime(big, ns=(3, 4))
    assert io.file_id(big) == first
    data[0] ^= 1  # the head is
    big.write_bytes(bytes(data))
    os.utime(big, ns=(5, 6))
    assert io.file_id(big) != first
