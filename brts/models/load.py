"""Loading teacher and student models (a local folder, an HF id, or a built-in model: shipped with brts, or built on
first use for another build seed), and refusing a pair that does not share one vocabulary."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase
from transformers.utils import logging as hf_logging

from brts.errors import ModelLoadError, UserError
from brts.models.builtin import builtin_models, cached_builtin_models
from brts.spec import BUILTIN_MODELS, ModelsSpec, RunConfig


class IncompatibleModelsError(UserError, ValueError):
    """Teacher and student do not share a tokenizer and vocabulary (the losses compare both models' log-probs
    of the same token ids)."""


def _looks_local(path_or_id: str) -> bool:
    # A Hugging Face id is `name` or `owner/name`; anything else (absolute, ./, ~, deeper) is a folder.
    return (
        path_or_id.startswith((".", "/", "~"))
        or path_or_id.count("/") > 1
        or Path(path_or_id).expanduser().exists()
    )


def load_model(
    path_or_id: str, dtype: torch.dtype = torch.float32
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """A causal LM and its tokenizer from a local folder or a Hugging Face model id, in eval mode."""
    if _looks_local(path_or_id):
        folder = Path(path_or_id).expanduser()
        if not (folder / "config.json").is_file():
            raise ModelLoadError(f"no model at {folder}: expected a folder with config.json (save_pretrained output)")
        source = str(folder)
    else:
        source = path_or_id
    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
        model = AutoModelForCausalLM.from_pretrained(source, dtype=dtype)
    except (OSError, ValueError) as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ModelLoadError(f"cannot load model {path_or_id!r}: {first_line}") from error
    model.eval()
    return model, tokenizer


def _special_tokens(tokenizer: PreTrainedTokenizerBase) -> dict[str, tuple[str | None, int | None]]:
    names = ("bos_token", "eos_token", "pad_token", "unk_token")
    return {name: (getattr(tokenizer, name), getattr(tokenizer, name + "_id")) for name in names}


def check_compatible(
    teacher_tok: PreTrainedTokenizerBase,
    student_tok: PreTrainedTokenizerBase,
    teacher_vocab_size: int,
    student_vocab_size: int,
) -> None:
    """Raise IncompatibleModelsError unless both models score the same token ids: equal vocabulary sizes,
    equal special tokens and the same token-to-id map."""
    teacher_specials, student_specials = _special_tokens(teacher_tok), _special_tokens(student_tok)
    differing = next((n for n in teacher_specials if teacher_specials[n] != student_specials[n]), None)
    same_vocab = teacher_tok.get_vocab() == student_tok.get_vocab()
    if teacher_vocab_size == student_vocab_size and differing is None and same_vocab:
        return
    if differing is not None:
        detail = f"first differing special token: {differing} {teacher_specials[differing]} (teacher) vs "
        detail += f"{student_specials[differing]} (student)"
    else:
        detail = "special tokens agree" + ("" if same_vocab else " but the token-to-id maps differ")
    raise IncompatibleModelsError(
        f"teacher and student must share one vocabulary: teacher vocab size {teacher_vocab_size}, "
        f"student vocab size {student_vocab_size}; {detail}"
    )


@dataclass
class ModelPair:
    student: PreTrainedModel
    teacher: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase


def resolve_model(name: str, models: ModelsSpec, cache_root: Path | None = None, progress: bool = False) -> str:
    """A loadable path or HF id for a spec's model entry: a built-in model is the shipped one (verified), or for
    another build seed built on first use."""
    if name not in BUILTIN_MODELS:
        return name
    built = builtin_models(models.build_seed, cache_root, progress=progress)
    return str(built.teacher_dir if BUILTIN_MODELS[name] == "teacher" else built.student_dir)


def _local_source(name: str, models: ModelsSpec, cache_root: Path | None) -> str | None:
    """A model entry's folder when it is there without building or downloading anything, else None."""
    if name in BUILTIN_MODELS:
        built = cached_builtin_models(models.build_seed, cache_root)
        return None if built is None else str(built.teacher_dir if BUILTIN_MODELS[name] == "teacher"
                                              else built.student_dir)
    return name if _looks_local(name) else None


def preflight(models: ModelsSpec, cache_root: Path | None = None, build: bool = True) -> None:
    """Build the built-in models if needed (a build seed other than the shipped one) and refuse an incompatible pair
    before any run starts.

    Reads only tokenizers and configs, so it is cheap for large models too. With `build=False` nothing is built or
    downloaded: a pair is checked only when both models are local folders, shipped or already built.
    """
    from transformers import AutoConfig

    hf_logging.disable_progress_bar()
    if build:
        sources = [resolve_model(name, models, cache_root, progress=True) for name in (models.teacher, models.student)]
    else:
        local = [_local_source(name, models, cache_root) for name in (models.teacher, models.student)]
        if None in local:
            return
        sources = [s for s in local if s is not None]
    loaded = []
    for source in sources:
        try:
            loaded.append((AutoTokenizer.from_pretrained(source), AutoConfig.from_pretrained(source)))
        except (OSError, ValueError) as error:
            first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise ModelLoadError(f"cannot load model {source!r}: {first}") from error
    (teacher_tok, teacher_cfg), (student_tok, student_cfg) = loaded
    check_compatible(teacher_tok, student_tok, teacher_cfg.vocab_size, student_cfg.vocab_size)


def default_device() -> torch.device:
    """Where a run's trainer holds its models in one process (accelerate's choice): the current GPU, else the CPU.
    A teacher that draws samples for that trainer (the pool's pre-fill, a producer) runs there too, so that a keyed
    sample has the same bits whoever draws it."""
    return torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() else torch.device("cpu")


def load_pair(cfg: RunConfig, cache_root: Path | None = None) -> ModelPair:
    """A run's student, teacher and their shared tokenizer (the pair checked compatible)."""
    hf_logging.disable_progress_bar()
    student, tokenizer = load_model(resolve_model(cfg.models.student, cfg.models, cache_root))
    teacher, teacher_tok = load_model(resolve_model(cfg.models.teacher, cfg.models, cache_root))
    check_compatible(teacher_tok, tokenizer, teacher.config.vocab_size, student.config.vocab_size)
    return ModelPair(student=student, teacher=teacher, tokenizer=tokenizer)
