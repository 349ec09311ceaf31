"""The first four stages end to end on a tiny mini dataset: files, Parquet schemas, failures."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from danceba import tables
from danceba.config import MusicFeaturesConfig
from danceba.features.columns import BEAT_COLUMN
from pipelines import joints, music_features
from tests.conftest import TINY
from tests.project_files import EMBEDDED_PARAMS, stage_argv


def test_joints_table_schema_and_values(chain: dict[str, Path]) -> None:
    schema = pq.read_schema(chain["joints"])
    assert schema.names == ["sequence", "frame", "joints"]
    assert schema.field("joints").type == pa.list_(pa.float32(), 72)
    assert schema.field("frame").type == pa.int32()
    assert tables.file_metadata(chain["joints"])["fps"] == "60"
    keys = tables.group_keys(chain["joints"])
    first = tables.read_group(chain["joints"], keys[0], "joints").reshape(-1, 24, 3)
    assert first.shape[0] == round(TINY.seconds * 60)
    # A standing SMPL body: the head (15) is above the pelvis (0), the ankles (7, 8) below it.
    assert np.all(first[:, 15, 1] > first[:, 0, 1])
    assert np.all(first[:, [7, 8], 1] < first[:, [0], 1])


def test_sequence_index(chain: dict[str, Path]) -> None:
    index = pq.read_table(chain["sequences"]).to_pandas()
    assert list(index.columns) == [
        "sequence",
        "genre",
        "situation",
        "camera",
        "dancer",
        "music_id",
        "choreography",
        "split",
        "ignored",
        "n_frames",
        "seconds",
    ]
    assert set(index["split"]) == {"train", "val", "test"}
    assert not index["ignored"].any(), "drop_ignored removes the ignore list"
    train_music = set(index.loc[index["split"] == "train", "music_id"])
    test_music = set(index.loc[index["split"] != "train", "music_id"])
    assert not train_music & test_music
    summary = json.loads(chain["summary"].read_text())
    assert summary["sequences"] == len(index) and summary["genres"] == 2


def test_music_feature_tables(chain: dict[str, Path]) -> None:
    index = pq.read_table(chain["sequences"]).to_pandas()
    assert tables.group_keys(chain["music60"]) == sorted(set(index["music_id"]))
    for path, fps in ((chain["music60"], 60.0), (chain["music7"], 7.5)):
        assert pq.read_schema(path).field("features").type == pa.list_(pa.float32(), 438)
        assert float(tables.file_metadata(path)["fps"]) == fps
        features = tables.read_group(path, tables.group_keys(path)[0], "features")
        assert abs(len(features) - TINY.seconds * fps) <= 2
    beats = tables.read_group(chain["music60"], "mBR0", "features")[:, BEAT_COLUMN]
    assert set(np.unique(beats)) <= {0.0, 1.0} and beats.sum() >= 3


def test_corrupt_motion_stops_the_stage_and_keeps_outputs(chain: dict[str, Path], tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    shutil.copytree(chain["raw"], raw)
    victim = sorted((raw / "motions").glob("*.pkl"))[1]
    victim.write_bytes(victim.read_bytes()[:100])
    out = tmp_path / "joints.parquet"
    out.write_bytes(b"previous output")
    project = tmp_path / "project"  # a stage tracks into mlflow.db beside its params file
    project.mkdir()
    shutil.copy(EMBEDDED_PARAMS, project / "params.yaml")
    where = {
        "params.yaml": project / "params.yaml",
        "data/raw": raw,
        "data/joints.parquet": out,
        "data/sequences.parquet": tmp_path / "s.parquet",
        "reports/dataset.json": tmp_path / "d.json",
    }
    code = joints.main(stage_argv("joints", where))
    assert code == 1
    assert out.read_bytes() == b"previous output"
    assert not (tmp_path / "s.parquet").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_missing_wav_names_the_file(chain: dict[str, Path], tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    shutil.copytree(chain["raw"], raw)
    (raw / "wavs" / "mHO0.wav").unlink()
    with pytest.raises(ValueError, match=r"mHO0\.wav"):
        music_features.write_music_features(
            raw, chain["sequences"], tmp_path / "a.parquet", tmp_path / "b.parquet", MusicFeaturesConfig()
        )
    assert not (tmp_path / "a.parquet").exists()
