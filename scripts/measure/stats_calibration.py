"""How often does each test call two identical arms different? A simulation of the report's statistics.

Each replicate simulates two arms with the same distribution, S training seeds each, evaluated on P problems
with k samples per problem, and asks each procedure whether their difference is significant at 5%. A good
procedure calls about 5% of replicates significant. Printed: the false-positive rate per procedure and design,
and the power at a true difference, with a binomial 95% interval (Wilson) on every rate.

The data-generating model mimics the default grid (accuracy near 90% on `hard`, a seed sd of 4-8 points):
problem difficulty theta[p] ~ N(2.5, 1.5) on the logit scale, a run effect z ~ N(0, 0.6) per (arm, seed) --
arms of one seed correlated through common random numbers (rho = 0.3) -- and a run x problem interaction
g ~ N(0, 0.7); each sample is correct with probability sigmoid(theta + z + g + shift). The `transition`
scenario adds what the grid shows: with probability 0.1 a run never learns long chains (z - 3). In the
`per-problem` scenario the arms differ problem by problem (logit +h[p] for one, -h[p] for the other,
h ~ N(0, 1)) with no difference on average over the population of problems: only a test that counts the
problems as sampled holds its level there.

Usage: python scripts/measure/stats_calibration.py [--reps 2000] [--boot 1000] [--seeds 3,5,10] [--problems 100]
       [--scenarios smooth,transition,per-problem]
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
from scipy import stats as scipy_stats

from brts.report import stats


def simulate(rng: np.random.Generator, seeds: int, problems: int, k: int, shift: float, scenario: str,
             ) -> tuple[np.ndarray, np.ndarray]:
    """Two (seeds, problems) matrices of accuracy in percent: arm a (shifted by `shift` logits) and arm b."""
    theta = rng.normal(2.5, 1.5, problems)
    common = rng.normal(0.0, 1.0, seeds)
    # per-problem: the arms differ problem by problem (+h for a, -h for b) but not on average over problems.
    h = rng.normal(0.0, 1.0, problems) if scenario == "per-problem" else np.zeros(problems)
    out = []
    for arm_shift, sign in ((shift, 1.0), (0.0, -1.0)):
        z = 0.6 * (math.sqrt(0.3) * common + math.sqrt(0.7) * rng.normal(0.0, 1.0, seeds))
        if scenario == "transition":
            z = z - 3.0 * (rng.random(seeds) < 0.1)
        g = rng.normal(0.0, 0.7, (seeds, problems))
        prob = 1.0 / (1.0 + np.exp(-(theta[None, :] + sign * h[None, :] + z[:, None] + g + arm_shift)))
        out.append(100.0 * rng.binomial(k, prob) / k)
    return out[0], out[1]


def bootstrap_two_way(d: np.ndarray, rng: np.random.Generator, n_boot: int) -> tuple[float, float]:
    """Percentile interval of the mean of d from resampling seeds (rows) and problems (columns) independently."""
    s, p = d.shape
    ws = rng.multinomial(s, np.full(s, 1 / s), size=n_boot)
    wp = rng.multinomial(p, np.full(p, 1 / p), size=n_boot)
    means = np.einsum("bs,sp,bp->b", ws, d, wp) / (s * p)
    low, high = np.quantile(means, [0.025, 0.975])
    return float(low), float(high)


def bootstrap_problems(d: np.ndarray, rng: np.random.Generator, n_boot: int) -> tuple[float, float]:
    cols = d.mean(axis=0)
    w = rng.multinomial(len(cols), np.full(len(cols), 1 / len(cols)), size=n_boot)
    low, high = np.quantile(w @ cols / len(cols), [0.025, 0.975])
    return float(low), float(high)


def old_rule(d: np.ndarray, rng: np.random.Generator, n_boot: int) -> bool:
    """The report before 2026-12: the wider, on each side, of the problem bootstrap and a t-interval over seeds."""
    low, high = bootstrap_problems(d, rng, n_boot)
    rows = d.mean(axis=1)
    half = scipy_stats.t.ppf(0.975, len(rows) - 1) * rows.std(ddof=1) / math.sqrt(len(rows))
    low, high = min(low, rows.mean() - half), max(high, rows.mean() + half)
    return low > 0 or high < 0


def satterthwaite(d: np.ndarray) -> bool:
    """The report's variance parts, but Satterthwaite's df instead of Cochran & Cox's critical value."""
    parts = stats.crossed_test(d).parts
    variance = sum(p.variance for p in parts)
    if variance == 0:
        return bool(d.mean() != 0)
    df = variance**2 / sum(p.variance**2 / p.df for p in parts if p.variance > 0)
    return abs(d.mean()) / math.sqrt(variance) > scipy_stats.t.ppf(0.975, df)


def rejections(a: np.ndarray, b: np.ndarray, rng: np.random.Generator, n_boot: int) -> dict[str, bool]:
    d = a - b
    two_way = bootstrap_two_way(d, rng, n_boot)
    problems = bootstrap_problems(d, rng, n_boot)
    return {
        "crossed t (report)": stats.paired_difference(a, b, paired_seeds=True).p < 0.05,
        "crossed, Satterthwaite": satterthwaite(d),
        "two-way bootstrap": two_way[0] > 0 or two_way[1] < 0,
        "bootstrap problems": problems[0] > 0 or problems[1] < 0,
        "old: widest of two": old_rule(d, rng, n_boot),
        "Wilcoxon problems": stats.wilcoxon_p(d.mean(axis=0)) < 0.05,
        "paired t over seeds": scipy_stats.ttest_1samp(d.mean(axis=1), 0.0).pvalue < 0.05,
    }


def wilson(hits: int, n: int) -> tuple[float, float]:
    z, phat = 1.96, hits / n
    centre = (phat + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(phat * (1 - phat) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=2000)
    parser.add_argument("--boot", type=int, default=1000)
    parser.add_argument("--seeds", default="3,5,10")
    parser.add_argument("--problems", type=int, default=100)
    parser.add_argument("--k", type=int, default=4)
    parser.add_argument("--shift", type=float, default=0.5, help="logit shift of arm a for the power rows")
    parser.add_argument("--scenarios", default="smooth,transition,per-problem")
    args = parser.parse_args()
    started = time.perf_counter()
    print(f"{args.reps} replicates per row, {args.problems} problems, k = {args.k}; rate [Wilson 95% interval]")
    for scenario in args.scenarios.split(","):
        for shift, what in ((0.0, "identical arms: false-positive rate"), (args.shift, f"shift {args.shift}: power")):
            for seeds in (int(s) for s in args.seeds.split(",")):
                rng = np.random.default_rng(1000 * seeds + int(100 * shift) + ("smooth", "transition", "per-problem").index(scenario))
                counts: dict[str, int] = {}
                deltas = []
                for _ in range(args.reps):
                    a, b = simulate(rng, seeds, args.problems, args.k, shift, scenario)
                    deltas.append(a.mean() - b.mean())
                    for name, hit in rejections(a, b, rng, args.boot).items():
                        counts[name] = counts.get(name, 0) + hit
                head = f"{scenario}, {what}, S = {seeds}" + (f" (mean true-ish Δ {np.mean(deltas):+.1f})" if shift else "")
                print(head)
                for name, hits in counts.items():
                    low, high = wilson(hits, args.reps)
                    print(f"  {name:22s} {hits / args.reps:6.1%} [{low:.1%}, {high:.1%}]")
    print(f"{time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
