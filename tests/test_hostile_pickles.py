"""Crafted AIST++ motion pickles: each is refused with one clear error naming the file, nothing runs,
and nothing can crash the interpreter (danceba.data.numeric_pickle)."""

from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import numpy._core.multiarray as multiarray
import pytest

from danceba.data import aistpp
from danceba.data.aistpp import AistppFormatError, UnsafePickleError

SEQ = "gBR_sBM_cAll_d04_mBR0_ch01"


class _Reduce:
    """Pickles as ``callable(*args)`` (then ``BUILD state`` when a state is given)."""

    def __init__(self, callable_: object, args: tuple, state: object = None) -> None:
        self.reduced = (callable_, args) if state is None else (callable_, args, state)

    def __reduce__(self) -> tuple:
        return self.reduced


def motion(**changes: object) -> dict:
    rng = np.random.default_rng(0)
    data = {
        "smpl_poses": rng.normal(size=(4, 72)).astype(np.float32),
        "smpl_trans": rng.normal(size=(4, 3)).astype(np.float32),
        "smpl_scaling": np.array([93.0], dtype=np.float32),
        "smpl_loss": 0.5,
    }
    return {**data, **changes}


def write(tmp_path: Path, payload: object, protocol: int = 4) -> Path:
    path = tmp_path / f"{SEQ}.pkl"
    path.write_bytes(pickle.dumps(payload, protocol=protocol))
    return path


FORGED = {
    # numpy reads the 8 bytes as an object pointer: a segmentation fault without the stand-ins
    "scalar_object_dtype": _Reduce(multiarray.scalar, (np.dtype("O"), b"AAAAAAAA")),
    "object_array": np.array([1, "a"], dtype=object),
    "structured_dtype_with_object_field": np.zeros(2, dtype=[("a", "f4"), ("b", "O")]),
    "numeric_spec_with_forged_fields": _Reduce(
        np.dtype, ("f8", False, True), (3, "|", None, ("a",), {"a": (np.dtype("O"), 0)}, 8, 1, 63)
    ),
    "numeric_spec_with_forged_size": _Reduce(
        np.dtype, ("f4", False, True), (3, "<", None, None, None, 64, 4, 0)
    ),
    "huge_shape_small_data": _Reduce(
        multiarray._reconstruct,
        (np.ndarray, (0,), b"b"),
        (1, (10**6, 10**6), np.dtype("f8"), False, b"\0" * 8),
    ),
    "short_data": _Reduce(
        multiarray._reconstruct, (np.ndarray, (0,), b"b"), (1, (4, 72), np.dtype("f4"), False, b"\0" * 12)
    ),
    "negative_shape": _Reduce(
        multiarray._reconstruct, (np.ndarray, (0,), b"b"), (1, (-1, 3), np.dtype("f4"), False, b"")
    ),
    "reconstruct_of_another_class": _Reduce(multiarray._reconstruct, (np.ma.MaskedArray, (0,), b"b")),
    "unicode_array": np.array(["abc"]),
    "datetime_array": np.array(["2020-01-01"], dtype="datetime64[D]"),
    "complex_scalar": np.complex128(1 + 2j),
}


@pytest.mark.parametrize("name", sorted(FORGED))
def test_forged_numpy_reconstructions_are_refused(tmp_path: Path, name: str) -> None:
    path = write(tmp_path, motion(smpl_loss=FORGED[name]))
    with pytest.raises(UnsafePickleError) as caught:
        aistpp.read_motion_pkl(path)
    message = str(caught.value)
    assert str(path) in message and "corrupt or malicious" in message and "\n" not in message


def test_the_forged_dtype_scalar_cannot_crash_the_interpreter(tmp_path: Path) -> None:
    """Run in a subprocess: a crash would end it by a signal (negative return code), not an error."""
    path = write(tmp_path, motion(smpl_loss=FORGED["scalar_object_dtype"]))
    code = (
        "import sys\nfrom danceba.data import aistpp\n"
        "try:\n    aistpp.read_motion_pkl(sys.argv[1])\n"
        "except aistpp.UnsafePickleError as error:\n    print(error)\n    sys.exit(3)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 3, (done.returncode, done.stderr[-2000:])
    assert "dtype 'O8' is not a plain numeric dtype" in done.stdout


@pytest.mark.parametrize("protocol", [0, 2, 3, 4, 5])
def test_genuine_numeric_arrays_load_under_every_protocol(tmp_path: Path, protocol: int) -> None:
    extra = {
        "fortran": np.asfortranarray(np.arange(12, dtype=np.float64).reshape(3, 4)),
        "big_endian": np.arange(5, dtype=">i4"),
        "flags": np.array([True, False]),
        "empty": np.zeros((0, 3), dtype=np.float32),
        "scalar": np.float64(1.25),
    }
    data = motion(**extra)
    path = write(tmp_path, data, protocol)
    read = aistpp.read_motion_pkl(path)
    assert np.array_equal(read.poses.reshape(-1, 72), data["smpl_poses"])
    assert np.array_equal(read.trans, data["smpl_trans"])
    from danceba.data.numeric_pickle import load_numeric_pickle

    with open(path, "rb") as handle:
        loaded = load_numeric_pickle(handle, path)
    for key, value in extra.items():
        assert np.array_equal(loaded[key], value) and np.asarray(loaded[key]).dtype == np.asarray(value).dtype
    assert loaded["fortran"].flags.f_contiguous or loaded["fortran"].flags.c_contiguous


def test_garbage_and_truncated_files_are_format_errors(tmp_path: Path) -> None:
    path = tmp_path / f"{SEQ}.pkl"
    for content in (b"\x80\x04garbage", pickle.dumps(motion())[:-40], b"not a pickle at all"):
        path.write_bytes(content)
        with pytest.raises(AistppFormatError, match="truncated or corrupt") as caught:
            aistpp.read_motion_pkl(path)
        assert str(path) in str(caught.value)
