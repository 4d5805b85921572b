"""Spec loading: defaults, arms, `extends`, `--set`, and one-line errors for every user mistake."""

from __future__ import annotations

from pathlib import Path

import pydantic
import pytest
import yaml

from brts.method.config import ARM_PRESETS, MethodConfig
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
    config = RunConfig(task=spec.task, models=spec.models, train=spec.train, eval=spec.eval,
                       method=spec.method_for(spec.arms[0]), seed=0)
    text = resolved_yaml(config)
    assert list(yaml.safe_load(text)) == ["task", "models", "train", "eval", "rollout", "method", "seed"]
    assert RunConfig.model_validate(yaml.safe_load(text)) == config
    assert resolved_yaml(config) == text
    assert load_spec(str(write(tmp_path, "again.yaml", resolved_yaml(spec)))) == spec


# ---------------------------------------------------------------------------------------------------------------
# Bad specs: one line, naming the file and the field


def test_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=r"nope\.yaml: file not found"):
        load_spec(str(tmp_path / "nope.yaml"))


def test_name_not_found_lists_available(tmp_path: Path) -> None:
    write(tmp_path, "ablation.yaml", MINIMAL)
    write(tmp_path, "other.yaml", MINIMAL)
    message = spec_error(tmp_path, "ablaton", file="ablaton.yaml", field="ablaton")
    assert "available: ablation, other" in message


def test_not_utf8(tmp_path: Path) -> None:
    (tmp_path / "latin.yaml").write_bytes("description: caf\xe9\n".encode("latin-1") + MINIMAL.encode())
    assert "UTF-8" in spec_error(tmp_path, "latin", file="latin.yaml", field="byte 0xe9")


def test_malformed_yaml_gives_line(tmp_path: Path) -> None:
    write(tmp_path, "broken.yaml", "arms: [opd]\nseeds: [0\ntrain: {steps: 3}\n")
    assert "malformed YAML" in spec_error(tmp_path, "broken", file="broken.yaml", field="line 3")


def test_duplicate_yaml_key(tmp_path: Path) -> None:
    write(tmp_path, "dup.yaml", MINIMAL + "seeds: [1]\n")
    spec_error(tmp_path, "dup", file="dup.yaml", field="duplicate key 'seeds'")


@pytest.mark.parametrize("text", ["- opd\n- brts\n", "", "just a string\n"])
def test_top_level_not_a_mapping(tmp_path: Path, text: str) -> None:
    write(tmp_path, "flat.yaml", text)
    assert "top level" in spec_error(tmp_path, "flat", file="flat.yaml", field="expected a mapping")


def test_unknown_top_level_key(tmp_path: Path) -> None:
    write(tmp_path, "extra.yaml", MINIMAL + "worker: 2\n")
    message = spec_error(tmp_path, "extra", file="extra.yaml", field="worker:")
    assert "unknown field" in message and "'workers'" in message


def test_unknown_nested_key(tmp_path: Path) -> None:
    write(tmp_path, "extra.yaml", MINIMAL + "train: {stpes: 2}\n")
    assert "unknown field" in spec_error(tmp_path, "extra", file="extra.yaml", field="train.stpes")


def test_unknown_arm_key(tmp_path: Path) -> None:
    write(tmp_path, "extra.yaml", "arms: [opd, {name: b, preset: brts, sets: {}}]\nseeds: [0]\n")
    spec_error(tmp_path, "extra", file="extra.yaml", field="arms[1].sets")


def test_wrong_type(tmp_path: Path) -> None:
    write(tmp_path, "typed.yaml", MINIMAL + "train: {steps: ten}\n")
    message = spec_error(tmp_path, "typed", file="typed.yaml", field="train.steps")
    assert "expected an integer, got 'ten'" in message


def test_section_of_wrong_type(tmp_path: Path) -> None:
    write(tmp_path, "typed.yaml", MINIMAL + "eval: [easy]\n")
    assert "expected a mapping" in spec_error(tmp_path, "typed", file="typed.yaml", field="eval")


def test_value_out_of_range(tmp_path: Path) -> None:
    write(tmp_path, "range.yaml", MINIMAL + "train: {steps: 0}\n")
    message = spec_error(tmp_path, "range", file="range.yaml", field="train.steps")
    assert message.endswith("range.yaml: train.steps: expected an integer >= 1, got 0")


