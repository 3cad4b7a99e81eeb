"""What Ray reserves per trial: CPUs and GPUs split over the workers, or a fixed GPU share (--gpus-per-trial)."""

from __future__ import annotations

import pytest

from sdbench.errors import UserError
from sdbench.sweep.ray_backend import trial_resources


def test_by_default_the_cpus_and_gpus_are_split_over_the_workers():
    assert trial_resources(2, 0, None, 10) == (2, {"cpu": 1})
    assert trial_resources(16, 2, 4, 10) == (4, {"cpu": 4, "gpu": 0.5})
    assert trial_resources(16, 0, None, 3) == (3, {"cpu": 5})  # never more workers than trials


def test_a_gpu_share_packs_that_many_trials_per_gpu():
    assert trial_resources(16, 1, None, 40, gpus_per_trial=0.25) == (4, {"cpu": 4, "gpu": 0.25})
    assert trial_resources(16, 2, None, 40, gpus_per_trial=0.25) == (8, {"cpu": 2, "gpu": 0.25})
    assert trial_resources(4, 1, None, 40, gpus_per_trial=0.125) == (4, {"cpu": 1, "gpu": 0.125})  # one CPU each at most
    assert trial_resources(16, 1, 2, 40, gpus_per_trial=0.25) == (2, {"cpu": 8, "gpu": 0.25})  # --workers still caps
    assert trial_resources(16, 4, None, 40, gpus_per_trial=2) == (2, {"cpu": 8, "gpu": 2})


@pytest.mark.parametrize("bad", [0.0, -0.5, 1.5, float("nan")])
def test_a_gpu_share_that_ray_cannot_honour_is_a_user_error(bad):
    with pytest.raises(UserError, match="--gpus-per-trial"):
        trial_resources(16, 1, None, 4, gpus_per_trial=bad)


def test_a_gpu_share_on_a_cluster_without_gpus_is_a_user_error():
    with pytest.raises(UserError, match="has 0 GPU"):
        trial_resources(2, 0, None, 4, gpus_per_trial=0.25)


def test_run_sweep_refuses_a_bad_gpu_share_before_anything_runs(tmp_path):
    from sdbench.sweep import SweepConfig, run_sweep

    cfg = SweepConfig(prompts=("a red cube",), losses=("sds",), representations=("image",))
    with pytest.raises(UserError, match="--gpus-per-trial"):
        run_sweep(cfg, tmp_path / "out", gpus_per_trial=1.5, progress=False)
    assert not (tmp_path / "out").exists()


def test_a_busy_machine_and_several_threads_per_trial_get_a_warning():
    from sdbench.sweep.ray_backend import busy_machine_note

    note = busy_machine_note(2, 2, load=1.2)  # --workers 1 on 2 CPUs beside one busy process
    assert note.startswith("warning:") and "load 1.2" in note and "--workers 2" in note and "\n" not in note
    assert busy_machine_note(1, 2, load=3.0) is None  # one thread per trial: nothing collapses
    assert busy_machine_note(2, 2, load=0.3) is None  # an idle machine
    assert busy_machine_note(4, 16, load=None) is None  # a cluster (no local load)
