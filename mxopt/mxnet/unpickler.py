"""A pickle reader for MXNet's state files that builds data, runs nothing and stays in budget.

MXNet saves optimizer states with :mod:`pickle`. This module reads those
pickles with its own machine rather than :mod:`pickle`'s, so that nothing in a
file can do more than build data:

- A global resolves only to a stand-in of :data:`ALLOWED_GLOBALS` (or, for the
  classes of MXNet's, GluonNLP's and GluonCV's optimizer and scheduler modules
  (:data:`OPTIMIZER_PACKAGES`, :data:`SCHEDULER_MODULES`), to a class made
  for this file), each of which builds data from data; nothing named is
  imported or called.
- ``BUILD`` gives state only to an instance a stand-in made, never to a
  global, so one file cannot change what a later file decodes to.
- Every opcode is charged to the file's :class:`mxopt.reading.Budget` before
  it runs (64 bytes for the slot, memo entry or reference it may make, plus
  what it copies), memo indices are dictionary keys, not an array sized by
  the file, and a tuple or frozenset that would be hashed is bounded in depth
  and in size counted through shared references.

The opcodes are those of protocols 0 to 5 that pickled dicts, lists, tuples,
sets, numbers, strings, NumPy values and MXNet's objects use; ``INST``,
``OBJ``, ``EXT*``, ``PERSID``, ``NEWOBJ_EX`` and out-of-band buffers are
refused.
"""

from __future__ import annotations

import codecs
import io
import pickletools
import reprlib
import sys
from typing import Any

import numpy as np

from mxopt.reading import Budget, LimitExceeded

__all__ = ["ALLOWED_GLOBALS", "PickleError", "UnsafeGlobal", "load"]

OP_COST = 64  # bytes charged for each opcode: the stack slot, memo entry or reference it makes


class PickleError(ValueError):
    """The pickle is malformed, or uses what these files never use."""


class UnsafeGlobal(PickleError):
    """The pickle names a global that these files never need."""


# Stand-ins: what the machine hands the pickle in place of each allowed global.

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


class StandIn:
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


class PickledNDArray(StandIn):
    """Any MXNet NDArray class; its state is ``{'handle': one serialized array, or None}``."""


class PickledObject(StandIn):
    """An MXNet optimizer or lr_scheduler class (a subclass for each); its state, __dict__."""
    module = ""


class PickledDType:
    """A numpy dtype as pickled: made by ``_dtype``, then given its state."""

    def __init__(self, dtype: np.dtype):
        self.dtype = dtype

    def __setstate__(self, state):
        if not (isinstance(state, tuple) and len(state) >= 5 and state[1] in ("<", ">", "|", "=")
                and state[2:5] == (None, None, None)):
            raise TypeError(f"dtype state {reprlib.repr(state)} is not a plain numeric dtype's")
        self.dtype = self.dtype.newbyteorder(state[1])


def _dtype(name: str, align: bool = False, copy: bool = False) -> PickledDType:
    """``numpy.dtype(name, align, copy)``, of a plain numeric dtype only."""
    dtype = np.dtype(name) if isinstance(name, str) else None
    if dtype is None or dtype.kind not in "?biufc":
        raise TypeError(f"dtype {reprlib.repr(name)} is not a plain numeric dtype")
    return PickledDType(dtype)


class _Marker:
    """A global a pickle may only pass as an argument: ``object``, ``numpy.ndarray``."""


_OBJECT, _NUMPY_NDARRAY = _Marker(), _Marker()


class PickledArray:
    """A numpy array: ``_frombuffer(...)``, or ``_reconstruct(ndarray, ...)`` then its state."""

    def __init__(self, array: np.ndarray | None = None):
        self.array = array

    def __setstate__(self, state):
        if self.array is not None or not isinstance(state, tuple) or len(state) not in (4, 5):
            raise TypeError("malformed numpy array state")
        shape, dtype, fortran, data = state[-4:]  # after an optional version
        self.array = _frombuffer(data, dtype, shape, "F" if fortran else "C").array


