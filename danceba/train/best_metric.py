"""Which evaluation so far is the best, by a named metric and a direction (min or max)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


@dataclass
class BestMetric:
    """The best value of ``name`` seen so far (``None`` before the first evaluation)."""

    name: str
    mode: str = "min"
    value: float | None = None
    step: int | None = None

    def __post_init__(self) -> None:
        if self.mode not in ("min", "max"):
            raise ValueError(f"best_mode: expected 'min' or 'max', got {self.mode!r}")

    def improves(self, value: float) -> bool:
        """True when ``value`` is finite and strictly better than the best so far."""
        if not math.isfinite(value):
            return False
        if self.value is None:
            return True
        return value < self.value if self.mode == "min" else value > self.value

    def update(self, value: float, step: int) -> tuple[float | None, int | None]:
        """Record a new best; return the previous (value, step)."""
        previous = (self.value, self.step)
        self.value, self.step = float(value), int(step)
        return previous

    def state_dict(self) -> dict[str, Any]:
        return {"name": self.name, "mode": self.mode, "value": self.value, "step": self.step}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("name") != self.name or state.get("mode") != self.mode:
            return  # a different criterion: start afresh
        self.value, self.step = state.get("value"), state.get("step")
