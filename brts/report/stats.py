"""Statistics of the report as pure functions over arrays: intervals, tests, multiplicity and power.

The unit of analysis is a (seed, problem) matrix: entry [s, p] is one training seed's accuracy on one
problem, averaged over its k samples. Two sources of noise matter: which training seeds were run, and which
problems were drawn. Both are random effects of one model, the crossed (two-way) random-effects model

    y[s, p] = mu + a[s] + b[p] + e[s, p],   a ~ (0, var_seed), b ~ (0, var_problem), e ~ (0, var_residual),

the "items as a random factor" analysis of Clark (1973), fitted by lme4/lmerTest as
`y ~ 1 + (1 | seed) + (1 | problem)`. The grand mean's variance var_seed / S + var_problem / P +
var_residual / (S P) is estimated from the two-way ANOVA mean squares (method of moments; for a balanced
design with positive components these are the REML estimates) in two parts: the seeds' MS_seed / (S P) with
S - 1 degrees of freedom and the problems' (MS_problem - MS_residual) / (S P) with P - 1. The t-statistic
estimate / SE is referred to Cochran & Cox's (1950) critical value for such a sum (the parts' t quantiles
weighted by their variances), and the p-value is the level at which that critical value equals |t|, so an
interval excludes 0 exactly when p < 1 - level. A paired difference (both arms ran the same seeds on the
same problems) is the model applied to the matrix of differences. With one seed the seed part cannot be
estimated and the interval covers problem sampling only (callers flag it). All functions are deterministic.

docs/LOG.md (2026-11-30) has the simulation of its false-positive rate on identical arms, against a
two-way bootstrap, a problem bootstrap, Satterthwaite's df and the per-problem Wilcoxon test.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import optimize
from scipy import stats as scipy_stats

Matrix = NDArray[np.float64]
DEFAULT_LEVEL = 0.95
DEFAULT_POWER = 0.8
MAX_SEEDS = 1000


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
class Components:
    """Variance components of the crossed model, per unit: the grand mean over S seeds and P problems has
    variance seed / S + problem / P + residual / (S P). `seed` is NaN when it could not be estimated."""

    seed: float
    problem: float
    residual: float

    def variance(self, seeds: int, problems: int) -> float:
        seed = 0.0 if math.isnan(self.seed) else self.seed
        return seed / seeds + self.problem / problems + self.residual / (seeds * problems)


@dataclass(frozen=True)
class Part:
    """One part of the estimate's variance with the degrees of freedom of its estimate."""

    variance: float
    df: float


@dataclass(frozen=True)
class Test:
    """The estimate with its standard error, the interval and the p-value of one t-statistic."""

    interval: Interval
    se: float
    p: float
    parts: tuple[Part, ...]
    components: Components
    seeds: int
    problems: int
    paired_seeds: bool = True

    @property
    def estimate(self) -> float:
        return self.interval.estimate


def _check(matrix: Matrix) -> Matrix:
    m = np.asarray(matrix, dtype=np.float64)
    if m.ndim != 2 or m.shape[0] < 1 or m.shape[1] < 1:
        raise ValueError(f"expected a non-empty (seeds, problems) matrix, got shape {m.shape}")
    if not np.isfinite(m).all():
        raise ValueError("the (seeds, problems) matrix has missing or non-finite entries")
    return m


@dataclass(frozen=True)
class _Anova:
    seeds: int
    problems: int
    ms_seed: float  # P * var(row means), df S - 1
    ms_problem: float  # S * var(column means), df P - 1
    ms_residual: float  # interaction + sampling, df (S - 1)(P - 1)


def _anova(m: Matrix) -> _Anova:
    s, p = m.shape
    grand, rows, cols = m.mean(), m.mean(axis=1), m.mean(axis=0)
    ms_seed = p * float(((rows - grand) ** 2).sum()) / (s - 1) if s > 1 else math.nan
    ms_problem = s * float(((cols - grand) ** 2).sum()) / (p - 1) if p > 1 else math.nan
    resid = m - rows[:, None] - cols[None, :] + grand
    ms_residual = float((resid**2).sum()) / ((s - 1) * (p - 1)) if s > 1 and p > 1 else math.nan
    return _Anova(s, p, ms_seed, ms_problem, ms_residual)


