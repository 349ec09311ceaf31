"""AIST++ layout: names, tempo table, safe pickles, splits and layout validation (all offline)."""

from __future__ import annotations

import os
import pickle
import re
from pathlib import Path

import numpy as np
import pytest

from danceba.data import aistpp
from danceba.data.aistpp import (
    AistppFormatError,
    AistppLayout,
    LayoutError,
    UnsafePickleError,
)

SEQ = "gBR_sBM_cAll_d04_mBR0_ch01"


# ----------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------


def _motion_dict(rng: np.random.Generator, n: int = 5, pose_shape: str = "flat") -> dict:
    poses = rng.normal(size=(n, 72)).astype(np.float32)
    return {
        "smpl_poses": poses if pose_shape == "flat" else poses.reshape(n, 24, 3),
        "smpl_trans": rng.normal(size=(n, 3)).astype(np.float32) * 50,
        "smpl_scaling": np.array([93.5]),
        "smpl_loss": np.float64(0.25),
    }


# ----------------------------------------------------------------------------------------------
# names, tempo, layout
# ----------------------------------------------------------------------------------------------


def test_parse_sequence_name_gives_every_part() -> None:
    parts = aistpp.parse_sequence_name(SEQ)
    assert (parts.genre, parts.situation, parts.camera, parts.dancer, parts.music_id, parts.choreography) == (
        "gBR",
        "sBM",
        "cAll",
        "d04",
        "mBR0",
        "ch01",
    )
    assert parts.name == SEQ
    assert parts.genre_name == "Break"
    assert aistpp.parse_sequence_name("gHO_sFM_c03_d20_mHO5_ch21").camera == "c03"


@pytest.mark.parametrize(
    "bad",
    ["", "gBR_sBM_cAll_d04_mBR0", f"{SEQ}.pkl", f"../{SEQ}", "gXX_sBM_cAll_d04_mBR0_ch01", SEQ.lower()],
)
def test_parse_sequence_name_rejects_malformed(bad: str) -> None:
    with pytest.raises(ValueError, match="sequence name"):
        aistpp.parse_sequence_name(bad)


def test_music_tempo_table_and_genres() -> None:
    assert [aistpp.music_tempo_bpm(f"mBR{d}") for d in range(6)] == [80, 90, 100, 110, 120, 130]
    assert [aistpp.music_tempo_bpm(f"mHO{d}") for d in range(6)] == [110, 115, 120, 125, 130, 135]
    assert aistpp.music_tempo_bpm("mJB3") == 110.0
    assert len(aistpp.GENRES) == 10 and aistpp.GENRES["gLH"] == "LA style Hip-hop"
    for bad in ("mXX0", "mBR9", "BR0", "mBR"):
        with pytest.raises(ValueError, match=bad):
            aistpp.music_tempo_bpm(bad)


def test_layout_paths(tmp_path: Path) -> None:
    layout = AistppLayout(tmp_path)
    assert layout.motion_path(SEQ) == tmp_path / "motions" / f"{SEQ}.pkl"
    assert layout.wav_path("mBR0") == tmp_path / "wavs" / "mBR0.wav"
    assert layout.split_path("val") == tmp_path / "splits" / "crossmodal_val.txt"
    assert layout.split_path("pose_test") == tmp_path / "splits" / "pose_test.txt"
    assert layout.ignore_list == tmp_path / "ignore_list.txt"
    with pytest.raises(ValueError):
        layout.motion_path("../../etc/passwd")
    with pytest.raises(ValueError):
        layout.wav_path("../x")
    with pytest.raises(ValueError, match="unknown split"):
        layout.split_path("holdout")


# ----------------------------------------------------------------------------------------------
# motion pickles
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", [2, 4, 5])
@pytest.mark.parametrize("pose_shape", ["flat", "joints"])
def test_read_motion_pkl_accepts_both_pose_shapes(
    tmp_path: Path, rng: np.random.Generator, protocol: int, pose_shape: str
) -> None:
    data = _motion_dict(rng, pose_shape=pose_shape)
    path = tmp_path / f"{SEQ}.pkl"
    path.write_bytes(pickle.dumps(data, protocol=protocol))
    motion = aistpp.read_motion_pkl(path)
    assert motion.poses.shape == (5, 24, 3) and motion.poses.dtype == np.float32
    np.testing.assert_array_equal(motion.poses.reshape(5, 72), data["smpl_poses"].reshape(5, 72))
    assert motion.trans.dtype == np.float32 and motion.scaling == pytest.approx(93.5)
    np.testing.assert_allclose(motion.trans_normalised, data["smpl_trans"] / 93.5, rtol=1e-6)
    assert not motion.poses.flags.writeable


