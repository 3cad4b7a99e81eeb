"""The trial loop's profiling sections: free when off, and they account for the loop's time when on."""

from __future__ import annotations

from sdbench.trial.timing import TIMER, StepTimer


def test_a_disabled_timer_records_nothing_and_hands_out_one_shared_no_op():
    timer = StepTimer()
    assert timer.section("a") is timer.section("b")
    with timer.section("a"):
        pass
    assert not timer.totals and not timer.calls


def test_an_enabled_timer_sums_seconds_and_counts_calls_per_section():
    timer = StepTimer()
    timer.enable()
    for _ in range(3):
        with timer.section("a"):
            sum(range(1000))
    assert timer.calls["a"] == 3 and timer.totals["a"] > 0
    timer.reset()
    assert not timer.totals


def test_the_loop_reports_each_part_of_a_step(tiny_pixel_checkpoint):
    from sdbench import trial
    from sdbench.budget import Budget

    cfg = trial.TrialConfig(
        prompt="a red cube", representation="image", prior=str(tiny_pixel_checkpoint), budget=Budget("steps", 3), log_every=1
    )
    state = trial.build(trial.resolve(cfg))
    TIMER.reset()
    TIMER.enable()
    try:
        trial.optimise(state, progress=False)
    finally:
        TIMER.enable(False)
    steps = state.step
    for name in ("cameras", "render", "loss", "checks", "backward", "logging"):
        assert TIMER.calls[name] >= steps, name
    assert TIMER.calls["optimiser"] == 2 * steps  # zero_grad, then step
    TIMER.reset()
