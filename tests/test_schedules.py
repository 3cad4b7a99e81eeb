"""Step schedules scale with the budget: each config's ``step_schedule`` (losses' t annealing, 3DGS
densification), applied by the trial; explicit ``--set`` values win."""

from __future__ import annotations

import dataclasses

import pytest

from sdbench import config as cfgutil
from sdbench import registry
from sdbench import trial as T
from sdbench.budget import Budget
from sdbench.errors import UserError

#: The table ``benchmarks/losses_2d.py`` compressed the paper schedules with before the trial did it:
#: (scoped key, the paper's step / the paper's run length), applied as ``max(1, int(fraction · steps))``.
OLD_SCHEDULES = (
    ("loss@csd.omega2.to_step", 0.5),
    ("loss@csd.t_max.from_step", 0.5),
    ("loss@csd.t_max.to_step", 0.5),
    ("loss@ism.anneal_steps", 0.3),
    ("loss@vsd.t_max.from_step", 0.2),
    ("loss@vsd.t_max.to_step", 0.2),
    ("loss@esd.t_max.from_step", 0.2),
    ("loss@esd.t_max.to_step", 0.2),
    ("loss@lods.t_max.from_step", 0.4),
    ("loss@lods.t_max.to_step", 0.4),
    ("loss@sds_bridge.stage_two_start", 0.8),
    ("loss@sds_bridge.t_max.from_step", 0.2),
    ("loss@sds_bridge.t_max.to_step", 0.2),
    ("loss@sdi.t_schedule.to_step", 1.0),
    ("loss@asd.t_min.to_step", 1.0),
    ("loss@asd.t_max.to_step", 1.0),
    ("loss@cds.cfg_scale.to_step", 1.0),
    ("loss@cds.t_next.to_step", 1.0),
    ("loss@cds.grad_clip.to_step", 1.0),
)


def resolve(loss="sds", rep="image", budget=Budget("steps", 500), overrides=(), **kw):
    return T.resolve(T.TrialConfig(prompt="a red cube", loss=loss, representation=rep, budget=budget, **kw), overrides)


def old_values(steps: int) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for key, fraction in OLD_SCHEDULES:
        loss, _, field = key.removeprefix("loss@").partition(".")
        out.setdefault(loss, {})[field] = max(1, int(fraction * steps))
    return out


@pytest.mark.parametrize("steps", [500, 120])
def test_a_trial_scales_every_loss_schedule_as_the_old_table_did(steps):
    expected = old_values(steps)
    for loss in registry.LOSSES.names():
        got = cfgutil.schedule_values(resolve(loss, budget=Budget("steps", steps)).loss)
        assert got == expected.get(loss, {}), loss  # VDM's ablations and the other losses: no step schedule


def test_schedules_keep_their_shape_at_any_length():
    csd = resolve("csd", budget=Budget("steps", 120)).loss
    assert (csd.omega2.from_step, csd.omega2.to_step, csd.omega2.start, csd.omega2.end) == (0, 60, 0.0, 1.0)  # 0 stays 0
    assert csd.t_max.from_step == csd.t_max.to_step == 60  # a jump stays a jump
    assert resolve("csd", budget=Budget("steps", 10_000)).loss == type(csd)()  # the paper's length: the paper's values
    assert resolve("ism", budget=Budget("steps", 3)).loss.anneal_steps == 1  # never 0
    assert resolve("sdi", budget=Budget("steps", 120)).loss.t_schedule.from_step == 0


def test_explicit_values_win_and_scaling_can_be_switched_off():
    s = resolve("csd", budget=Budget("steps", 120), overrides=("loss.t_max.to_step=90", "loss@csd.omega2.to_step=7"))
    assert (s.loss.t_max.from_step, s.loss.t_max.to_step, s.loss.omega2.to_step) == (60, 90, 7)
    whole = resolve("csd", budget=Budget("steps", 120), overrides=('loss.t_max={"start": 0.9, "end": 0.4, "to_step": 9000}',))
    assert (whole.loss.t_max.from_step, whole.loss.t_max.to_step) == (0, 9000)  # set as a whole: kept as given
    off = resolve("cds", rep="gaussians", budget=Budget("steps", 120), overrides=("loss.grad_clip=null",))
    assert off.loss.grad_clip is None and off.loss.t_next.to_step == 120  # a schedule switched off is skipped
    unscaled = resolve("ism", rep="gaussians", budget=Budget("steps", 120), overrides=("trial.scale_schedules=false",))
    assert unscaled.loss.anneal_steps == 1500 and unscaled.representation.densify_every == 100


def test_nfe_and_seconds_budgets_scale_only_to_schedule_steps():
    for budget in (Budget("nfe", 240), Budget("seconds", 30)):
        assert resolve("vsd", budget=budget).loss.t_max.from_step == 5000  # no step count: as written
        assert resolve("vsd", budget=budget, overrides=("trial.schedule_steps=120",)).loss.t_max.from_step == 24
    with pytest.raises(UserError, match="schedule_steps"):
        resolve(overrides=("trial.schedule_steps=-1",))


