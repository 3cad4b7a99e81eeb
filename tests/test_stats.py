"""The study's statistics on constructed data whose answers are known."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sdbench.stats import (
    bootstrap_distribution,
    bootstrap_p_value,
    cluster_bootstrap,
    detectable_effect,
    holm,
    mean_ci,
    paired_bootstrap,
    paired_differences,
    tail_share,
    wilson,
)


def correlated(prompts: int = 30, seeds: int = 4, shift: float = 0.0, prompt_sd: float = 1.0, seed_sd: float = 0.1, seed=0):
    """Paired differences whose seeds share their prompt's offset: {prompt: [seeds]}."""
    g = np.random.default_rng(seed)
    offsets = g.normal(shift, prompt_sd, prompts)
    return {f"p{i}": list(o + g.normal(0, seed_sd, seeds)) for i, o in enumerate(offsets)}


def test_a_constant_shift_gives_a_zero_width_interval_at_the_shift():
    a = {(f"p{i}", s): 1.0 + i + 0.1 * s for i in range(12) for s in range(2)}
    b = {k: v - 0.375 for k, v in a.items()}  # every pair differs by exactly 0.375
    r = paired_bootstrap(a, b)
    assert r.estimate == r.low == r.high == pytest.approx(0.375, abs=1e-12)
    assert r.high - r.low == 0.0  # exactly: every resample is the same multiset of equal values
    assert r.excludes(0.0) and r.direction(+1) == "reproduced" and r.direction(-1) == "opposite"
    assert r.p_value == 1 / r.resamples  # p < 1/R is reported at the bootstrap's resolution
    assert (r.clusters, r.observations) == (12, 24)


def test_the_cluster_bootstrap_is_wider_than_a_naive_seed_level_one_when_seeds_are_correlated():
    clusters = correlated(prompts=30, seeds=4, prompt_sd=1.0, seed_sd=0.1)
    cluster = cluster_bootstrap(clusters)
    naive = cluster_bootstrap([[v] for vs in clusters.values() for v in vs])
    assert cluster.estimate == pytest.approx(naive.estimate)  # balanced clusters: the same mean
    width, naive_width = cluster.high - cluster.low, naive.high - naive.low
    # seeds nearly copy their prompt: 120 values carry about 30 values' information, ≈ √4 = 2× narrower
    assert width > 1.7 * naive_width, (width, naive_width)
    # the cluster interval has the width of the normal interval over prompt means (sd ≈ 1, n = 30)
    means = np.array([np.mean(v) for v in clusters.values()])
    assert width == pytest.approx(2 * 1.96 * means.std(ddof=1) / math.sqrt(30), rel=0.1)
    assert cluster.se == pytest.approx(means.std(ddof=1) / math.sqrt(30), rel=0.1)  # the bootstrap standard error
    # with independent seeds the two agree
    independent = correlated(prompts=30, seeds=4, prompt_sd=0.0, seed_sd=1.0)
    a = cluster_bootstrap(independent)
    b = cluster_bootstrap([[v] for vs in independent.values() for v in vs])
    assert (a.high - a.low) == pytest.approx(b.high - b.low, rel=0.15)


def test_the_bootstrap_is_seeded_and_covers_a_known_mean():
    clusters = correlated(prompts=20, seeds=2, shift=0.5)
    assert cluster_bootstrap(clusters, seed=3) == cluster_bootstrap(clusters, seed=3)
    assert cluster_bootstrap(clusters, seed=3).low != cluster_bootstrap(clusters, seed=4).low
    # coverage over repeated experiments with true mean 0.5 is about 95 % (percentile bootstrap, n = 20: a bit less)
    hits = sum(cluster_bootstrap(correlated(20, 2, 0.5, seed=k), resamples=2000).excludes(0.5) is False for k in range(200))
    assert 0.88 <= hits / 200 <= 0.99


def test_the_p_value_comes_from_the_bootstrap_distribution():
    assert bootstrap_p_value([1.0, 2.0, 3.0, 4.0]) == 0.25  # none at or below 0: floored at 1/R
    assert bootstrap_p_value([-1.0, 1.0, 2.0, 3.0]) == 0.5  # 1 of 4 at or below 0: 2 × 1/4
    assert bootstrap_p_value([-2.0, -1.0, 1.0, 2.0]) == 1.0
    assert bootstrap_p_value([0.0, 0.0]) == 1.0  # ties count on both sides
    assert bootstrap_p_value([1.0, 2.0, 3.0], null=2.5) == pytest.approx(2 / 3)
    assert bootstrap_p_value([-1.0, 1.0, 2.0, 3.0], plus_one=True) == pytest.approx(2 * 2 / 5)  # (1 + 1) / (4 + 1)
    assert bootstrap_p_value([1.0, 2.0, 3.0, 4.0], plus_one=True) == pytest.approx(2 / 5)
    null_effect = cluster_bootstrap(correlated(30, 2, shift=0.0, seed=1))
    assert null_effect.p_value > 0.05 and not null_effect.excludes(0.0)
    assert null_effect.direction(+1) == "not reproduced"
    effect = cluster_bootstrap(correlated(30, 2, shift=1.0, seed=1))
    assert effect.p_value < 0.01 and effect.excludes(0.0)


