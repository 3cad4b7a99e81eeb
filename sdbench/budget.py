"""Trial budgets: ``steps:N``, ``seconds:S`` or ``nfe:K`` (prior network evaluations)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from sdbench.errors import UserError

KINDS = ("steps", "seconds", "nfe")


@dataclass(frozen=True)
class Budget:
    """How long a trial optimises. Every trial of a sweep gets the same budget."""

    kind: Literal["steps", "seconds", "nfe"] = "steps"
    value: float = 500

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise UserError(f"unknown budget kind {self.kind!r}; use steps:N, seconds:S or nfe:K")
        if not (self.value > 0 and math.isfinite(self.value)):
            raise UserError(f"the budget must be positive and finite, got {self.kind}:{self.value:g}")
        if self.kind in ("steps", "nfe"):
            if float(self.value) != int(self.value):
                raise UserError(f"{self.kind} must be a whole number, got {self.value:g}")
            object.__setattr__(self, "value", int(self.value))  # counts stay integers (``steps:6``, not 6.0)

    @classmethod
    def parse(cls, text: str) -> Budget:
        kind, sep, value = text.strip().partition(":")
        if not sep:
            raise UserError(f"bad budget {text!r}; use steps:N, seconds:S or nfe:K")
        try:
            number = float(value)
        except ValueError:
            raise UserError(f"bad budget {text!r}: {value!r} is not a number") from None
        budget = cls(kind.strip().lower(), number)  # type: ignore[arg-type]  # validated in __post_init__
        return budget if budget.kind == "seconds" else cls(budget.kind, int(number))

    @property
    def label(self) -> str:
        """``steps:500``, ``seconds:30``, ``nfe:1000``: how tables, file names and the CLI write a budget."""
        return f"{self.kind}:{self.value:g}"

    def __str__(self) -> str:
        return self.label

    def exhausted(self, steps: int, seconds: float, nfe: int) -> bool:
        spent = {"steps": steps, "seconds": seconds, "nfe": nfe}[self.kind]
        return spent >= self.value

    def fraction(self, steps: int, seconds: float, nfe: int) -> float:
        spent = {"steps": steps, "seconds": seconds, "nfe": nfe}[self.kind]
        return min(1.0, spent / self.value)
