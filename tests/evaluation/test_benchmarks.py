"""The benchmark sets packaged with brts: the files match their manifest, and evaluation reads them by default."""

from __future__ import annotations

import hashlib
import json

import pytest

from brts.evaluation.data import benchmark_dir, data_label, task_data
from brts.evaluation.evaluate import settings_digest
from brts.evaluation.hooks import read_rows
from brts.spec.catalog import PACKAGED_DIR, PACKAGED_SETS, SOURCES
from brts.spec.evaluation import EvalSpec
from brts.spec.task import TaskSpec

MANIFEST = json.loads((PACKAGED_DIR / "manifest.json").read_text())


def test_every_packaged_file_matches_its_manifest_entry() -> None:
    assert sorted(MANIFEST["sets"]) == sorted(PACKAGED_SETS) == ["aime24", "aime25", "amc23", "math500"]
    assert sorted(p.name for p in PACKAGED_DIR.glob("*.jsonl")) == sorted(f"{n}.jsonl" for n in PACKAGED_SETS)
    hubs = {source.name: source.hub.path for source in SOURCES.values() if source.hub is not None}
    for name, entry in MANIFEST["sets"].items():
        data = (PACKAGED_DIR / entry["file"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"], name
        rows = read_rows(PACKAGED_DIR / entry["file"], name)
        assert len(rows) == entry["rows"] and len({r["id"] for r in rows}) == len(rows), name
        assert entry["hub"].split()[0] == hubs[name], name  # the manifest names the set data_source: hub reads
        assert entry["licence"] and isinstance(entry["licence_confirmed"], bool), name
    assert [MANIFEST["sets"][n]["rows"] for n in ("aime24", "aime25", "amc23", "math500")] == [30, 30, 40, 500]


def test_the_package_is_the_default_source_and_the_hub_an_option(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.delenv("BRTS_DATA_DIR", raising=False)
    spec = EvalSpec(tasks=("brts_aime24",))
    assert spec.data_source == "package" and benchmark_dir(spec) == PACKAGED_DIR
    data = task_data("brts_aime24", spec, TaskSpec())
    assert data.source == "package:aime24" and data.rows is not None and len(data.rows) == 30
    hub = EvalSpec(tasks=("brts_aime24",), data_source="hub")
    assert benchmark_dir(hub) is None and task_data("brts_aime24", hub, TaskSpec()).source == "hf:Maxwell-Jia/AIME_2024"
    monkeypatch.setenv("BRTS_DATA_DIR", str(tmp_path))
    assert benchmark_dir(spec) == tmp_path  # a data folder, given, wins over the default
    with pytest.raises(ValueError, match="data_dir and data_source: hub name two sources"):
        EvalSpec(tasks=("brts_aime24",), data_dir=str(tmp_path), data_source="hub")


def test_the_settings_digest_names_the_data_of_benchmark_tasks_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BRTS_DATA_DIR", raising=False)
    synthetic = EvalSpec()
    assert data_label(synthetic) is None  # synthetic splits: the digest they had before data_source existed
    assert settings_digest(synthetic) == settings_digest(EvalSpec(data_source="hub"))
    bench = EvalSpec(tasks=("brts_amc23",))
    assert data_label(bench).startswith("package:") and data_label(bench.model_copy(update={"data_source": "hub"})) == "hub"
    assert settings_digest(bench) != settings_digest(EvalSpec(tasks=("brts_amc23",), data_source="hub"))
