"""Spec loading: defaults, arms, `extends`, `--set`, and one-line errors for every user mistake."""

from __future__ import annotations

from pathlib import Path

import pydantic
import pytest
import yaml

from brts.method.config import ARM_PRESETS, MethodConfig
from brts.runs.plan import plan
from brts.spec import (
    ArmSpec,
    ExperimentSpec,
    RunConfig,
    SpecError,
    default_search_dirs,
    list_specs,
    load_spec,
    resolved_yaml,
)

MINIMAL = "arms: [opd]\nseeds: [0]\n"


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def load(folder: Path, name: str, overrides: tuple[str, ...] = ()) -> ExperimentSpec:
    return load_spec(name, overrides, search_dirs=[folder])


def spec_error(folder: Path, name: str, *, file: str, field: str, overrides: tuple[str, ...] = ()) -> str:
    """Loading fails with one line that names the file and the field; returns the message."""
    with pytest.raises(SpecError) as info:
        load(folder, name, overrides)
    message = str(info.value)
    assert "\n" not in message
    assert file in message, message
    assert field in message, message
    return message


# ---------------------------------------------------------------------------------------------------------------
# Good specs


def test_defaults_fill_every_section(tmp_path: Path) -> None:
    write(tmp_path, "mini.yaml", MINIMAL)
    spec = load(tmp_path, "mini")
    assert spec.name == "mini" and spec.version == 1 and spec.description == ""
    assert spec.task.name == "synthetic" and spec.task.seed == 0
    assert spec.models.teacher == "builtin:teacher" and spec.models.student == "builtin:student"
    assert spec.train.steps == 100 and spec.train.lr == pytest.approx(1e-3) and spec.train.threads == 1
    assert spec.eval.splits == ("easy", "medium", "hard") and spec.eval.problems is None and spec.eval.k == 4
    assert spec.method == {} and spec.workers == 1 and spec.seeds == (0,)
    assert spec.arms == (ArmSpec(name="opd", preset="opd"),)


def test_load_by_path_and_explicit_name(tmp_path: Path) -> None:
    path = write(tmp_path, "some-file.yaml", "name: chosen\n" + MINIMAL)
    assert load_spec(str(path)).name == "chosen"


def test_preset_string_and_mapping_arms(tmp_path: Path) -> None:
    write(tmp_path, "arms.yaml", """
arms:
  - opd
  - {name: brts-n8, preset: brts, set: {teacher_samples: 8}}
  - {name: brts_no_recovery}
seeds: [0, 1]
method: {aux_weight: 0.2}
""")
    spec = load(tmp_path, "arms")
    assert [(a.name, a.preset) for a in spec.arms] == [
        ("opd", "opd"), ("brts-n8", "brts"), ("brts_no_recovery", "brts_no_recovery")]
    n8 = spec.method_for(spec.arms[1])
    assert isinstance(n8, MethodConfig)
    assert n8.teacher_samples == 8 and n8.teacher_context and n8.aux_weight == pytest.approx(0.2)
    assert spec.method_for(spec.arms[2]).recovery is False


def test_arm_set_wins_over_shared_method(tmp_path: Path) -> None:
    write(tmp_path, "x.yaml", "arms: [{name: a, preset: brts, set: {aux_weight: 0.5}}]\nseeds: [0]\n"
                              "method: {aux_weight: 0.1, aux_top_k: 2}\n")
    spec = load(tmp_path, "x")
    config = spec.method_for(spec.arms[0])
    assert config.aux_weight == pytest.approx(0.5) and config.aux_top_k == 2


def test_yaml_exponent_without_dot_is_a_number(tmp_path: Path) -> None:
    # PyYAML reads `1e-4` as a string; the spec still takes it as a float.
    write(tmp_path, "x.yaml", MINIMAL + "train: {lr: 1e-4}\n")
    assert load(tmp_path, "x").train.lr == pytest.approx(1e-4)


