"""A pickle reader that rebuilds plain numeric numpy arrays and containers, and nothing else.

AIST++ ships its motions as pickles. Loading a pickle runs whatever callables it names, and numpy's own
reconstruction callables trust their arguments: ``numpy.core.multiarray.scalar(dtype('O'), b'AAAAAAAA')``
reads eight bytes as an object pointer and crashes the interpreter. So no numpy callable is ever
handed to the unpickler. The globals it may name are stand-ins that only record their arguments:
``numpy.dtype(spec)`` accepts the spec strings of the numeric dtypes (bool, integers, floats) and a
plain byte order in its state; an array's state is accepted when its dtype is such a stand-in, its
shape is a tuple of non-negative ints and its data holds exactly ``prod(shape) * itemsize`` bytes.
Only then are bytes interpreted, by ``np.frombuffer``, into a fresh array. Anything else is refused
with :class:`PickleRefused` before any buffer is read.
"""

from __future__ import annotations

import builtins
import collections
import math
import pickle
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

NUMERIC_DTYPES = frozenset(
    np.dtype(t).str[1:] for t in (np.bool_, np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16)
) | frozenset(
    np.dtype(t).str[1:] for t in (np.uint32, np.uint64, np.float16, np.float32, np.float64)
)  # 'b1', 'i1' ... 'u8', 'f2', 'f4', 'f8': the spec strings numpy pickles a dtype with
BYTE_ORDERS = frozenset("<>|=")
NUMPY_MODULES = ("numpy.core.multiarray", "numpy._core.multiarray")
NUMERIC_MODULES = ("numpy.core.numeric", "numpy._core.numeric")
CONTAINERS = ("dict", "list", "tuple", "set", "frozenset", "bytearray")


class PickleRefused(ValueError):
    """The pickle names something other than plain numeric arrays and containers."""


class _NdarrayClass:
    """Stands for ``numpy.ndarray`` as the first argument of ``_reconstruct``."""


_NDARRAY = _NdarrayClass()


class _DtypeSpec:
    """``numpy.dtype(spec, align, copy)`` as pickle calls it, then its state; numeric specs only."""

    def __init__(self, spec: Any, align: Any = False, copy: Any = False) -> None:
        if not isinstance(spec, str) or spec not in NUMERIC_DTYPES:
            raise PickleRefused(f"dtype {spec!r} is not a plain numeric dtype")
        self.dtype = np.dtype(spec)

    def __setstate__(self, state: Any) -> None:
        # (version, byteorder, subarray, names, fields, elsize, alignment, flags); a plain dtype has
        # no subarray, names or fields, and -1 / -1 / 0 for the rest.
        if not isinstance(state, tuple) or not 5 <= len(state) <= 9:
            raise PickleRefused(f"dtype state {state!r:.80} is not a plain dtype's")
        byteorder, subarray, names, fields = state[1:5]
        if byteorder not in BYTE_ORDERS or (subarray, names, fields) != (None, None, None):
            raise PickleRefused(f"dtype state {state!r:.80} is not a plain dtype's")
        if any(not isinstance(v, int) or isinstance(v, bool) or v not in (-1, 0) for v in state[5:]):
            raise PickleRefused(f"dtype state {state!r:.80} is not a plain dtype's")
        if byteorder in "<>":
            self.dtype = self.dtype.newbyteorder(byteorder)


def _dtype_of(value: Any) -> np.dtype:
    if not isinstance(value, _DtypeSpec) or not hasattr(value, "dtype"):
        raise PickleRefused(f"expected a numeric dtype, got {type(value).__name__}")
    return value.dtype


def _raw_bytes(value: Any) -> bytes:
    if isinstance(value, str):  # a Python 2 pickle read with encoding='latin1'
        return value.encode("latin1")
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    raise PickleRefused(f"array data must be bytes, got {type(value).__name__}")


def _shape_of(value: Any) -> tuple[int, ...]:
    if not isinstance(value, tuple) or not all(isinstance(n, int) and not isinstance(n, bool) for n in value):
        raise PickleRefused(f"array shape {value!r:.80} is not a tuple of ints")
    if any(n < 0 for n in value) or len(value) > 32:
        raise PickleRefused(f"array shape {value!r:.80} is not a valid shape")
    return value


def _array_from(raw: bytes, dtype: np.dtype, shape: tuple[int, ...], fortran: bool) -> np.ndarray:
    """A fresh array of ``shape`` from ``raw``, once its length matches exactly."""
    expected = math.prod(shape) * dtype.itemsize
    if len(raw) != expected:
        raise PickleRefused(
            f"array of shape {shape} and dtype {dtype} needs {expected} bytes, got {len(raw)}"
        )
    return np.frombuffer(raw, dtype=dtype).reshape(shape, order="F" if fortran else "C").copy()


