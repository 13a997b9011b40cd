"""Read the parameter and optimizer-state files Apache MXNet 1.9.1 writes, without MXNet.

**Parameter files** (``mx.nd.save``, ``npx.save``, gluon's ``save_parameters``,
``Module.save_checkpoint``) hold MXNet's NDArray list, little-endian throughout
(``MXNDArraySave`` and ``NDArray::Save``/``Load`` in ``src/ndarray/ndarray.cc``)::

    u64 0x112, u64 reserved, u64 n, n arrays, u64 m (0 or n), m names (u64 length, utf-8)

One array: ``u32 magic``, then by version

- V2 (``0xF993fac9``) and V3 (``0xF993faca``, numpy shape semantics): ``i32 stype``
  (0 dense, 1 row_sparse, 2 csr), the storage shape if sparse, the shape, and --
  unless the array is empty -- ``i32 dev_type, i32 dev_id``, ``i32 dtype flag``,
  per auxiliary array (row_sparse: row indices; csr: indptr, column indices) its
  dtype flag and shape, then the values (storage shape's size) and each
  auxiliary array's data. A shape is ``i32 ndim`` and ndim ``i64`` dims.
- V1 (``0xF993fac8``) and older files without a magic (the first u32 is ndim,
  dims are u32): shape, context, dtype flag, values; always dense.

An *empty* NDArray (no data) is what MXNet's loader makes of a V2 shape of ndim 0
and of an unknown shape (ndim or a dim of -1); it loads as ``None``. In V3 and older
arrays ndim 0 is a scalar; a 0 dim is a zero-size array. Sparse arrays come back dense.

**State files** (``Updater.get_states``, ``gluon.Trainer.save_states``,
``Module.save_optimizer_states``) are pickles of the updater's ``states`` dict,
or of ``(states, optimizer)``. An NDArray pickles as its class called with
``(None,)`` and the state ``{'handle': <one array as above>}``; the optimizer and
its ``lr_scheduler`` pickle through their ``__dict__``. They are read by
:mod:`mxopt.mxnet.unpickler`, which resolves only the globals in
:data:`ALLOWED_GLOBALS` and the classes of MXNet's, GluonNLP's and GluonCV's
optimizer and scheduler modules, each to a local stand-in that holds data:
nothing the pickle names is imported or run.

**Untrusted files.** Every reader here decodes within the file's
:class:`mxopt.reading.ReadLimits` (by default, at most 16 times the file's size
or 64 MiB, and 64 levels of nesting), charging each array, each sparse array
made dense and each pickled object before making it, and reports any file it
cannot read, for whatever reason, as :class:`MXNetFileError`.
"""

from __future__ import annotations

import dataclasses
import math
import os
import reprlib
import struct
from typing import Any

import ml_dtypes
import numpy as np

from mxopt.mxnet import unpickler
from mxopt.mxnet.unpickler import (
    ALLOWED_GLOBALS,  # noqa: F401 (documented here, where the files are)
    OP_COST,
    PickledArray,
    PickledDType,
    PickledNDArray,
    PickledObject,
)
from mxopt.reading import DEFAULT_LIMITS, Budget, LimitExceeded, ReadLimits


class MXNetFileError(ValueError):
    """A file is not what MXNet writes: truncated, corrupt, or of another kind."""


class UnsafePickleError(MXNetFileError):
    """A state file's pickle names a global that these files never need."""


@dataclasses.dataclass(frozen=True)
class MXNetObject:
    """A pickled MXNet optimizer or lr_scheduler, as data."""
    name: str                   # class name, e.g. "SGD", "FactorScheduler"
    module: str                 # e.g. "mxnet.optimizer.optimizer"
    attributes: dict[str, Any]  # its pickled __dict__: python values, numpy values, MXNetObject


@dataclasses.dataclass(frozen=True)
class MXNetStates:
    """What a state file holds."""
    states: dict[int | str, Any]  # index -> None | np.ndarray | tuples/lists of those
    optimizer: MXNetObject | None


_LIST_MAGIC = 0x112
_V1_MAGIC, _V2_MAGIC, _V3_MAGIC = 0xF993FAC8, 0xF993FAC9, 0xF993FACA
# An array older than V1 starts with its ndim, never more than NumPy 1's 32 dims.
_MAX_LEGACY_NDIM = 32
# Storage type (dense, row_sparse, csr) -> its auxiliary arrays, in file order.
_AUX_NAMES = {0: [], 1: ["row indices"], 2: ["indptr", "column indices"]}
# mshadow's TypeFlag (3rdparty/mshadow/mshadow/base.h): flag -> dtype.
_DTYPES = {i: np.dtype(d) for i, d in enumerate(
    ["<f4", "<f8", "<f2", "u1", "<i4", "i1", "<i8", "?", "<i2", "<u2", "<u4", "<u8",
     ml_dtypes.bfloat16])}


