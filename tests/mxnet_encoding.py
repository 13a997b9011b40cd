"""Bytes in MXNet's formats, built here for the tests: an NDArray encoder and a pickler.

The encoder follows ``NDArray::Save`` (see mxopt/mxnet_files.py);
test_mxnet_files checks that it reproduces a file real MXNet wrote. The
pickler writes MXNet's objects as MXNet 1.9.1 pickles them, naming globals it
cannot import.
"""

import copyreg
import io
import pickle
import struct

FLAGS = {"float32": 0, "float64": 1, "float16": 2, "uint8": 3, "int32": 4, "int8": 5, "int64": 6,
         "bool": 7, "int16": 8, "uint16": 9, "uint32": 10, "uint64": 11, "bfloat16": 12}


def shape_bytes(shape, dim="q"):
    """A TShape: i32 ndim, then i64 dims (u32 dims in pre-V1 arrays)."""
    return struct.pack(f"<i{len(shape)}{dim}", len(shape), *shape)


def array_bytes(array, magic=0xF993FAC9):
    """One dense NDArray as MXNet saves it on cpu(0); magic V2, V3, V1 or None (pre-V1)."""
    flag = struct.pack("<i", FLAGS[array.dtype.name])
    if magic is None:  # the first u32 is ndim; dims are u32
        head = shape_bytes(array.shape, "I")
    elif magic == 0xF993FAC8:  # V1: no storage type
        head = struct.pack("<I", magic) + shape_bytes(array.shape)
    else:
        head = struct.pack("<Ii", magic, 0) + shape_bytes(array.shape)
    return head + struct.pack("<ii", 1, 0) + flag + array.tobytes()


def file_bytes(records, names=()):
    """An NDArray list file (MXNDArraySave) holding already serialized arrays."""
    return (struct.pack("<QQQ", 0x112, 0, len(records)) + b"".join(records)
            + struct.pack("<Q", len(names))
            + b"".join(struct.pack("<Q", len(n.encode())) + n.encode() for n in names))


class Global:
    """A global named ``module.name``, pickled by name only (as GLOBAL or STACK_GLOBAL)."""

    def __init__(self, module, name):
        self.module, self.name = module, name

    def __call__(self, *args):
        raise TypeError("a name only")  # pickle wants a callable where it writes a call

    def __reduce__(self):
        return self.name  # a string: pickle it as a global, through save_global below


class Pickler(pickle._Pickler):
    def save_global(self, obj, name=None):
        if not isinstance(obj, Global):
            return super().save_global(obj, name)
        if self.proto >= 4:
            self.save(obj.module)
            self.save(obj.name)
            self.write(pickle.STACK_GLOBAL)
        else:
            self.write(pickle.GLOBAL + f"{obj.module}\n{obj.name}\n".encode())
        self.memoize(obj)


def dumps(value, protocol=4):
    out = io.BytesIO()
    Pickler(out, protocol).dump(value)
    return out.getvalue()


class NDArray:
    """Pickles as MXNet 1.9.1's NDArray.__reduce__: ``(cls, (None,), {'handle': bytes})``."""

    def __init__(self, handle, cls=("mxnet.ndarray.ndarray", "NDArray")):
        self.handle, self.cls = handle, cls

    def __reduce__(self):
        handle = None if self.handle is None else bytearray(self.handle)
        return Global(*self.cls), (None,), {"handle": handle}


class Optimizer:
    """Pickles as MXNet's optimizers and schedulers do, by ``object.__reduce_ex__``: the class
    by NEWOBJ (by copyreg._reconstructor below protocol 2), then its attributes by BUILD."""

    def __init__(self, name, attributes, module="mxnet.optimizer.optimizer"):
        self.cls, self.attributes = Global(module, name), attributes

    @property
    def __class__(self):  # pickle checks that __newobj__'s class is the object's
        return self.cls

    def __reduce_ex__(self, protocol):
        if protocol < 2:
            return copyreg._reconstructor, (self.cls, object, None), self.attributes
        return copyreg.__newobj__, (self.cls,), self.attributes


class Call:
    """Pickles as a call ``func(*args)``: what a hostile pickle runs on load."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args