class _ArraySpec:
    """``_reconstruct(ndarray, (0,), b'b')`` then ``__setstate__``: becomes an array once checked."""

    def __init__(self, cls: Any, shape: Any = None, typecode: Any = None) -> None:
        if cls is not _NDARRAY:
            raise PickleRefused(f"_reconstruct of {type(cls).__name__}: only plain ndarrays are accepted")
        self.array: np.ndarray | None = None

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, tuple) or len(state) not in (4, 5):
            raise PickleRefused(f"array state {state!r:.80} is not an ndarray's")
        shape, dtype, fortran, raw = state[-4:]
        if not isinstance(fortran, bool | int):
            raise PickleRefused(f"array order flag {fortran!r:.40} is not a bool")
        self.array = _array_from(_raw_bytes(raw), _dtype_of(dtype), _shape_of(shape), bool(fortran))


def _scalar(dtype: Any, raw: Any = b"") -> Any:
    """``numpy.core.multiarray.scalar(dtype, bytes)``, for a numeric dtype and exactly its bytes."""
    return _array_from(_raw_bytes(raw), _dtype_of(dtype), (), False)[()]


def _frombuffer(buffer: Any, dtype: Any, shape: Any, order: Any) -> np.ndarray:
    """``numpy.core.numeric._frombuffer`` (pickle protocol 5), for numeric dtypes only."""
    if order not in ("C", "F"):
        raise PickleRefused(f"array order {order!r:.20} is not C or F")
    raw = bytes(buffer) if isinstance(buffer, pickle.PickleBuffer) else _raw_bytes(buffer)
    return _array_from(raw, _dtype_of(dtype), _shape_of(shape), order == "F")


def _latin1_encode(text: Any, encoding: Any = "utf-8") -> bytes:
    """``_codecs.encode(str, 'latin1')``: how protocol < 3 pickles spell bytes."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise PickleRefused("_codecs.encode is accepted for latin1 text only")
    return text.encode("latin1")


def _empty_bytes(*args: Any) -> bytes:
    """``bytes()``: how protocol < 3 pickles spell an empty bytes object (nothing else is accepted)."""
    if args:
        raise PickleRefused("bytes(...) is accepted without arguments only")
    return b""


ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    **{(module, "_reconstruct"): _ArraySpec for module in NUMPY_MODULES},
    **{(module, "scalar"): _scalar for module in NUMPY_MODULES},
    **{(module, "_frombuffer"): _frombuffer for module in NUMERIC_MODULES},
    ("numpy", "ndarray"): _NDARRAY,
    ("numpy", "dtype"): _DtypeSpec,
    ("_codecs", "encode"): _latin1_encode,
    **{(module, "bytes"): _empty_bytes for module in ("builtins", "__builtin__")},
    ("collections", "OrderedDict"): collections.OrderedDict,
    **{
        (module, name): getattr(builtins, name)
        for module in ("builtins", "__builtin__")
        for name in CONTAINERS
    },
}


class _NumericUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        allowed = ALLOWED_GLOBALS.get((module, name))
        if allowed is None:
            raise PickleRefused(f"refused to unpickle global '{module}.{name}'")
        return allowed

    def persistent_load(self, pid: Any) -> Any:
        raise PickleRefused(f"refused pickle persistent id {pid!r:.80}")


def _materialised(value: Any) -> Any:
    """The loaded value with every stand-in replaced by its array (or dtype)."""
    if isinstance(value, _ArraySpec):
        if getattr(value, "array", None) is None:
            raise PickleRefused("an array was created without its state")
        return value.array
    if isinstance(value, _DtypeSpec):
        return _dtype_of(value)
    if isinstance(value, _NdarrayClass):
        raise PickleRefused("a bare numpy.ndarray class is not data")
    if isinstance(value, dict):
        return type(value)((_materialised(k), _materialised(v)) for k, v in value.items())
    if isinstance(value, list | tuple | set | frozenset):
        return type(value)(_materialised(v) for v in value)
    return value


def load_numeric_pickle(handle: BinaryIO, path: Path) -> Any:
    """Unpickle ``handle`` (``path`` names it in messages) admitting numeric arrays and containers only.

    Raises :class:`PickleRefused` for anything else; other errors (a truncated file) propagate.
    """
    try:
        return _materialised(_NumericUnpickler(handle, encoding="latin1").load())
    except PickleRefused as error:
        raise PickleRefused(
            f"{path}: {error}: an AIST++ motion file holds only numeric numpy arrays; this file is corrupt "
            "or malicious"
        ) from None
