"""`brts sweep run|status|show`: Optuna sweeps over the method's settings, resumable and shareable."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from brts.cli.common import (
    JsonProgressOpt,
    QuietOpt,
    SetOpt,
    StoreOpt,
    err,
    fail,
    out,
    store_root,
    user_errors,
)
from brts.spec import resolved_yaml

app = typer.Typer(help="Optuna sweeps over the method's settings (N, lambda): resumable, shareable.",
                  no_args_is_help=True)

StorageOpt = Annotated[str | None, typer.Option(
    "--storage", help="Optuna storage: RDB URL, redis://, or journal file (default: <store>/sweeps/NAME/study.log)",
    show_default=False)]


@app.command("run")
def sweep_run(
    name: str,
    set_: SetOpt = None,
    trials: Annotated[int | None, typer.Option(min=1, help="completed trials to reach (default: the spec's)")] = None,
    workers: Annotated[int | None, typer.Option(min=1, help="parallel worker processes (default: the spec's)")] = None,
    storage: StorageOpt = None,
    store: StoreOpt = None,
    quiet: QuietOpt = False,
    json_progress: JsonProgressOpt = False,
) -> None:
    """Run trials until the study holds the requested completed ones; kill and rerun it at any point to resume."""
    from brts import progress

    progress.configure(quiet, json_progress)
    from brts.runs.experiment import check_ready
    from brts.store import RunStore
    from brts.sweep.load import load_sweep
    from brts.sweep.runner import run_sweep
    from brts.sweep.study import load_existing, storage_url

    with user_errors():
        sweep = load_sweep(name, set_ or (), fields={"trials": trials, "workers": workers, "storage": storage})
        root = store_root(store)
        url = storage_url(sweep, root)
        check_ready(sweep.experiment, RunStore(root))
        try:
            result = run_sweep(sweep, root, url, trials=sweep.spec.trials, workers=sweep.spec.workers)
        except KeyboardInterrupt:
            fail("interrupted; run the same command again to resume (the interrupted trial is retried)", code=130)
        _print_sweep_status(sweep, load_existing(sweep, url), url)
    minutes, seconds = divmod(round(result.seconds), 60)
    err.print(f"{result.done}/{result.target} completed trials; this invocation took {minutes} min {seconds} s",
              highlight=False)
    if result.reason == "failures":
        fail("stopped: as many trials failed as the budget holds; see the errors above", code=1)
    if result.reason == "grid" and result.done < result.target:
        err.print("the grid is exhausted (failed points are not retried)", highlight=False)


@app.command("status")
def sweep_status(name: str, set_: SetOpt = None, storage: StorageOpt = None, store: StoreOpt = None) -> None:
    """Trials so far, the best setting with its spread over seeds (or the Pareto front), running and failed trials."""
    from brts.sweep.load import load_sweep
    from brts.sweep.study import load_existing, storage_url

    with user_errors():
        sweep = load_sweep(name, set_ or (), fields={"storage": storage})
        url = storage_url(sweep, store_root(store))
        study = load_existing(sweep, url)
    _print_sweep_status(sweep, study, url)


def _print_sweep_status(sweep: Any, study: Any, url: str) -> None:
    from brts.sweep.status import status_report

    for part in status_report(sweep, study, url):
        out.print(part, highlight=False)


@app.command("show")
def sweep_show(name: str, set_: SetOpt = None, storage: StorageOpt = None, store: StoreOpt = None) -> None:
    """Print the resolved sweep spec, its search space, objectives and storage; execute and create nothing."""
    from brts.store import RunStore
    from brts.sweep.load import load_sweep
    from brts.sweep.status import space_table
    from brts.sweep.study import storage_url

    with user_errors():
        sweep = load_sweep(name, set_ or (), fields={"storage": storage})
    root = store_root(store)
    out.print(resolved_yaml(sweep.spec), highlight=False)
    out.print(space_table(sweep))
    spec = sweep.spec
    lines = [
        f"base: experiment {sweep.experiment.name!r}, "
        + ", ".join(f"arm {a.name!r} (preset {a.preset!r})" for a in sweep.arms)
        + f", {sweep.experiment.train.steps} steps, seeds {list(sweep.seeds)} per trial"
        + (f"; objectives are means over the {len(sweep.arms)} arms" if len(sweep.arms) > 1 else ""),
        *(f"arm {arm!r} does not read {', '.join(fields)}: it keeps the experiment's value, and trials that differ "
          "only there share its runs" for arm, fields in sweep.unread().items()),
        "objectives: " + "; ".join(f"{o.direction} {o.metric} ({o.reduce})" for o in sweep.objectives),
        f"sampler: {spec.sampler.name} (seed {spec.sampler.seed})"
        + (f", grid of {sweep.grid_size()} points" if spec.sampler.name == "grid" else "")
        + (f", {len(sweep.points())} points" if spec.sampler.name == "points" else ""),
        f"pruner: {spec.pruner.name}",
        f"budget: {spec.trials} completed trials, {spec.workers} worker(s)",
        f"study: {sweep.name!r} in {storage_url(sweep, root)}",
        f"runs: {RunStore(root).sweep_dir(sweep.name)}/<run_id>/ (finished runs anywhere in {root} are reused, "
        f"teacher samples shared through {RunStore(root).pool_file(sweep.experiment.pool)})",
    ]
    out.print("\n".join(lines), highlight=False)