def test_extends_by_name_deep_merges(tmp_path: Path) -> None:
    write(tmp_path, "base.yaml", """
name: base
description: the base
train: {steps: 5, lr: 0.01}
method: {aux_weight: 0.1, aux_top_k: 2}
eval: {splits: [easy, hard]}
arms: [opd, brts]
seeds: [0, 1]
""")
    write(tmp_path, "child.yaml", """
extends: base
train: {steps: 7}
method: {aux_top_k: 8}
eval: {splits: [medium]}
seeds: [3]
""")
    spec = load(tmp_path, "child")
    assert spec.name == "child"  # the parent's name is not inherited
    assert spec.description == "the base"
    assert spec.train.steps == 7 and spec.train.lr == pytest.approx(0.01)  # mapping merges
    assert spec.method == {"aux_weight": 0.1, "aux_top_k": 8}
    assert spec.eval.splits == ("medium",) and spec.seeds == (3,)  # lists replace
    assert [a.name for a in spec.arms] == ["opd", "brts"]


def test_extends_by_relative_path(tmp_path: Path) -> None:
    write(tmp_path, "bases/base.yaml", "train: {steps: 5, lr: 0.5}\n" + MINIMAL)
    write(tmp_path, "specs/child.yaml", "extends: ../bases/base.yaml\ntrain: {lr: 0.25}\n")
    spec = load_spec(str(tmp_path / "specs" / "child.yaml"), search_dirs=[])
    assert spec.train.steps == 5 and spec.train.lr == pytest.approx(0.25) and spec.name == "child"


def test_extends_by_name_from_search_dir(tmp_path: Path) -> None:
    write(tmp_path, "lib/shared.yaml", "train: {steps: 9}\n" + MINIMAL)
    child = write(tmp_path, "mine/child.yaml", "extends: shared\n")
    assert load_spec(str(child), search_dirs=[tmp_path / "lib"]).train.steps == 9


