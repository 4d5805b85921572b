"""lm-eval hooks of the brts tasks; the code lives in `brts.evaluation.hooks`.

A `data/` folder beside this file, when present, holds the exact problems an evaluation used.
"""

from pathlib import Path
from typing import Any

from brts.evaluation.hooks import (  # noqa: F401  (names the YAMLs call)
    extract_answers,
    math_prompt,
    process_math,
    process_synthetic,
    sample_mean,
    synthetic_prompt,
)
from brts.evaluation.hooks import load_docs as _load_docs


def load_docs(**kwargs: Any) -> Any:
    return _load_docs(beside=Path(__file__).resolve().parent / "data", **kwargs)
