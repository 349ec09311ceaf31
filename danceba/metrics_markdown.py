"""``reports/metrics.md``: a verdict line (does the model follow the music?), then per protocol a
rhythm table and the paper-shaped FID table, with bootstrap intervals, then the rows' definitions.

The verdict compares the model's BAS excess interval with the sham-music control's (the model fed
another song): it follows the music when its interval lies above 0 and above the sham's.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from danceba.evaluation import CI_HIGH, CI_LOW, PAPER_DANCEBA, PAPER_GROUND_TRUTH, PROTOCOL_CARD_KEY

Rows = Mapping[str, Mapping[str, float]]
RHYTHM_COLUMNS = (  # (metric, header, decimals, with interval)
    ("bas", "BAS ↑", 4, False),
    ("bas_chance", "chance", 4, False),
    ("bas_excess", "excess ↑ [CI]", 4, True),
    ("phase_lock_r", "R ↑", 3, False),
    ("phase_lock_mean_phase", "mean phase (beats)", 3, False),
    ("bas_motion", "BAS (motion beats)", 4, False),
    ("mean_joint_speed", "joint speed (m/s)", 3, False),
    ("pfc", "PFC ↓", 3, False),
    ("foot_skating", "foot skating (m/s) ↓", 3, False),
)
FID_COLUMNS = (
    ("fid_k", "FIDk ↓ [CI]", 2, True),
    ("fid_g", "FIDg ↓ [CI]", 2, True),
    ("fid_k_testref", "FIDk test-ref ↓ [CI]", 2, True),
    ("fid_g_testref", "FIDg test-ref ↓ [CI]", 2, True),
    ("div_k", "Divk ↑", 2, False),
    ("div_g", "Divg ↑", 2, False),
)


FID_INTERVAL_NOTE = (
    "FID intervals: percentiles of the FID recomputed on pieces resampled with replacement (reference "
    "fixed); duplicated pieces raise FID, so with few pieces the interval can lie above the point value."
)


def format_number(value: float, decimals: int) -> str:
    """``value`` with ``decimals`` decimals; huge values (the published FIDg quirk) in 3-digit e-notation,
    non-finite ones as —."""
    if value is None or not math.isfinite(value):
        return "—"
    return f"{value:.3g}" if abs(value) >= 1e6 else f"{value:.{decimals}f}"


def format_interval(values: Mapping[str, float], metric: str, decimals: int) -> str:
    """``mean [low, high]`` of ``metric`` in a row, or just the mean when it has no interval."""
    mean = format_number(values.get(metric, math.nan), decimals)
    if metric + CI_LOW not in values:
        return mean
    low, high = (format_number(values[metric + s], decimals) for s in (CI_LOW, CI_HIGH))
    return f"{mean} [{low}, {high}]"


def _excess(values: Mapping[str, float]) -> str:
    return format_interval(values, "bas_excess", 2)


def music_verdict(rows: Rows, model: str = "model", sham: str = "model_sham_music") -> str:
    """One line: does the ``model`` row follow the music, judged by its BAS excess interval against 0 and
    against the ``sham`` row's interval (when present); the ground truth's excess is quoted as context."""
    if model not in rows or "bas_excess" + CI_LOW not in rows[model]:
        return "no verdict: no model row with a BAS excess interval"
    m = rows[model]
    low = m["bas_excess" + CI_LOW]
    context = f"; ground truth {_excess(rows['ground_truth'])}" if "ground_truth" in rows else ""
    if sham in rows:
        s = rows[sham]
        above_sham = low > s["bas_excess" + CI_HIGH]
        comparison = f"BAS excess {_excess(m)} vs sham music {_excess(s)}"
        if low > 0 and above_sham:
            return f"model follows the music: {comparison} (intervals disjoint){context}"
        reason = "intervals overlap" if low > 0 else "model's interval does not lie above 0"
        return f"model does NOT demonstrably follow the music: {comparison} ({reason}){context}"
    if low > 0:
        return f"model follows the music: BAS excess {_excess(m)} lies above 0 (no sham-music row){context}"
    return (
        f"model does NOT demonstrably follow the music: BAS excess {_excess(m)} does not lie above 0 "
        f"(no sham-music row){context}"
    )


def _table(rows: Rows, columns: tuple, pieces: Mapping[str, int]) -> list[str]:
    present = [c for c in columns if any(c[0] in values for values in rows.values())]
    lines = [
        "| row | n | " + " | ".join(header for _, header, _, _ in present) + " |",
        "|---|---|" + "---|" * len(present),
    ]
    for row, values in rows.items():
        cells = [
            format_interval(values, metric, decimals)
            if interval
            else format_number(values.get(metric), decimals)
            for metric, _, decimals, interval in present
        ]
        lines.append(f"| {row} | {pieces.get(row, '')} | " + " | ".join(cells) + " |")
    return lines


def markdown_table(report: Mapping[str, Any], card: Mapping[str, Any] | None = None) -> str:
    """The whole ``metrics.md`` from ``{protocol: {row: {metric: value}}}`` (a ``"protocol"`` card entry
    in ``report`` is skipped; pass the card to list the rows' piece counts and definitions)."""
    blocks = {k: v for k, v in report.items() if k != PROTOCOL_CARD_KEY}
    card = card if card is not None else report.get(PROTOCOL_CARD_KEY)
    card_rows = (card or {}).get("rows", {})
    pieces = {row: entry["n_pieces"] for row, entry in card_rows.items()}
    level = f"{100 * card['config']['ci_level']:g} %" if card else "95 %"
    lines = ["## Does the model follow the music?", ""]
    lines += [f"- `{protocol}`: {music_verdict(rows)}" for protocol, rows in blocks.items()]
    lines.append("")
    for protocol, rows in blocks.items():
        lines += [
            f"### Protocol `{protocol}`",
            "",
            f"Rhythm and physics: mean over pieces, [{level} bootstrap interval]",
            "",
        ]
        lines += [*_table(rows, RHYTHM_COLUMNS, pieces), ""]
        lines += ["FID (all motions as published; test-ref: the evaluated pieces only) and diversity", ""]
        lines += [*_table(rows, FID_COLUMNS, pieces), ""]
        lines += [FID_INTERVAL_NOTE, ""]
    lines += [
        "Paper (AIST++, Danceba Table 1): " + ", ".join(f"{m} {v}" for m, v in PAPER_DANCEBA.items()),
        "; ground truth: " + ", ".join(f"{m} {v}" for m, v in PAPER_GROUND_TRUTH.items()),
        "",
    ]
    if card_rows:
        lines += ["Rows:", ""]
        lines += [f"- `{row}`: {entry['definition']}" for row, entry in card_rows.items()]
        lines += ["", "Every choice behind these numbers is in `metrics.json` under `protocol`.", ""]
    return "\n".join(lines)