def test_the_distribution_is_the_one_behind_the_interval_and_its_tails_give_one_sided_p_values():
    data = correlated(20, 2, shift=0.3, seed=2)
    boot = cluster_bootstrap(data, resamples=2000, seed=5)
    dist = bootstrap_distribution(data, resamples=2000, seed=5)
    assert dist.shape == (2000,) and dist.mean() == pytest.approx(boot.estimate, abs=3 * boot.se)
    assert (boot.low, boot.high) == pytest.approx(tuple(np.quantile(dist, [0.025, 0.975])), rel=1e-12)
    assert boot.p_value == bootstrap_p_value(dist)
    d = [-1.0, 0.5, 1.0, 2.0]
    assert tail_share(d, 1.0, "above") == pytest.approx((1 + 2) / 5)  # 1.0 and 2.0, ties included
    assert tail_share(d, 0.0, "below") == pytest.approx((1 + 1) / 5)
    assert tail_share(d, 0.0, "below", plus_one=False) == 0.25
    with pytest.raises(ValueError):
        tail_share(d, 0.0, "sideways")


def test_paired_differences_keep_pairs_both_arms_have_and_group_by_prompt():
    a = {("x", 0): 1.0, ("x", 1): 2.0, ("y", 0): 5.0, ("y", 1): math.nan, ("z", 0): 1.0}
    b = {("x", 0): 0.5, ("x", 1): 1.0, ("y", 0): 4.0, ("y", 1): 3.0}
    assert paired_differences(a, b) == {"x": [0.5, 1.0], "y": [1.0]}
    r = paired_bootstrap(a, b)
    assert r.estimate == pytest.approx((0.75 + 1.0) / 2)  # mean of prompt means: each prompt weighs the same
    assert (r.clusters, r.observations) == (2, 3)
    with pytest.raises(ValueError, match="at least 2 clusters"):
        cluster_bootstrap({"x": [1.0, 2.0]})


def test_holm_on_the_textbook_example():
    # Holm–Bonferroni, four hypotheses at α = 0.05: p = 0.01, 0.04, 0.03, 0.005 → reject H1 and H4 only
    adjusted = holm([0.01, 0.04, 0.03, 0.005])
    assert adjusted == pytest.approx([0.03, 0.06, 0.06, 0.02])  # 4·0.005, 3·0.01, max(2·0.03, ·), max(1·0.04, 0.06)
    assert [p <= 0.05 for p in adjusted] == [True, False, False, True]
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])  # capped at 1
    assert holm([0.02]) == [0.02]
    out = holm([0.01, math.nan, 0.04])
    assert out[0] == pytest.approx(0.02) and math.isnan(out[1]) and out[2] == pytest.approx(0.04)
    with pytest.raises(ValueError, match="in \\[0, 1\\]"):
        holm([1.5])


@pytest.mark.parametrize(
    "successes, n, low, high",
    # Newcombe (1998), Statistics in Medicine 17:857, Table I, method 3 (Wilson score, no continuity correction)
    [(81, 263, 0.2553, 0.3662), (15, 148, 0.0624, 0.1605), (0, 20, 0.0, 0.1611), (1, 29, 0.0061, 0.1718)],
)
def test_wilson_matches_published_values(successes, n, low, high):
    lo, hi = wilson(successes, n)
    assert (round(lo, 4), round(hi, 4)) == (low, high)


def test_wilson_stays_inside_the_unit_interval():
    assert wilson(0, 5)[0] == 0.0 and wilson(5, 5)[1] == 1.0 and 0 < wilson(5, 5)[0] < 1
    lo, hi = wilson(30, 60)
    assert lo < 0.5 < hi and hi - 0.5 == pytest.approx(0.5 - lo)
    with pytest.raises(ValueError):
        wilson(3, 2)


def test_the_detectable_effect_has_the_power_it_promises():
    from scipy.stats import nct
    from scipy.stats import t as student

    clusters = [[1.0], [-1.0]] * 8  # n = 16 prompts, sd of the prompt differences 1.0328
    delta = detectable_effect(clusters)
    s = np.std([1.0, -1.0] * 8, ddof=1)
    assert delta == pytest.approx((student.ppf(0.975, 15) + student.ppf(0.8, 15)) * s / 4)
    # exact power of the two-sided paired t test at that effect (noncentral t): the 80 % it was solved for
    nc, crit = delta / s * 4, student.ppf(0.975, 15)
    assert 1 - nct.cdf(crit, 15, nc) + nct.cdf(-crit, 15, nc) == pytest.approx(0.80, abs=0.01)
    # four times the prompts halve it; more spread widens it; one prompt cannot say
    assert detectable_effect([[1.0], [-1.0]] * 32) < 0.52 * delta
    assert detectable_effect([[2.0], [-2.0]] * 8) == pytest.approx(2 * delta)
    assert math.isnan(detectable_effect([[1.0, 2.0]]))
    # seeds are averaged per prompt first: a prompt's seed noise does not count as prompt spread
    assert detectable_effect({"a": [0.0, 2.0], "b": [0.0, 2.0], "c": [1.0, 1.0]}) == 0.0


def test_mean_ci_is_the_student_t_interval():
    m, ci, n = mean_ci([1.0, 2.0, 3.0, math.nan])
    assert (m, n) == (2.0, 3) and ci == pytest.approx(4.302653 * 1.0 / math.sqrt(3), rel=1e-6)
    assert mean_ci([5.0]) == (5.0, 0.0, 1) and mean_ci([])[2] == 0
