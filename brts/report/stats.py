"""Statistics of the report as pure functions over arrays: intervals, paired differences, tests.

The unit of analysis is a (seed, problem) matrix: entry [s, p] is one training seed's accuracy on one
problem, averaged over its k samples. Two sources of noise matter: which problems were drawn, and which
training seeds were run. An interval here is the wider, on each side, of

- a percentile bootstrap over problems of the seed-averaged per-problem values (problem sampling), and
- a t-interval over the per-seed means (training-seed variation; S - 1 degrees of freedom),

so neither a lucky problem set nor one lucky seed alone makes a difference significant. With one seed
the interval covers problem sampling only, and callers flag it. All functions are deterministic.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import stats as scipy_stats

Matrix = NDArray[np.float64]
DEFAULT_BOOT = 4000
DEFAULT_LEVEL = 0.95


@dataclass(frozen=True)
class Interval:
    """A point estimate with a two-sided interval."""

    estimate: float
    low: float
    high: float

    @property
    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0


@dataclass(frozen=True)
class Difference:
    """arm - baseline: the reported interval, the two it is made of, and a signed-rank p over problems."""

    interval: Interval
    over_problems: Interval
    over_seeds: Interval | None  # None with fewer than two seeds per arm
    p: float
    paired_seeds: bool


def _check(matrix: Matrix) -> Matrix:
    m = np.asarray(matrix, dtype=np.float64)
    if m.ndim != 2 or m.shape[0] < 1 or m.shape[1] < 1:
        raise ValueError(f"expected a non-empty (seeds, problems) matrix, got shape {m.shape}")
    if not np.isfinite(m).all():
        raise ValueError("the (seeds, problems) matrix has missing or non-finite entries")
    return m


def bootstrap_mean(values: Matrix, *, n_boot: int = DEFAULT_BOOT, level: float = DEFAULT_LEVEL,
                   seed: int = 0) -> Interval:
    """The mean of per-problem values with a percentile bootstrap interval over problems."""
    v = _check(np.asarray(values, dtype=np.float64).reshape(1, -1))[0]
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(len(v), np.full(len(v), 1.0 / len(v)), size=n_boot)
    replicates = counts @ v / len(v)
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(replicates, [alpha, 1.0 - alpha])
    return Interval(float(v.mean()), float(low), float(high))


def t_interval(values: Matrix, *, level: float = DEFAULT_LEVEL) -> Interval | None:
    """Student-t interval of the mean of a few values (per-seed means); None with fewer than two."""
    v = np.asarray(values, dtype=np.float64).ravel()
    if v.size < 2:
        return None
    half = float(scipy_stats.t.ppf(0.5 + level / 2.0, v.size - 1) * v.std(ddof=1) / math.sqrt(v.size))
    return Interval(float(v.mean()), float(v.mean()) - half, float(v.mean()) + half)


def welch_interval(a: Matrix, b: Matrix, *, level: float = DEFAULT_LEVEL) -> Interval | None:
    """Welch t-interval of mean(a) - mean(b) for unpaired per-seed means; None unless both have two or more."""
    a, b = np.asarray(a, dtype=np.float64).ravel(), np.asarray(b, dtype=np.float64).ravel()
    if a.size < 2 or b.size < 2:
        return None
    va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
    diff = float(a.mean() - b.mean())
    if va + vb == 0:
        return Interval(diff, diff, diff)
    df = (va + vb) ** 2 / (va**2 / (a.size - 1) + vb**2 / (b.size - 1))
    half = float(scipy_stats.t.ppf(0.5 + level / 2.0, df) * math.sqrt(va + vb))
    return Interval(diff, diff - half, diff + half)


def widest(first: Interval, second: Interval | None, bounds: tuple[float, float] | None = None) -> Interval:
    """The first interval widened, on each side, to cover the second (same estimate assumed), then cut to
    `bounds` (the range the quantity can take: a t-interval over three seeds can reach past 100%)."""
    low, high = first.low, first.high
    if second is not None:
        low, high = min(low, second.low), max(high, second.high)
    if bounds is not None:
        low, high = max(low, bounds[0]), min(high, bounds[1])
    return Interval(first.estimate, low, high)


def mean_interval(matrix: Matrix, *, n_boot: int = DEFAULT_BOOT, level: float = DEFAULT_LEVEL,
                  seed: int = 0, bounds: tuple[float, float] | None = None) -> Interval:
    """The grand mean of a (seeds, problems) matrix with the interval of the module docstring."""
    m = _check(matrix)
    problems = bootstrap_mean(m.mean(axis=0), n_boot=n_boot, level=level, seed=seed)
    return widest(problems, t_interval(m.mean(axis=1), level=level), bounds)


def paired_difference(a: Matrix, b: Matrix, *, paired_seeds: bool, n_boot: int = DEFAULT_BOOT,
                      level: float = DEFAULT_LEVEL, seed: int = 0,
                      bounds: tuple[float, float] | None = None) -> Difference:
    """mean(a) - mean(b) over the same problems (columns): paired over problems, and over seeds when
    `paired_seeds` (row s of both is one training seed: same prompts, same teacher samples); otherwise the
    seed term compares the two arms' per-seed means unpaired (Welch)."""
    a, b = _check(a), _check(b)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"paired arms need the same problems, got {a.shape[1]} and {b.shape[1]} columns")
    if paired_seeds and a.shape[0] != b.shape[0]:
        raise ValueError(f"paired seeds need the same number of rows, got {a.shape[0]} and {b.shape[0]}")
    per_problem = a.mean(axis=0) - b.mean(axis=0)
    problems = bootstrap_mean(per_problem, n_boot=n_boot, level=level, seed=seed)
    seeds = (t_interval(a.mean(axis=1) - b.mean(axis=1), level=level) if paired_seeds
             else welch_interval(a.mean(axis=1), b.mean(axis=1), level=level))
    return Difference(widest(problems, seeds, bounds), problems, seeds, wilcoxon_p(per_problem), paired_seeds)


def wilcoxon_p(differences: Matrix) -> float:
    """Two-sided Wilcoxon signed-rank p-value of per-problem differences; 1.0 when every difference is 0."""
    d = np.asarray(differences, dtype=np.float64).ravel()
    if d.size == 0 or not np.any(d != 0):
        return 1.0
    return float(scipy_stats.wilcoxon(d, zero_method="wilcox", alternative="two-sided").pvalue)


def seed_sd(matrix: Matrix) -> float:
    """Standard deviation over training seeds (rows) of the per-seed mean; NaN with one seed."""
    m = _check(matrix)
    if m.shape[0] < 2:
        return math.nan
    return float(m.mean(axis=1).std(ddof=1))


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples of which c are correct (Chen et al., 2021): 1 - C(n-c, k) / C(n, k)."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass@k needs 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)
