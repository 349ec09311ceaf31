"""The DVC metrics, one metric per line: a narrow view of what ``dvc metrics show`` prints as one row per file.

``dvc metrics show`` puts every key of every metrics file in one table, one column per key (the union
over files), one row per file: with ``reports/metrics.json`` holding several hundred keys (rows x
metrics x protocols, and the protocol card) each row is thousands of characters wide. DVC itself offers
per-file targets (``dvc metrics show reports/train_gpt/metrics.json``, still one wide row), ``--md``,
``--json`` and ``--precision``; ``dvc exp show --keep REGEX --drop '.*'`` filters columns but adds
every param. This view reads the same metrics through DVC's own API and prints them long, numbers
only unless ``--text``::

    python -m danceba.metrics_view                                  # every metrics file of dvc.yaml
    python -m danceba.metrics_view reports/train_gpt/metrics.json   # one file
    python -m danceba.metrics_view --grep 'bailando\\.model\\.(bas|fid_k)$'   # keys matching a regex
    python -m danceba.metrics_view --md --precision 3               # a Markdown table
    python -m danceba.metrics_view --text reports/metrics.json      # with the protocol card's text

(``make metrics`` runs the first; ``make metrics GREP=...`` the third.)
"""

from __future__ import annotations

import argparse
import contextlib
import math
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from danceba.nested import flatten


def format_value(value: Any, precision: int) -> str:
    """Numbers rounded to ``precision`` digits after the point (as DVC does); anything else as text."""
    if isinstance(value, float) and math.isfinite(value):
        return f"{round(value, precision):g}" if abs(value) < 1e15 else f"{value:.{precision}g}"
    return str(value)


def read_metrics(project: Path, targets: Sequence[str] = ()) -> dict[str, dict[str, Any]]:
    """``{metrics file: its metrics}`` of the workspace, read by DVC (``Repo.metrics.show``); ``targets``
    are relative to ``project``. A file DVC cannot read is reported as ``{"error": message}``."""
    from dvc.repo import Repo

    with contextlib.chdir(project), Repo(".") as repo:
        shown = repo.metrics.show(targets=list(targets) or None)
    files = next(iter(shown.values()), {}).get("data", {})
    return {path: entry.get("data", {"error": str(entry.get("error"))}) for path, entry in files.items()}


def is_number(value: Any) -> bool:
    """True for ints and floats (not bools): what DVC compares in ``metrics diff``."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def metric_rows(
    metrics: Mapping[str, Mapping[str, Any]], pattern: str | None = None, text: bool = False
) -> list[tuple[str, str, Any]]:
    """``(file, key, value)`` rows, file by file, keys in the files' order: numbers only unless
    ``text`` (the protocol card's descriptions, names, lists), and only keys matching the regular
    expression ``pattern`` (searched in ``key`` and in ``file:key``) when it is given."""
    regex = re.compile(pattern) if pattern else None
    return [
        (path, key, value)
        for path, values in metrics.items()
        for key, value in flatten(values).items()
        if (text or is_number(value))
        and (regex is None or regex.search(key) or regex.search(f"{path}:{key}"))
    ]


def format_text(rows: Sequence[tuple[str, str, Any]], precision: int) -> str:
    """Each file's name on a line of its own, then ``  key  value`` lines, values aligned per file."""
    widths: dict[str, int] = {}
    for path, key, _ in rows:
        widths[path] = max(widths.get(path, 0), len(key))
    lines, current = [], None
    for path, key, value in rows:
        if path != current:
            lines.append(("\n" if lines else "") + path)
            current = path
        lines.append(f"  {key:<{widths[path]}}  {format_value(value, precision)}")
    return "\n".join(lines)


def format_markdown(rows: Sequence[tuple[str, str, Any]], precision: int) -> str:
    """A GitHub Markdown table with the columns file, metric, value."""
    lines = ["| file | metric | value |", "|---|---|---|"]
    lines += [f"| {path} | {key} | {format_value(value, precision)} |" for path, key, value in rows]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Print the metrics; 1 when nothing matched."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "targets", nargs="*", help="metrics files, relative to --project (default: all of dvc.yaml)"
    )
    parser.add_argument("--grep", metavar="REGEX", help="only keys matching this regular expression")
    parser.add_argument("--text", action="store_true", help="also text values (the protocol card)")
    parser.add_argument("--md", action="store_true", help="a Markdown table instead of text")
    parser.add_argument("--precision", type=int, default=5, help="digits after the point (default: 5)")
    parser.add_argument("--project", type=Path, default=Path("."), help="the DVC project (default: .)")
    args = parser.parse_args(argv)
    rows = metric_rows(read_metrics(args.project, args.targets), args.grep, args.text)
    if not rows:
        print("no metrics matched", file=sys.stderr)
        return 1
    try:
        print((format_markdown if args.md else format_text)(rows, args.precision))
    except BrokenPipeError:  # e.g. piped into head
        sys.stderr.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
