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
its ``lr_scheduler`` pickle through their ``__dict__``. They are read by an
unpickler that resolves only the globals in :data:`ALLOWED_GLOBALS` and the
classes of ``mxnet.optimizer*`` and ``mxnet.lr_scheduler``, each to a local
stand-in that holds data: nothing the pickle names is imported or run.
"""

from __future__ import annotations

import dataclasses
import io
import math
import os
import pickle
import struct
from typing import Any

import ml_dtypes
import numpy as np


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
    """A cursor over a file's bytes whose errors name the file."""

    def __init__(self, data: bytes, name: str):
        self.data, self.name, self.pos = data, name, 0

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


def _densify(r: _Reader, stype: int, shape: tuple, values: np.ndarray,
             aux: list[np.ndarray], what: str) -> np.ndarray:
    """The dense array of a row_sparse (stype 1) or csr (stype 2) array, checked first."""
    if any(a.dtype.kind not in "iu" or a.ndim != 1 for a in aux):
        raise r.error(f"{what} has index arrays that are not 1-d integer arrays")
    if stype == 1:
        (rows,) = aux
        if (values.shape[1:] != shape[1:] or len(rows) != len(values)
                or np.any((rows < 0) | (rows >= shape[0]))):
            raise r.error(f"{what}: row_sparse rows {rows.tolist()} and values of shape "
                          f"{values.shape} do not fit shape {shape}")
        index = rows
    else:
        indptr, cols = aux
        if (len(shape) != 2 or values.ndim != 1 or len(indptr) != shape[0] + 1
                or indptr[0] != 0 or indptr[-1] != len(values) or len(cols) != len(values)
                or np.any(np.diff(indptr) < 0) or np.any((cols < 0) | (cols >= shape[1]))):
            raise r.error(f"{what}: csr indptr {indptr.tolist()}, column indices "
                          f"{cols.tolist()} and {len(values)} values do not fit shape {shape}")
        index = (np.repeat(np.arange(shape[0]), np.diff(indptr)), cols)
    try:
        dense = np.zeros(shape, values.dtype)
    except (MemoryError, ValueError):
        raise r.error(f"{what}: sparse, of dense shape {shape}: too large to densify") from None
    dense[index] = values
    return dense


def _read_source(source: str | os.PathLike | bytes) -> tuple[bytes, str]:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source), "<bytes>"
    with open(os.fspath(source), "rb") as f:
        return f.read(), os.fspath(source)


def load_params(source: str | os.PathLike | bytes
                ) -> dict[str, np.ndarray | None] | list[np.ndarray | None]:
    """The arrays of an MXNet parameter file, as MXNet's ``nd.load`` returns them.

    Args:
      source: the file's path, or its bytes.

    Returns:
      A dict name -> array in file order if the file names its arrays, else a
      list. Sparse arrays come back dense; an empty NDArray as None.

    Raises:
      MXNetFileError: the file is truncated, corrupt, or not an NDArray file.
    """
    r = _Reader(*_read_source(source))
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
        raise r.error(f"duplicate names: {sorted({n for n in names if names.count(n) > 1})}")
    return dict(zip(names, arrays)) if names else arrays


# Stand-ins: what the unpickler hands the pickle in place of each allowed global.

def _bytes(data: Any = b"", encoding: str | None = None) -> bytes:
    """``bytes(data)``, or ``data.encode(encoding)`` as protocols 0-2 write bytes.

    Never ``bytes(n)`` of an int: that would allocate n bytes on the pickle's say-so.
    """
    if isinstance(data, str) and encoding in ("latin1", "latin-1"):
        return data.encode("latin1")
    if isinstance(data, (bytes, bytearray)) and encoding is None:
        return bytes(data)
    raise TypeError(f"no bytes from a {type(data).__name__} with encoding {encoding!r}")


def _raw(data: Any) -> bytes:
    """The raw data of a numpy pickle: bytes, or a str of latin-1 bytes (Python 2's str)."""
    return _bytes(data, "latin1" if isinstance(data, str) else None)


def _set(items: list | tuple = ()) -> set:
    """``set(items)``, as protocols 0-3 write a set, of a pickled list only."""
    if not isinstance(items, (list, tuple)):
        raise TypeError(f"set of a {type(items).__name__}")
    return set(items)


class _StandIn:
    """An instance made empty (``cls(None)`` or ``cls.__new__(cls)``), then given its state."""
    state: dict[str, Any] | None = None

    def __new__(cls, *args):
        if len(args) > 1 or (args and args[0] is not None):
            raise TypeError(f"{cls.__name__} called with arguments")
        return super().__new__(cls)

    def __setstate__(self, state):
        if self.state is not None or not (isinstance(state, dict)
                                          and all(isinstance(k, str) for k in state)):
            raise TypeError(f"malformed state for {type(self).__name__}")
        self.state = state


