"""The `task` section of an experiment spec: which prompts a run trains on, how the answer is read from a response
(`answer_format`) and, for the math task, where its problems come from."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from brts.spec.catalog import PACKAGED_PREFIX, PACKAGED_SETS
from brts.values import Int, Seed

HOLDOUT_SPLIT = "heldout"
# The instruction each format appends to a prompt (the math task's `prompt_suffix`, when set, replaces it).
BOXED_INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."
LAST_NUMBER_INSTRUCTION = "Please reason step by step, and end your answer with the final number."


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class AnswerFormat(_Spec):
    """Where a response's final answer is: `boxed` (the last `\\boxed{...}`), `last_number` (the last number in the
    text, lm-eval's flexible-extract convention) or `regex` (the first capture group of the last match of
    `pattern`). In YAML a bare string is `kind`; a mapping with only `regex` is the regex format."""

    kind: Literal["boxed", "last_number", "regex"] = "boxed"
    pattern: str | None = Field(None, description="regex: a Python regular expression with one capture group")
    instruction: str | None = Field(None, description="what the prompt asks for; default: the format's own")

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        if isinstance(data, str):
            return {"kind": data}
        if isinstance(data, dict) and "regex" in data:
            rest = {k: v for k, v in data.items() if k != "regex"}
            return {"kind": "regex", "pattern": data["regex"], **rest}
        return data

    @field_validator("pattern")
    @classmethod
    def _one_group(cls, pattern: str | None) -> str | None:
        if pattern is None:
            return None
        try:
            groups = re.compile(pattern).groups
        except re.error as exc:
            raise PydanticCustomError("answer_regex", "{got} is not a regular expression ({why})",
                                      {"got": repr(pattern), "why": str(exc)}) from None
        if groups != 1:
            raise PydanticCustomError("answer_regex", "{got} has {n} capture groups; give exactly one, around the "
                                      "answer, e.g. 'Answer: (\\S+)'", {"got": repr(pattern), "n": groups})
        return pattern

    @model_validator(mode="after")
    def _pattern_for_regex(self) -> AnswerFormat:
        if (self.kind == "regex") != (self.pattern is not None):
            raise PydanticCustomError("answer_regex", "the regex format needs a pattern and the others take none; "
                                      "write answer_format: {{regex: 'Answer: (\\S+)'}}", {"field": "pattern"})
        if self.kind == "regex" and not self.instruction:
            raise PydanticCustomError("answer_regex", "the regex format needs an instruction: what the prompt asks "
                                      "the model to write, so that the pattern finds it", {"field": "instruction"})
        return self

    @property
    def prompt_instruction(self) -> str:
        """What a prompt asks for, so that this format finds the answer."""
        if self.instruction:
            return self.instruction
        return BOXED_INSTRUCTION if self.kind == "boxed" else LAST_NUMBER_INSTRUCTION

    @property
    def label(self) -> str:
        """`boxed`, `last_number` or `regex:<pattern>`: the name results record."""
        return self.kind if self.pattern is None else f"regex:{self.pattern}"


BOXED = AnswerFormat()


class DatasetSpec(_Spec):
    """A set of problems: a JSONL file (one object a line), a Hugging Face dataset id, or `brts:<set>`, a copy
    packaged with brts (aime24, aime25, amc23, math500). A bare string is `path`."""

    path: str = Field(min_length=1)
    split: str = Field("train", description="HF dataset split (ignored for JSONL)")
    subset: str | None = Field(None, description="HF dataset config name")
    problem_field: str = "problem"
    answer_field: str = "answer"
    id_field: str = Field("id", description="row id field; the row index where a row has none")

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, data: Any) -> Any:
        return {"path": data} if isinstance(data, str) else data

    @field_validator("path")
    @classmethod
    def _known_packaged_set(cls, path: str) -> str:
        if path.startswith(PACKAGED_PREFIX) and path.removeprefix(PACKAGED_PREFIX) not in PACKAGED_SETS:
            raise PydanticCustomError("packaged_set", "{got} is not a set packaged with brts; the packaged sets are "
                                      "{known}", {"got": repr(path),
                                                  "known": ", ".join(PACKAGED_PREFIX + n for n in PACKAGED_SETS)})
        return path


class TaskSpec(_Spec):
    """`synthetic` (the embedded default), `sums` (generated addition word problems, held out like the synthetic
    task) or `math`: prompts from `train`, validation benchmarks from `eval_sets` (the final evaluation reads
    `eval.tasks`)."""

    name: Literal["synthetic", "math", "sums"] = "synthetic"
    seed: Seed = 0
    answer_format: AnswerFormat = Field(default_factory=AnswerFormat, description="where a response's answer is: "
                                        "boxed, last_number or {regex: ..., instruction: ...}")
    train: DatasetSpec | None = Field(None, description="math: training prompts")
    eval_sets: dict[str, DatasetSpec] = Field(default_factory=dict,
                                              description="math: split name -> problems training validates on")
    validation_holdout: Int = Field(0, ge=0, description="math: hold this many training problems out (a seeded "
                                                         "draw) as the validation split `heldout`")
    prompt_suffix: str = Field("", description="math: appended to every problem, after one space")
    chat_template: bool = Field(True, description="math and sums: wrap the prompt in the tokenizer's chat template")
    max_operand: Int = Field(9, ge=1, le=999, description="sums: the addends are drawn from 1 .. max_operand")

    @model_validator(mode="after")
    def _fields_fit_the_task(self) -> TaskSpec:
        if self.name == "math" and self.train is None:
            raise PydanticCustomError("task_train", "the math task needs training prompts: a JSONL path or an HF "
                                      "dataset id", {"field": "train"})
        if self.name != "math" and (self.train is not None or self.eval_sets or self.validation_holdout):
            raise PydanticCustomError("task_train", "train, eval_sets and validation_holdout are for the math task; "
                                      "remove them or set task.name: math", {"field": "train"})
        if self.validation_holdout and HOLDOUT_SPLIT in self.eval_sets:
            raise PydanticCustomError("task_train", f"{HOLDOUT_SPLIT!r} is the split validation_holdout makes; "
                                      "rename that eval_sets entry", {"field": f"eval_sets.{HOLDOUT_SPLIT}"})
        return self
