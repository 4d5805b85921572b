"""The teacher sample pool: a bounded SQLite store of keyed teacher samples shared by runs and processes.

A key names one sample completely (`SampleKey`: teacher identity, sampler, prompt, sampling settings, tier,
stream, index), and the keyed samplers make the sample a function of its key, so storing it changes no
result: a run that finds a key in the pool gets exactly what it would have drawn.

Storage: one SQLite file in WAL mode, the key's digest as the primary key, `INSERT OR IGNORE` inside
`BEGIN IMMEDIATE` transactions. Several worker processes may read and write at once; a key written twice
keeps its first record, and a reader sees whole records only. Keep the file on a local disk (SQLite's WAL
needs shared memory, which network file systems do not give).

Bounded: after each write, when the live pages exceed `max_bytes`, the oldest samples are deleted until
the pool is at 80% of the cap; SQLite reuses the freed pages, so the file stops growing near the cap.
Eviction changes no result either, since an evicted sample is drawn again, identically, when next asked.

Claimed: a process drawing samples for others (a teacher producer) claims their keys in the same file until it
has stored them (`brts.rollout.claims`); a sampler that needs a claimed sample waits for it instead of drawing it
a second time.

Verified: each row carries a SHA-256 of its key and content (tokens, text, finish reason, grade), checked on
every read. A row that fails it (edited, flipped bits, or stored before rows carried one) is never used: it is
deleted and the sample drawn again, identically. A file that is not a readable SQLite database is moved aside
(`<pool folder>/.quarantine/`) when opened and a new pool starts empty; damage found while a run uses the pool
makes that run draw its samples without it. Each says so in one line on stderr.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from array import array
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from filelock import FileLock

from brts.errors import warn
from brts.rollout import claims
from brts.rollout.base import Completion
from brts.rollout.claims import CLAIMS_SCHEMA
from brts.rollout.pool_file import PoolDamaged, connect_read_only, is_busy, is_damage, move_aside
from brts.spec import PoolSpec

DEFAULT_MAX_BYTES = 4 * 1024**3
_SCHEMA = """
CREATE TABLE IF NOT EXISTS samples (
    key TEXT PRIMARY KEY,
    teacher TEXT NOT NULL,
    tier TEXT NOT NULL,
    stream TEXT NOT NULL,
    idx INTEGER NOT NULL,
    token_ids BLOB NOT NULL,
    text TEXT NOT NULL,
    finish_reason TEXT NOT NULL,
    grader TEXT,
    grade INTEGER,
    created REAL NOT NULL,
    digest TEXT
)
"""
_COLUMNS = "key, teacher, tier, stream, idx, token_ids, text, finish_reason, grader, grade, created, digest"
def row_digest(key: str, blob: bytes, text: str, finish: str, grader: str | None, grade: int | None) -> str:
    """The SHA-256 a row carries: its key and everything the sample is (length-prefixed, so no two differ alike)."""
    digest = hashlib.sha256()
    for part in (key.encode(), blob, text.encode(), finish.encode(), (grader or "").encode(),
                 b"" if grade is None else str(int(grade)).encode()):
        digest.update(len(part).to_bytes(8, "little"))
        digest.update(part)
    return digest.hexdigest()


@dataclass(frozen=True)
class SampleKey:
    """Everything a teacher sample is a function of. `stream` is the run's sample stream (see
    `brts.rollout.teacher`); `index` counts samples within (prompt, tier, stream) from 0."""

    teacher: str
    sampler: str
    prompt_sha: str
    temperature: float
    top_p: float
    max_new_tokens: int
    tier: str
    stream: str
    index: int

    @property
    def digest(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()

    @property
    def seed(self) -> int:
        """The 63-bit seed the keyed sampler draws this sample from."""
        return int(self.digest[:16], 16) >> 1


def prompt_sha(prompt: Sequence[int]) -> str:
    return hashlib.sha256(array("q", prompt).tobytes()).hexdigest()


@dataclass(frozen=True)
class PooledSample:
    """A stored sample: the completion and, when it was graded, the grade and the grader's name."""

    completion: Completion
    grader: str | None = None
    grade: bool | None = None