def test_read_motion_pkl_accepts_numpy1_module_names(tmp_path: Path, rng: np.random.Generator) -> None:
    data = pickle.dumps(_motion_dict(rng), protocol=2).replace(
        b"numpy._core.multiarray", b"numpy.core.multiarray"
    )
    assert b"numpy.core.multiarray" in data
    path = tmp_path / "old.pkl"
    path.write_bytes(data)
    assert aistpp.read_motion_pkl(path).n_frames == 5


def test_write_motion_pkl_matches_published_format(tmp_path: Path, rng: np.random.Generator) -> None:
    source = _motion_dict(rng, n=7, pose_shape="joints")
    path = tmp_path / "motions" / f"{SEQ}.pkl"
    aistpp.write_motion_pkl(path, source["smpl_poses"], source["smpl_trans"], 2.0, loss=0.5)
    with path.open("rb") as handle:  # written by this test a line above, so plain pickle is fine
        raw = pickle.load(handle)
    assert set(raw) == {"smpl_poses", "smpl_trans", "smpl_scaling", "smpl_loss"}
    assert raw["smpl_poses"].shape == (7, 72) and raw["smpl_poses"].dtype == np.float32
    assert raw["smpl_trans"].shape == (7, 3) and raw["smpl_scaling"].shape == (1,)
    motion = aistpp.read_motion_pkl(path)
    np.testing.assert_array_equal(motion.poses, source["smpl_poses"])
    np.testing.assert_allclose(motion.trans_normalised, source["smpl_trans"] / 2.0)
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left behind
    with pytest.raises(AistppFormatError, match="smpl_scaling"):
        aistpp.write_motion_pkl(tmp_path / "bad.pkl", source["smpl_poses"], source["smpl_trans"], 0.0)
    assert not (tmp_path / "bad.pkl").exists()


class _RunsShell:
    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self) -> tuple:
        return (os.system, (self.command,))


class _RunsEval:
    def __init__(self, code: str) -> None:
        self.code = code

    def __reduce__(self) -> tuple:
        return (eval, (self.code,))


@pytest.mark.parametrize("kind", ["os.system", "builtins.eval", "nested"])
def test_read_motion_pkl_refuses_malicious_pickle(
    tmp_path: Path, rng: np.random.Generator, kind: str
) -> None:
    marker = tmp_path / "pwned"
    if kind == "os.system":
        payload: object = _RunsShell(f"touch {marker}")
    elif kind == "builtins.eval":
        payload = _RunsEval(f"open({str(marker)!r}, 'w').close()")
    else:  # an otherwise valid motion with the exploit hidden in one value
        payload = {**_motion_dict(rng), "smpl_loss": _RunsShell(f"touch {marker}")}
    path = tmp_path / f"{SEQ}.pkl"
    path.write_bytes(pickle.dumps(payload, protocol=4))
    with pytest.raises(UnsafePickleError) as caught:
        aistpp.read_motion_pkl(path)
    assert str(path) in str(caught.value)
    assert ("system" in str(caught.value)) or ("eval" in str(caught.value))
    assert not marker.exists()


def test_read_motion_pkl_refuses_unlisted_numpy_global(tmp_path: Path) -> None:
    path = tmp_path / "np.pkl"
    path.write_bytes(pickle.dumps(np.load, protocol=4))
    with pytest.raises(UnsafePickleError, match=r"numpy\..*load"):
        aistpp.read_motion_pkl(path)


