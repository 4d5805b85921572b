"""The one base class of the errors a user can cause and fix (a bad spec, a missing file or model, an unusable
store): its message is one line naming the file or field and the fix. The CLI catches it once, prints that line
and exits with status 2; any other exception is a bug."""

from __future__ import annotations


class UserError(Exception):
    """A mistake the user can fix; the message is one line that says where and how."""


class ModelLoadError(UserError, RuntimeError):
    """A model that cannot be loaded or built; the message is one line naming the path, id or setting."""
