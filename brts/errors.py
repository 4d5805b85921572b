"""The one base class of the errors a user can cause and fix (a bad spec, a missing file or model, an unusable
store): its message is one line naming the file or field and the fix. The CLI catches it once, prints that line
and exits with status 2; any other exception is a bug."""

from __future__ import annotations


class UserError(Exception):
    """A mistake the user can fix; the message is one line that says where and how."""


class ModelLoadError(UserError, RuntimeError):
    """A model that cannot be loaded or built; the message is one line naming the path, id or setting."""


def warn(message: str) -> None:
    """One line on stderr about something brts noticed and recovered from (a damaged file moved aside, a checkpoint
    skipped): the work goes on, the user should know."""
    import sys

    from brts.terminal import safe

    try:
        sys.stderr.write(f"warning: {safe(message, newlines=False)}\n")
        sys.stderr.flush()
    except (OSError, ValueError):  # no stderr to write to (a closed pipe): the recovery stands anyway
        pass
