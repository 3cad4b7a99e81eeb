"""A sweep's progress where no terminal shows the bar: one line per finished trial, with the time left."""

from __future__ import annotations

import io
from types import SimpleNamespace

from sdbench.budget import Budget
from sdbench.results import TrialResult, write_result
from sdbench.sweep.ray_backend import _ProgressCallback, progress_line


def test_a_progress_line_counts_trials_and_extrapolates_the_time_left():
    assert progress_line(3, 10, 90.0, "completed: t3") == "trials 3/10 (0:01:30 elapsed, ~0:03:30 left) completed: t3"
    assert progress_line(10, 10, 3725.0, "completed: t10") == "trials 10/10 (1:02:05 elapsed) completed: t10"


def test_without_a_terminal_each_finished_trial_is_one_flushed_line(tmp_path):
    write_result(tmp_path / "trials" / "a", TrialResult("a cube", "sds", "image", "toy", 0, Budget("steps", 5), "completed"))
    out = io.StringIO()
    cb = _ProgressCallback(2, tmp_path, terminal=False, stream=out)
    cb.on_trial_complete(0, [], SimpleNamespace(config={"trial": {"id": "a"}}))
    cb.on_trial_error(0, [], SimpleNamespace(config={"trial": {"id": "b"}}))
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("trials 1/2 (0:00:00 elapsed, ~0:00:00 left) ") and lines[0].endswith(" completed: a")
    assert lines[1] == "trials 2/2 (0:00:00 elapsed) error: b"
    cb.close()
