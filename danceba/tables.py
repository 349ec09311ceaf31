"""Parquet tables written by the pipeline stages: schemas, writing and reading by key.

Every table has one row per (key, frame) with a fixed-width float32 vector column, is zstd-compressed
and holds **one row group per key** (sequence name or music id), so a reader can load one sequence
without the rest (:func:`read_group`). Files are written to a temporary name and renamed, so an
interrupted stage never leaves a half-written table behind.

Schemas (column: type, unit):

``joints.parquet`` (stage ``joints``), key ``sequence``
    sequence: string; frame: int32 (60 fps, frame k at k/60 s);
    joints: fixed_size_list<float32>[72] — 24 SMPL joints × (x, y, z), metres, y-up, world frame.
``sequences.parquet`` (stage ``joints``), one row per sequence
    sequence, genre, situation, camera, dancer, music_id, choreography: string;
    split: string (train / val / test from splits/crossmodal_*.txt, or none); ignored: bool;
    n_frames: int32; seconds: float32.
``music_features_60fps.parquet`` / ``music_features_7p5fps.parquet`` (stage ``music_features``), key ``music_id``
    music_id: string; frame: int32 (frame k at k/fps s); features: fixed_size_list<float32>[D]
    (D = 438 for Bailando's features: MFCC 0–19, ΔMFCC 20–39, chroma 40–51, onset envelope 52,
    beat one-hot 53, tempogram 54–437; D = 35 for EDGE's).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from danceba.atomic import atomic_path

COMPRESSION = "zstd"


def vector_column(values: np.ndarray) -> pa.FixedSizeListArray:
    """(N, D) float array -> Arrow fixed_size_list<float32>[D] column."""
    values = np.ascontiguousarray(values, dtype=np.float32)
    if values.ndim != 2:
        raise ValueError(f"expected a (N, D) array, got shape {values.shape}")
    return pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(-1)), values.shape[1])


def frame_table(key_name: str, key: str, vector_name: str, vectors: np.ndarray) -> pa.Table:
    """One key's rows: (key, frame, vector) with frame = 0..N-1; vectors (N, D)."""
    n = len(vectors)
    columns = {
        key_name: pa.array([key] * n, type=pa.string()),
        "frame": pa.array(np.arange(n, dtype=np.int32)),
    }
    columns[vector_name] = vector_column(vectors)
    return pa.table(columns)


def write_grouped_table(
    path: str | Path, groups: Iterable[pa.Table], metadata: dict[str, str] | None = None
) -> int:
    """Write tables (one per key) as one Parquet file with one row group per table, atomically.

    Returns the number of row groups written. ``metadata`` goes into the file's schema metadata
    (fps, units, feature layout), so the file documents itself.
    """
    writer = None
    count = 0
    with atomic_path(path) as tmp:
        try:
            for table in groups:
                if writer is None:
                    schema = table.schema.with_metadata({k: str(v) for k, v in (metadata or {}).items()})
                    writer = pq.ParquetWriter(tmp, schema, compression=COMPRESSION)
                writer.write_table(table.cast(writer.schema), row_group_size=max(len(table), 1))
                count += 1
            if writer is None:
                raise ValueError(f"{path}: nothing to write (no groups)")
        finally:
            if writer is not None:
                writer.close()
    return count


def write_table(path: str | Path, table: pa.Table, metadata: dict[str, str] | None = None) -> None:
    """Write a small table (one row group) atomically."""
    table = table.replace_schema_metadata({k: str(v) for k, v in (metadata or {}).items()})
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression=COMPRESSION)


def group_keys(path: str | Path) -> list[str]:
    """The key of each row group, in file order (read from the row-group statistics, no data read)."""
    return _group_keys(pq.ParquetFile(path).metadata, path)


def _group_keys(meta: pq.FileMetaData, path: str | Path) -> list[str]:
    keys = []
    for i in range(meta.num_row_groups):
        stats = meta.row_group(i).column(0).statistics
        if stats is None or not stats.has_min_max or stats.min != stats.max:
            raise ValueError(f"{path}: row group {i} does not hold exactly one key")
        keys.append(stats.min)
    return keys


class GroupReader:
    """A grouped table opened once: any key's vectors without re-reading the file's footer.

    :func:`read_group` opens the file and scans every row group's statistics per call, which is
    quadratic when a stage reads each of AIST++'s ~1,400 sequences in turn; a stage that reads many
    keys opens one reader and streams them, one row group in memory at a time.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._file = pq.ParquetFile(path)
        self.keys = _group_keys(self._file.metadata, path)
        self._index = {key: i for i, key in enumerate(self.keys)}

    def __contains__(self, key: str) -> bool:
        return key in self._index

    def read(self, key: str, vector_name: str) -> np.ndarray:
        """One key's vectors as a (N, D) float32 array, reading only its row group."""
        if key not in self._index:
            raise KeyError(f"{self.path}: no rows for {key!r}")
        return _vectors(self._file.read_row_group(self._index[key], columns=[vector_name]), vector_name)


def read_group(path: str | Path, key: str, vector_name: str) -> np.ndarray:
    """Load one key's vectors as a (N, D) float32 array, reading only its row group."""
    return GroupReader(path).read(key, vector_name)


def iter_groups(path: str | Path, vector_name: str) -> Iterator[tuple[str, np.ndarray]]:
    """Yield (key, (N, D) float32 vectors) for every row group in the file."""
    parquet = pq.ParquetFile(path)
    for index, key in enumerate(group_keys(path)):
        yield key, _vectors(parquet.read_row_group(index, columns=[vector_name]), vector_name)


def read_all_groups(path: str | Path, vector_name: str) -> dict[str, np.ndarray]:
    """Every key's vectors: {key: (N, D) float32}."""
    return dict(iter_groups(path, vector_name))


def file_metadata(path: str | Path) -> dict[str, str]:
    """The schema metadata written with the file."""
    raw = pq.read_schema(path).metadata or {}
    return {k.decode(): v.decode() for k, v in raw.items()}


def fixed_list_to_numpy(table: pa.Table, column_name: str, dtype: type = np.float32) -> np.ndarray:
    """A fixed_size_list column as a writable (N, width) array."""
    column = table.column(column_name).combine_chunks()
    width = column.type.list_size
    return np.array(column.values.to_numpy(zero_copy_only=False).reshape(-1, width), dtype=dtype)


def _vectors(table: pa.Table, vector_name: str) -> np.ndarray:
    return fixed_list_to_numpy(table, vector_name)