class _PickledNDArray(_StandIn):
    """Any MXNet NDArray class; its state is ``{'handle': one serialized array, or None}``."""


class _PickledObject(_StandIn):
    """An MXNet optimizer or lr_scheduler class (a subclass for each); its state, __dict__."""
    module = ""


class _DType:
    """A numpy dtype as pickled: made by ``_dtype``, then given its state."""

    def __init__(self, dtype: np.dtype):
        self.dtype = dtype

    def __setstate__(self, state):
        if not (isinstance(state, tuple) and len(state) >= 5 and state[1] in ("<", ">", "|", "=")
                and state[2:5] == (None, None, None)):
            raise TypeError(f"dtype state {state!r} is not a plain numeric dtype's")
        self.dtype = self.dtype.newbyteorder(state[1])


def _dtype(name: str, align: bool = False, copy: bool = False) -> _DType:
    """``numpy.dtype(name, align, copy)``, of a plain numeric dtype only."""
    dtype = np.dtype(name) if isinstance(name, str) else None
    if dtype is None or dtype.kind not in "?biufc":
        raise TypeError(f"dtype {name!r} is not a plain numeric dtype")
    return _DType(dtype)


class _Marker:
    """A global a pickle may only pass as an argument: ``object``, ``numpy.ndarray``."""


_OBJECT, _NUMPY_NDARRAY = _Marker(), _Marker()


class _NumpyArray:
    """A numpy array: ``_frombuffer(...)``, or ``_reconstruct(ndarray, ...)`` then its state."""

    def __init__(self, array: np.ndarray | None = None):
        self.array = array

    def __setstate__(self, state):
        if self.array is not None or not isinstance(state, tuple) or len(state) not in (4, 5):
            raise TypeError("malformed numpy array state")
        shape, dtype, fortran, data = state[-4:]  # after an optional version
        self.array = _frombuffer(data, dtype, shape, "F" if fortran else "C").array


def _frombuffer(data: Any, dtype: _DType, shape: tuple, order: str) -> _NumpyArray:
    if not (isinstance(dtype, _DType) and isinstance(shape, tuple) and order in ("C", "F")
            and all(isinstance(d, int) and d >= 0 for d in shape)):
        raise TypeError("malformed numpy array")
    return _NumpyArray(np.frombuffer(_raw(data), dtype.dtype).reshape(shape, order=order).copy())


def _reconstruct(cls: Any, shape: Any, typecode: Any) -> _NumpyArray:
    if cls is not _NUMPY_NDARRAY:
        raise TypeError("_reconstruct of a class other than numpy.ndarray")
    return _NumpyArray()


def _numpy_scalar(dtype: _DType, data: Any) -> np.generic:
    if not isinstance(dtype, _DType):
        raise TypeError("numpy scalar without a dtype")
    return np.frombuffer(_raw(data), dtype.dtype).reshape(())[()]


def _reconstructor(cls: Any, base: Any, state: Any) -> _StandIn:
    """``copyreg._reconstructor``, as protocols 0 and 1 write a plain object."""
    if not (isinstance(cls, type) and issubclass(cls, _PickledObject) and base is _OBJECT
            and state is None):
        raise TypeError("copyreg._reconstructor of something other than an MXNet object")
    return cls()


ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    **{(module, name): _PickledNDArray for module, name in [
        ("mxnet.ndarray.ndarray", "NDArray"), ("mxnet.ndarray.sparse", "RowSparseNDArray"),
        ("mxnet.ndarray.sparse", "CSRNDArray"), ("mxnet.numpy.multiarray", "ndarray")]},
    **{(builtins, name): standin for builtins in ("builtins", "__builtin__")  # Python 3, 2
       for name, standin in [("bytearray", lambda *a: bytearray(_bytes(*a))), ("bytes", _bytes),
                             ("set", _set), ("frozenset", lambda *a: frozenset(_set(*a))),
                             ("object", _OBJECT)]},
    ("_codecs", "encode"): _bytes,
    ("copyreg", "_reconstructor"): _reconstructor,
    ("copy_reg", "_reconstructor"): _reconstructor,
    ("numpy", "dtype"): _dtype,
    ("numpy", "ndarray"): _NUMPY_NDARRAY,
    **{(f"numpy.{core}.{module}", name): standin for core in ("core", "_core")  # NumPy 1, 2
       for module, name, standin in [("multiarray", "scalar", _numpy_scalar),
                                     ("multiarray", "_reconstruct", _reconstruct),
                                     ("numeric", "_frombuffer", _frombuffer)]},
}
"""Each global a state file may name, besides the classes of ``mxnet.optimizer`` and its
submodules and of ``mxnet.lr_scheduler``, and the stand-in the unpickler returns for it."""


def _is_optimizer_module(module: str) -> bool:
    return module == "mxnet.optimizer" or module.startswith("mxnet.optimizer.")


