"""Reading spec files is bounded: a file above the size cap is refused before it is parsed, YAML aliases that
expand past the value cap are refused, and an error message serialises only what it quotes."""

from __future__ import annotations

import time

import pytest

from brts.spec import SpecError, load_spec
from brts.spec.errors import show
from brts.spec.files import MAX_SPEC_BYTES, MAX_VALUES

BASE = "arms: [opd]\nseeds: [0]\n"


def _bomb(levels: int = 8) -> list[str]:
    """A billion laughs: each anchor a list of ten aliases of the one before (10**levels values expanded)."""
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, levels + 1)]
    return lines


def _load(tmp_path, text: str, *overrides: str):
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    started = time.perf_counter()
    with pytest.raises(SpecError) as caught:
        load_spec(str(path), overrides)
    assert time.perf_counter() - started < 5
    message = str(caught.value)
    assert "\n" not in message and len(message) < 400
    return message


def test_a_spec_file_over_the_size_cap_is_refused_before_it_is_parsed(tmp_path):
    message = _load(tmp_path, BASE + "description: '" + "x" * (MAX_SPEC_BYTES + 10) + "'\n")
    assert "spec.yaml: larger than 1024 KiB, the most a spec file may be" in message


@pytest.mark.parametrize("where", ["resources.slurm", "description", "set"])
def test_yaml_aliases_that_expand_past_the_cap_are_refused(tmp_path, where):
    if where == "set":
        message = _load(tmp_path, BASE, "description=[" + ", ".join(["&a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]"]
                                                                     + ["*a"] * 2000) + "]")
    elif where == "description":
        message = _load(tmp_path, BASE + "description:\n" + "\n".join(f"  - {line.split(': ', 1)[1]}"
                                                                        for line in _bomb()) + "\n")
    else:
        message = _load(tmp_path, BASE + "resources:\n  slurm:\n" + "\n".join(f"    {line}" for line in _bomb()) + "\n")
    assert f"more than {MAX_VALUES} values once its YAML aliases" in message


def test_an_alias_inside_itself_is_refused(tmp_path):
    message = _load(tmp_path, BASE + "description: &a [1, *a]\n")
    assert "YAML aliases" in message


def test_an_error_quotes_a_huge_value_without_serialising_it():
    shared = [[0] * 1000] * 1000
    huge = [shared] * 10  # ten million values, held in little memory
    started = time.perf_counter()
    text = show(huge)
    assert time.perf_counter() - started < 0.5
    assert len(text) <= 80 and text.startswith("[[[0, 0") and text.endswith("...")
    assert show("x" * 10**7).endswith("...") and len(show("x" * 10**7)) == 80


def test_extends_of_a_folder_says_it_is_a_folder(tmp_path):
    (tmp_path / "base").mkdir()
    message = _load(tmp_path, "extends: ./base\n" + BASE)
    assert "extends: './base' is a folder" in message and "not found" not in message
