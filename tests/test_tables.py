"""Parquet tables: schema, one row group per key, reading one key alone, atomic writes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from danceba import tables


def _groups(rng: np.random.Generator) -> dict[str, np.ndarray]:
    return {name: rng.normal(size=(n, 72)).astype(np.float32) for name, n in [("a", 5), ("b", 9), ("c", 1)]}


def test_one_row_group_per_key_and_schema(tmp_path: Path, rng: np.random.Generator) -> None:
    data = _groups(rng)
    path = tmp_path / "joints.parquet"
    written = tables.write_grouped_table(
        path, (tables.frame_table("sequence", k, "joints", v) for k, v in data.items()), {"fps": 60}
    )
    assert written == 3
    parquet = pq.ParquetFile(path)
    assert parquet.metadata.num_row_groups == 3
    assert parquet.metadata.row_group(0).column(0).compression == "ZSTD"
    schema = parquet.schema_arrow
    assert schema.field("sequence").type == pa.string()
    assert schema.field("frame").type == pa.int32()
    assert schema.field("joints").type == pa.list_(pa.float32(), 72)
    assert tables.file_metadata(path) == {"fps": "60"}
    assert tables.group_keys(path) == ["a", "b", "c"]


def test_read_one_group_and_all(tmp_path: Path, rng: np.random.Generator) -> None:
    data = _groups(rng)
    path = tmp_path / "t.parquet"
    tables.write_grouped_table(
        path, (tables.frame_table("sequence", k, "joints", v) for k, v in data.items())
    )
    np.testing.assert_array_equal(tables.read_group(path, "b", "joints"), data["b"])
    everything = tables.read_all_groups(path, "joints")
    assert list(everything) == ["a", "b", "c"]
    np.testing.assert_array_equal(everything["c"], data["c"])
    frames = pq.read_table(path, columns=["frame"]).column("frame").to_numpy()
    np.testing.assert_array_equal(frames[:5], np.arange(5))
    with pytest.raises(KeyError, match="no rows for 'zz'"):
        tables.read_group(path, "zz", "joints")


def test_group_reader_reads_any_key_as_read_group_does(tmp_path: Path, rng: np.random.Generator) -> None:
    data = _groups(rng)
    path = tmp_path / "t.parquet"
    tables.write_grouped_table(
        path, (tables.frame_table("sequence", k, "joints", v) for k, v in data.items())
    )
    reader = tables.GroupReader(path)
    assert reader.keys == ["a", "b", "c"] and "b" in reader and "zz" not in reader
    for key in ("c", "a", "b", "a"):  # any order, any number of times
        np.testing.assert_array_equal(reader.read(key, "joints"), data[key])
        np.testing.assert_array_equal(reader.read(key, "joints"), tables.read_group(path, key, "joints"))
    with pytest.raises(KeyError, match="no rows for 'zz'"):
        reader.read("zz", "joints")


def test_failed_write_keeps_the_previous_file(tmp_path: Path, rng: np.random.Generator) -> None:
    path = tmp_path / "t.parquet"
    good = _groups(rng)
    tables.write_grouped_table(
        path, (tables.frame_table("sequence", k, "joints", v) for k, v in good.items())
    )
    before = path.read_bytes()

    def broken():
        yield tables.frame_table("sequence", "x", "joints", good["a"])
        raise ValueError("input file y.pkl is truncated")

    with pytest.raises(ValueError, match="truncated"):
        tables.write_grouped_table(path, broken())
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.parquet"]


def test_vector_column_rejects_wrong_rank() -> None:
    with pytest.raises(ValueError, match=r"expected a \(N, D\) array"):
        tables.vector_column(np.zeros(3))
