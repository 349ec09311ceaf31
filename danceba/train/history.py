"""The metrics history of a run and its DVC-friendly files.

Two histories, each a list of rows with the same columns so DVC can plot them:
``train`` (``step``, ``lr``, ``train_loss``, ``train_<term>`` every ``log_every`` steps) and ``val``
(``step`` and ``evaluate``'s metrics every ``eval_every`` steps). :class:`DvcOutputs` writes them to
``plots/train.csv`` / ``plots/val.csv`` and a ``metrics.json`` holding the final and the best values,
all atomically. The history travels inside every checkpoint, so a resumed run rewrites the files
exactly as the uninterrupted run would have.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from danceba.atomic import write_text_atomic


@dataclass
class MetricsHistory:
    """Rows of plain floats keyed by column name; ``step`` is an int."""

    train: list[dict[str, float]] = field(default_factory=list)
    val: list[dict[str, float]] = field(default_factory=list)

    def final(self) -> dict[str, float]:
        """The latest train row and the latest val row merged (``step`` = the later of the two)."""
        merged: dict[str, float] = {}
        for rows in (self.train, self.val):
            if rows:
                merged.update(rows[-1])
        if self.train or self.val:
            merged["step"] = max(rows[-1]["step"] for rows in (self.train, self.val) if rows)
        return merged

    def state_dict(self) -> dict[str, Any]:
        return {"train": [dict(r) for r in self.train], "val": [dict(r) for r in self.val]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.train = [dict(r) for r in state.get("train", [])]
        self.val = [dict(r) for r in state.get("val", [])]


def rows_to_csv(rows: list[dict[str, float]]) -> str:
    """CSV text with the union of the rows' columns (first-seen order); floats written exactly (repr)."""
    columns: list[str] = []
    for row in rows:
        columns.extend(k for k in row if k not in columns)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _cell(v) for k, v in row.items()})
    return buffer.getvalue()


def _cell(value: float) -> str:
    if isinstance(value, float) and not math.isfinite(value):
        return ""
    return repr(value)


@dataclass(frozen=True)
class DvcOutputs:
    """Where a run's metrics and plots go (paths chosen by the caller; defaults under the run folder)."""

    metrics_path: Path
    plots_dir: Path

    @classmethod
    def under(cls, out_dir: str | Path) -> DvcOutputs:
        out_dir = Path(out_dir)
        return cls(out_dir / "metrics.json", out_dir / "plots")

    def write(self, history: MetricsHistory, best: dict[str, Any] | None, steps: int) -> None:
        """Write ``metrics.json`` ({"steps", "final", "best"}) and ``plots/{train,val}.csv`` atomically."""
        summary = {"steps": steps, "final": history.final(), "best": best}
        write_text_atomic(self.metrics_path, json.dumps(summary, indent=2, allow_nan=False) + "\n")
        for name, rows in (("train", history.train), ("val", history.val)):
            if rows:
                write_text_atomic(self.plots_dir / f"{name}.csv", rows_to_csv(rows))