def test_gaussians_densification_is_budget_relative():
    def schedule(steps, overrides=()):
        r = resolve(rep="gaussians", budget=Budget("steps", steps), overrides=overrides).representation
        return r.densify_from, r.densify_until, r.densify_every

    assert schedule(500) == (100, 400, 100)  # the 500-step schedule of before, exactly
    assert schedule(120) == (24, 96, 24)
    assert schedule(1000) == (200, 800, 200)
    assert schedule(120, ("rep.densify_every=10",)) == (24, 96, 10)
    assert schedule(120, ("rep@gaussians.densify_from=5",)) == (5, 96, 24)


def refinements(spec, prior) -> tuple[list[int], int, int]:
    """Run ``spec``; the steps at which gsplat's strategy refined (grew and pruned), and the number of
    Gaussians before and after."""
    state = T.build(spec, prior)
    strategy = state.representation.strategy
    steps: list[int] = []
    prune = strategy._prune_gs

    def counting_prune(params, optimizers, state_, step):
        steps.append(step)
        return prune(params, optimizers, state_, step)

    strategy._prune_gs = counting_prune  # called once per refinement, after the growth
    before = state.representation.num_points
    T.optimise(state, progress=False)
    return steps, before, state.representation.num_points


def test_a_120_step_gaussians_trial_refines(tiny_pixel_checkpoint):
    from sdbench.priors.diffusers_prior import DiffusersPrior

    prior = DiffusersPrior(DiffusersPrior.Config(path=str(tiny_pixel_checkpoint)))
    overrides = ("rep.num_points=64", "rep.densify_grad=0.0", "trial.log_every=1000")  # every Gaussian qualifies
    cfg = T.TrialConfig(
        prompt="a red cube", representation="gaussians", prior=str(tiny_pixel_checkpoint), budget=Budget("steps", 120)
    )
    steps, before, after = refinements(T.resolve(cfg, overrides), prior)
    assert steps == [48, 72] and after > before
    absolute = T.resolve(cfg, (*overrides, "rep.densify_from=100", "rep.densify_until=400", "rep.densify_every=100"))
    steps, before, after = refinements(absolute, prior)
    assert steps == [] and after == before  # the old absolute schedule: no refinement in 120 steps (gsplat: step > 100)


def test_growth_stops_at_max_points_exactly(tiny_pixel_checkpoint):
    """gsplat adds one Gaussian per grown one: with every Gaussian qualifying, 64 would become 128 at the
    first refinement. The cap lets only the largest gradients grow, so the count lands on ``max_points``."""
    from sdbench.priors.diffusers_prior import DiffusersPrior

    prior = DiffusersPrior(DiffusersPrior.Config(path=str(tiny_pixel_checkpoint)))
    overrides = ("rep.num_points=64", "rep.densify_grad=0.0", "rep.prune_opacity=0.0", "trial.log_every=1000")
    cfg = T.TrialConfig(
        prompt="a red cube", representation="gaussians", prior=str(tiny_pixel_checkpoint), budget=Budget("steps", 60)
    )
    grown = []
    spec = T.resolve(cfg, (*overrides, "rep.max_points=80"))
    state = T.build(spec, prior)
    strategy = state.representation.strategy
    grow = strategy._grow_gs

    def spy(params, optimizers, state_, step):
        grads = (state_["grad2d"] / state_["count"].clamp_min(1)).clone()
        n_dupli, n_split = grow(params, optimizers, state_, step)
        grown.append((len(grads), n_dupli + n_split))
        return n_dupli, n_split

    strategy._grow_gs = spy
    T.optimise(state, progress=False)
    assert grown == [(64, 16), (80, 0)]
    assert state.representation.num_points == 80
    assert strategy.grow_grad2d == 0.0  # the raised threshold was for that growth only
    uncapped = T.resolve(cfg, (*overrides, "rep.max_points=1000"))
    assert refinements(uncapped, prior)[2] == 256  # uncapped, every Gaussian grows at both refinements: 64 → 128 → 256


def test_every_declared_schedule_names_step_counts():
    for reg in (registry.LOSSES, registry.REPRESENTATIONS):
        for name in reg.names():
            cfg = reg.get(name).Config()
            schedule = cfgutil.step_schedule(cfg)
            if schedule is None:
                continue
            values = cfgutil.schedule_values(cfg)
            assert set(values) == set(schedule.fields), name  # every path exists and is set by default
            assert all(isinstance(v, int) and v > 0 for v in values.values()), name
            assert {f.name for f in dataclasses.fields(cfg)} >= {p.partition(".")[0] for p in schedule.fields}
