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


def test_a_trial_that_never_finished_is_recorded_as_failed_with_its_reason(tmp_path):
    """The worker's and the driver's failure paths build their result with ``sdbench.trial.new_result`` (once
    missing from the package's exports: every such trial died with an AttributeError instead)."""
    from sdbench.results import load_result
    from sdbench.sweep.ray_backend import _record_failure
    from sdbench.trial import TrialConfig, resolve

    spec = resolve(TrialConfig(prompt="a red cube", loss="sds", representation="image", budget=Budget("steps", 5)))
    _record_failure(tmp_path / "t", spec.config_dict(), "UserError: metric toy cannot run on 'a cube'")
    r = load_result(tmp_path / "t")
    assert (r.status, r.error, r.prompt) == ("failed", "UserError: metric toy cannot run on 'a cube'", "a red cube")