def test_read_motion_pkl_truncated_file_names_file(tmp_path: Path, rng: np.random.Generator) -> None:
    data = pickle.dumps(_motion_dict(rng), protocol=4)
    path = tmp_path / f"{SEQ}.pkl"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(AistppFormatError, match="truncated or corrupt") as caught:
        aistpp.read_motion_pkl(path)
    assert str(path) in str(caught.value)
    path.write_bytes(b"")
    with pytest.raises(AistppFormatError, match=re.escape(str(path))):
        aistpp.read_motion_pkl(path)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"smpl_trans": None}, "missing keys"),
        ({"smpl_trans": np.zeros((4, 3))}, "smpl_trans"),
        ({"smpl_poses": np.zeros((5, 70))}, "smpl_poses"),
        ({"smpl_poses": np.full((5, 72), np.nan)}, "NaN"),
        ({"smpl_scaling": np.array([-1.0])}, "smpl_scaling"),
        ({"smpl_scaling": np.array([1.0, 2.0])}, "smpl_scaling"),
    ],
)
def test_read_motion_pkl_validates_content(
    tmp_path: Path, rng: np.random.Generator, change: dict, message: str
) -> None:
    data = _motion_dict(rng)
    for key, value in change.items():
        if value is None:
            del data[key]
        else:
            data[key] = value
    path = tmp_path / "m.pkl"
    path.write_bytes(pickle.dumps(data, protocol=4))
    with pytest.raises(AistppFormatError, match=message) as caught:
        aistpp.read_motion_pkl(path)
    assert str(path) in str(caught.value)


# ----------------------------------------------------------------------------------------------
# splits, ignore list, validation
# ----------------------------------------------------------------------------------------------

TRAIN = ["gBR_sBM_cAll_d04_mBR1_ch01", "gHO_sFM_cAll_d20_mHO2_ch09", "gPO_sBM_cAll_d10_mPO3_ch03"]
TEST = ["gBR_sBM_cAll_d04_mBR0_ch02"]


def _write_splits(layout: AistppLayout, val: list[str] | None = None) -> None:
    layout.splits_dir.mkdir(parents=True)
    layout.split_path("train").write_text("# comment\n" + "\n".join(TRAIN) + "\n\n")
    layout.split_path("val").write_text("\n".join(val if val is not None else TEST) + "\n")
    layout.split_path("test").write_text("\r\n".join(TEST) + "\r\n")
    layout.ignore_list.write_text(f"{TRAIN[1]}.json\n")


def test_read_split_ignore_list_and_list_sequences(tmp_path: Path, rng: np.random.Generator) -> None:
    layout = AistppLayout(tmp_path)
    _write_splits(layout)
    assert aistpp.read_split(layout, "train") == TRAIN
    assert aistpp.read_split(layout, "test") == TEST
    assert aistpp.read_ignore_list(layout) == {TRAIN[1]}
    assert aistpp.list_sequences(layout, "train") == [TRAIN[0], TRAIN[2]]
    assert aistpp.list_sequences(layout, "train", drop_ignored=False) == TRAIN
    for name in (*TRAIN, *TEST):
        motion = _motion_dict(rng)
        aistpp.write_motion_pkl(layout.motion_path(name), motion["smpl_poses"], motion["smpl_trans"], 1.0)
    assert aistpp.list_sequences(layout) == sorted([TRAIN[0], TRAIN[2], *TEST])


def test_split_errors_name_the_file(tmp_path: Path) -> None:
    layout = AistppLayout(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"crossmodal_train\.txt"):
        aistpp.read_split(layout, "train")
    with pytest.raises(FileNotFoundError, match=r"ignore_list\.txt"):
        aistpp.read_ignore_list(layout)
    _write_splits(layout, val=[TEST[0], "not_a_sequence"])
    with pytest.raises(AistppFormatError, match=r"crossmodal_val\.txt:2: .*not_a_sequence"):
        aistpp.read_split(layout, "val")


def test_validate_layout_reports_what_is_missing(tmp_path: Path, rng: np.random.Generator) -> None:
    layout = AistppLayout(tmp_path)
    report = aistpp.validate_layout(layout, strict=False)
    assert not report.complete and str(layout.ignore_list) in report.missing
    assert str(layout.split_path("val")) in report.missing
    _write_splits(layout)
    for name in (TRAIN[0], TRAIN[2], TEST[0]):
        motion = _motion_dict(rng)
        aistpp.write_motion_pkl(layout.motion_path(name), motion["smpl_poses"], motion["smpl_trans"], 1.0)
    for music in ("mBR1", "mPO3"):
        layout.wavs_dir.mkdir(exist_ok=True)
        layout.wav_path(music).write_bytes(b"RIFF")
    report = aistpp.validate_layout(layout, strict=False)
    assert report.missing == (str(layout.wav_path("mBR0")),)  # the ignored mHO2 sequence is not needed
    with pytest.raises(LayoutError, match=r"mBR0\.wav"):
        aistpp.validate_layout(layout)
    layout.wav_path("mBR0").write_bytes(b"RIFF")
    report = aistpp.validate_layout(layout)
    assert report.complete and report.n_sequences == 3 and report.n_music == 3
