"""What executing a run trusts: before a run (or reference) is reused or executed, its folder is checked and what
cannot be trusted is moved aside (brts.store.integrity), so the run redoes exactly that work and its numbers are
those of an undamaged run. One line on stderr says what was moved.

Checked every time: the record, the manifest (missing while an artefact exists is damage too), files never
sealed, the metrics and validation logs, `final/` and the evaluation files against the manifest (and
`problems.csv` against `summary.json`); for a finished run also its newest checkpoint. The checkpoint training
resumes from is checked just before it is read (brts.store.folder.RunFolder.intact_checkpoint).
"""

from __future__ import annotations

from brts.errors import warn
from brts.evaluation.parse import PROBLEMS_FILE
from brts.evaluation.verify import check_eval
from brts.store import RunFolder
from brts.store.integrity import Damage, log_damage


def untrusted(run: RunFolder) -> list[Damage]:
    """What a run cannot use as it is: a missing or unreadable manifest, files never sealed, bad log lines,
    `final/` (and for a finished run its newest checkpoint) or evaluation files that are not what was sealed, and
    evaluation files that disagree with each other or with the record."""
    parts = ["final", "eval"]
    newest = run.newest_checkpoint() if run.record().get("status") == "finished" else None
    found = log_damage(run.path)[0] + run.sealed_damage([*parts, *([newest] if newest else [])])
    return found + evaluation_disagreement(run, found)


def evaluation_disagreement(run: RunFolder, found: list[Damage]) -> list[Damage]:
    """`eval/` files that disagree with each other (brts.evaluation.verify), or a record that holds final
    accuracies without them (a run with `eval.final: false` holds none); nothing when `found` already holds damage
    to `eval/` or the manifest."""
    if any(d.part.startswith("eval") or d.part == "manifest" for d in found):
        return []
    disagreement = [Damage.of(line, "eval") for line in check_eval(run.eval_dir)]
    table = run.eval_dir / PROBLEMS_FILE
    record = run.record()
    if not disagreement and record.get("status") == "finished" and record.get("eval") and not table.is_file():
        disagreement.append(Damage(table, "missing (the record holds its accuracies)", "eval"))
    return disagreement


def reusable(run: RunFolder, record: dict, eval_key: str) -> bool:
    """Whether a finished run (or reference) can be reused as it is: evaluated with these settings, nothing
    untrusted in its folder."""
    return record.get("status") == "finished" and record.get("eval_key") == eval_key and not untrusted(run)


def repair(run: RunFolder, damages: list[Damage]) -> None:
    """Move aside what `damages` name, one line each on stderr."""
    for line in run.repair(damages):
        warn(line)