class _Reader:
    """A cursor over a file's bytes whose errors name the file, spending its budget."""

    def __init__(self, data: bytes, name: str, budget: Budget):
        self.data, self.name, self.budget, self.pos = data, name, budget, 0

    def error(self, reason: str) -> MXNetFileError:
        return MXNetFileError(f"{self.name}: {reason}")

    def take(self, size: int, what: str) -> bytes:
        left = len(self.data) - self.pos
        if size > left:
            raise self.error(f"truncated: expected {size} bytes of {what}, {left} left")
        self.pos += size
        return self.data[self.pos - size:self.pos]

    def unpack(self, fmt: str, what: str) -> tuple:
        return struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt), what))

    def number(self, fmt: str, what: str) -> int:
        return self.unpack(fmt, what)[0]

    def shape(self, what: str) -> tuple[int, ...] | None:
        """A TShape: i32 ndim, i64 dims; None for ndim -1 (unknown), which stores no dims."""
        ndim = self.number("i", f"ndim of {what}")
        if ndim < -1:
            raise self.error(f"{what} has ndim {ndim}")
        return None if ndim == -1 else self.unpack(f"{ndim}q", what)

    def dtype(self, what: str) -> np.dtype:
        flag = self.number("i", f"dtype flag of {what}")
        if flag not in _DTYPES:
            raise self.error(f"{what} has unknown dtype flag {flag}")
        return _DTYPES[flag]

    def values(self, dtype: np.dtype, shape: tuple[int, ...], what: str) -> np.ndarray:
        if shape is None or any(d < 0 for d in shape):
            raise self.error(f"{what} has shape {shape}: unknown or negative dimensions")
        data = self.take(math.prod(shape) * dtype.itemsize, f"{dtype} data for {what}")
        self.budget.spend(len(data), what)
        try:
            return np.frombuffer(data, dtype).reshape(shape).copy()
        except ValueError:  # zero-size, but with dims whose product overflows numpy's intp
            raise self.error(f"{what} has shape {shape}, too large for numpy") from None

    def end(self, what: str) -> None:
        if self.pos != len(self.data):
            raise self.error(f"{len(self.data) - self.pos} trailing bytes after {what}")


def _read_array(r: _Reader, what: str) -> np.ndarray | None:
    """One serialized NDArray (NDArray::Load), densified; None for an empty NDArray."""
    magic = r.number("I", f"magic of {what}")
    if magic in (_V2_MAGIC, _V3_MAGIC):
        stype = r.number("i", f"storage type of {what}")
        if stype not in _AUX_NAMES or (magic == _V3_MAGIC and stype != 0):
            raise r.error(f"{what} has storage type {stype}, invalid in a "
                          f"V{2 if magic == _V2_MAGIC else 3} NDArray")
        storage_shape = r.shape(f"storage shape of {what}") if stype else None
        shape = r.shape(f"shape of {what}")
        if magic == _V2_MAGIC and shape == ():
            return None
    elif magic == _V1_MAGIC or magic <= _MAX_LEGACY_NDIM:
        stype, storage_shape = 0, None
        shape = (r.shape(f"shape of {what}") if magic == _V1_MAGIC
                 else r.unpack(f"{magic}I", f"shape of {what}"))
    else:
        raise r.error(f"{what} starts with 0x{magic:08x}, not an NDArray magic "
                      f"(0x{_V2_MAGIC:08x}, 0x{_V3_MAGIC:08x}, 0x{_V1_MAGIC:08x}) "
                      f"nor a legacy ndim")
    if shape is None or -1 in shape:
        return None
    r.take(8, f"context of {what}")
    dtype = r.dtype(what)
    specs = [(f"{aux} of {what}", r.dtype(f"{aux} of {what}"), r.shape(f"shape of {aux} of {what}"))
             for aux in _AUX_NAMES[stype]]
    values = r.values(dtype, storage_shape if stype else shape, what)
    aux = [r.values(aux_dtype, aux_shape, name) for name, aux_dtype, aux_shape in specs]
    return values if stype == 0 else _densify(r, stype, shape, values, aux, what)


def _shown(indices: np.ndarray) -> str:
    """The first few of ``indices``, for a message."""
    return reprlib.repr(indices[:7].tolist())


