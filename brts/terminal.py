"""Text that cannot drive a terminal: every string brts prints that a user could have written (spec keys and
values, names, descriptions, paths, run errors) goes through `safe`, which shows control characters, escape
sequences and bidirectional overrides as visible escapes (`\\x1b`, `\\u202e`) instead of sending them.

`SafeConsole` is a rich console that does so for every string it renders (printed text and table cells); the
one-line error and warning printers call `safe` themselves.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.text import Text

# Bidirectional and invisible formatting controls (a right-to-left override makes `txt.exe` read `exe.txt`),
# and the Unicode line and paragraph separators.
_FORMAT = {0x061C, 0x200B, 0x200C, 0x200D, 0x200E, 0x200F, 0x2028, 0x2029, 0xFEFF,
           *range(0x202A, 0x202F), *range(0x2066, 0x206A)}


def _escaped(code: int, newlines: bool) -> bool:
    if code in (0x0A, 0x09):
        return not newlines
    return code < 0x20 or 0x7F <= code <= 0x9F or code in _FORMAT


def safe(text: str, newlines: bool = True) -> str:
    """`text` with every control character (C0 but newline and tab, DEL, C1), escape sequence introducer and
    bidirectional or invisible formatting character written as a visible escape; without `newlines`, newline and
    tab too (one-line messages)."""
    if text.isprintable():
        return text
    return "".join(_escape(ch) if _escaped(ord(ch), newlines) else ch for ch in text)


def _escape(ch: str) -> str:
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


class SafeConsole(Console):
    """A rich console that never reads markup or emoji codes and renders every string through `safe`."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(markup=False, emoji=False, **kwargs)

    def render_str(self, text: str, **kwargs: Any) -> Text:
        return super().render_str(safe(text), **kwargs)
