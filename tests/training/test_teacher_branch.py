"""The branch's wiring on scripted teacher samples: who is drawn, graded, retried, selected and trained on."""

from __future__ import annotations

from collections import Counter

from brts.method.config import arm_config
from brts.models.tokenizer import build_char_tokenizer
from brts.rollout.base import Completion, SamplingSettings
from brts.rollout.teacher import TeacherSampler
from brts.tasks.synthetic import SyntheticTask
from brts.training.teacher_branch import run_branch


class ScriptedGenerator:
    """Returns fixed texts per prompt (the k-th request of a prompt in a call gets its k-th text), and records
    every call as (prompts, samples) (a KeyedGenerator)."""

    sampler = "scripted"

    def __init__(self, tokenizer, script):
        self.tokenizer, self.script, self.calls = tokenizer, script, []

    def sample(self, requests, settings: SamplingSettings):
        self.calls.append((len({r.prompt for r in requests}), len(requests)))
        seen = Counter()
        out = []
        for r in requests:
            text = self.script[self.tokenizer.decode(r.prompt, skip_special_tokens=True)][seen[r.prompt]]
            seen[r.prompt] += 1
            out.append(Completion(tuple(self.tokenizer(text, add_special_tokens=False)["input_ids"]), text, "stop"))
        return out


def _setup(script, **overrides):
    task = SyntheticTask(seed=0)
    tok = build_char_tokenizer()
    problems = [p for p in task.eval_problems("easy")[:2]]
    gen = ScriptedGenerator(tok, {task.prompt(p, hint=h): script[(p.id, h)] for (p, h) in
                                  [(p, h) for p in problems for h in (None, p.answer)] if (p.id, h) in script})
    encode = lambda text: list(tok(text)["input_ids"])  # noqa: E731
    cfg = arm_config("brts", {"alignment": "first", **overrides})
    own = [(5, 6, 7)]
    result = run_branch(
        problems=problems, prompt_ids=[encode(task.prompt(p)) for p in problems], own_responses=[own, own],
        student=None, teacher=TeacherSampler(gen, "scripted-teacher", task.grader), task=task, encode=encode,
        cfg=cfg, max_new_tokens=32, stream="seed0/epoch0", seed=0, pad_id=tok.pad_token_id,
    )
    return problems, result, gen, tok


def _box(answer):
    return "\\boxed{" + str(answer) + "}"


def test_correct_first_then_recovery_with_leak_filter():
    task = SyntheticTask(seed=0)
    p0, p1 = task.eval_problems("easy")[:2]
    wrong0, wrong1 = (int(p0.answer) + 1) % 10, (int(p1.answer) + 1) % 10
    script = {
        (p0.id, None): [_box(wrong0), _box(p0.answer), "x" + _box(p0.answer), _box(wrong0)],
        (p1.id, None): [_box(wrong1)] * 4,
        (p1.id, p1.answer): ["key:" + p1.answer + _box(p1.answer)],  # leaks: dropped
    }
    problems, result, gen, tok = _setup(script, recovery_samples=1)
    assert gen.calls == [(2, 8), (1, 1)]  # tier 1 for both prompts, one batched hinted retry
    assert [s.tier for s in result.selections] == [1, 3]
    assert result.selections[0].index == 1  # first correct sample under `first` alignment
    assert result.leaks_dropped == 1 and result.retries == 1 and result.recovered == 0
    assert tok.decode(result.aux_trajectories[0]) == _box(p0.answer)
    assert tok.decode(result.aux_trajectories[1]) == _box(wrong1)  # most_similar fallback: the first sample
    assert result.tier1_any_correct == 1


def test_recovered_trajectory_is_trained_under_the_unhinted_prompt_and_skip_drops():
    task = SyntheticTask(seed=0)
    p0, p1 = task.eval_problems("easy")[:2]
    script = {
        (p0.id, None): [_box((int(p0.answer) + 1) % 10)] * 4,
        (p0.id, p0.answer): [_box(p0.answer)],
        (p1.id, None): [_box((int(p1.answer) + 1) % 10)] * 4,
        (p1.id, p1.answer): [_box((int(p1.answer) + 2) % 10)],
    }
    problems, result, gen, tok = _setup(script, fallback="skip")
    assert [s.tier for s in result.selections] == [2, 0]
    assert result.recovered == 1 and result.retries == 2
    assert len(result.aux_trajectories) == 1
    assert tok.decode(result.aux_prompts[0], skip_special_tokens=True) == task.prompt(p0)
