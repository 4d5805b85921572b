import dataclasses
import json
import time
from pathlib import Path

import pytest
import torch

from brts.models.load import check_compatible, load_model
from brts.models.recipe import BuildSettings, BuiltModels, build_default_models, default_cache_root
from brts.tasks.synthetic import BuildingSampler

TINY = BuildSettings(
    hidden_size=32, layers=1, heads=2, intermediate_size=64, base_steps=4, teacher_steps=6, student_steps=4,
    batch_size=8, warmup_steps=2, eval_problems=2, eval_samples=1,
)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> BuiltModels:
    return build_default_models(tmp_path_factory.mktemp("zoo"), seed=0, progress=False, settings=TINY)


def test_writes_loadable_standalone_folders(built: BuiltModels) -> None:
    teacher, teacher_tok = load_model(str(built.teacher_dir))
    student, student_tok = load_model(str(built.student_dir))
    check_compatible(teacher_tok, student_tok, teacher.config.vocab_size, student.config.vocab_size)
    assert teacher_tok.padding_side == "left"
    assert teacher_tok("Q:1")["input_ids"][0] == teacher_tok.bos_token_id
    assert (built.tokenizer_dir / "tokenizer.json").is_file()
    assert built.root.parent.is_dir() and not [p for p in built.root.parent.iterdir() if p.name.startswith(".")]


def test_records_settings_and_accuracies(built: BuiltModels) -> None:
    record = json.loads((built.root / "build.json").read_text())
    assert record["settings"]["teacher_steps"] == TINY.teacher_steps
    expected = {f"{who}/{split}" for who in ("teacher", "student") for split in ("easy", "medium", "hard")}
    expected |= {"teacher_hint/hard", "teacher_hint/hard_leak_rate", "teacher/hard_any_correct"}
    assert set(built.accuracies) == expected
    assert all(0.0 <= v <= 1.0 for v in built.accuracies.values())


def test_second_call_returns_the_cache_without_work(built: BuiltModels, monkeypatch: pytest.MonkeyPatch) -> None:
    import brts.models.recipe

    def no_build(*args: object) -> None:
        raise AssertionError("rebuilt a cached build")

    monkeypatch.setattr(brts.models.recipe, "_build", no_build)
    started = time.perf_counter()
    again = build_default_models(built.root.parent, seed=0, progress=False, settings=TINY)
    assert time.perf_counter() - started < 1.0
    assert again == built


def test_is_deterministic_from_the_seed(built: BuiltModels, tmp_path: Path) -> None:
    other = build_default_models(tmp_path, seed=0, progress=False, settings=TINY)
    assert other.root.name == built.root.name  # the folder is named by the settings alone
    for name in ("teacher_dir", "student_dir"):
        a, _ = load_model(str(getattr(built, name)))
        b, _ = load_model(str(getattr(other, name)))
        for (key, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
            assert torch.equal(x, y), key
    assert other.accuracies == built.accuracies


def test_another_seed_is_another_build(built: BuiltModels) -> None:
    assert TINY.digest() != BuildSettings(**{**TINY.__dict__, "seed": TINY.seed + 1}).digest()
    assert TINY.digest() != BuildSettings(**{**TINY.__dict__, "teacher_steps": 7}).digest()


def test_a_failed_build_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import brts.models.recipe

    def failing(out: Path, *args: object) -> None:
        (out / "teacher").mkdir()
        raise RuntimeError("interrupted")

    monkeypatch.setattr(brts.models.recipe, "_build", failing)
    with pytest.raises(RuntimeError):
        build_default_models(tmp_path, seed=0, progress=False, settings=TINY)
    assert [p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")] == []


def test_default_cache_root(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("BRTS_CACHE", str(tmp_path))
    assert default_cache_root() == tmp_path
    monkeypatch.delenv("BRTS_CACHE")
    assert default_cache_root() == Path.home() / ".cache" / "brts"


def _expression(prompt: str) -> str:
    return prompt.split("Q:")[1].replace(" ", "").strip()


def test_base_examples_are_gold_solutions_of_every_length() -> None:
    from brts.models.recipe import _base_example
    from brts.tasks.synthetic import gold_solution

    sampler, lengths = BuildingSampler(0), set()
    for _ in range(200):
        prompt, response = _base_example(sampler, BuildSettings())
        expression = _expression(prompt)
        lengths.add(len(expression) // 2)
        assert response == gold_solution(expression)
    assert lengths == set(range(1, 7))


def test_student_examples_guess_exactly_the_unknown_facts_and_carry_their_guesses_on() -> None:
    from brts.models.recipe import _student_example
    from brts.tasks.synthetic import apply, unknown_facts

    settings = BuildSettings()
    unknown = unknown_facts(settings.student_unknown_fraction, settings.seed)
    assert len(unknown) == round(settings.student_unknown_fraction * 300)
    sampler, guessed, right = BuildingSampler(0), 0, 0
    for _ in range(300):
        prompt, response = _student_example(sampler, settings)
        expression = _expression(prompt)
        *lines, answer = response.split("\n")
        values = [int(line[1:]) for line in lines]
        assert [line[0] for line in lines] == list("ABCDEF"[: len(expression) // 2])
        assert answer == f"\\boxed{{{values[-1]}}}"
        previous = int(expression[0])
        for op, digit, written in zip(expression[1::2], expression[2::2], values, strict=True):
            fact = (previous, op, int(digit))
            if fact in unknown:
                guessed += 1
                right += written == apply(*fact)
            else:
                assert written == apply(*fact), (expression, response)  # known facts are applied to the line above
            previous = written
    assert guessed > 100 and right / guessed < 0.25  # uniform guesses: about one in ten right


def test_any_thread_count_builds_the_same_bits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Batches of 32 rows of ~45 tokens: weight gradients reduce over ~1,400 positions, which MKL splits between
    # two threads (and then rounds differently) unless its strict reproducibility mode is on.
    settings = dataclasses.replace(TINY, batch_size=32, base_steps=3)
    bits = []
    for threads in ("1", "2"):
        monkeypatch.setenv("BRTS_BUILD_THREADS", threads)
        built = build_default_models(tmp_path / threads, seed=0, progress=False, settings=settings)
        record = json.loads((built.root / "build.json").read_text())
        assert record["threads_at_start"] == int(threads) and record["thread_changes"] == 0
        assert record["expected_seconds"] > 0
        bits.append([(getattr(built, d) / "model.safetensors").read_bytes() for d in ("teacher_dir", "student_dir")])
    assert bits[0] == bits[1]


def test_a_bad_thread_count_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from brts.models.load import ModelLoadError

    monkeypatch.setenv("BRTS_BUILD_THREADS", "two")
    with pytest.raises(ModelLoadError, match="BRTS_BUILD_THREADS='two'"):
        build_default_models(tmp_path, seed=0, progress=False, settings=TINY)
    assert not [p for p in tmp_path.iterdir() if p.is_dir()]  # nothing half written