def _components(a: _Anova) -> Components:
    s, p = a.seeds, a.problems
    if s > 1 and p > 1:
        return Components(seed=max(0.0, (a.ms_seed - a.ms_residual) / p),
                          problem=max(0.0, (a.ms_problem - a.ms_residual) / s), residual=a.ms_residual)
    if s > 1:  # one problem (a run-level quantity): only the seeds' spread
        return Components(seed=a.ms_seed, problem=0.0, residual=0.0)
    if p > 1:  # one seed: the problems' spread, seed variation unknown
        return Components(seed=math.nan, problem=a.ms_problem, residual=0.0)
    return Components(seed=math.nan, problem=math.nan, residual=math.nan)


def _parts(a: _Anova) -> tuple[Part, ...]:
    """The grand mean's variance in two parts: seeds, MS_seed / (S P) with S - 1 df (what a t-test over the
    per-seed means uses: seed variance plus the residual's share), and problems, (MS_problem - MS_residual) /
    (S P) with P - 1 df where positive. The seed part is kept however small it comes out: with three seeds a
    small MS_seed is no evidence that seeds agree."""
    s, p = a.seeds, a.problems
    n = s * p
    if s > 1 and p > 1:
        return (Part(a.ms_seed / n, s - 1), Part(max(0.0, a.ms_problem - a.ms_residual) / n, p - 1))
    if s > 1:
        return (Part(a.ms_seed / n, s - 1),)
    if p > 1:
        return (Part(a.ms_problem / n, p - 1),)
    return ()


def critical_value(parts: Sequence[Part], alpha: float) -> float:
    """Cochran & Cox's (1950) critical value for a t-statistic whose variance adds parts with different df:
    the parts' t quantiles weighted by their variances.

    Satterthwaite's df instead would, with three seeds, grow toward the problems' P - 1 exactly when MS_seed
    comes out small by chance and call 7% of identical arms different (docs/LOG.md, 2026-11-30); this, 4-5%.
    """
    total = sum(part.variance for part in parts)
    if total <= 0:
        return float(scipy_stats.t.isf(alpha / 2, max(part.df for part in parts)))
    return sum(part.variance * float(scipy_stats.t.isf(alpha / 2, part.df)) for part in parts) / total


def _p_value(t: float, parts: Sequence[Part]) -> float:
    """The alpha at which |t| equals the critical value: rejection at level 1 - alpha exactly when p < alpha."""
    t = abs(t)
    if t == 0:
        return 1.0
    if len({part.df for part in parts if part.variance > 0}) <= 1:  # one t distribution: its own tail
        df = next((part.df for part in parts if part.variance > 0), parts[0].df)
        return float(2.0 * scipy_stats.t.sf(t, df))
    if t >= critical_value(parts, 1e-100):  # scipy's t quantiles break down further out
        return 0.0
    log_alpha = optimize.brentq(lambda x: critical_value(parts, 10.0**x) - t, -100.0, 0.0, xtol=1e-9)
    return float(10.0**log_alpha)


def _t_test(estimate: float, parts: Sequence[Part], components: Components, seeds: int, problems: int,
            level: float, paired: bool = True) -> Test:
    parts = tuple(parts)
    if not parts:
        return Test(Interval(estimate, math.nan, math.nan), math.nan, math.nan, parts, components, seeds,
                    problems, paired)
    se = math.sqrt(sum(part.variance for part in parts))
    if se == 0:  # every replicate agrees exactly
        return Test(Interval(estimate, estimate, estimate), 0.0, 1.0 if estimate == 0 else 0.0, parts,
                    components, seeds, problems, paired)
    half = critical_value(parts, 1 - level) * se
    return Test(Interval(estimate, estimate - half, estimate + half), se, _p_value(estimate / se, parts), parts,
                components, seeds, problems, paired)


def _rounded(a: _Anova, rounding_var: float) -> _Anova:
    """MS_seed no smaller than rounding alone makes it: values known only on a grid (a step every validation
    interval h) differ by up to a grid step however alike the seeds are; each cell carries h^2 / 12."""
    if rounding_var <= 0 or a.seeds < 2:
        return a
    return _Anova(a.seeds, a.problems, max(a.ms_seed, rounding_var), a.ms_problem, a.ms_residual)


