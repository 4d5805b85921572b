"""Running lm-eval: one model loaded once, each task evaluated on its own with the seeds reset, exactly as one
plain `lm_eval` CLI call per task would run it (the command line is written next to the results)."""

from __future__ import annotations

import importlib.util
import json
import random
import shlex
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from brts.errors import UserError
from brts.spec.catalog import is_ours, quiet_lm_eval
from brts.spec.evaluation import EvalSpec

BOOTSTRAP_ITERS = 100_000  # the lm_eval CLI's default, so the stderr fields agree too


class EvaluationError(UserError, RuntimeError):
    """An evaluation that cannot run for a reason the user can fix; the message is one line."""


@dataclass(frozen=True)
class Backend:
    """The resolved lm-eval model type and where it runs."""

    name: str  # "hf" or "vllm"
    device: str  # "cpu" or "cuda"


def resolve_backend(spec: EvalSpec) -> Backend:
    """`auto` is vllm when it is installed and a GPU is present, else hf; asking for vllm without it is an error."""
    import torch

    gpu = torch.cuda.is_available()
    has_vllm = importlib.util.find_spec("vllm") is not None
    if spec.backend == "vllm" and not has_vllm:
        raise EvaluationError("eval.backend: vllm is not installed; pip install 'brts[vllm]' or use backend hf")
    name = spec.backend if spec.backend != "auto" else ("vllm" if has_vllm and gpu else "hf")
    return Backend(name, "cuda" if gpu else "cpu")


def model_args(backend: Backend, model: str, spec: EvalSpec) -> dict[str, Any]:
    args: dict[str, Any] = {"pretrained": model}
    if backend.name == "vllm":
        args["seed"] = spec.seed
    return args


def gen_kwargs(backend: Backend, spec: EvalSpec) -> dict[str, Any]:
    """The spec's sampling settings as lm-eval generation kwargs (they override the task YAML's)."""
    sampling = spec.temperature > 0
    out: dict[str, Any] = {"do_sample": sampling, "temperature": spec.temperature, "max_gen_toks": spec.max_new_tokens}
    if sampling:
        out["top_p"] = spec.top_p
        if backend.name == "hf":
            out["top_k"] = 0  # transformers samples from the top 50 unless told otherwise; the paper uses top-p only
    return out


def batch_size(backend: Backend, spec: EvalSpec) -> int | str:
    return spec.batch_size if backend.name == "hf" else "auto"


