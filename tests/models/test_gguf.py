"""`brts models import-gguf`: a GGUF file becomes a plain transformers folder (whole, or its first K layers),
and every way it can go wrong is one line with exit status 2 and nothing written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from brts.cli import app
from brts.models.load import load_model
from tests.gguf_files import CHAT_TEMPLATE, write_tiny_gguf

pytest.importorskip("gguf")
runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


@pytest.fixture(scope="module")
def gguf_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_gguf(tmp_path_factory.mktemp("gguf") / "tiny.gguf", layers=3)


@pytest.fixture(scope="module")
def imported(gguf_file: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The whole model and its first two layers, imported through the CLI."""
    root = tmp_path_factory.mktemp("imported")
    for name, extra in (("teacher", ()), ("student", ("--layers", "2"))):
        result = invoke("models", "import-gguf", str(gguf_file), str(root / name), *extra)
        assert result.exit_code == 0, result.output
    return root / "teacher", root / "student"


def test_the_folder_is_a_plain_float_checkpoint_with_the_tokenizer(imported: tuple[Path, Path]) -> None:
    teacher, _ = imported
    config = json.loads((teacher / "config.json").read_text())
    assert "quantization_config" not in config and config["num_hidden_layers"] == 3
    model, tokenizer = load_model(str(teacher))
    assert next(model.parameters()).dtype == torch.float32
    assert (tokenizer.bos_token, tokenizer.eos_token, tokenizer.pad_token) == ("<|im_start|>", "<|im_end|>", "<|im_end|>")
    assert tokenizer.chat_template == CHAT_TEMPLATE
    assert tokenizer.decode(tokenizer("1 + 2 = 3")["input_ids"]) == "1 + 2 = 3"
    assert model.generation_config.eos_token_id == tokenizer.eos_token_id


def test_layers_keeps_the_first_k_layers_and_everything_else(imported: tuple[Path, Path]) -> None:
    teacher, student = imported
    assert json.loads((student / "config.json").read_text())["num_hidden_layers"] == 2
    full, cut = load_file(teacher / "model.safetensors"), load_file(student / "model.safetensors")
    assert set(cut) == {k for k in full if not k.startswith("model.layers.2.")}
    assert all(torch.equal(cut[k], full[k]) for k in cut)
    assert (student / "tokenizer.json").read_bytes() == (teacher / "tokenizer.json").read_bytes()


def test_the_output_line_names_the_kept_layers(gguf_file: Path, tmp_path: Path) -> None:
    result = invoke("models", "import-gguf", str(gguf_file), str(tmp_path / "m"), "--layers", "1")
    assert result.exit_code == 0 and "1 of 3 layers" in result.output and "chat template yes" in result.output


@pytest.mark.parametrize("case", ["missing", "not_gguf", "layers_0", "layers_too_many", "out_not_empty"])
def test_bad_input_is_one_line_exit_2_nothing_written(case: str, gguf_file: Path, tmp_path: Path) -> None:
    source, out, extra = gguf_file, tmp_path / "out", []
    if case == "missing":
        source = tmp_path / "nowhere.gguf"
    elif case == "not_gguf":
        source = tmp_path / "model.gguf"
        source.write_bytes(b"GGUF but not really" * 10)
    elif case == "layers_0":
        extra = ["--layers", "0"]
    elif case == "layers_too_many":
        extra = ["--layers", "4"]
    else:
        out.mkdir()
        (out / "keep.txt").write_text("mine")
    before = sorted(p.name for p in tmp_path.iterdir())
    result = invoke("models", "import-gguf", str(source), str(out), *extra)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no output folder, no partial folder
    if case == "out_not_empty":
        assert [p.name for p in out.iterdir()] == ["keep.txt"]


def test_eval_of_a_gguf_file_says_to_import_it(gguf_file: Path) -> None:
    result = invoke("eval", str(gguf_file))
    assert result.exit_code == 2 and "brts models import-gguf" in result.output
    assert len([line for line in result.output.splitlines() if line.strip()]) == 1