def _densify(r: _Reader, stype: int, shape: tuple, values: np.ndarray,
             aux: list[np.ndarray], what: str) -> np.ndarray:
    """The dense array of a row_sparse (stype 1) or csr (stype 2) array, checked first."""
    if any(a.dtype.kind not in "iu" or a.ndim != 1 for a in aux):
        raise r.error(f"{what} has index arrays that are not 1-d integer arrays")
    if stype == 1:
        (rows,) = aux
        if (values.shape[1:] != shape[1:] or len(rows) != len(values)
                or np.any((rows < 0) | (rows >= shape[0]))):
            raise r.error(f"{what}: row_sparse rows {_shown(rows)} and values of shape "
                          f"{values.shape} do not fit shape {shape}")
        index = rows
    else:
        indptr, cols = aux
        if (len(shape) != 2 or values.ndim != 1 or len(indptr) != shape[0] + 1
                or indptr[0] != 0 or indptr[-1] != len(values) or len(cols) != len(values)
                or np.any(np.diff(indptr) < 0) or np.any((cols < 0) | (cols >= shape[1]))):
            raise r.error(f"{what}: csr indptr {_shown(indptr)}, column indices "
                          f"{_shown(cols)} and {len(values)} values do not fit shape {shape}")
        index = (np.repeat(np.arange(shape[0]), np.diff(indptr)), cols)
    r.budget.spend(math.prod(shape) * values.dtype.itemsize, f"{what}, sparse, made dense")
    dense = np.zeros(shape, values.dtype)
    dense[index] = values
    return dense


def _read_source(source: str | os.PathLike | bytes) -> tuple[bytes, str]:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source), "<bytes>"
    with open(os.fspath(source), "rb") as f:
        return f.read(), os.fspath(source)


def _decode(source: str | os.PathLike | bytes, limits: ReadLimits, decode) -> Any:
    """``decode(data, name, budget)`` of the source's bytes, every failure an MXNetFileError."""
    if not isinstance(limits, ReadLimits):
        raise TypeError(f"limits must be a mxopt.reading.ReadLimits, got {limits!r}")
    data, name = _read_source(source)
    try:
        return decode(data, name, limits.budget(len(data)))
    except unpickler.UnsafeGlobal as error:
        raise UnsafePickleError(f"{name}: {error}") from None
    except unpickler.PickleError as error:
        raise MXNetFileError(f"{name}: not a valid pickle ({error})") from None
    except LimitExceeded as error:
        raise MXNetFileError(f"{name}: {error}") from None


def load_params(source: str | os.PathLike | bytes, *, limits: ReadLimits = DEFAULT_LIMITS
                ) -> dict[str, np.ndarray | None] | list[np.ndarray | None]:
    """The arrays of an MXNet parameter file, as MXNet's ``nd.load`` returns them.

    Args:
      source: the file's path, or its bytes.
      limits: what decoding the file may cost (see :class:`mxopt.reading.ReadLimits`).

    Returns:
      A dict name -> array in file order if the file names its arrays, else a
      list. Sparse arrays come back dense; an empty NDArray as None.

    Raises:
      MXNetFileError: the file is truncated, corrupt, not an NDArray file, or
        would cost more than ``limits`` to decode.
    """
    return _decode(source, limits, _params)


def _params(data: bytes, name: str, budget: Budget) -> dict | list:
    r = _Reader(data, name, budget)
    header, _ = r.unpack("QQ", "file header")
    if header != _LIST_MAGIC:
        raise r.error(f"not an MXNet NDArray file: header 0x{header:x}, expected 0x112")
    arrays = [_read_array(r, f"array {i}") for i in range(r.number("Q", "array count"))]
    count = r.number("Q", "name count")
    if count not in (0, len(arrays)):
        raise r.error(f"{count} names for {len(arrays)} arrays")
    names = []
    for i in range(count):
        try:
            names.append(r.take(r.number("Q", f"length of name {i}"), f"name {i}").decode())
        except UnicodeDecodeError as e:
            raise r.error(f"name {i} is not utf-8: {e}") from None
    r.end("the names" if names else "the arrays")
    if len(set(names)) != len(names):
        duplicates = sorted({n for n in names if names.count(n) > 1})
        raise r.error(f"duplicate names: {reprlib.repr(duplicates)}")
    return dict(zip(names, arrays)) if names else arrays


