"""The pool's SQLite file as a file: what its errors mean (damage, another connection's lock), the files SQLite
keeps beside it, moving them aside, and opening it read-only (a store this user cannot write)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from urllib.parse import quote

from brts.errors import UserError
from brts.store.files import quarantine

_BUSY, _CORRUPT, _NOT_A_DATABASE = 5, 11, 26  # SQLite's primary result codes: locked elsewhere, damaged file


class PoolDamaged(UserError):
    """The pool file is not a readable SQLite pool; the message names it."""


def is_damage(exc: sqlite3.Error) -> bool:
    """Whether an SQLite error says the file is damaged (not busy, locked or full)."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (_CORRUPT, _NOT_A_DATABASE)
    text = str(exc)
    return "malformed" in text or "not a database" in text


def is_busy(exc: sqlite3.Error) -> bool:
    """Whether an SQLite error says another connection holds the lock it needs ("database is locked")."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return int(code) & 0xFF == _BUSY
    return "database is locked" in str(exc)


def pool_files(path: Path) -> list[Path]:
    """The pool file and SQLite's files beside it (write-ahead log, shared memory)."""
    return [path, *(path.with_name(path.name + suffix) for suffix in ("-wal", "-shm"))]


def move_aside(path: Path) -> Path:
    """Quarantine a damaged pool file (and its WAL and shared-memory files) in `<its folder>/.quarantine/`;
    returns where the pool file went."""
    moved = [quarantine(f, path.parent) for f in pool_files(path) if f.exists()]
    return moved[0] if moved else path


def connect_read_only(path: Path) -> sqlite3.Connection:
    """A connection that never writes the pool or creates a file beside it. Where SQLite cannot open the file
    read-only (a WAL file whose shared-memory file it cannot create, in a folder this user cannot write), the
    file is read as it is on disk when no write-ahead log holds more; else one line (UserError)."""
    uri = f"file:{quote(str(path.resolve()))}?mode=ro"
    db = sqlite3.connect(uri, uri=True, isolation_level=None)
    try:
        db.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
        return db
    except sqlite3.DatabaseError as exc:
        db.close()
        if is_damage(exc):
            raise
        wal = path.with_name(path.name + "-wal")
        if wal.exists() and wal.stat().st_size:
            raise UserError(f"teacher sample pool {path} cannot be read without writing beside it ({exc}); "
                            "run this as a user who can write its folder") from None
    return sqlite3.connect(uri + "&immutable=1", uri=True, isolation_level=None)