@dataclass(frozen=True)
class PoolStats:
    path: Path
    samples: int
    tokens: int
    file_bytes: int
    max_bytes: int
    teachers: dict[str, int]


def _encode_tokens(ids: Sequence[int]) -> bytes:
    return array("i", ids).tobytes()


def _decode_tokens(blob: bytes) -> tuple[int, ...]:
    out = array("i")
    out.frombytes(blob)
    return tuple(out)


def _set_up(db: sqlite3.Connection) -> None:
    """WAL mode and the connection's settings, then the table (added to, for a pool from before digests)."""
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("PRAGMA journal_size_limit=8388608")  # truncate the WAL to 8 MiB after checkpoints
    db.execute("BEGIN IMMEDIATE")
    try:
        db.execute(_SCHEMA)
        db.execute(CLAIMS_SCHEMA)
        columns = {row[1] for row in db.execute("PRAGMA table_info(samples)")}
        if "digest" not in columns:  # a pool from before rows carried digests: its rows fail the check
            db.execute("ALTER TABLE samples ADD COLUMN digest TEXT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


class SamplePool:
    """A connection to one pool file (created on first use). One instance per process; not fork-safe.

    A file that is not a readable pool is moved aside and replaced by an empty pool (one line on stderr); with
    `repair=False` it raises PoolDamaged instead. `read_only` (to look, on a store this user may not write)
    writes nothing and creates nothing; a damaged file raises PoolDamaged."""

    def __init__(self, path: Path, max_bytes: int = DEFAULT_MAX_BYTES, timeout_s: float = 120.0,
                 repair: bool = True, read_only: bool = False) -> None:
        self.path, self.max_bytes, self.timeout_s = Path(path), max_bytes, timeout_s
        self.damaged: str | None = None  # why the pool stopped being used mid-run (it reads as empty then)
        if not read_only:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = connect_read_only(self.path) if read_only else self._connect()
        except sqlite3.DatabaseError as exc:
            if not is_damage(exc):
                raise
            if not repair or read_only:
                raise PoolDamaged(f"teacher sample pool {self.path} is damaged ({exc})") from None
            self._db = self._recover(exc)

    def _connect(self) -> sqlite3.Connection:
        """A connection with the pool's settings and schema. Switching a new file to WAL takes the write lock
        from inside a read transaction, and SQLite never waits for that upgrade (its busy handler is not called,
        which would risk a deadlock): a process opening the file while another creates it gets "database is
        locked" at once. So the setup is retried, with backoff, for up to `timeout_s`; once the file is in WAL
        the pragma changes nothing and needs no write lock."""
        db = sqlite3.connect(self.path, timeout=self.timeout_s, isolation_level=None)
        deadline, pause = time.monotonic() + self.timeout_s, 0.005
        try:
            while True:
                try:
                    _set_up(db)
                    return db
                except sqlite3.OperationalError as exc:
                    if not is_busy(exc) or time.monotonic() + pause > deadline:
                        raise
                time.sleep(pause)
                pause = min(2 * pause, 1.0)
        except BaseException:
            db.close()
            raise

    def _recover(self, damage: sqlite3.Error) -> sqlite3.Connection:
        """Move the damaged file aside and start an empty pool, once across processes (another may have done it)."""
        with FileLock(str(self.path.with_name(self.path.name + ".lock"))):
            try:
                return self._connect()
            except sqlite3.DatabaseError as again:
                if not is_damage(again):
                    raise
            moved = move_aside(self.path)
            warn(f"teacher sample pool {self.path} is damaged ({damage}); moved aside to {moved}; a new pool "
                 "starts empty (its samples are drawn again, identically)")
            return self._connect()

    def _broken(self, exc: sqlite3.Error) -> None:
        """Stop using a pool found damaged while in use; the run draws its samples itself (identical ones)."""
        if not is_damage(exc):
            raise exc
        if self.damaged is None:
            self.damaged = str(exc)
            warn(f"teacher sample pool {self.path} is damaged ({exc}); drawing teacher samples without it (the "
                 "same samples); `brts store check --repair` or `brts pool clear` moves it aside")

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def _write(self) -> Iterator[None]:
        # IMMEDIATE takes the write lock up front, so two writers queue instead of deadlocking on upgrade.
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def get_many(self, keys: Sequence[SampleKey]) -> dict[SampleKey, PooledSample]:
        """The stored samples among `keys` whose digest checks out (absent keys are left out; rows that fail the
        check are deleted, so they are drawn and stored again)."""
        if self.damaged is not None:
            return {}
        by_digest = {k.digest: k for k in keys}
        found: dict[SampleKey, PooledSample] = {}
        failed: list[str] = []
        digests = list(by_digest)
        try:
            for start in range(0, len(digests), 500):  # below SQLite's bound-parameter limit
                part = digests[start : start + 500]
                rows = self._db.execute(
                    f"SELECT key, token_ids, text, finish_reason, grader, grade, digest FROM samples "
                    f"WHERE key IN ({','.join('?' * len(part))})", part,
                ).fetchall()
                for key, blob, text, finish, grader, grade, stored in rows:
                    if not _intact(key, blob, text, finish, grader, grade, stored):
                        failed.append(key)
                        continue
                    completion = Completion(_decode_tokens(blob), text, finish)
                    found[by_digest[key]] = PooledSample(completion, grader, None if grade is None else bool(grade))
            if failed:
                self._drop(failed)
        except sqlite3.DatabaseError as exc:
            self._broken(exc)
            return {}
        return found

    def _drop(self, keys: Sequence[str]) -> None:
        with self._write():
            self._db.executemany("DELETE FROM samples WHERE key = ?", [(k,) for k in keys])
        warn(f"teacher sample pool {self.path}: {len(keys)} stored sample(s) failed their integrity check (changed "
             "since they were stored, or stored before samples carried a digest); dropped, drawn again identically")

    def put_many(self, items: Sequence[tuple[SampleKey, PooledSample]]) -> int:
        """Store samples whose keys are not stored yet; returns how many were new. Evicts past the cap."""
        if not items or self.damaged is not None:
            return 0
        now = time.time()
        rows = []
        for k, s in items:
            blob, grade = _encode_tokens(s.completion.token_ids), None if s.grade is None else int(s.grade)
            digest = row_digest(k.digest, blob, s.completion.text, s.completion.finish_reason, s.grader, grade)
            rows.append((k.digest, k.teacher, k.tier, k.stream, k.index, blob, s.completion.text,
                         s.completion.finish_reason, s.grader, grade, now, digest))
        try:
            with self._write():
                before = self._db.total_changes
                self._db.executemany(f"INSERT OR IGNORE INTO samples ({_COLUMNS}) VALUES ({','.join('?' * 12)})",
                                     rows)
                added = self._db.total_changes - before
                self._evict()
        except sqlite3.DatabaseError as exc:
            self._broken(exc)
            return 0
        return added

    def claim(self, keys: Sequence[SampleKey], ttl_s: float = 600.0) -> None:
        """Say that this process is drawing `keys` (brts.rollout.claims); `release` when they are stored."""
        self._claims(lambda: claims.claim(self._db, [k.digest for k in keys], ttl_s))

    def release(self, keys: Sequence[SampleKey]) -> None:
        self._claims(lambda: claims.release(self._db, [k.digest for k in keys]))

    def held(self, keys: Sequence[SampleKey]) -> list[SampleKey]:
        """Those of `keys` another live process is drawing now."""
        if self.damaged is not None or not keys:
            return []
        try:
            taken = claims.held(self._db, [k.digest for k in keys])
        except sqlite3.DatabaseError as exc:
            self._broken(exc)
            return []
        return [k for k in keys if k.digest in taken]

    def _claims(self, change: Callable[[], None]) -> None:
        if self.damaged is not None:
            return
        try:
            with self._write():
                change()
        except sqlite3.DatabaseError as exc:
            self._broken(exc)

    def _live_bytes(self) -> int:
        pages = self._db.execute("PRAGMA page_count").fetchone()[0]
        free = self._db.execute("PRAGMA freelist_count").fetchone()[0]
        size = self._db.execute("PRAGMA page_size").fetchone()[0]
        return int((pages - free) * size)

    def _evict(self) -> None:
        live = self._live_bytes()
        if live <= self.max_bytes:
            return
        count = self._db.execute("SELECT COUNT(*) FROM samples").fetchone()[0]
        drop = max(1, int(count * (1 - 0.8 * self.max_bytes / live)))
        self._db.execute("DELETE FROM samples WHERE rowid IN (SELECT rowid FROM samples ORDER BY rowid LIMIT ?)",
                         (drop,))

    def stats(self) -> PoolStats:
        """Samples, tokens and bytes on disk; PoolDamaged when the file turns out damaged."""
        try:
            samples, blob_bytes = self._db.execute(
                "SELECT COUNT(*), COALESCE(SUM(LENGTH(token_ids)), 0) FROM samples").fetchone()
            teachers = dict(self._db.execute("SELECT teacher, COUNT(*) FROM samples GROUP BY teacher").fetchall())
        except sqlite3.DatabaseError as exc:
            if not is_damage(exc):
                raise
            raise PoolDamaged(f"teacher sample pool {self.path} is damaged ({exc})") from None
        files = [self.path, self.path.with_name(self.path.name + "-wal")]
        size = sum(f.stat().st_size for f in files if f.exists())
        return PoolStats(self.path, int(samples), int(blob_bytes) // 4, size, self.max_bytes, teachers)

    def verify(self, repair: bool = False) -> list[str]:
        """Every problem of the pool, one line each: SQLite's integrity check, then each row's digest. With
        `repair`, rows that fail their digest are deleted (drawn again when next asked)."""
        problems = [f"{self.path}: {line}" for (line,) in self._db.execute("PRAGMA integrity_check") if line != "ok"]
        failed = [key for key, blob, text, finish, grader, grade, stored in self._db.execute(
            "SELECT key, token_ids, text, finish_reason, grader, grade, digest FROM samples")
            if not _intact(key, blob, text, finish, grader, grade, stored)]
        if failed:
            problems.append(f"{self.path}: {len(failed)} sample(s) fail their digest (changed since stored, or stored "
                            "before samples carried one)" + ("; deleted, drawn again when next asked" if repair else ""))
            if repair:
                with self._write():
                    self._db.executemany("DELETE FROM samples WHERE key = ?", [(k,) for k in failed])
        return problems

    def clear(self) -> int:
        """Delete every sample and shrink the file; returns how many samples were deleted."""
        with self._write():
            deleted = self._db.execute("DELETE FROM samples").rowcount
        self._db.execute("VACUUM")
        self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return int(deleted)


def clear_file(path: Path) -> tuple[int, Path | None]:
    """Empty the pool at `path`: (samples deleted, None), or, for a damaged file, (0, where it was moved aside)."""
    try:
        pool = SamplePool(path, repair=False)
    except PoolDamaged:
        return 0, move_aside(path)
    try:
        return pool.clear(), None
    except sqlite3.DatabaseError as exc:
        if not is_damage(exc):
            raise
        pool.close()
        return 0, move_aside(path)
    finally:
        pool.close()


def _intact(key: str, blob: bytes, text: str, finish: str, grader: str | None, grade: int | None,
            stored: str | None) -> bool:
    return (stored is not None and isinstance(blob, bytes) and isinstance(text, str) and isinstance(finish, str)
            and len(blob) % 4 == 0 and stored == row_digest(key, blob, text, finish, grader, grade))


def open_pool(spec: PoolSpec, path: Path) -> SamplePool | None:
    """The pool file at `path` with the spec's size cap, or None when `pool.enabled` is false."""
    return SamplePool(path, max_bytes=int(spec.max_gb * 1024**3)) if spec.enabled else None