def test_three_level_chain(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", "train: {steps: 1, lr: 0.1, grad_clip: 2.0}\nmethod: {aux_weight: 0.3}\n" + MINIMAL)
    write(tmp_path, "b.yaml", "extends: a\ntrain: {lr: 0.2}\nmethod: {teacher_samples: 3}\n")
    write(tmp_path, "c.yaml", "extends: b\ntrain: {steps: 3}\nseeds: [4, 5]\n")
    spec = load(tmp_path, "c")
    assert (spec.train.steps, spec.train.lr, spec.train.grad_clip) == (3, pytest.approx(0.2), pytest.approx(2.0))
    assert spec.method == {"aux_weight": 0.3, "teacher_samples": 3}
    assert spec.seeds == (4, 5) and spec.name == "c"


def test_set_nested_scalar_list_method_and_model(tmp_path: Path) -> None:
    write(tmp_path, "x.yaml", MINIMAL + "train: {lr: 0.5}\n")
    folder = tmp_path / "teacher-model"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    spec = load(tmp_path, "x", ("train.steps=10", "seeds=[0, 1]", "method.aux_weight=0.5",
                                f"models.teacher={folder}", "eval.problems=3", "arms=[opd, brts]"))
    assert spec.train.steps == 10 and spec.train.lr == pytest.approx(0.5)
    assert spec.seeds == (0, 1) and spec.eval.problems == 3
    assert spec.method == {"aux_weight": 0.5}
    assert spec.method_for(spec.arms[1]).aux_weight == pytest.approx(0.5)
    assert spec.models.teacher == str(folder)
    assert [a.name for a in spec.arms] == ["opd", "brts"]


def test_set_later_wins_and_can_rename(tmp_path: Path) -> None:
    write(tmp_path, "x.yaml", MINIMAL)
    spec = load(tmp_path, "x", ("train.steps=2", "train.steps=3", "name=renamed"))
    assert spec.train.steps == 3 and spec.name == "renamed"


def test_hf_id_and_model_folder_accepted_a_folder_without_config_refused(tmp_path: Path) -> None:
    folder = tmp_path / "student"
    folder.mkdir()
    write(tmp_path, "x.yaml", MINIMAL + f"models: {{teacher: Qwen/Qwen3-8B, student: {folder}}}\n")
    with pytest.raises(SpecError, match=r"x.yaml: models.student: .* is not a model folder \(no config.json\)"):
        load(tmp_path, "x")
    (folder / "config.json").write_text("{}")
    spec = load(tmp_path, "x")
    assert spec.models.teacher == "Qwen/Qwen3-8B" and spec.models.student == str(folder)


def test_loading_writes_nothing(tmp_path: Path) -> None:
    write(tmp_path, "base.yaml", MINIMAL)
    write(tmp_path, "x.yaml", "extends: base\n")
    before = sorted(tmp_path.rglob("*"))
    load(tmp_path, "x", ("train.steps=4",))
    assert sorted(tmp_path.rglob("*")) == before


def test_spec_is_frozen(tmp_path: Path) -> None:
    write(tmp_path, "x.yaml", MINIMAL)
    spec = load(tmp_path, "x")
    with pytest.raises(pydantic.ValidationError):
        spec.workers = 3  # type: ignore[misc]


def test_search_dirs_and_list_specs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    write(first, "alpha.yaml", "train: {steps: 1}\n" + MINIMAL)
    write(second, "alpha.yaml", "train: {steps: 2}\n" + MINIMAL)
    write(second, "beta.yaml", MINIMAL)
    monkeypatch.setenv("BRTS_EXPERIMENTS", str(first))
    monkeypatch.chdir(second.parent)  # ./experiments does not exist here
    dirs = default_search_dirs()
    assert dirs[0] == first and Path("experiments") in dirs
    assert dirs[-1].name == "experiments" and (dirs[-1].parent / "brts" / "__init__.py").is_file()
    assert list_specs([first, second]) == [("alpha", first / "alpha.yaml"), ("beta", second / "beta.yaml")]
    assert load_spec("alpha").train.steps == 1  # the env dir comes first


def test_resolved_yaml_round_trips_in_field_order(tmp_path: Path) -> None:
    write(tmp_path, "x.yaml", "arms: [brts]\nseeds: [0]\n")
    spec = load(tmp_path, "x")
    config = plan(spec)[0].config
    text = resolved_yaml(config)
    assert list(yaml.safe_load(text)) == ["task", "models", "train", "eval", "rollout", "method", "seed"]
    assert RunConfig.model_validate(yaml.safe_load(text)) == config
    assert resolved_yaml(config) == text
    assert load_spec(str(write(tmp_path, "again.yaml", resolved_yaml(spec)))) == spec


# ---------------------------------------------------------------------------------------------------------------
# Bad specs: one line, naming the file and the field

ARMS_N0 = "arms: [opd, {name: b, preset: brts}, {name: n0, preset: brts, set: {teacher_samples: 0}}]\nseeds: [0]\n"
CYCLE = {"a.yaml": "extends: b\n", "b.yaml": "extends: c\n", "c.yaml": "extends: a\n" + MINIMAL}
# case -> (files: name -> text (TMP is the folder), the spec to load, --set items, the file the message names,
#          what it says: the field first, then anything else)
BAD: dict[str, tuple[dict[str, str | bytes], str, tuple[str, ...], str, tuple[str, ...]]] = {
    "file_not_found": ({}, "TMP/nope.yaml", (), "nope.yaml", ("file not found",)),
    "name_not_found": ({"ablation.yaml": MINIMAL, "other.yaml": MINIMAL}, "ablaton", (), "ablaton.yaml",
                       ("ablaton", "available: ablation, other")),
    "not_utf8": ({"latin.yaml": "description: caf\xe9\n".encode("latin-1") + MINIMAL.encode()}, "latin", (),
                 "latin.yaml", ("byte 0xe9", "UTF-8")),
    "malformed_yaml": ({"broken.yaml": "arms: [opd]\nseeds: [0\ntrain: {steps: 3}\n"}, "broken", (), "broken.yaml",
                       ("line 3", "malformed YAML")),
    "duplicate_yaml_key": ({"dup.yaml": MINIMAL + "seeds: [1]\n"}, "dup", (), "dup.yaml", ("duplicate key 'seeds'",)),
    "top_level_list": ({"flat.yaml": "- opd\n- brts\n"}, "flat", (), "flat.yaml", ("expected a mapping", "top level")),
    "top_level_empty": ({"flat.yaml": ""}, "flat", (), "flat.yaml", ("expected a mapping", "top level")),
    "top_level_string": ({"flat.yaml": "just a string\n"}, "flat", (), "flat.yaml", ("expected a mapping", "top level")),
    "unknown_top_level_key": ({"extra.yaml": MINIMAL + "worker: 2\n"}, "extra", (), "extra.yaml",
                              ("worker:", "unknown field", "'workers'")),
    "unknown_nested_key": ({"extra.yaml": MINIMAL + "train: {stpes: 2}\n"}, "extra", (), "extra.yaml",
                           ("train.stpes", "unknown field")),
    "unknown_arm_key": ({"extra.yaml": "arms: [opd, {name: b, preset: brts, sets: {}}]\nseeds: [0]\n"}, "extra", (),
                        "extra.yaml", ("arms[1].sets",)),
    "wrong_type": ({"typed.yaml": MINIMAL + "train: {steps: ten}\n"}, "typed", (), "typed.yaml",
                   ("train.steps", "expected an integer, got 'ten'")),
    "section_of_wrong_type": ({"typed.yaml": MINIMAL + "eval: [easy]\n"}, "typed", (), "typed.yaml",
                              ("eval", "expected a mapping")),
    "value_out_of_range": ({"range.yaml": MINIMAL + "train: {steps: 0}\n"}, "range", (), "range.yaml",
                           ("range.yaml: train.steps: expected an integer >= 1, got 0",)),
    "top_p_above_one": ({"range.yaml": MINIMAL + "eval: {top_p: 1.5}\n"}, "range", (), "range.yaml",
                        ("eval.top_p", "<= 1")),
    "empty_seeds": ({"s.yaml": "arms: [opd]\nseeds: []\n"}, "s", (), "s.yaml", ("seeds", "non-empty")),
    "duplicate_seeds": ({"s.yaml": "arms: [opd]\nseeds: [1, 2, 1]\n"}, "s", (), "s.yaml", ("seeds", "unique")),
    "missing_seeds": ({"s.yaml": "arms: [opd]\n"}, "s", (), "s.yaml", ("seeds", "missing")),
    "empty_arms": ({"a.yaml": "arms: []\nseeds: [0]\n"}, "a", (), "a.yaml", ("arms", "non-empty")),
    "teacher_samples_below_one": ({"n.yaml": ARMS_N0}, "n", (), "n.yaml",
                                  ("arms[2].set.teacher_samples", "expected an integer >= 1, got 0", "'n0'")),
    "aux_weight_negative": ({"l.yaml": MINIMAL + "method: {aux_weight: -0.1}\n"}, "l", (), "l.yaml",
                            ("method.aux_weight", ">= 0")),
    "unknown_method_field": ({"m.yaml": "arms: [{name: a, preset: brts, set: {teacher_sample: 3}}]\nseeds: [0]\n"},
                             "m", (), "m.yaml", ("arms[0].set.teacher_sample", "unknown field", "'teacher_samples'")),
    "inconsistent_method_fields": ({"m.yaml": MINIMAL + "method: {opd_estimator: sampled, opd_candidates: union}\n"},
                                   "m", (), "m.yaml", ("method",)),
    "unknown_arm_preset": ({"p.yaml": "arms: [opd, {name: x, preset: brts_fancy}]\nseeds: [0]\n"}, "p", (), "p.yaml",
                           ("arms[1].preset", *ARM_PRESETS)),
    "arm_of_wrong_type": ({"p.yaml": "arms: [7]\nseeds: [0]\n"}, "p", (), "p.yaml",
                          ("arms[0]", "preset name or a mapping")),
    "duplicate_arm_names": ({"d.yaml": "arms: [brts, {name: brts, preset: brts, set: {teacher_samples: 8}}]\n"
                                       "seeds: [0]\n"}, "d", (), "d.yaml", ("arms", "unique")),
    "bad_experiment_name": ({"n.yaml": "name: has/slash\n" + MINIMAL}, "n", (), "n.yaml", ("name:",)),
    "unknown_extends_name": ({"base.yaml": MINIMAL, "child.yaml": "extends: bsae\n"}, "child", (), "child.yaml",
                             ("extends", "'bsae'", "base")),
    "unknown_extends_path": ({"child.yaml": "extends: ../nowhere/base.yaml\n"}, "child", (), "child.yaml",
                             ("extends", "not found")),
    "extends_of_wrong_type": ({"child.yaml": "extends: [a, b]\n"}, "child", (), "child.yaml", ("extends",)),
    "cyclic_extends": (CYCLE, "a", (), "c.yaml", ("extends", "cycle")),
    "self_extends": ({"me.yaml": "extends: me\n" + MINIMAL}, "me", (), "me.yaml", ("extends", "cycle")),
    "error_in_the_parent": ({"base.yaml": "train: {steps: -3}\n" + MINIMAL, "child.yaml": "extends: base\n"
                             "train: {lr: 0.1}\n"}, "child", (), "base.yaml", ("train.steps",)),
    "python_tag_apply": ({"evil.yaml": MINIMAL + "description: !!python/object/apply:os.system [echo hi]\n"}, "evil",
                         (), "evil.yaml", ("line 3", "!!python/", "not allow")),
    "python_tag_name": ({"evil.yaml": MINIMAL + "description: !!python/name:os.system\n"}, "evil", (), "evil.yaml",
                        ("line 3", "!!python/", "not allow")),
    "missing_local_model": ({"m.yaml": MINIMAL + "models: {student: TMP/no-such-model}\n"}, "m", (), "m.yaml",
                            ("models.student", "does not exist")),
    "missing_model_dot": ({"m.yaml": MINIMAL + "models: {teacher: './no-such-model-dir'}\n"}, "m", (), "m.yaml",
                          ("models.teacher",)),
    "missing_model_dotdot": ({"m.yaml": MINIMAL + "models: {teacher: '../no-such-model-dir'}\n"}, "m", (), "m.yaml",
                             ("models.teacher",)),
    "missing_model_home": ({"m.yaml": MINIMAL + "models: {teacher: '~/no-such-brts-model-dir'}\n"}, "m", (),
                           "m.yaml", ("models.teacher",)),
    "unknown_builtin_model": ({"m.yaml": MINIMAL + "models: {teacher: 'builtin:huge'}\n"}, "m", (), "m.yaml",
                              ("models.teacher", "builtin:teacher")),
    "set_without_value": ({"x.yaml": MINIMAL}, "x", ("train.steps",), "x.yaml", ("--set", "dotted.key=value")),
    "set_without_key": ({"x.yaml": MINIMAL}, "x", ("=3",), "x.yaml", ("--set", "dotted.key=value")),
    "set_empty_key_part": ({"x.yaml": MINIMAL}, "x", ("train..steps=1",), "x.yaml", ("--set", "dotted.key=value")),
    "set_leading_dot": ({"x.yaml": MINIMAL}, "x", (".steps=1",), "x.yaml", ("--set", "dotted.key=value")),
    "set_into_non_mapping": ({"x.yaml": MINIMAL}, "x", ("seeds.first=1",), "x.yaml", ("seeds", "not a mapping")),
    "set_value_not_yaml": ({"x.yaml": MINIMAL}, "x", ("seeds=[0",), "x.yaml", ("--set seeds=[0",)),
    "set_invalid_value": ({"x.yaml": MINIMAL}, "x", ("method.aux_weight=-1",), "x.yaml",
                          ("method.aux_weight", "--set method.aux_weight=-1")),
    "set_unknown_key": ({"x.yaml": MINIMAL}, "x", ("train.step=3",), "x.yaml", ("train.step",)),
    # Nothing that can only fail once the work has started: inf/NaN, out-of-range integers, booleans as numbers.
    "aux_weight_inf": ({"i.yaml": MINIMAL + "method: {aux_weight: .inf}\n"}, "i", (), "i.yaml",
                       ("method.aux_weight", "expected a finite number, got inf")),
    "aux_weight_overflows_to_inf": ({"i.yaml": MINIMAL + "method: {aux_weight: 1e400}\n"}, "i", (), "i.yaml",
                                    ("method.aux_weight", "expected a finite number")),
    "set_aux_weight_inf": ({"i.yaml": MINIMAL}, "i", ("method.aux_weight=.inf",), "i.yaml",
                           ("method.aux_weight", "--set method.aux_weight=.inf", "finite")),
    "teacher_temperature_inf": ({"i.yaml": "arms: [{name: b, preset: brts, set: {teacher_temperature: .inf}}]\n"
                                           "seeds: [0]\n"}, "i", (), "i.yaml",
                                ("arms[0].set.teacher_temperature", "finite", "'b'")),
    "train_lr_nan": ({"i.yaml": MINIMAL + "train: {lr: .nan}\n"}, "i", (), "i.yaml", ("train.lr", "finite")),
    "eval_seed_negative": ({"s.yaml": MINIMAL + "eval: {seed: -1}\n"}, "s", (), "s.yaml",
                           ("eval.seed", "expected an integer >= 0, got -1")),
    "eval_seed_huge": ({"s.yaml": MINIMAL + "eval: {seed: 1.0e+20}\n"}, "s", (), "s.yaml",
                       ("eval.seed", "too large")),
    "eval_seed_past_numpy": ({"s.yaml": MINIMAL + "eval: {seed: 4294967296}\n"}, "s", (), "s.yaml",
                             ("eval.seed", "<= 4294967295")),
    "eval_seed_exponent_string": ({"s.yaml": MINIMAL + "eval: {seed: 1e20}\n"}, "s", (), "s.yaml",
                                  ("eval.seed", "expected an integer")),
    "run_seed_negative": ({"s.yaml": "arms: [opd]\nseeds: [0, -2]\n"}, "s", (), "s.yaml", ("seeds[1]", ">= 0")),
    "count_huge": ({"s.yaml": MINIMAL + "eval: {problems: 100000000000000000000}\n"}, "s", (), "s.yaml",
                   ("eval.problems", "expected an integer <= 2147483647")),
    "teacher_samples_true": ({"b.yaml": "arms: [{name: b, preset: brts, set: {teacher_samples: true}}]\n"
                                        "seeds: [0]\n"}, "b", (), "b.yaml",
                             ("arms[0].set.teacher_samples", "expected an integer, got true")),
    "seed_true": ({"b.yaml": "arms: [opd]\nseeds: [true]\n"}, "b", (), "b.yaml", ("seeds[0]", "got true")),
    "lr_true": ({"b.yaml": MINIMAL + "train: {lr: true}\n"}, "b", (), "b.yaml", ("train.lr", "got true")),
    # What `exp run` would refuse before training, refused at load (so `exp show` refuses it too).
    "unknown_lm_eval_task": ({"t.yaml": MINIMAL + "eval: {tasks: [gsm8kk]}\n"}, "t", (), "t.yaml",
                             ("eval.tasks[0]", "unknown task 'gsm8kk'", "'gsm8k'")),
    "model_path_a_regular_file": ({"m.yaml": MINIMAL + "models: {teacher: TMP/m.yaml}\n"}, "m", (), "m.yaml",
                                  ("models.teacher", "not a model folder")),
    "model_neither_folder_nor_hub_id": ({"m.yaml": MINIMAL + "models: {teacher: 'a/b/c', student: 'x/y'}\n"}, "m",
                                        (), "m.yaml", ("models.teacher", "Hugging Face model id")),
    # User text is quoted, never a whole section or another file's content.
    "no_section_dump": ({"d.yaml": MINIMAL + "eval: {data_dir: TMP, data_source: hub}\n"}, "d", (), "d.yaml",
                        ("eval", "give one")),
    "extends_a_non_yaml_file": ({"secret.txt": "password: hunter2\n", "c.yaml": "extends: ./secret.txt\n" + MINIMAL},
                                "c", (), "c.yaml", ("extends", "not a spec file")),
    "top_level_scalar_not_quoted": ({"s.yaml": "root:x:0:0:root:/root:/bin/bash\n"}, "TMP/s.yaml", (), "s.yaml",
                                    ("expected a mapping", "a single value")),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_a_bad_spec_is_one_line_naming_the_file_and_the_field(tmp_path: Path, case: str) -> None:
    files, name, overrides, file, says = BAD[case]
    for filename, content in files.items():
        if isinstance(content, bytes):
            (tmp_path / filename).write_bytes(content)
        else:
            write(tmp_path, filename, content.replace("TMP", str(tmp_path)))
    message = spec_error(tmp_path, name.replace("TMP", str(tmp_path)), file=file, field=says[0], overrides=overrides)
    for part in says[1:]:
        assert part in message, message
    for secret in ("hunter2", "/bin/bash", "data_source\": "):  # no other file's content, no section dump
        assert secret not in message, message


@pytest.mark.parametrize(("method", "arm", "field"), [
    ("{teacher_samples: 4}", "first_rollout", "teacher_samples"),
    ("{alignment: teacher_forced}", "brts_no_alignment", "alignment"),
    ("{alignment: first}", "brts", "alignment"),
    ("{teacher_context: true}", "opd", "teacher_context"),
    ("{recovery: false}", "brts", "recovery"),
])
def test_a_shared_override_of_a_preset_field_is_refused(tmp_path: Path, method: str, arm: str, field: str) -> None:
    write(tmp_path, "x.yaml", f"arms: [{arm}]\nseeds: [0]\nmethod: {method}\n")
    with pytest.raises(SpecError) as exc:
        load(tmp_path, "x")
    message = str(exc.value)
    assert "\n" not in message and f"method.{field}:" in message and repr(arm) in message
    assert "override_presets: true" in message and str(tmp_path / "x.yaml") in message


def test_a_preset_field_moves_into_the_arms_set_or_presets_are_overridden_on_purpose(tmp_path: Path) -> None:
    write(tmp_path, "own.yaml", "arms: [{name: fr4, preset: first_rollout, set: {teacher_samples: 4}}, brts]\n"
                                "seeds: [0]\nmethod: {teacher_samples: 4}\n")
    spec = load(tmp_path, "own")
    assert [spec.method_for(a).teacher_samples for a in spec.arms] == [4, 4]
    write(tmp_path, "all.yaml", "arms: [first_rollout]\nseeds: [0]\nmethod: {teacher_samples: 4}\n"
                                "override_presets: true\n")
    spec = load(tmp_path, "all")
    assert spec.method_for(spec.arms[0]).teacher_samples == 4
    # The same value as the preset changes nothing, so it is not refused.
    write(tmp_path, "same.yaml", "arms: [brts, brts_no_recovery]\nseeds: [0]\nmethod: {teacher_samples: 4}\n")
    assert load(tmp_path, "same").method_for(spec.arms[0]).teacher_samples == 4


def test_shipped_specs_load() -> None:
    for name in ("ablation-grid", "smoke", "paper-r1-distill"):
        spec = load_spec(name)
        assert all(spec.method_for(a) for a in spec.arms)


@pytest.mark.parametrize(("text", "overrides"), [
    ("name: sweeps\narms: [opd]\nseeds: [0]\n", []),
    ("name: REPRO\narms: [opd]\nseeds: [0]\n", []),
    ("arms: [opd]\nseeds: [0]\n", ["name=Sweeps"]),
    ("name: ok\narms: [{name: sweeps, preset: opd}]\nseeds: [0]\n", []),
])
def test_names_that_collide_with_the_store_folders_are_refused_with_the_rule(tmp_path, text, overrides):
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    with pytest.raises(SpecError, match="is a folder the run store keeps for itself; experiment, sweep and arm "
                                        "names may not be sweeps or repro"):
        load_spec(str(path), overrides)


def test_a_spec_file_named_like_a_store_folder_is_refused(tmp_path):
    path = tmp_path / "sweeps.yaml"
    path.write_text("arms: [opd]\nseeds: [0]\n")
    with pytest.raises(SpecError, match="name: 'sweeps' is a folder the run store keeps for itself"):
        load_spec(str(path))


def test_a_sweep_named_like_a_store_folder_is_refused(tmp_path):
    from brts.sweep.load import load_sweep

    (tmp_path / "exp.yaml").write_text("arms: [brts]\nseeds: [0]\n")
    path = tmp_path / "repro.yaml"
    path.write_text(f"experiment: {tmp_path / 'exp.yaml'}\narm: brts\ntrials: 2\n"
                    "space: {method: {aux_weight: {choices: [0.1, 0.2]}}}\n")
    with pytest.raises(SpecError, match="'repro' is a folder the run store keeps for itself"):
        load_sweep(str(path))
