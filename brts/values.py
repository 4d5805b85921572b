"""The number types of every configuration a user writes (experiment and sweep specs, the method config): a
boolean is never taken as a number, and an integer outside what its use can take is refused when the spec is
loaded rather than after training, when the value first reaches numpy or torch."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BeforeValidator, Field
from pydantic_core import PydanticCustomError

# numpy's RandomState takes seeds in [0, 2**32 - 1]; lm-eval seeds it with `eval.seed`.
SEED_MAX = 2**32 - 1
# No count in a spec means anything near this; a larger one is a slip (1e20) that would fail only in use.
COUNT_MAX = 2**31 - 1


def _refuse_bool(kind: str) -> Any:
    def check(value: Any) -> Any:
        # YAML `true` would otherwise be 1 (pydantic's lax mode): never what a number field means.
        if isinstance(value, bool):
            raise PydanticCustomError(f"{kind}_type", "Input should be a valid {kind}", {"kind": kind})
        return value

    return BeforeValidator(check)


Int = Annotated[int, _refuse_bool("int"), Field(le=COUNT_MAX)]
"""An integer of a spec: a count or size, at most COUNT_MAX; `true` is refused."""

Seed = Annotated[int, _refuse_bool("int"), Field(ge=0, le=SEED_MAX)]
"""A random seed: 0 .. SEED_MAX; `true` is refused."""

Real = Annotated[float, _refuse_bool("float")]
"""A real number of a spec; `true` is refused (finite: every model that uses it sets allow_inf_nan=False)."""
