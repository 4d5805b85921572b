"""`brts report`: comparison tables, figures and tidy data from run folders and sweep studies.

Modules: `aggregate` (run folders -> pandas), `stats` (the seed x problem test, Holm, power; pure), `tables`
(arm x task table, cost, summary sentences), `grader` (the authors' grader statistics per arm and task), `speed`
(learning speed), `power` (power of a planned grid from a previous report), `display` (tables as strings),
`plots` / `sweep_plots` (seaborn figures), `study` (Optuna storage -> trials), `experiment` / `sweep_report`
(compose one report), `render` (Markdown, HTML), and `build` (resolve the name, write the folder atomically).
"""

from brts.report.aggregate import ReportError
from brts.report.build import FORMATS, ReportResult, build_report

__all__ = ["FORMATS", "ReportError", "ReportResult", "build_report"]
