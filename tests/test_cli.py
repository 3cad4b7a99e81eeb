"""The command line: contract errors (exit 2, one line, no traceback), list and run."""

from __future__ import annotations

import json

import pytest

from tests.conftest import run_cli


def assert_one_line_error(proc, *fragments):
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    for f in fragments:
        assert f in lines[0], (f, lines[0])


@pytest.mark.parametrize(
    "args,fragments",
    [
        (["--loss", "nope"], ["unknown loss 'nope'"]),
        (["--loss", "sds", "--rep", "voxels"], ["unknown representation 'voxels'"]),
        (["--loss", "sds", "--prior", "sd99"], ["unknown prior 'sd99'"]),
        (["--loss", "sds", "--steps", "0"], ["budget must be positive"]),
        (["--loss", "sds", "--budget", "hours:3"], ["unknown budget kind"]),
        (["--loss", "sds", "--set", "loss.cfg_scal=3"], ["unknown config key loss.cfg_scal", "cfg_scale"]),
        (["--loss", "sds", "--prior", "./no/such/checkpoint"], ["does not exist"]),
    ],
)
def test_bad_run_input_exits_2_with_one_line(args, fragments, tmp_path):
    proc = run_cli("run", "--prompt", "a red cube", "--rep", "image", *args, "--out", str(tmp_path / "o"))
    assert_one_line_error(proc, *fragments)
    assert not (tmp_path / "o" / "result.json").exists()


def test_empty_prompt_and_missing_options(tmp_path):
    assert_one_line_error(run_cli("run", "--prompt", "", "--loss", "sds", "--rep", "image"), "prompt is empty")
    assert_one_line_error(run_cli("run", "--loss", "sds"), "--prompt")
    assert_one_line_error(run_cli("run", "--prompt", "a red cube", "--loss", "sds", "--steps", "abc"), "--steps")
    assert_one_line_error(run_cli("frobnicate"), "frobnicate")


def test_unwritable_out_is_reported_and_existing_results_are_untouched(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("keep me")
    proc = run_cli("run", "--prompt", "a red cube", "--loss", "sds", "--rep", "image", "--out", str(blocker / "trial"))
    assert_one_line_error(proc, "cannot write to output directory")
    assert blocker.read_text() == "keep me"


def test_debug_shows_the_traceback():
    proc = run_cli("--debug", "run", "--prompt", "a red cube", "--loss", "nope", "--rep", "image")
    assert proc.returncode != 0 and "Traceback" in proc.stderr


def test_list_shows_builtins_and_survives_a_broken_plugin():
    proc = run_cli("list", env={"SDBENCH_PLUGINS": "sdbench.losses:kaput=no_such_module_xyz:Loss", "COLUMNS": "250"})
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    for name in ("sds", "image", "toy", "sd21", "denoise"):
        assert name in out
    assert "kaput" in out and "broken" in out and "no_such_module_xyz" in out


def test_world_shows_the_vocabulary():
    proc = run_cli("world")
    assert proc.returncode == 0 and "torus" in proc.stdout and "purple" in proc.stdout and "blurry" in proc.stdout


def test_run_writes_a_trial_directory(tiny_pixel_checkpoint, tmp_path):
    out = tmp_path / "trial"
    proc = run_cli(
        "run",
        "--prompt",
        "a red cube",
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
        "--set",
        "loss.cfg_scale=7.5",
        "--quiet",
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads((out / "result.json").read_text())
    assert result["status"] == "completed" and result["config"]["loss"]["cfg_scale"] == 7.5
    assert (out / "views.png").exists() and str(out) in proc.stdout.replace("\n", "")