def crossed_test(matrix: Matrix, *, level: float = DEFAULT_LEVEL, resolution: float = 0.0) -> Test:
    """The grand mean of a (seeds, problems) matrix with its interval and the p-value of mean = 0.

    `resolution`: the values lie on a grid of this step (0: exact); see `_rounded`."""
    m = _check(matrix)
    a = _rounded(_anova(m), resolution**2 / 12.0)
    return _t_test(float(m.mean()), _parts(a), _components(a), a.seeds, a.problems, level)


def clip(interval: Interval, bounds: tuple[float, float]) -> Interval:
    """The interval cut to the range the quantity can take (a t-interval over three seeds can pass 100%)."""
    return Interval(interval.estimate, max(interval.low, bounds[0]), min(interval.high, bounds[1]))


def mean_interval(matrix: Matrix, *, level: float = DEFAULT_LEVEL,
                  bounds: tuple[float, float] | None = None) -> Interval:
    """The grand mean of a (seeds, problems) matrix with the crossed-model interval of the module docstring."""
    ci = crossed_test(matrix, level=level).interval
    return clip(ci, bounds) if bounds is not None else ci


def paired_difference(a: Matrix, b: Matrix, *, paired_seeds: bool, level: float = DEFAULT_LEVEL,
                      resolution: float = 0.0) -> Test:
    """mean(a) - mean(b) over the same problems (columns), with the crossed model's interval and p-value.

    `paired_seeds`: row s of both is one training seed (same prompts, same teacher samples): the model is
    applied to the matrix of differences. Otherwise each arm brings its own seed part, and the problem part
    is that of the difference of the per-problem means. `resolution` as in `crossed_test`.
    """
    a, b = _check(a), _check(b)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"paired arms need the same problems, got {a.shape[1]} and {b.shape[1]} columns")
    if paired_seeds:
        if a.shape[0] != b.shape[0]:
            raise ValueError(f"paired seeds need the same number of rows, got {a.shape[0]} and {b.shape[0]}")
        d = a - b
        fit = _rounded(_anova(d), 2.0 * resolution**2 / 12.0)  # a difference of two rounded values
        return _t_test(float(d.mean()), _parts(fit), _components(fit), fit.seeds, fit.problems, level)
    return _unpaired(a, b, level, resolution**2 / 12.0)


def _unpaired(a: Matrix, b: Matrix, level: float, rounding_var: float = 0.0) -> Test:
    """Arms that ran different seeds: each arm's seed part (as in `_parts`) plus the problem part of the
    difference of the per-problem means (its variance less the arms' residual shares, where positive)."""
    problems = a.shape[1]
    fits = [_rounded(_anova(m), rounding_var) for m in (a, b)]
    parts = [Part(f.ms_seed / (f.seeds * problems), f.seeds - 1) for f in fits if f.seeds > 1]
    var_cols = float((a.mean(axis=0) - b.mean(axis=0)).var(ddof=1)) if problems > 1 else 0.0
    one_seed = any(f.seeds == 1 for f in fits)  # no residual to take out of the problems' spread
    residual_share = 0.0 if one_seed else sum(f.ms_residual / f.seeds for f in fits if problems > 1)
    if problems > 1:
        parts.append(Part(max(0.0, var_cols - residual_share) / problems, problems - 1))
    # For planning: the difference's seed and residual variances are the two arms' sums.
    fitted = [_components(f) for f in fits]
    seed = math.nan if any(math.isnan(c.seed) for c in fitted) else sum(c.seed for c in fitted)
    residual = sum(c.residual for c in fitted if not math.isnan(c.residual))
    components = Components(seed=seed, problem=max(0.0, var_cols - residual_share), residual=residual)
    return _t_test(float(a.mean() - b.mean()), parts, components, min(a.shape[0], b.shape[0]), problems, level,
                   paired=False)


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm's (1979) step-down adjusted p-values; NaN entries stay NaN and do not count as comparisons."""
    values = [float(p) for p in pvalues]
    present = sorted((p, i) for i, p in enumerate(values) if not math.isnan(p))
    m, out, running = len(present), [math.nan] * len(values), 0.0
    for rank, (p, i) in enumerate(present):
        running = max(running, min(1.0, (m - rank) * p))
        out[i] = running
    return out


