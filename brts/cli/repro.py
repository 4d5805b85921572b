"""`brts exp repro`: run one experiment in several floating-point environments and compare their tables."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from brts.cli.common import QuietOpt, SetOpt, alert, err, fail, load_experiment, out, store_root, user_errors
from brts.progress import duration
from brts.runs.environments import DEFAULT_ENVIRONMENTS, ENVIRONMENTS
from brts.terminal import SafeConsole

if TYPE_CHECKING:
    from brts.report.repro import Comparison
    from brts.store import RunStore

EnvOpt = Annotated[list[str] | None, typer.Option(
    "--env", help=f"an environment to run in, repeatable: {', '.join(ENVIRONMENTS)} (default: "
                  f"{', '.join(DEFAULT_ENVIRONMENTS)})", show_default=False)]


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def repro(
    name: Annotated[str, typer.Argument(help="experiment name or spec path")],
    set_: SetOpt = None,
    env: EnvOpt = None,
    tolerance: Annotated[float, typer.Option(
        min=0.0, help="the largest spread of a mean between environments still called reproducible, in points "
                      "(0-100 scale)")] = 8.0,
    store: Annotated[Path | None, typer.Option(
        "--store", help="parent folder: environment E runs in <store>/repro/E/ (default: $BRTS_STORE or ./runs)",
        show_default=False)] = None,
    workers: Annotated[int | None, typer.Option(min=1, help="parallel runs (default: the spec's `workers`)")] = None,
    quiet: QuietOpt = False,
) -> None:
    """Run the experiment (`brts exp run`) in each environment, one after another, each in its own process and
    store (finished runs are reused), then print the table per arm and task: the mean in each environment, their
    spread (max - min) and the reference environment's interval half-width. Exit 0 when every spread is within
    --tolerance, 1 otherwise (or when an environment lacks a result or its `exp run` failed)."""
    from brts.runs.environments import exp_run_command, probe, reference_of, resolve, run_in
    from brts.spec import load_spec
    from brts.store import RunStore

    with user_errors():
        environments = resolve(env)
        spec = load_experiment(name, set_)
        specs = {e.name: load_spec(name, [*(set_ or ()), *e.overrides]) for e in environments}
        root = RunStore(store_root(store))
        root.check_writable()
    signal.signal(signal.SIGTERM, _interrupt)  # `kill` stops the running environment as Ctrl-C does
    reference = reference_of(environments)
    ran: list[dict[str, Any]] = []
    for i, environment in enumerate(environments, 1):
        where = root.environment_store(environment.name)
        measured = probe(environment)
        err.print(f"[{i}/{len(environments)}] {environment.name}: {environment.settings()} "
                  f"({_measured(measured)}); store {where.root}", highlight=False, soft_wrap=True)
        command = exp_run_command(name, set_ or (), environment, where.root, workers, quiet)
        log = root.environment_log(environment.name)
        started = time.monotonic()
        try:
            launch = run_in(environment, command, log, _echo(environment.name, quiet))
        except KeyboardInterrupt:
            fail("interrupted; run the same command again to resume where it stopped", code=130)
        took = duration(time.monotonic() - started)
        if launch.returncode != 0:
            err.print(alert("failed", f"environment {environment.name}: `brts exp run` exited with status "
                                      f"{launch.returncode} after {took}: {launch.last_line} (its output: {log})"),
                      highlight=False, soft_wrap=True)
        else:
            err.print(f"{environment.name}: done after {took} (its output: {log})", highlight=False, soft_wrap=True)
        ran.append({"name": environment.name, "variables": dict(environment.variables),
                    "overrides": list(environment.overrides), "float_environment": measured,
                    "store": str(where.root), "log": str(log), "exit_status": launch.returncode})
    _compare(spec.name, specs, root, reference.name, tolerance, ran)


def _measured(measured: dict[str, Any]) -> str:
    if "error" in measured:
        return str(measured["error"])
    return f"torch CPU kernels {measured.get('cpu_capability')}, MKL_CBWR={measured.get('MKL_CBWR')}"


def _echo(environment: str, quiet: bool) -> Any:
    def echo(line: str) -> None:
        if not quiet and line.strip():
            err.print(Text.assemble((f"  {environment} | ", "dim"), line), highlight=False, soft_wrap=True)
    return echo


def _compare(experiment: str, specs: dict[str, Any], root: RunStore, reference: str, tolerance: float,
             ran: list[dict[str, Any]]) -> None:
    from brts.report.repro import compare, environment_table, write

    with user_errors():
        tables = {env: environment_table(root.environment_store(env).root, spec) for env, spec in specs.items()}
        comparison = compare(tables, reference, tolerance)
        csv_path, json_path = root.repro_table(experiment, ".csv"), root.repro_table(experiment, ".json")
        write(comparison, csv_path, json_path, ran)
    # Into a file or pipe (a CI log) rich would squeeze the table to 80 columns: give it room instead.
    shown = out if out.is_terminal else SafeConsole(file=out.file, width=200)
    shown.print(_table(comparison, experiment))
    out.print(comparison.verdict(), highlight=False, soft_wrap=True)
    failed = [r["name"] for r in ran if r["exit_status"] != 0]
    if failed:  # its table may be an earlier invocation's: not a pass
        out.print(f"not a pass: `brts exp run` failed in {', '.join(failed)} (its line above)", highlight=False,
                  soft_wrap=True)
    err.print(f"written: {csv_path}, {json_path}", highlight=False, soft_wrap=True)
    if failed or not comparison.ok:
        raise typer.Exit(1)


def _table(comparison: Comparison, experiment: str) -> Table:
    from brts.cli.experiments import REFERENCE_LABELS
    from brts.report.aggregate import display_task

    table = Table(title=f"{experiment}: final avg@k in percent per environment",
                  caption=f"spread: max - min of the means; ±CI: half-width of the {comparison.reference} "
                          f"environment's {comparison.level:.0%} interval; verdict: spread within "
                          f"{comparison.tolerance:g} points")
    table.add_column("arm", no_wrap=True)
    table.add_column("task")
    for column in (*comparison.environments, "spread", "±CI", "≤ CI"):
        table.add_column(column, justify="right", min_width=6)
    table.add_column("verdict")
    for r in comparison.rows.to_dict("records"):
        who = Text(REFERENCE_LABELS.get(r["arm"], r["arm"]), style="dim") if r["kind"] == "reference" else r["arm"]
        verdict = Text(r["verdict"] + (f" ({r['missing']})" if r["missing"] else ""),
                       style={"ok": "green", "over": "red"}.get(r["verdict"], "yellow"))
        table.add_row(who, display_task(r["task"]), *(_number(r[e]) for e in comparison.environments),
                      _number(r["spread"]), _number(r["half_width"], "±"),
                      "–" if r["spread"] != r["spread"] else "yes" if r["within_interval"] else "no", verdict)
    return table


def _number(value: float, prefix: str = "") -> str:
    return "–" if value != value else f"{prefix}{value:.1f}"