def load_lm(backend: Backend, model: str, spec: EvalSpec) -> Any:
    """lm-eval's model object, as `lm_eval --model <backend> --model_args pretrained=<model>` builds it."""
    quiet_lm_eval()
    from lm_eval.api.registry import get_model

    try:
        return get_model(backend.name).create_from_arg_obj(
            model_args(backend, model, spec),
            {"batch_size": batch_size(backend, spec), "max_batch_size": None, "device": backend.device},
        )
    except (OSError, ValueError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise EvaluationError(f"cannot load model {model!r} for evaluation: {first}") from error


def uses_chat_template(lm: Any, spec: EvalSpec) -> bool:
    if spec.chat_template != "auto":
        return spec.chat_template == "on"
    return getattr(getattr(lm, "tokenizer", None), "chat_template", None) is not None


@contextmanager
def silenced_progress(quiet: bool) -> Iterator[None]:
    """With `quiet`, lm-eval's tqdm bars are off (they would tear `brts exp run`'s own progress display).

    tqdm reads TQDM_DISABLE only when first imported, so the bars are switched off where lm-eval made them;
    the modules that make them are imported first (the first evaluation of a process would otherwise find
    them not yet loaded and leak its bars).
    """
    import importlib
    import sys

    from tqdm import tqdm

    def off(*args: Any, **kwargs: Any) -> Any:
        return tqdm(*args, **{**kwargs, "disable": True})

    names = ("lm_eval.api.task", "lm_eval.api.model", "lm_eval.models.huggingface", "lm_eval.models.vllm_causallms")
    if quiet:
        for name in names[:3]:  # vLLM's module is patched only when its backend has loaded it
            importlib.import_module(name)
    modules = [sys.modules[n] for n in names if quiet and n in sys.modules and hasattr(sys.modules[n], "tqdm")]
    saved = [getattr(m, "tqdm") for m in modules]  # noqa: B009
    for module in modules:
        module.tqdm = off  # type: ignore[attr-defined]
    try:
        yield
    finally:
        for module, original in zip(modules, saved, strict=True):
            module.tqdm = original  # type: ignore[attr-defined]


def run_task(lm: Any, model: str, task: str, include: Path, backend: Backend, spec: EvalSpec,
             chat: bool) -> dict[str, Any]:
    """lm-eval's results for one task, its sample log under "samples": what `simple_evaluate` returns for
    `lm_eval --tasks <task> --include_path <include> --seed <seed> ...`, without the environment survey."""
    import numpy as np
    from lm_eval.evaluator import evaluate
    from lm_eval.tasks import TaskManager
    from lm_eval.utils import set_torch_seed

    from brts.evaluation import hooks

    hooks.reset_graders()
    # Built-in tasks need lm-eval's own index (seconds to build); ours need only our folder.
    manager = TaskManager(include_path=str(include), include_defaults=not is_ours(task))
    random.seed(spec.seed)
    np.random.seed(spec.seed)
    set_torch_seed(spec.seed)
    try:
        loaded = manager.load([task])
    except hooks.TaskDataError:
        raise
    except Exception as exc:  # lm-eval's own messages for unknown names and bad configs
        raise EvaluationError(f"eval.tasks: cannot load lm-eval task {task!r}: {_first_line(exc)}") from exc
    if len(loaded["tasks"]) != 1:
        raise EvaluationError(f"eval.tasks: {task!r} is a group of {len(loaded['tasks'])} lm-eval tasks; "
                              "list the single tasks you want instead")
    for task_obj in loaded["tasks"].values():
        if task_obj.get_config("output_type") == "generate_until":
            task_obj.set_config(key="generation_kwargs", value=gen_kwargs(backend, spec), update=True)
        if task_obj.get_config("num_fewshot") is None:
            task_obj.set_config(key="num_fewshot", value=0)
        task_obj.set_fewshot_seed(seed=spec.seed)
    results = evaluate(
        lm=lm, task_dict=loaded, limit=spec.problems, bootstrap_iters=BOOTSTRAP_ITERS, log_samples=True,
        apply_chat_template=chat, fewshot_as_multiturn=chat,
    )
    if results is None:
        raise EvaluationError(f"lm-eval returned no results for {task!r}")
    results["config"] = {
        "model": backend.name, "model_args": model_args(backend, model, spec),
        "batch_size": batch_size(backend, spec), "device": backend.device, "limit": spec.problems,
        "bootstrap_iters": BOOTSTRAP_ITERS, "gen_kwargs": gen_kwargs(backend, spec), "apply_chat_template": chat,
        "random_seed": spec.seed, "numpy_seed": spec.seed, "torch_seed": spec.seed, "fewshot_seed": spec.seed,
    }
    return dict(results)


def command_line(model: str, task: str, include: Path, output: Path, backend: Backend, spec: EvalSpec,
                 chat: bool) -> str:
    """The plain `lm_eval` CLI call that reproduces `run_task` (same samples, same numbers).

    On CPU it pins torch's thread count to this process's: sums split over other thread counts can round
    differently, and one flipped sample changes avg@k.
    """
    import torch

    env = [f"OMP_NUM_THREADS={torch.get_num_threads()}"] if backend.device == "cpu" else []
    args = [*env, "lm_eval", "run", "--model", backend.name, "--model_args", _key_values(model_args(backend, model, spec)),
            "--tasks", task, "--include_path", str(include), "--batch_size", str(batch_size(backend, spec)),
            "--device", backend.device, "--gen_kwargs", json.dumps(gen_kwargs(backend, spec)),
            "--seed", str(spec.seed)]
    if spec.problems is not None:
        args += ["--limit", str(spec.problems)]
    if chat:
        args += ["--apply_chat_template"]
    args += ["--log_samples", "--output_path", str(output)]
    return shlex.join(args)


def _key_values(args: dict[str, Any]) -> str:
    return ",".join(f"{key}={value}" for key, value in args.items())


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