# ---------------------------------------------------------------------------------------------------------------
# Power: what the design could detect, from the estimated components.


def planned_parts(c: Components, seeds: int, problems: int) -> tuple[Part, ...]:
    """The variance parts (as `_parts` splits them) that a design of `seeds` x `problems` would have."""
    seed = 0.0 if math.isnan(c.seed) else c.seed
    if seeds > 1 and problems > 1:
        return (Part(seed / seeds + c.residual / (seeds * problems), seeds - 1), Part(c.problem / problems, problems - 1))
    if seeds > 1:
        return (Part(seed / seeds, seeds - 1),)
    if problems > 1:
        return (Part((c.problem + c.residual) / problems, problems - 1),)
    return ()


def power(delta: float, parts: Sequence[Part], alpha: float = 1 - DEFAULT_LEVEL) -> float:
    """Probability that the test rejects at `alpha` when the true value is delta: the statistic as a noncentral t
    with the parts' Satterthwaite df (their expected values, so no plug-in bias), against `critical_value`."""
    variance = sum(part.variance for part in parts)
    if not variance > 0:
        return math.nan
    weights = sum(part.variance**2 / part.df for part in parts if part.variance > 0)
    df, nc = variance**2 / weights, abs(delta) / math.sqrt(variance)
    crit = critical_value(parts, alpha)
    value = float(scipy_stats.nct.sf(crit, df, nc) + scipy_stats.nct.cdf(-crit, df, nc))
    if not math.isfinite(value):  # scipy's noncentral t fails far in the tail; there the normal is exact enough
        value = float(scipy_stats.norm.sf(crit - nc) + scipy_stats.norm.cdf(-crit - nc))
    return min(1.0, max(0.0, value))


def detectable_difference(c: Components, seeds: int, problems: int, *, alpha: float = 1 - DEFAULT_LEVEL,
                          target: float = DEFAULT_POWER) -> float:
    """The smallest true difference that a design of `seeds` x `problems` detects with probability `target`;
    NaN when the seed variance is unknown (one seed)."""
    parts = planned_parts(c, seeds, problems)
    if seeds < 2 or math.isnan(c.seed) or not parts:
        return math.nan
    se = math.sqrt(sum(part.variance for part in parts))
    if se == 0:
        return 0.0
    high = se
    while power(high, parts, alpha) < target:  # power grows with the difference
        high *= 2.0
    return float(optimize.brentq(lambda d: power(d, parts, alpha) - target, 0.0, high, xtol=1e-6 * se))


def seeds_needed(c: Components, problems: int, delta: float, *, alpha: float = 1 - DEFAULT_LEVEL,
                 target: float = DEFAULT_POWER, most: int = MAX_SEEDS) -> int | None:
    """The fewest seeds (>= 2) at which a true difference `delta` is detected with probability `target` on
    `problems` problems; None when even `most` seeds do not (the problem part alone is too wide) or the seed
    variance is unknown."""
    if math.isnan(c.seed) or math.isnan(delta) or delta == 0:
        return None

    def enough(n: int) -> bool:
        return power(delta, planned_parts(c, n, problems), alpha) >= target

    if not enough(most):
        return None
    low, high = 2, most
    if enough(low):
        return low
    while high - low > 1:  # power grows with the seeds
        mid = (low + high) // 2
        low, high = (low, mid) if enough(mid) else (mid, high)
    return high


def seed_sd(matrix: Matrix) -> float:
    """Standard deviation over training seeds (rows) of the per-seed mean; NaN with one seed."""
    m = _check(matrix)
    if m.shape[0] < 2:
        return math.nan
    return float(m.mean(axis=1).std(ddof=1))


def wilcoxon_p(differences: Matrix) -> float:
    """Two-sided Wilcoxon signed-rank p-value of per-problem differences; 1.0 when every difference is 0.

    Over seed-averaged per-problem differences it tests the problems only (fixed seeds): shown as such."""
    d = np.asarray(differences, dtype=np.float64).ravel()
    if d.size == 0 or not np.any(d != 0):
        return 1.0
    return float(scipy_stats.wilcoxon(d, zero_method="wilcox", alternative="two-sided").pvalue)

