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
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from array import array
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from brts.rollout.base import Completion
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
    created REAL NOT NULL
)
"""


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


class SamplePool:
    """A connection to one pool file (created on first use). One instance per process; not fork-safe."""

    def __init__(self, path: Path, max_bytes: int = DEFAULT_MAX_BYTES, timeout_s: float = 120.0) -> None:
        self.path, self.max_bytes = Path(path), max_bytes
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, timeout=timeout_s, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA journal_size_limit=8388608")  # truncate the WAL to 8 MiB after checkpoints
        with self._write():
            self._db.execute(_SCHEMA)

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
        """The stored samples among `keys` (absent keys are left out)."""
        by_digest = {k.digest: k for k in keys}
        found: dict[SampleKey, PooledSample] = {}
        digests = list(by_digest)
        for start in range(0, len(digests), 500):  # below SQLite's bound-parameter limit
            part = digests[start : start + 500]
            rows = self._db.execute(
                f"SELECT key, token_ids, text, finish_reason, grader, grade FROM samples "
                f"WHERE key IN ({','.join('?' * len(part))})", part,
            ).fetchall()
            for digest, blob, text, finish, grader, grade in rows:
                completion = Completion(_decode_tokens(blob), text, finish)
                found[by_digest[digest]] = PooledSample(completion, grader, None if grade is None else bool(grade))
        return found

    def put_many(self, items: Sequence[tuple[SampleKey, PooledSample]]) -> int:
        """Store samples whose keys are not stored yet; returns how many were new. Evicts past the cap."""
        if not items:
            return 0
        now = time.time()
        rows = [
            (k.digest, k.teacher, k.tier, k.stream, k.index, _encode_tokens(s.completion.token_ids), s.completion.text,
             s.completion.finish_reason, s.grader, None if s.grade is None else int(s.grade), now)
            for k, s in items
        ]
        with self._write():
            before = self._db.total_changes
            self._db.executemany("INSERT OR IGNORE INTO samples VALUES (?,?,?,?,?,?,?,?,?,?,?)", rows)
            added = self._db.total_changes - before
            self._evict()
        return added

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
        samples, blob_bytes = self._db.execute("SELECT COUNT(*), COALESCE(SUM(LENGTH(token_ids)), 0) FROM samples"
                                               ).fetchone()
        teachers = dict(self._db.execute("SELECT teacher, COUNT(*) FROM samples GROUP BY teacher").fetchall())
        files = [self.path, self.path.with_name(self.path.name + "-wal")]
        size = sum(f.stat().st_size for f in files if f.exists())
        return PoolStats(self.path, int(samples), int(blob_bytes) // 4, size, self.max_bytes, teachers)

    def clear(self) -> int:
        """Delete every sample and shrink the file; returns how many samples were deleted."""
        with self._write():
            deleted = self._db.execute("DELETE FROM samples").rowcount
        self._db.execute("VACUUM")
        self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return int(deleted)


def open_pool(spec: PoolSpec, path: Path) -> SamplePool | None:
    """The pool file at `path` with the spec's size cap, or None when `pool.enabled` is false."""
    return SamplePool(path, max_bytes=int(spec.max_gb * 1024**3)) if spec.enabled else None
