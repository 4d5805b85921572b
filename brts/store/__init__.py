"""The run store on disk: its layout (`RunStore`), one run's folder (`RunFolder`), and the files they keep.

Nothing else in `brts` spells a file name inside a store: runs, references, sweeps and the teacher sample pool
are located here, and `metrics.jsonl`/`validation.jsonl` are read by the one tolerant reader.
"""

from brts.store.files import (
    DamagedFile,
    JsonlLog,
    read_json,
    read_jsonl,
    write_json_atomic,
    write_text_atomic,
)
from brts.store.folder import RunFolder, Status, environment, now
from brts.store.lock import Holder, RunLocked
from brts.store.store import POOL_FILE, REFERENCE_ROLES, RunStore, StoreError

__all__ = [
    "POOL_FILE", "REFERENCE_ROLES", "DamagedFile", "Holder", "JsonlLog", "RunFolder", "RunLocked", "RunStore", "Status", "StoreError", "environment", "now",
    "read_json", "read_jsonl", "write_json_atomic", "write_text_atomic",
]
