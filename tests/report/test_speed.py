"""Learning speed: the area under the validation curve and the first step at a threshold, on hand-made curves."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from brts.report import stats
from brts.report.speed import AREA, STEPS, area_matrix, speed_table, threshold_steps


def _validation(arm: str, seed: int, curves: dict[str, list[float]], steps: list[int], split: str = "hard") -> list[dict]:
    return [{"run_id": f"{arm}-{seed}", "arm": arm, "seed": seed, "split": split, "step": step, "problem_id": pid,
             "correct": value} for pid, values in curves.items() for step, value in zip(steps, values, strict=True)]


def _metrics(arm: str, seed: int, values: list[float], steps: list[int], split: str = "hard") -> list[dict]:
    return [{"run_id": f"{arm}-{seed}", "arm": arm, "seed": seed, "step": s, f"val/{split}": v}
            for s, v in zip(steps, values, strict=True)]


def test_area_is_the_trapezoid_mean_over_the_step_span():
    steps = [0, 10, 30]
    frame = pd.DataFrame(_validation("a", 0, {"p1": [0.0, 1.0, 1.0], "p2": [0.0, 0.0, 1.0]}, steps)
                         + _validation("a", 1, {"p1": [1.0, 1.0, 1.0], "p2": [0.0, 0.0, 0.0]}, steps))
    m = area_matrix(frame)
    # seed 0, p1: (0.5 * 10 + 1 * 20) / 30; p2: (0 + 0.5 * 20) / 30
    assert m.loc[0, "p1"] == pytest.approx(100 * 25 / 30) and m.loc[0, "p2"] == pytest.approx(100 * 10 / 30)
    assert m.loc[1, "p1"] == pytest.approx(100.0) and m.loc[1, "p2"] == 0.0
    # a step one seed lacks is left out for both
    extra = pd.DataFrame(_validation("a", 0, {"p1": [1.0], "p2": [1.0]}, [40]))
    assert area_matrix(pd.concat([frame, extra])).equals(m)


def test_threshold_step_is_the_first_validation_at_or_above_it_and_censored_runs_are_marked():
    steps = [0, 20, 40, 60]
    metrics = pd.DataFrame(_metrics("a", 0, [10, 40, 50, 70], steps) + _metrics("a", 1, [10, 20, 30, 45], steps))
    found = threshold_steps(metrics, "hard", 50.0).set_index("seed")
    assert found.loc[0, "step"] == 40 and bool(found.loc[0, "reached"])
    assert found.loc[1, "step"] == 80 and not bool(found.loc[1, "reached"])  # last step + one interval


def _grid(rng: np.random.Generator, speeds: dict[str, float], seeds: int = 3, problems: int = 32):
    steps = list(range(0, 241, 20))
    validation, metrics = [], []
    offsets = rng.normal(0, 0.1, problems)
    for arm, speed in speeds.items():
        for seed in range(seeds):
            jitter = rng.normal(1.0, 0.05)
            curves = {}
            for j in range(problems):
                p = np.clip(0.9 * np.minimum(1.0, speed * jitter * np.array(steps) / 240) + offsets[j], 0, 1)
                curves[f"p{j}"] = list(rng.binomial(1, p).astype(float))
            validation += _validation(arm, seed, curves, steps)
            acc = [100 * float(np.mean([curves[p][i] for p in curves])) for i in range(len(steps))]
            metrics += _metrics(arm, seed, acc, steps)
    return pd.DataFrame(metrics), pd.DataFrame(validation)


def test_speed_table_finds_a_faster_arm_and_every_p_matches_its_interval():
    metrics, validation = _grid(np.random.default_rng(0), {"opd": 1.0, "fast": 3.0, "same": 1.0})
    table = speed_table(metrics, validation, ["opd", "fast", "same"], ["hard"], "opd", 50.0)
    assert set(table["measure"]) == {AREA, STEPS}
    area = table[table["measure"] == AREA].set_index("arm")
    assert area.loc["fast", "significant"] and area.loc["fast", "diff"] > 20
    assert not area.loc["same", "significant"]
    steps = table[table["measure"] == STEPS].set_index("arm")
    assert steps.loc["fast", "diff"] < -60 and steps.loc["fast", "reached"] == "3/3"
    compared = table[table["p"].notna()]
    assert ((compared["p"] < 0.05) == ((compared["diff_low"] > 0) | (compared["diff_high"] < 0))).all()
    # Holm within each measure: two comparisons per measure
    for measure in (AREA, STEPS):
        rows = compared[compared["measure"] == measure]
        assert rows["p_holm"].tolist() == pytest.approx(stats.holm(rows["p"].tolist()))


def test_three_seeds_one_interval_sooner_is_not_a_certainty():
    # Every seed reaches the threshold exactly one validation interval (20 steps) sooner: the differences
    # agree to the step, but the crossings are known only to within 20 steps.
    steps = [0, 20, 40, 60, 80]
    metrics = pd.DataFrame([r for seed in range(3) for r in
                            _metrics("opd", seed, [0, 10, 30, 60, 80], steps) + _metrics("fast", seed, [0, 10, 60, 70, 80], steps)])
    table = speed_table(metrics, pd.DataFrame(), ["opd", "fast"], ["hard"], "opd", 50.0)
    row = table[(table["measure"] == STEPS) & (table["arm"] == "fast")].iloc[0]
    assert row["diff"] == -20.0
    assert row["se"] > 0 and not math.isnan(row["p"]) and row["p"] > 0.01
    assert (row["p"] < 0.05) == (row["diff_high"] < 0)
