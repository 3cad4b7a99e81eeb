"""The statistics of a study, in one place (``../shared/reference/study-methods.md``).

* :func:`mean_ci`: mean and Student-t 95 % half-width of independent values (the report's cells);
* :func:`cluster_bootstrap`: the unit is the prompt. Values come in clusters (a prompt's seeds); the
  estimate is the mean over clusters of the cluster means, and its interval is the percentile
  interval of a bootstrap that resamples *clusters* with replacement, each carrying all its values,
  from a seeded generator. Its two-sided p-value (:func:`bootstrap_p_value`) is read from the same
  bootstrap distribution (:func:`bootstrap_distribution`; one-sided shares, for equivalence and
  non-inferiority tests, with :func:`tail_share`);
* :func:`paired_differences` / :func:`paired_bootstrap`: arms compared on the same (prompt, seed);
  the differences are clustered by prompt;
* :func:`holm`: Holm's step-down adjustment of a family of p-values (Holm 1979);
* :func:`wilson`: the Wilson score interval of a proportion (Wilson 1927), which stays in [0, 1];
* :func:`detectable_effect`: the smallest paired effect a study of ``n`` prompts detects with the
  given power, from the spread of the per-prompt differences (the paired t-test sample-size formula).

Only numpy and scipy: foundation layer, usable from evaluation, report, study and benchmarks alike.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np


def _finite(values: Sequence[float]) -> list[float]:
    return [float(v) for v in values if isinstance(v, (int, float)) and math.isfinite(v)]


def mean_ci(values: Sequence[float]) -> tuple[float, float, int]:
    """Mean, 95 % confidence half-width (Student t, n − 1 dof; 0 for one value) and n of finite values.

    Treats the values as independent: for seeds of the same prompts use :func:`cluster_bootstrap`."""
    xs = _finite(values)
    n = len(xs)
    if n == 0:
        return float("nan"), float("nan"), 0
    m = sum(xs) / n
    if n == 1:
        return m, 0.0, 1
    from scipy.stats import t as student

    sd = math.sqrt(sum((x - m) ** 2 for x in xs) / (n - 1))
    return m, float(student.ppf(0.975, n - 1)) * sd / math.sqrt(n), n


@dataclass(frozen=True)
class BootstrapResult:
    """A cluster-bootstrap estimate with its percentile interval."""

    estimate: float
    """Mean over clusters of the cluster means (each prompt weighs the same, whatever its seed count)."""
    low: float
    """Lower end of the percentile interval."""
    high: float
    """Upper end of the percentile interval."""
    p_value: float
    """Two-sided p-value of ``estimate == null`` from the bootstrap distribution (:func:`bootstrap_p_value`)."""
    se: float
    """Standard deviation of the bootstrap distribution: the standard error of the estimate."""
    null: float
    """The value the p-value and :meth:`excludes` test against."""
    confidence: float
    """Coverage of the interval, e.g. 0.95."""
    clusters: int
    """n: the number of clusters (prompts)."""
    observations: int
    """Values over all clusters (prompt × seed pairs)."""
    resamples: int
    """Bootstrap resamples."""
    seed: int
    """Seed of the resampling generator."""

    def excludes(self, value: float | None = None) -> bool:
        """True when the interval does not contain ``value`` (default: ``null``)."""
        value = self.null if value is None else value
        return not self.low <= value <= self.high

    def direction(self, expected: int) -> str:
        """Verdict against an expected sign (+1: above ``null``, −1: below): ``reproduced`` when the
        interval lies on the expected side, ``opposite`` when on the other, else ``not reproduced``."""
        if expected not in (1, -1):
            raise ValueError(f"expected must be +1 or -1, got {expected}")
        if self.low > self.null:
            return "reproduced" if expected == 1 else "opposite"
        if self.high < self.null:
            return "reproduced" if expected == -1 else "opposite"
        return "not reproduced"

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


def bootstrap_p_value(distribution: np.ndarray | Sequence[float], null: float = 0.0, plus_one: bool = False) -> float:
    """Two-sided p-value of ``null`` from a bootstrap distribution: twice the smaller share of resampled
    statistics on either side of ``null`` (ties count on both sides), capped at 1 and floored at
    ``1 / len(distribution)`` (the resolution of the bootstrap: "p < 1/R" is reported as 1/R). With
    ``plus_one`` each share is ``(1 + count) / (R + 1)`` instead (the convention of ``docs/claims.md``).

    It is the percentile interval read backwards: the equal-tailed (1 − α) interval excludes ``null``
    exactly when fewer than α/2 of the resamples fall on ``null``'s side, i.e. when p < α (up to the
    interpolation between order statistics)."""
    d = np.asarray(distribution, dtype=float)
    if d.ndim != 1 or d.size == 0:
        raise ValueError(f"expected a non-empty 1-D bootstrap distribution, got shape {d.shape}")
    if plus_one:
        below, above = (1 + np.sum(d <= null)) / (d.size + 1), (1 + np.sum(d >= null)) / (d.size + 1)
        return float(min(1.0, 2.0 * min(below, above)))
    below, above = np.mean(d <= null), np.mean(d >= null)
    return float(min(1.0, max(2.0 * min(below, above), 1.0 / d.size)))


def tail_share(distribution: np.ndarray | Sequence[float], threshold: float, side: str, plus_one: bool = True) -> float:
    """One-sided share of a bootstrap distribution: ``P*(Δ* ≥ threshold)`` for ``side="above"``,
    ``P*(Δ* ≤ threshold)`` for ``"below"``; with ``plus_one`` as ``(1 + count) / (R + 1)``. It is the
    one-sided p-value of "the statistic lies on the other side of ``threshold``" (e.g. the two one-sided
    tests of an equivalence claim against ±δ)."""
    d = np.asarray(distribution, dtype=float)
    if d.ndim != 1 or d.size == 0:
        raise ValueError(f"expected a non-empty 1-D bootstrap distribution, got shape {d.shape}")
    if side not in ("above", "below"):
        raise ValueError(f"side must be 'above' or 'below', got {side!r}")
    count = np.sum(d >= threshold) if side == "above" else np.sum(d <= threshold)
    return float((1 + count) / (d.size + 1)) if plus_one else float(count / d.size)


def _cluster_means(clusters: Mapping[Hashable, Sequence[float]] | Sequence[Sequence[float]]) -> tuple[np.ndarray, int]:
    groups = list(clusters.values()) if isinstance(clusters, Mapping) else list(clusters)
    kept = [_finite(g) for g in groups]
    kept = [g for g in kept if g]
    return np.array([sum(g) / len(g) for g in kept], dtype=float), sum(len(g) for g in kept)


def bootstrap_distribution(
    clusters: Mapping[Hashable, Sequence[float]] | Sequence[Sequence[float]], *, resamples: int = 10_000, seed: int = 0
) -> np.ndarray:
    """The ``resamples`` bootstrap means of :func:`cluster_bootstrap` (the same generator and draws, so the
    same numbers): each resample draws as many clusters as there are, with replacement, and averages their
    cluster means. For tests that the two-sided p-value does not cover (:func:`tail_share`)."""
    means, _ = _cluster_means(clusters)
    return _resampled_means(means, resamples, seed)


def _resampled_means(means: np.ndarray, resamples: int, seed: int) -> np.ndarray:
    if resamples < 1:
        raise ValueError(f"resamples must be at least 1, got {resamples}")
    k = len(means)
    if k < 2:
        raise ValueError(f"a cluster bootstrap needs at least 2 clusters with finite values, got {k}")
    rng = np.random.Generator(np.random.PCG64(seed))
    idx = rng.integers(0, k, size=(resamples, k))
    return means[idx].mean(axis=1)


def cluster_bootstrap(
    clusters: Mapping[Hashable, Sequence[float]] | Sequence[Sequence[float]],
    *,
    resamples: int = 10_000,
    confidence: float = 0.95,
    seed: int = 0,
    null: float = 0.0,
    plus_one: bool = False,
) -> BootstrapResult:
    """Prompt-cluster bootstrap of the mean.

    Args:
        clusters: values per cluster, e.g. ``{prompt: [difference of seed 0, of seed 1]}`` (non-finite
            values are dropped; a cluster left empty is dropped). For independent values pass one
            cluster per value (``[[v] for v in values]``): that is the naive bootstrap.
        resamples: bootstrap resamples ``R``.
        confidence: coverage of the percentile interval.
        seed: seed of the resampling generator (numpy PCG64): the same input gives the same interval.
        null: the value the p-value tests.
        plus_one: the p-value's ``(1 + count) / (R + 1)`` convention (:func:`bootstrap_p_value`).

    Returns:
        the estimate (mean of the cluster means), the percentile interval of the resampled estimates
        (each resample draws as many clusters as there are, with replacement, and keeps each drawn
        cluster's values together) and the two-sided p-value from the same distribution.
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    means, n_obs = _cluster_means(clusters)
    k = len(means)
    distribution = _resampled_means(means, resamples, seed)
    alpha = 1.0 - confidence
    low, high = np.quantile(distribution, [alpha / 2, 1 - alpha / 2])
    return BootstrapResult(
        estimate=float(means.mean()),
        low=float(low),
        high=float(high),
        p_value=bootstrap_p_value(distribution, null, plus_one),
        se=float(distribution.std(ddof=1)) if resamples > 1 else math.nan,
        null=null,
        confidence=confidence,
        clusters=k,
        observations=n_obs,
        resamples=resamples,
        seed=seed,
    )


def paired_differences(
    a: Mapping[tuple[Hashable, Hashable], float], b: Mapping[tuple[Hashable, Hashable], float]
) -> dict[Hashable, list[float]]:
    """``a − b`` on the (cluster, unit) keys both have, e.g. ``(prompt, seed)``, grouped by cluster;
    pairs where either value is not finite are left out."""
    out: dict[Hashable, list[float]] = defaultdict(list)
    for key in sorted(a.keys() & b.keys(), key=repr):
        x, y = a[key], b[key]
        if isinstance(x, (int, float)) and isinstance(y, (int, float)) and math.isfinite(x) and math.isfinite(y):
            out[key[0]].append(float(x) - float(y))
    return dict(out)


def paired_bootstrap(
    a: Mapping[tuple[Hashable, Hashable], float], b: Mapping[tuple[Hashable, Hashable], float], **kwargs
) -> BootstrapResult:
    """:func:`cluster_bootstrap` of :func:`paired_differences` ``a − b`` (keyword arguments passed on)."""
    return cluster_bootstrap(paired_differences(a, b), **kwargs)


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the input order (Holm 1979).

    With the ``m`` p-values sorted ascending, ``p̃_(i) = max_{j ≤ i} min(1, (m − j + 1) p_(j))``; a
    hypothesis is rejected at family-wise level α when its adjusted p-value is ≤ α. NaN p-values
    (a comparison that could not be made) stay NaN and do not count in ``m``."""
    ps = [float(p) for p in p_values]
    for p in ps:
        if not (math.isnan(p) or 0.0 <= p <= 1.0):
            raise ValueError(f"p-values must be in [0, 1], got {p}")
    order = sorted((i for i, p in enumerate(ps) if not math.isnan(p)), key=lambda i: ps[i])
    m = len(order)
    out = [math.nan] * len(ps)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * ps[i]))
        out[i] = running
    return out


def wilson(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval ``(low, high)`` of a proportion ``successes / n`` (no continuity correction):
    ``(p̂ + z²/2n ± z √(p̂(1 − p̂)/n + z²/4n²)) / (1 + z²/n)``, ``z`` the normal quantile. Inside [0, 1]
    even at 0 or n successes, where a Wald (or t) interval leaves it or collapses."""
    if n < 1 or not 0 <= successes <= n:
        raise ValueError(f"need 0 <= successes <= n and n >= 1, got {successes} of {n}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    from scipy.stats import norm

    z = float(norm.ppf(0.5 + confidence / 2))
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def detectable_effect(
    clusters: Mapping[Hashable, Sequence[float]] | Sequence[Sequence[float]], alpha: float = 0.05, power: float = 0.8
) -> float:
    """The smallest mean paired difference a two-sided test at level ``alpha`` detects with probability
    ``power``, given the spread of the per-cluster (per-prompt) mean differences.

    Formula (the paired t-test's sample-size equation solved for the effect, central-t approximation of
    the noncentral t): ``δ = (t_{1−α/2, n−1} + t_{power, n−1}) · s / √n``, with ``n`` the number of
    clusters and ``s`` the standard deviation (n − 1) of their mean differences. A "no difference"
    result then reads "smaller than δ" only together with its interval; NaN for fewer than 2 clusters."""
    means, _ = _cluster_means(clusters)
    n = len(means)
    if n < 2:
        return math.nan
    from scipy.stats import t as student

    s = float(np.std(means, ddof=1))
    return float((student.ppf(1 - alpha / 2, n - 1) + student.ppf(power, n - 1)) * s / math.sqrt(n))
