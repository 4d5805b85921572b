"""The `brts` command line: parse, call inward, print. User mistakes end in one line and exit status 2.

One module per command or command group (`experiments`, `repro` (its `exp repro`), `sweeps`, `pool`, `models`,
`evaluate`, `report`, `bench`, `doctor`, `store`); what they share (consoles, `fail`, `user_errors`, the `--store` and `--set` options) is in `common`.
"""

from __future__ import annotations

from typing import Any

import typer

from brts.cli import bench, doctor, evaluate, experiments, models, pool, report, repro, store, sweeps

app = typer.Typer(help="On-policy distillation with Best-of-N teacher rollout selection: run, evaluate, report.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
experiments.app.command("repro")(repro.repro)
app.add_typer(experiments.app, name="exp")
app.add_typer(sweeps.app, name="sweep")
app.add_typer(models.app, name="models")
app.add_typer(pool.app, name="pool")
app.add_typer(store.app, name="store")
app.command("eval")(evaluate.eval_command)
app.command("report")(report.report)
app.command("bench")(bench.bench)
app.command("doctor")(doctor.doctor)


def main(argv: list[str] | None = None) -> Any:
    return app(argv, standalone_mode=True)