class _Unpickler(pickle.Unpickler):
    """Resolves ALLOWED_GLOBALS and MXNet optimizer and scheduler classes; refuses the rest."""

    def __init__(self, stream: io.BytesIO, name: str):
        super().__init__(stream, encoding="latin1")  # a Python 2 str holds bytes
        self.name, self.classes = name, {}

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in ALLOWED_GLOBALS:
            return ALLOWED_GLOBALS[module, name]
        if name.isidentifier() and (_is_optimizer_module(module)
                                    or module == "mxnet.lr_scheduler"):
            if (module, name) not in self.classes:
                self.classes[module, name] = type(name, (_PickledObject,), {"module": module})
            return self.classes[module, name]
        raise UnsafePickleError(f"{self.name}: refusing to unpickle global {module}.{name}: "
                                "not an MXNet optimizer, scheduler or array")


def _array(value: _PickledNDArray, name: str, what: str) -> np.ndarray | None:
    """The array a pickled NDArray holds; None for ``{'handle': None}`` (one without data)."""
    state = value.state or {}
    if set(state) != {"handle"} or not isinstance(state["handle"], bytes | bytearray | None):
        raise MXNetFileError(f"{name}: {what} has state {value.state!r}, not {{'handle': bytes}}")
    if state["handle"] is None:
        return None
    r = _Reader(bytes(state["handle"]), name)
    array = _read_array(r, what)
    r.end(what)
    return array


def _state(value: Any, name: str, where: str) -> Any:
    """One index's state: None, an array, or tuples and lists of those."""
    if isinstance(value, _PickledNDArray):
        return _array(value, name, f"the array of {where}")
    if isinstance(value, (tuple, list)):
        return type(value)(_state(v, name, f"{where}[{i}]") for i, v in enumerate(value))
    if value is not None:
        raise MXNetFileError(f"{name}: {where} holds a {type(value).__name__}, not NDArrays")
    return None


def _value(value: Any, name: str) -> Any:
    """An optimizer's attribute, as data."""
    if value is None or isinstance(value, (bool, int, float, str, bytes, np.generic)):
        return value
    if isinstance(value, _PickledNDArray):
        return _array(value, name, "an array in the optimizer")
    if isinstance(value, _PickledObject):
        return MXNetObject(type(value).__name__, value.module, _value(value.state or {}, name))
    if isinstance(value, _NumpyArray) and value.array is not None:
        return value.array
    if isinstance(value, _DType):
        return value.dtype
    if isinstance(value, (tuple, list, set, frozenset)):
        return type(value)(_value(v, name) for v in value)
    if isinstance(value, dict):
        return {_value(k, name): _value(v, name) for k, v in value.items()}
    raise MXNetFileError(f"{name}: unexpected {type(value).__name__} in the pickle")


def load_states(source: str | os.PathLike | bytes) -> MXNetStates:
    """The optimizer states, and the optimizer if saved, of an MXNet state file.

    Args:
      source: the file's path, or its bytes.

    Returns:
      ``states`` maps each index to None, an array, or the tuple/list nesting
      of arrays MXNet's ``create_state`` made; ``optimizer`` is the pickled
      optimizer as an :class:`MXNetObject` (its ``lr_scheduler`` one too), or
      None if the file was saved without it.

    Raises:
      UnsafePickleError: the pickle names a global outside those these files use.
      MXNetFileError: the file is truncated, corrupt, or holds something else.
    """
    data, name = _read_source(source)
    stream = io.BytesIO(data)
    try:
        loaded = _Unpickler(stream, name).load()
    except MXNetFileError:
        raise
    except Exception as e:  # whatever a corrupt pickle trips over, it is reported alike
        raise MXNetFileError(f"{name}: not a valid pickle ({type(e).__name__}: {e})") from None
    if stream.tell() != len(data):
        raise MXNetFileError(f"{name}: {len(data) - stream.tell()} trailing bytes after the pickle")
    # As Updater.set_states reads it: a pair is (states, optimizer), anything else the states.
    states, optimizer = loaded if isinstance(loaded, tuple) and len(loaded) == 2 else (loaded, None)
    if not (isinstance(states, dict) and all(isinstance(k, int | str) for k in states)):
        raise MXNetFileError(f"{name}: the pickle holds a {type(states).__name__}, not a dict "
                             "of optimizer states by index")
    if optimizer is not None and not (isinstance(optimizer, _PickledObject)
                                      and _is_optimizer_module(optimizer.module)):
        raise MXNetFileError(f"{name}: the pickle's second item is a "
                             f"{type(optimizer).__name__}, not an MXNet optimizer")
    try:
        return MXNetStates({k: _state(v, name, f"state {k!r}") for k, v in states.items()},
                           None if optimizer is None else _value(optimizer, name))
    except (RecursionError, TypeError) as e:  # a self-referring or unhashable structure
        raise MXNetFileError(f"{name}: malformed pickle contents ({e})") from None
