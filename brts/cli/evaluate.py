"""`brts eval`: evaluate one model (a folder, an HF id, a built-in model or a run) through lm-eval."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from brts.cli.common import JsonProgressOpt, QuietOpt, StoreOpt, err, fail, out, store_root, user_errors

TasksOpt = Annotated[list[str] | None, typer.Option(
    "--tasks", help="lm-eval task names, comma-separated or repeated (brts_aime24, brts_synthetic_easy, gsm8k, ...)")]


def eval_command(
    target: Annotated[str, typer.Argument(help="a model folder, an HF model id, builtin:teacher|student, or a run "
                                               "(folder, or id in the store)")],
    tasks: TasksOpt = None,
    k: Annotated[int | None, typer.Option(help="samples per problem")] = None,
    problems: Annotated[int | None, typer.Option(help="problems per task (default: all)")] = None,
    temperature: Annotated[float | None, typer.Option()] = None,
    top_p: Annotated[float | None, typer.Option("--top-p")] = None,
    max_new_tokens: Annotated[int | None, typer.Option("--max-new-tokens")] = None,
    seed: Annotated[int | None, typer.Option(help="lm-eval seed")] = None,
    backend: Annotated[str | None, typer.Option(help="hf, vllm or auto")] = None,
    batch_size: Annotated[int | None, typer.Option("--batch-size")] = None,
    data_dir: Annotated[str | None, typer.Option("--data-dir", help="folder of <task>.jsonl benchmark files")] = None,
    data_source: Annotated[str | None, typer.Option(
        "--data-source", help="without --data-dir: package (the copies shipped with brts) or hub")] = None,
    answer_format: Annotated[str | None, typer.Option(
        "--answer-format", help="where a response's answer is: boxed, last_number, or regex:PATTERN (one capture "
                                "group); the prompt asks for it (default: a run's own, else boxed)")] = None,
    out_dir: Annotated[Path | None, typer.Option("--out", help="results folder (default: ./evals/<name>)")] = None,
    store: StoreOpt = None,
    quiet: QuietOpt = False,
    json_progress: JsonProgressOpt = False,
) -> None:
    """Evaluate a model through lm-eval and print avg@k, pass@k and maj@k per task (defaults: a run's own
    evaluation settings, else the spec defaults). Results are cached in the output folder."""
    from pydantic import ValidationError

    from brts import progress

    progress.configure(quiet, json_progress)
    from brts.evaluation.evaluate import check_settings, evaluate_model
    from brts.runs.target import resolve_target
    from brts.spec.catalog import display_name
    from brts.spec.evaluation import EvalSpec
    from brts.spec.task import AnswerFormat, TaskSpec

    given = {"k": k, "problems": problems, "temperature": temperature, "top_p": top_p,
             "max_new_tokens": max_new_tokens, "seed": seed, "backend": backend, "batch_size": batch_size,
             "data_dir": data_dir, "data_source": data_source}
    overrides: dict[str, Any] = {key: value for key, value in given.items() if value is not None}
    if tasks:
        overrides["tasks"] = [t.strip() for item in tasks for t in item.split(",") if t.strip()]
    with user_errors():
        found = resolve_target(target, store_root(store))
        base = {key: value for key, value in found.base.items() if key not in overrides}
        try:
            spec = EvalSpec.model_validate({**base, **overrides})
        except ValidationError as exc:
            error = exc.errors()[0]
            option = "--" + str(error["loc"][0]).replace("_", "-") if error["loc"] else "options"
            fail(f"{option}: {error['msg'].removeprefix('Value error, ')}")
        task = found.task
        if answer_format is not None:
            shorthand = {"regex": answer_format[len("regex:"):]} if answer_format.startswith("regex:") else answer_format
            try:
                chosen = AnswerFormat.model_validate(shorthand)
            except ValidationError as exc:
                fail(f"--answer-format {answer_format!r}: {exc.errors()[0]['msg'].removeprefix('Value error, ')}")
            task = (task or TaskSpec()).model_copy(update={"answer_format": chosen})
        check_settings(spec, task)
        folder = out_dir or Path("evals") / found.name
        if progress.resolve(progress.mode()) == "bars":  # a terminal: our lines and lm-eval's own bars
            evaluation = evaluate_model(found.model, spec, folder, task_spec=task,
                                        log=lambda line: err.print(line, highlight=False))
        else:  # each stage a line, and one every 30 s within it (or nothing, --quiet)
            with progress.current() as shown:
                shown.start("eval", f"evaluating {found.name}")
                evaluation = evaluate_model(found.model, spec, folder, task_spec=task,
                                            log=lambda line: shown.update("eval", stage=line), quiet=True)
                shown.finish("eval")
    table = Table("task", title=f"{found.name}: percent")
    for column in (f"avg@{spec.k}", f"pass@{spec.k}", f"maj@{spec.k}", "problems", "samples"):
        table.add_column(column, justify="right")
    for task in spec.tasks:
        entry = evaluation.tasks[task]
        cells = [f"{entry[m]:.1f}" if entry.get(m) is not None else "–" for m in ("avg@k", "pass@k", "maj@k")]
        table.add_row(display_name(task), *cells, str(entry["problems"]), str(entry["k"]))
    out.print(table)
    cached = len(spec.tasks) - len(evaluation.evaluated)
    err.print(f"{len(evaluation.evaluated)} evaluated, {cached} cached; results in {evaluation.folder}; "
              f"reproduce with: sh {evaluation.commands}", highlight=False, soft_wrap=True)