def test_top_p_above_one(tmp_path: Path) -> None:
    write(tmp_path, "range.yaml", MINIMAL + "eval: {top_p: 1.5}\n")
    assert "<= 1" in spec_error(tmp_path, "range", file="range.yaml", field="eval.top_p")


def test_empty_seeds(tmp_path: Path) -> None:
    write(tmp_path, "s.yaml", "arms: [opd]\nseeds: []\n")
    assert "non-empty" in spec_error(tmp_path, "s", file="s.yaml", field="seeds")


def test_duplicate_seeds(tmp_path: Path) -> None:
    write(tmp_path, "s.yaml", "arms: [opd]\nseeds: [1, 2, 1]\n")
    assert "unique" in spec_error(tmp_path, "s", file="s.yaml", field="seeds")


def test_missing_seeds(tmp_path: Path) -> None:
    write(tmp_path, "s.yaml", "arms: [opd]\n")
    assert "missing" in spec_error(tmp_path, "s", file="s.yaml", field="seeds")


def test_empty_arms(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", "arms: []\nseeds: [0]\n")
    assert "non-empty" in spec_error(tmp_path, "a", file="a.yaml", field="arms")


def test_teacher_samples_below_one(tmp_path: Path) -> None:
    write(tmp_path, "n.yaml", "arms: [opd, {name: b, preset: brts}, {name: n0, preset: brts, set: {teacher_samples: 0}}]\n"
                              "seeds: [0]\n")
    message = spec_error(tmp_path, "n", file="n.yaml", field="arms[2].set.teacher_samples")
    assert "expected an integer >= 1, got 0" in message and "'n0'" in message


def test_aux_weight_negative(tmp_path: Path) -> None:
    write(tmp_path, "l.yaml", MINIMAL + "method: {aux_weight: -0.1}\n")
    assert ">= 0" in spec_error(tmp_path, "l", file="l.yaml", field="method.aux_weight")


def test_unknown_method_field(tmp_path: Path) -> None:
    write(tmp_path, "m.yaml", "arms: [{name: a, preset: brts, set: {teacher_sample: 3}}]\nseeds: [0]\n")
    message = spec_error(tmp_path, "m", file="m.yaml", field="arms[0].set.teacher_sample")
    assert "unknown field" in message and "'teacher_samples'" in message


def test_inconsistent_method_fields(tmp_path: Path) -> None:
    write(tmp_path, "m.yaml", MINIMAL + "method: {opd_estimator: sampled, opd_candidates: union}\n")
    spec_error(tmp_path, "m", file="m.yaml", field="method")


def test_unknown_arm_preset_lists_known(tmp_path: Path) -> None:
    write(tmp_path, "p.yaml", "arms: [opd, {name: x, preset: brts_fancy}]\nseeds: [0]\n")
    message = spec_error(tmp_path, "p", file="p.yaml", field="arms[1].preset")
    assert all(name in message for name in ARM_PRESETS)


def test_arm_of_wrong_type(tmp_path: Path) -> None:
    write(tmp_path, "p.yaml", "arms: [7]\nseeds: [0]\n")
    assert "preset name or a mapping" in spec_error(tmp_path, "p", file="p.yaml", field="arms[0]")


def test_duplicate_arm_names(tmp_path: Path) -> None:
    write(tmp_path, "d.yaml", "arms: [brts, {name: brts, preset: brts, set: {teacher_samples: 8}}]\nseeds: [0]\n")
    assert "unique" in spec_error(tmp_path, "d", file="d.yaml", field="arms")


def test_bad_experiment_name(tmp_path: Path) -> None:
    write(tmp_path, "n.yaml", "name: has/slash\n" + MINIMAL)
    spec_error(tmp_path, "n", file="n.yaml", field="name:")


def test_unknown_extends_name(tmp_path: Path) -> None:
    write(tmp_path, "base.yaml", MINIMAL)
    write(tmp_path, "child.yaml", "extends: bsae\n")
    message = spec_error(tmp_path, "child", file="child.yaml", field="extends")
    assert "'bsae'" in message and "base" in message


def test_unknown_extends_path(tmp_path: Path) -> None:
    write(tmp_path, "child.yaml", "extends: ../nowhere/base.yaml\n")
    assert "not found" in spec_error(tmp_path, "child", file="child.yaml", field="extends")


def test_extends_of_wrong_type(tmp_path: Path) -> None:
    write(tmp_path, "child.yaml", "extends: [a, b]\n")
    spec_error(tmp_path, "child", file="child.yaml", field="extends")


def test_cyclic_extends(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", "extends: b\n")
    write(tmp_path, "b.yaml", "extends: c\n")
    write(tmp_path, "c.yaml", "extends: a\n" + MINIMAL)
    assert "cycle" in spec_error(tmp_path, "a", file="c.yaml", field="extends")


def test_self_extends(tmp_path: Path) -> None:
    write(tmp_path, "me.yaml", "extends: me\n" + MINIMAL)
    assert "cycle" in spec_error(tmp_path, "me", file="me.yaml", field="extends")


def test_error_names_the_parent_that_set_the_field(tmp_path: Path) -> None:
    write(tmp_path, "base.yaml", "train: {steps: -3}\n" + MINIMAL)
    write(tmp_path, "child.yaml", "extends: base\ntrain: {lr: 0.1}\n")
    spec_error(tmp_path, "child", file="base.yaml", field="train.steps")


@pytest.mark.parametrize("tag", ["!!python/object/apply:os.system [echo hi]", "!!python/name:os.system"])
def test_python_yaml_tag(tmp_path: Path, tag: str) -> None:
    write(tmp_path, "evil.yaml", MINIMAL + f"description: {tag}\n")
    message = spec_error(tmp_path, "evil", file="evil.yaml", field="line 3")
    assert "!!python/" in message and "not allow" in message


def test_missing_local_model_path(tmp_path: Path) -> None:
    write(tmp_path, "m.yaml", MINIMAL + f"models: {{student: {tmp_path / 'no-such-model'}}}\n")
    assert "does not exist" in spec_error(tmp_path, "m", file="m.yaml", field="models.student")


@pytest.mark.parametrize("path", ["./no-such-model-dir", "../no-such-model-dir", "~/no-such-brts-model-dir"])
def test_missing_relative_model_path(tmp_path: Path, path: str) -> None:
    write(tmp_path, "m.yaml", MINIMAL + f"models: {{teacher: '{path}'}}\n")
    spec_error(tmp_path, "m", file="m.yaml", field="models.teacher")


def test_unknown_builtin_model(tmp_path: Path) -> None:
    write(tmp_path, "m.yaml", MINIMAL + "models: {teacher: 'builtin:huge'}\n")
    assert "builtin:teacher" in spec_error(tmp_path, "m", file="m.yaml", field="models.teacher")


# ---------------------------------------------------------------------------------------------------------------
# Bad --set


@pytest.mark.parametrize("item", ["train.steps", "=3", "train..steps=1", ".steps=1"])
def test_set_bad_syntax(tmp_path: Path, item: str) -> None:
    write(tmp_path, "x.yaml", MINIMAL)
    assert "dotted.key=value" in spec_error(tmp_path, "x", file="x.yaml", field="--set", overrides=(item,))


def test_set_into_non_mapping(tmp_path: Path) -> None:
    write(tmp_path, "x.yaml", MINIMAL)
    message = spec_error(tmp_path, "x", file="x.yaml", field="seeds", overrides=("seeds.first=1",))
    assert "not a mapping" in message


def test_set_value_not_yaml(tmp_path: Path) -> None:
    write(tmp_path, "x.yaml", MINIMAL)
    spec_error(tmp_path, "x", file="x.yaml", field="--set seeds=[0", overrides=("seeds=[0",))


def test_set_invalid_value_names_the_override(tmp_path: Path) -> None:
    write(tmp_path, "x.yaml", MINIMAL)
    message = spec_error(tmp_path, "x", file="x.yaml", field="method.aux_weight",
                         overrides=("method.aux_weight=-1",))
    assert "--set method.aux_weight=-1" in message


def test_set_unknown_key(tmp_path: Path) -> None:
    write(tmp_path, "x.yaml", MINIMAL)
    spec_error(tmp_path, "x", file="x.yaml", field="train.step", overrides=("train.step=3",))


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