class _Contents:
    """Turns what the pickle built into data, within the file's budget and depth."""

    def __init__(self, name: str, budget: Budget):
        self.name, self.budget = name, budget
        self.arrays: dict[int, tuple[PickledNDArray, np.ndarray | None]] = {}

    def error(self, reason: str) -> MXNetFileError:
        return MXNetFileError(f"{self.name}: {reason}")

    def enter(self, depth: int, what: str) -> None:
        self.budget.check_depth(depth, what)
        self.budget.spend(OP_COST, what)

    def array(self, value: PickledNDArray, what: str) -> np.ndarray | None:
        """The array a pickled NDArray holds; None for ``{'handle': None}`` (one without data).

        An NDArray the pickle refers to again is decoded once, and copied.
        """
        if id(value) in self.arrays:
            array = self.arrays[id(value)][1]
            if array is not None:
                self.budget.spend(array.nbytes + OP_COST, what)
            return None if array is None else array.copy()
        state = value.state or {}
        if set(state) != {"handle"} or not isinstance(state["handle"], bytes | bytearray | None):
            raise self.error(f"{what} has state {reprlib.repr(value.state)}, not "
                             "{'handle': bytes}")
        array = None
        if state["handle"] is not None:
            r = _Reader(bytes(state["handle"]), self.name, self.budget)
            array = _read_array(r, what)
            r.end(what)
        self.arrays[id(value)] = value, array  # the NDArray kept, so that its id stays its own
        return array

    def state(self, value: Any, where: str, depth: int = 1) -> Any:
        """One index's state: None, an array, or tuples and lists of those."""
        self.enter(depth, where)
        if isinstance(value, PickledNDArray):
            return self.array(value, f"the array of {where}")
        if isinstance(value, (tuple, list)):
            return type(value)(self.state(v, f"{where}[{i}]", depth + 1)
                               for i, v in enumerate(value))
        if value is not None:
            raise self.error(f"{where} holds a {type(value).__name__}, not NDArrays")
        return None

    def value(self, value: Any, depth: int = 1) -> Any:
        """An optimizer's attribute, as data."""
        self.enter(depth, "the optimizer")
        if value is None or isinstance(value, (bool, int, float, str, bytes, np.generic)):
            return value
        if isinstance(value, PickledNDArray):
            return self.array(value, "an array in the optimizer")
        if isinstance(value, PickledObject):
            return MXNetObject(type(value).__name__, value.module,
                               self.value(value.state or {}, depth + 1))
        if isinstance(value, PickledArray) and value.array is not None:
            self.budget.spend(value.array.nbytes, "an array in the optimizer")
            return value.array.copy()
        if isinstance(value, PickledDType):
            return value.dtype
        if isinstance(value, (tuple, list, set, frozenset)):
            return type(value)(self.value(v, depth + 1) for v in value)
        if isinstance(value, dict):
            return {self.value(k, depth + 1): self.value(v, depth + 1) for k, v in value.items()}
        raise self.error(f"unexpected {type(value).__name__} in the pickle")


def load_states(source: str | os.PathLike | bytes, *, limits: ReadLimits = DEFAULT_LIMITS
                ) -> MXNetStates:
    """The optimizer states, and the optimizer if saved, of an MXNet state file.

    Args:
      source: the file's path, or its bytes.
      limits: what decoding the file may cost (see :class:`mxopt.reading.ReadLimits`).

    Returns:
      ``states`` maps each index to None, an array, or the tuple/list nesting
      of arrays MXNet's ``create_state`` made; ``optimizer`` is the pickled
      optimizer as an :class:`MXNetObject` (its ``lr_scheduler`` one too), or
      None if the file was saved without it.

    Raises:
      UnsafePickleError: the pickle names a global outside those these files use.
      MXNetFileError: the file is truncated, corrupt, holds something else, or
        would cost more than ``limits`` to decode.
    """
    return _decode(source, limits, _states)


def _states(data: bytes, name: str, budget: Budget) -> MXNetStates:
    loaded = unpickler.load(data, budget)
    # As Updater.set_states reads it: a pair is (states, optimizer), anything else the states.
    states, optimizer = loaded if isinstance(loaded, tuple) and len(loaded) == 2 else (loaded, None)
    if not (isinstance(states, dict) and all(isinstance(k, int | str) for k in states)):
        raise MXNetFileError(f"{name}: the pickle holds a {type(states).__name__}, not a dict "
                             "of optimizer states by index")
    if optimizer is not None and not (isinstance(optimizer, PickledObject)
                                      and unpickler.is_optimizer_module(optimizer.module)):
        raise MXNetFileError(f"{name}: the pickle's second item is a "
                             f"{type(optimizer).__name__}, not an MXNet optimizer")
    contents = _Contents(name, budget)
    try:
        return MXNetStates({k: contents.state(v, f"state {reprlib.repr(k)}")
                            for k, v in states.items()},
                           None if optimizer is None else contents.value(optimizer))
    except TypeError as e:  # an unhashable key, in a dict or set
        raise MXNetFileError(f"{name}: malformed pickle contents ({e})") from None
