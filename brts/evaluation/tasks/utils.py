"""lm-eval hooks of the brts tasks; the code lives in `brts.evaluation.hooks`.

A `data/` folder beside this file, when present, holds the exact problems an evaluation used, and
`answer_format.json` the answer format the task reads (absent: `boxed`).
"""

from pathlib import Path
from typing import Any

from brts.evaluation import hooks
from brts.evaluation.hooks import (  # noqa: F401  (names the YAMLs call)
    sample_mean,
    synthetic_prompt,  # noqa: F401
    task_prompt,
)

_HERE = Path(__file__).resolve().parent


def load_docs(**kwargs: Any) -> Any:
    return hooks.load_docs(beside=_HERE / "data", **kwargs)


def math_prompt(doc: dict[str, str]) -> str:
    return hooks.math_prompt(doc, hooks.answer_format_beside(_HERE))


def extract_answers(resps: list[list[str]], docs: list[dict[str, str]]) -> list[list[str | None]]:
    return hooks.extract_answers(resps, docs, hooks.answer_format_beside(_HERE))


def process_synthetic(doc: dict[str, str], results: list[list[str | None]]) -> dict[str, Any]:
    return hooks.process_synthetic(doc, results, hooks.answer_format_beside(_HERE))


def process_math(doc: dict[str, str], results: list[list[str | None]]) -> dict[str, Any]:
    return hooks.process_math(doc, results, hooks.answer_format_beside(_HERE))
