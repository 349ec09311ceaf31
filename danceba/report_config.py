"""The ``report`` section of params.yaml (run by :mod:`danceba.html_report`). Imports no torch."""

from __future__ import annotations

from dataclasses import dataclass

from danceba.strict_dataclass import PositiveInt


@dataclass(frozen=True)
class ReportConfig:
    """``report`` in params.yaml: the ``rows`` of ``data/generated`` drawn beside the ground truth (the
    first row chooses the pieces), ``pieces`` pieces (one per song), the music resampled to ``audio_rate_hz``."""

    rows: tuple[str, ...] = ("model", "random_codes")
    pieces: PositiveInt = 3
    audio_rate_hz: PositiveInt = 11025

    def __post_init__(self) -> None:
        if not self.rows:
            raise ValueError("report.rows: name at least one folder of data/generated")