def _frombuffer(data: Any, dtype: PickledDType, shape: tuple, order: str) -> PickledArray:
    if not (isinstance(dtype, PickledDType) and isinstance(shape, tuple) and order in ("C", "F")
            and all(isinstance(d, int) and d >= 0 for d in shape)):
        raise TypeError("malformed numpy array")
    return PickledArray(np.frombuffer(_raw(data), dtype.dtype).reshape(shape, order=order).copy())


def _reconstruct(cls: Any, shape: Any, typecode: Any) -> PickledArray:
    if cls is not _NUMPY_NDARRAY:
        raise TypeError("_reconstruct of a class other than numpy.ndarray")
    return PickledArray()


def _numpy_scalar(dtype: PickledDType, data: Any) -> np.generic:
    if not isinstance(dtype, PickledDType):
        raise TypeError("numpy scalar without a dtype")
    return np.frombuffer(_raw(data), dtype.dtype).reshape(())[()]


def _reconstructor(cls: Any, base: Any, state: Any) -> StandIn:
    """``copyreg._reconstructor``, as protocols 0 and 1 write a plain object."""
    if not (isinstance(cls, type) and issubclass(cls, PickledObject) and base is _OBJECT
            and state is None):
        raise TypeError("copyreg._reconstructor of something other than an MXNet object")
    return cls()


ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    **{(module, name): PickledNDArray for module, name in [
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
"""Each global a state file may name, besides the classes of :data:`OPTIMIZER_PACKAGES` and
:data:`SCHEDULER_MODULES`, and the stand-in the reader returns for it."""

_CALLS = {id(v) for v in ALLOWED_GLOBALS.values() if callable(v)}


# The packages whose optimizer classes and scheduler modules a state file may name: MXNet's,
# GluonNLP's (its BERTAdam) and GluonCV's (its schedulers of the model-zoo recipes).
OPTIMIZER_PACKAGES = ("mxnet.optimizer", "gluonnlp.optimizer")
SCHEDULER_MODULES = ("mxnet.lr_scheduler", "gluoncv.utils.lr_scheduler")


def is_optimizer_module(module: str) -> bool:
    return any(module == package or module.startswith(package + ".")
               for package in OPTIMIZER_PACKAGES)


def _copied(value: Any) -> int:
    """What a stand-in may copy of an argument: its bytes, or a slot per item."""
    if isinstance(value, (bytes, bytearray, str)):
        return len(value)
    if isinstance(value, (tuple, list, set, frozenset, dict)):
        return OP_COST * len(value)
    return 0


def _stringnl(stream: io.BytesIO) -> str:
    """``STRING``'s argument: a quoted, escaped Python 2 str, read as latin-1 bytes."""
    return codecs.escape_decode(pickletools.read_stringnl(stream, decode=False))[0].decode("latin1")


_OPCODES = {op.code.encode("latin1"): op for op in pickletools.opcodes}
_READERS = {"STRING": _stringnl}
_REFUSED = {"INST", "OBJ", "EXT1", "EXT2", "EXT4", "PERSID", "BINPERSID", "NEWOBJ_EX",
            "NEXT_BUFFER", "READONLY_BUFFER"}
_LITERALS = {"NONE": None, "NEWTRUE": True, "NEWFALSE": False}
_EMPTY = {"EMPTY_LIST": list, "EMPTY_DICT": dict, "EMPTY_SET": set, "EMPTY_TUPLE": tuple}
_FROM_MARK = {"LIST": list, "TUPLE": tuple, "FROZENSET": frozenset}
_TUPLE_N = {"TUPLE1": 1, "TUPLE2": 2, "TUPLE3": 3}


class _Machine:
    """The pickle machine: a stack, marks and a memo, run over one file's opcodes."""

    def __init__(self, budget: Budget):
        self.budget = budget
        self.stack: list = []
        self.marks: list[int] = []
        self.memo: dict[int, Any] = {}
        self.classes: dict[tuple[str, str], type] = {}
        # (depth, size through shared references) of each hashable container made, by id;
        # `made` keeps them alive so that ids stay theirs.
        self.hashable: dict[int, tuple[int, int]] = {}
        self.made: list = []

    def run(self, data: bytes) -> Any:
        stream = io.BytesIO(data)
        while True:
            pos = stream.tell()
            op = _OPCODES.get(stream.read(1))
            if op is None:
                raise PickleError(f"byte {pos}: " + ("no STOP opcode" if pos == len(data) else
                                                     f"unknown opcode 0x{data[pos]:02x}"))
            try:
                arg = None if op.arg is None else _READERS.get(op.name, op.arg.reader)(stream)
            except (ValueError, UnicodeDecodeError) as error:
                raise PickleError(f"byte {pos}: bad argument of {op.name}: {error}") from None
            self.budget.spend(OP_COST + _copied(arg), f"the pickle's {op.name} at byte {pos}")
            if op.name == "STOP":
                if len(self.stack) != 1 or self.marks:
                    raise PickleError(f"byte {pos}: STOP with {len(self.stack)} values and "
                                      f"{len(self.marks)} marks on the stack, not one value")
                if stream.tell() != len(data):
                    raise PickleError(f"{len(data) - stream.tell()} trailing bytes after the "
                                      "pickle")
                return self.stack.pop()
            try:
                self.step(op.name, arg)
            except (PickleError, LimitExceeded):
                raise
            except (TypeError, ValueError, KeyError, AttributeError, OverflowError) as error:
                raise PickleError(f"byte {pos}: {op.name}: {error}") from None

    def pop(self) -> Any:
        if not self.stack or (self.marks and self.marks[-1] == len(self.stack)):
            raise PickleError("stack underflow")
        return self.stack.pop()

    def pop_mark(self) -> list:
        if not self.marks:
            raise PickleError("no MARK to pop to")
        at = self.marks.pop()
        items, self.stack[at:] = self.stack[at:], []
        return items

    def top(self) -> Any:
        value = self.pop()
        self.stack.append(value)
        return value

    def push(self, value: Any) -> None:
        """Pushes a container (or a stand-in's result), charged at its size."""
        self.budget.spend(sys.getsizeof(value), "a pickled container")
        if isinstance(value, (tuple, frozenset)) and value:
            depth, size = 1, 1
            for item in value:
                item_depth, item_size = self.hashable.get(id(item), (0, 1))
                depth, size = max(depth, item_depth + 1), size + item_size
            self.budget.check_depth(depth, "a tuple or frozenset")
            if size * OP_COST > self.budget.limit:
                raise PickleError(f"a tuple or frozenset of {size} items counted through shared "
                                  "references: too many to hash")
            self.hashable[id(value)] = depth, size
            self.made.append(value)
        self.stack.append(value)

    def find_class(self, module: Any, name: Any) -> Any:
        if not (isinstance(module, str) and isinstance(name, str)):
            raise PickleError("a global named by something other than two strings")
        if (module, name) in ALLOWED_GLOBALS:
            return ALLOWED_GLOBALS[module, name]
        if name.isidentifier() and (is_optimizer_module(module) or module in SCHEDULER_MODULES):
            if (module, name) not in self.classes:
                self.classes[module, name] = type(name, (PickledObject,), {"module": module})
            return self.classes[module, name]
        raise UnsafeGlobal(f"refusing to unpickle global {module}.{name}: not an MXNet "
                           "optimizer, scheduler or array")

    def call(self, func: Any, args: Any) -> Any:
        """``func(*args)`` for REDUCE and NEWOBJ, of a stand-in only."""
        if not (id(func) in _CALLS or (isinstance(func, type) and issubclass(func, StandIn))):
            raise PickleError(f"a call of a {type(func).__name__}, not of an allowed global")
        if not isinstance(args, tuple):
            raise PickleError(f"call arguments are a {type(args).__name__}, not a tuple")
        self.budget.spend(sum(map(_copied, args)), "a pickled call's arguments")
        return func(*args)

    def step(self, name: str, arg: Any) -> None:  # noqa: C901 (one case per opcode)
        stack = self.stack
        if name in _REFUSED:
            if name == "INST":
                self.find_class(*arg.split(" ", 1))  # a disallowed global is named as such
            raise PickleError(f"opcode {name}, which MXNet's state files do not use")
        if name in ("PROTO", "FRAME"):
            if name == "PROTO" and not 0 <= arg <= 5:
                raise PickleError(f"unknown protocol {arg}")
        elif name in _LITERALS:
            stack.append(_LITERALS[name])
        elif name in _EMPTY:
            self.push(_EMPTY[name]())
        elif name in _FROM_MARK:
            self.push(_FROM_MARK[name](self.pop_mark()))
        elif name in _TUPLE_N:
            items = [self.pop() for _ in range(_TUPLE_N[name])]
            self.push(tuple(reversed(items)))
        elif name == "MARK":
            self.marks.append(len(stack))
        elif name == "POP":
            if self.marks and self.marks[-1] == len(stack):
                self.marks.pop()
            else:
                self.pop()
        elif name == "POP_MARK":
            self.pop_mark()
        elif name == "DUP":
            stack.append(self.top())
        elif name in ("PUT", "BINPUT", "LONG_BINPUT", "MEMOIZE"):
            self.memo[len(self.memo) if name == "MEMOIZE" else int(arg)] = self.top()
        elif name in ("GET", "BINGET", "LONG_BINGET"):
            if int(arg) not in self.memo:
                raise PickleError(f"memo has no entry {int(arg)}")
            stack.append(self.memo[int(arg)])
        elif name == "GLOBAL":
            stack.append(self.find_class(*arg.split(" ", 1)))
        elif name == "STACK_GLOBAL":
            global_name, module = self.pop(), self.pop()
            stack.append(self.find_class(module, global_name))
        elif name == "REDUCE":
            args = self.pop()
            self.push(self.call(self.pop(), args))
        elif name == "NEWOBJ":
            args, cls = self.pop(), self.pop()
            if not (isinstance(cls, type) and issubclass(cls, StandIn)):
                raise PickleError(f"NEWOBJ of a {type(cls).__name__}, not of an MXNet class")
            stack.append(self.call(cls, args))
        elif name == "BUILD":
            state, target = self.pop(), self.top()
            if not isinstance(target, (StandIn, PickledArray, PickledDType)):
                raise PickleError(f"BUILD of a {type(target).__name__}, not of an object the "
                                  "pickle made")
            self.budget.spend(sum(map(_copied, state)) if isinstance(state, tuple)
                              else _copied(state), "a pickled object's state")
            target.__setstate__(state)
        elif name in ("APPEND", "APPENDS"):
            items = [self.pop()] if name == "APPEND" else self.pop_mark()
            self.container(list).extend(items)
        elif name in ("SETITEM", "SETITEMS", "DICT"):
            items = [self.pop() for _ in range(2)][::-1] if name == "SETITEM" else self.pop_mark()
            if len(items) % 2:
                raise PickleError(f"{name} with an odd number of items")
            if name == "DICT":
                self.push({})
            self.container(dict).update(zip(items[::2], items[1::2]))
        elif name == "ADDITEMS":
            items = self.pop_mark()
            self.container(set).update(items)
        else:  # a number, string or bytes: the opcode's argument
            stack.append(arg)

    def container(self, kind: type) -> Any:
        target = self.top()
        if type(target) is not kind:
            raise PickleError(f"adding items to a {type(target).__name__}, not a {kind.__name__}")
        return target


def load(data: bytes, budget: Budget) -> Any:
    """What the pickle ``data`` holds, built of data and stand-ins.

    Raises:
      UnsafeGlobal: the pickle names a global outside those the files use.
      PickleError: the pickle is malformed, or uses opcodes the files never use.
      mxopt.reading.LimitExceeded: decoding it would cost more than ``budget``.
    """
    return _Machine(budget).run(data)
