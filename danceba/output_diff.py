"""How two copies of one stage output differ: which files, and by how much.

Used by the reproduction check (``pipelines.reproduce_check``) after two runs of the chain: outputs
with equal DVC hashes are identical; for the others :func:`describe_difference` says what differs, in
the file's own terms: the largest absolute difference of the numbers in a JSON, CSV or Parquet file,
of the tensors in a checkpoint, of the arrays in an ``.npz``; the files that differ in a folder.
Only formats this project writes are opened, each with its safe reader (``weights_only`` checkpoints,
``allow_pickle=False`` arrays).
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from danceba.nested import file_digest

MAX_LISTED_FILES = 20


def differing_files(a: Path, b: Path) -> list[str]:
    """Relative paths (POSIX) of the files that differ between folders ``a`` and ``b``, or exist in one."""
    files_a = {p.relative_to(a).as_posix() for p in a.rglob("*") if p.is_file()}
    files_b = {p.relative_to(b).as_posix() for p in b.rglob("*") if p.is_file()}
    return sorted(
        name
        for name in files_a | files_b
        if name not in files_a
        or name not in files_b
        or file_digest([a / name], "md5") != file_digest([b / name], "md5")
    )


def describe_difference(a: Path, b: Path) -> dict[str, Any]:
    """What differs between two versions of one output (file or folder).

    Returns ``{"files": [...]}`` for a folder (with each file's difference when there are few), else
    ``{"max_abs_diff": float | None, "detail": str}``: ``max_abs_diff`` is None when the format has no
    numbers to compare (or a file is missing).
    """
    if a.is_dir() or b.is_dir():
        if not (a.is_dir() and b.is_dir()):
            return {"files": ["<missing folder>"], "max_abs_diff": None}
        names = differing_files(a, b)
        per_file = {name: describe_difference(a / name, b / name) for name in names[:MAX_LISTED_FILES]}
        largest = [d["max_abs_diff"] for d in per_file.values() if d.get("max_abs_diff") is not None]
        return {
            "files": names,
            "per_file": per_file,
            "max_abs_diff": max(largest) if largest else None,
        }
    if not (a.is_file() and b.is_file()):
        return {"max_abs_diff": None, "detail": "missing in one run"}
    try:
        return numeric_difference(a, b)
    except (ValueError, KeyError, OSError, RuntimeError) as error:
        return {"max_abs_diff": None, "detail": f"bytes differ ({type(error).__name__}: {error})"[:300]}


def numeric_difference(a: Path, b: Path) -> dict[str, Any]:
    """The largest absolute difference of the numbers two files of the same format hold."""
    suffix = a.suffix.lower()
    readers = {
        ".json": _json_numbers,
        ".csv": _csv_numbers,
        ".parquet": _parquet_numbers,
        ".pt": _checkpoint_numbers,
        ".npz": _npz_numbers,
    }
    if suffix not in readers:
        return {
            "max_abs_diff": None,
            "detail": f"bytes differ ({a.stat().st_size} vs {b.stat().st_size} bytes)",
        }
    numbers_a, numbers_b = dict(readers[suffix](a)), dict(readers[suffix](b))
    if numbers_a.keys() != numbers_b.keys():
        only = sorted(numbers_a.keys() ^ numbers_b.keys())
        return {"max_abs_diff": None, "detail": f"different fields: {only[:10]}"}
    worst, where = 0.0, None
    for key in sorted(numbers_a):
        x, y = numbers_a[key], numbers_b[key]
        if x.shape != y.shape:
            return {"max_abs_diff": None, "detail": f"{key}: shape {x.shape} vs {y.shape}"}
        diff = _max_abs(x, y)
        if diff > worst or (where is None and diff > 0):
            worst, where = diff, key
    detail = f"largest at {where}" if where is not None else "same numbers, other bytes"
    return {"max_abs_diff": worst, "detail": detail}


def _max_abs(x: np.ndarray, y: np.ndarray) -> float:
    if x.size == 0:
        return 0.0
    if x.dtype.kind not in "fiub" or y.dtype.kind not in "fiub":
        return 0.0 if np.array_equal(x, y) else math.inf
    x, y = x.astype(np.float64), y.astype(np.float64)
    same = (x == y) | (np.isnan(x) & np.isnan(y))
    return float(np.max(np.where(same, 0.0, np.abs(x - y)), initial=0.0))


def _leaves(value: Any, prefix: str = "") -> Iterator[tuple[str, np.ndarray]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _leaves(item, f"{prefix}{key}.")
    elif isinstance(value, list) and not all(isinstance(v, int | float) for v in value):
        for index, item in enumerate(value):
            yield from _leaves(item, f"{prefix}{index}.")
    elif value is None or isinstance(value, str | bool):
        yield prefix.rstrip("."), np.array([str(value)])
    else:
        yield prefix.rstrip("."), np.asarray(value, dtype=np.float64)


def _json_numbers(path: Path) -> Iterator[tuple[str, np.ndarray]]:
    yield from _leaves(json.loads(path.read_text(encoding="utf-8")))


def _csv_numbers(path: Path) -> Iterator[tuple[str, np.ndarray]]:
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    for column in rows[0] if rows else []:
        yield column, np.array([_number(row[column]) for row in rows])


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return math.nan


def _parquet_numbers(path: Path) -> Iterator[tuple[str, np.ndarray]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    for name in table.column_names:
        column = table.column(name).combine_chunks()
        while pa.types.is_list(column.type) or pa.types.is_fixed_size_list(column.type):
            column = column.flatten()
        values = column.to_numpy(zero_copy_only=False)
        yield name, values if values.dtype.kind in "fiub" else values.astype(str)


def _checkpoint_numbers(path: Path) -> Iterator[tuple[str, np.ndarray]]:
    import torch

    payload = torch.load(path, map_location="cpu", weights_only=True)
    yield from _tensor_leaves(payload)


def _tensor_leaves(value: Any, prefix: str = "") -> Iterator[tuple[str, np.ndarray]]:
    import torch

    if isinstance(value, dict):
        for key, item in value.items():
            yield from _tensor_leaves(item, f"{prefix}{key}.")
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from _tensor_leaves(item, f"{prefix}{index}.")
    elif isinstance(value, torch.Tensor):
        yield prefix.rstrip("."), value.detach().to(torch.float64).numpy()
    elif isinstance(value, int | float) and not isinstance(value, bool):
        yield prefix.rstrip("."), np.asarray(value, dtype=np.float64)
    else:
        yield prefix.rstrip("."), np.array([str(value)])


def _npz_numbers(path: Path) -> Iterator[tuple[str, np.ndarray]]:
    with np.load(path, allow_pickle=False) as arrays:
        for name in arrays.files:
            yield name, arrays[name]
