"""Claims on teacher samples being drawn: a producer says which keys it is drawing, so a trainer that needs them
waits for them instead of drawing the same samples at the same time.

A claim is a row of the pool file's `claims` table: the key's digest, the claiming process (host and pid) and a
time after which it no longer holds. A claim holds while that time has not passed and, on this host, while its
process is alive: a producer killed mid-draw leaves claims that hold no more, and the trainer draws those samples
itself (identical ones). Claims change no result, only who draws a sample first.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import time
from collections.abc import Iterable

CLAIMS_SCHEMA = """
CREATE TABLE IF NOT EXISTS claims (
    key TEXT PRIMARY KEY,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    until REAL NOT NULL
)
"""
HOST = socket.gethostname()


def pid_alive(pid: int) -> bool:
    """Whether process `pid` runs: a zombie (killed, not yet reaped by its parent, which may be the very process
    waiting on its claims) does not."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True  # no /proc (not Linux): as far as this process can tell, alive


def holds(host: str, pid: int, until: float, now: float) -> bool:
    """Whether a claim still holds: not expired, and its process alive where this process can tell."""
    return until > now and (host != HOST or pid_alive(pid))


def claim(db: sqlite3.Connection, keys: Iterable[str], ttl_s: float) -> None:
    """Claim `keys` for this process for `ttl_s` seconds (inside the caller's write transaction); a claim that no
    longer holds is taken over, one that holds is left alone."""
    now, me = time.time(), os.getpid()
    for key in keys:
        row = db.execute("SELECT host, pid, until FROM claims WHERE key = ?", (key,)).fetchone()
        if row is None or not holds(*row, now):
            db.execute("INSERT OR REPLACE INTO claims (key, host, pid, until) VALUES (?, ?, ?, ?)",
                       (key, HOST, me, now + ttl_s))


def release(db: sqlite3.Connection, keys: Iterable[str]) -> None:
    """Drop this process's claims on `keys` (inside the caller's write transaction)."""
    db.executemany("DELETE FROM claims WHERE key = ? AND host = ? AND pid = ?",
                   [(k, HOST, os.getpid()) for k in keys])


def held(db: sqlite3.Connection, keys: list[str]) -> set[str]:
    """Those of `keys` that another process holds a claim on."""
    now, me, out = time.time(), os.getpid(), set()
    for start in range(0, len(keys), 500):
        part = keys[start : start + 500]
        try:
            rows = db.execute(f"SELECT key, host, pid, until FROM claims WHERE key IN ({','.join('?' * len(part))})",
                              part).fetchall()
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):  # a pool opened read-only, from before claims: nothing is claimed
                return set()
            raise
        out |= {key for key, host, pid, until in rows
                if not (host == HOST and pid == me) and holds(host, pid, until, now)}
    return out
