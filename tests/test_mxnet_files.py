"""mxopt.mxnet.files reads what MXNet 1.9.1 wrote, bit for bit, and refuses everything else.

The files under fixtures/mxnet_files were written by real MXNet 1.9.1
(tools/record_mxnet_files.py), and expected.json says what MXNet reported they
hold. Bytes built here are marked *constructed*: they cover what MXNet 1.9.1
cannot write (int16/uint16/uint32/uint64 arrays, V1 and pre-V1 arrays) and
hostile or corrupt input, following the format in mxopt/mxnet_files.py; the
encoder that builds them is first checked to reproduce a real MXNet file.
"""

import copyreg
import json
import os
import pathlib
import pickle
import pickletools
import re
import struct
import subprocess

import hypothesis.strategies as st
import ml_dtypes
import numpy as np
import pytest
from hypothesis import given, settings
from mxnet_encoding import (
    Call,
    Global,
    NDArray,
    Optimizer,
    array_bytes,
    dumps,
    file_bytes,
    shape_bytes,
)

from mxopt.mxnet.files import (
    ALLOWED_GLOBALS,
    MXNetFileError,
    MXNetObject,
    MXNetStates,
    UnsafePickleError,
    load_params,
    load_states,
)

FIXTURES = pathlib.Path(__file__).parent / "fixtures" / "mxnet_files"
EXPECTED = json.loads((FIXTURES / "expected.json").read_text())
PARAMS = {name: (FIXTURES / "params" / name).read_bytes() for name in EXPECTED["params"]}
STATES = {name: (FIXTURES / "states" / name).read_bytes() for name in EXPECTED["states"]}


def check_array(actual, expected):
    """``actual`` is the array expected.json describes: dtype, shape, values and raw bytes."""
    dtype = np.dtype(ml_dtypes.bfloat16 if expected["dtype"] == "bfloat16" else expected["dtype"])
    assert isinstance(actual, np.ndarray) and actual.dtype == dtype
    assert actual.shape == tuple(expected["shape"])
    assert actual.tobytes().hex() == expected["hex"]  # bit-exact: NaN payloads, -0.0
    values = actual.astype(np.float32) if expected["dtype"] == "bfloat16" else actual
    np.testing.assert_array_equal(values, np.array(expected["values"], values.dtype))


def check_value(actual, expected):
    """``actual`` matches a value tagged as tools/record_mxnet_files.py encodes it."""
    if isinstance(expected, float):  # a Python float or a numpy float64 (a float subclass)
        assert isinstance(actual, float)
        assert struct.pack("<d", actual) == struct.pack("<d", expected)
    elif not isinstance(expected, dict):
        assert type(actual) is type(expected) and actual == expected
    elif "array" in expected:
        check_array(actual, expected["array"])
    elif "numpy_scalar" in expected:
        assert isinstance(actual, np.generic) and actual.dtype == np.dtype(expected["numpy_scalar"])
        assert actual.tobytes().hex() == expected["hex"]
    elif "object" in expected:
        assert isinstance(actual, MXNetObject)
        assert (actual.name, actual.module) == (expected["object"], expected["module"])
        check_value(actual.attributes, expected["attributes"])
    elif "dict" in expected:
        assert type(actual) is dict and len(actual) == len(expected["dict"])
        for (key, value), (expected_key, expected_value) in zip(actual.items(), expected["dict"]):
            check_value(key, expected_key)
            check_value(value, expected_value)
    else:
        (kind, items), = expected.items()
        assert type(actual) is {"tuple": tuple, "list": list}[kind] and len(actual) == len(items)
        for value, expected_value in zip(actual, items):
            check_value(value, expected_value)


@pytest.mark.parametrize("name", EXPECTED["params"])
@pytest.mark.parametrize("source", ["str", "path", "bytes"])
def test_params_files_hold_what_mxnet_saved(name, source):
    path = FIXTURES / "params" / name
    loaded = load_params({"str": str(path), "path": path, "bytes": path.read_bytes()}[source])
    expected = EXPECTED["params"][name]
    if expected["kind"] == "dict":
        assert type(loaded) is dict and list(loaded) == expected["names"]
        loaded = list(loaded.values())
    assert type(loaded) is list and len(loaded) == len(expected["arrays"])
    for array, expected_array in zip(loaded, expected["arrays"]):
        check_array(array, expected_array)


@pytest.mark.parametrize("name", EXPECTED["states"])
@pytest.mark.parametrize("source", ["path", "bytes"])
def test_state_files_hold_what_mxnet_saved(name, source):
    path = FIXTURES / "states" / name
    loaded = load_states(path if source == "path" else path.read_bytes())
    assert isinstance(loaded, MXNetStates)
    check_value(loaded.states, EXPECTED["states"][name]["states"])
    if EXPECTED["states"][name]["optimizer"] is None:
        assert loaded.optimizer is None
    else:
        check_value(loaded.optimizer, EXPECTED["states"][name]["optimizer"])


def test_numpy_scalars_keep_their_dtype_in_every_protocol():
    # expected.json writes np.float64 as a plain float; the pickle holds a numpy scalar.
    for name in ["sgd_numpy_scalar_optimizer.states", "sgd_numpy_scalar_protocol0.states",
                 "sgd_numpy_scalar_protocol2.states"]:
        attributes = load_states(STATES[name]).optimizer.attributes
        assert type(attributes["lr"]) is np.float32 and attributes["lr"] == np.float32(0.25)
        assert type(attributes["wd"]) is np.float64 and attributes["wd"] == 1e-3


# Constructed bytes (mxnet_encoding); test_encoder_reproduces_mxnet checks the encoder.

def test_encoder_reproduces_mxnet():
    arrays = load_params(PARAMS["nd_list.params"])
    assert file_bytes([array_bytes(a) for a in arrays]) == PARAMS["nd_list.params"]
    shaped = load_params(PARAMS["np_shapes.params"])
    assert file_bytes([array_bytes(a, 0xF993FACA) for a in shaped.values()],
                      list(shaped)) == PARAMS["np_shapes.params"]


@pytest.mark.parametrize("dtype", ["int16", "uint16", "uint32", "uint64"])
def test_dtypes_mxnet_cannot_create_constructed(dtype):
    # In mshadow's TypeFlag, though MXNet 1.9.1 itself fails to load them ("Unknown type enum").
    info = np.iinfo(dtype)
    array = np.array([[info.min, info.max, 1], [0, 2, info.max - 1]], dtype)
    (loaded,) = load_params(file_bytes([array_bytes(array)]))
    assert loaded.dtype == dtype and loaded.tobytes() == array.tobytes()


def test_v1_and_pre_v1_arrays_constructed():
    # MXNet 1.9.1's mx.nd.load reads these three to the same arrays.
    array, scalar = np.arange(6, dtype=np.float64).reshape(2, 3) - 2.5, np.array(4.5, np.float32)
    loaded = load_params(file_bytes([array_bytes(array, 0xF993FAC8), array_bytes(array, None),
                                     array_bytes(scalar, None)], ["v1", "legacy", "scalar"]))
    for value, expected in zip(loaded.values(), [array, array, scalar]):
        assert value.dtype == expected.dtype and value.shape == expected.shape
        assert value.tobytes() == expected.tobytes()


def test_empty_ndarrays_load_as_none_constructed():
    v2_ndim0 = struct.pack("<Iii", 0xF993FAC9, 0, 0)  # V2: ndim 0 is an empty NDArray
    v3_unknown = struct.pack("<Iii", 0xF993FACA, 0, -1)  # V3: unknown ndim
    v3_unknown_dim = struct.pack("<Ii", 0xF993FACA, 0) + shape_bytes((2, -1))
    dense = np.ones(2, np.float32)
    *empty, loaded = load_params(file_bytes([v2_ndim0, v3_unknown, v3_unknown_dim,
                                             array_bytes(dense)]))
    assert empty == [None, None, None] and loaded.tobytes() == dense.tobytes()
    assert load_params(file_bytes([])) == []


@pytest.mark.parametrize("name", EXPECTED["params"])
def test_truncated_params_name_the_file_and_what_is_missing(name):
    for cut in [0, 1, 16, 24, len(PARAMS[name]) // 2, len(PARAMS[name]) - 1]:
        with pytest.raises(MXNetFileError, match=r"^<bytes>: truncated: expected \d+ bytes of "):
            load_params(PARAMS[name][:cut])


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(sorted(PARAMS)), st.data())
def test_params_truncated_anywhere_fail(name, data):
    cut = data.draw(st.integers(0, len(PARAMS[name]) - 1))
    with pytest.raises(MXNetFileError, match="truncated: expected"):
        load_params(PARAMS[name][:cut])


def test_truncation_message_says_how_many_bytes(tmp_path):
    path = tmp_path / "cut.params"
    array0 = 4 + 4 + 4 + 8 + 8 + 4 + 4  # magic, stype, ndim, dim, context, dtype flag, 1 float32
    array1_head = 4 + 4 + 4 + 2 * 8 + 8 + 4  # array 1 is float64 of shape (2, 3)
    path.write_bytes(PARAMS["nd_list.params"][:24 + array0 + array1_head + 8])
    with pytest.raises(MXNetFileError) as error:
        load_params(path)
    assert str(error.value) == (f"{path}: truncated: expected 48 bytes of float64 data for "
                                "array 1, 8 left")


def patched(data, offset, fmt, value):
    return data[:offset] + struct.pack("<" + fmt, value) + data[offset + struct.calcsize(fmt):]


def flag_offset(shape):
    """Where a dense V2 array 0's dtype flag sits: file header, magic, stype, shape, context."""
    return 24 + 4 + 4 + 4 + 8 * len(shape) + 8


@pytest.mark.parametrize("data, message", [
    (b"", "truncated: expected 16 bytes of file header, 0 left"),
    (patched(PARAMS["nd_list.params"], 0, "Q", 0x113), "not an MXNet NDArray file: header 0x113"),
    (patched(PARAMS["nd_list.params"], 24, "I", 0xF993FAC9 ^ 0xFF000000),
     "array 0 starts with 0x0693fac9, not an NDArray magic"),
    (patched(PARAMS["nd_list.params"], flag_offset([1]), "i", 99),
     "array 0 has unknown dtype flag 99"),
    (patched(PARAMS["nd_list.params"], 28, "i", 5), "array 0 has storage type 5"),
    (patched(PARAMS["np_list.params"], 28, "i", 1), "storage type 1, invalid in a V3 NDArray"),
    (patched(PARAMS["nd_list.params"], 32, "i", -3), "shape of array 0 has ndim -3"),
    (patched(PARAMS["nd_list.params"], 36, "q", 2**40),
     "truncated: expected 4398046511104 bytes of float32 data for array 0, "),
    (patched(PARAMS["nd_list.params"], 36, "q", -2),
     "array 0 has shape (-2,): unknown or negative dimensions"),
    (PARAMS["nd_list.params"] + b"\0", "1 trailing bytes after the arrays"),
    (PARAMS["nd_dict.params"] + b"\0\0", "2 trailing bytes after the names"),
    (PARAMS["nd_dict.params"].replace(b"step", b"bias"), "duplicate names: ['bias']"),
    (PARAMS["nd_dict.params"].replace(b"bias", b"bi\xffs"), "name 1 is not utf-8"),
    (file_bytes([array_bytes(np.ones(1, np.float32))], ["a", "b"]), "2 names for 1 arrays"),
])
def test_corrupt_params_say_what_is_wrong(data, message):
    with pytest.raises(MXNetFileError) as error:
        load_params(data)
    assert str(error.value).startswith("<bytes>: ") and message in str(error.value)


def test_corrupt_sparse_indices_are_caught():
    data = PARAMS["sparse.params"]
    rows = struct.pack("<2q", 1, 3)  # the row_sparse array's row indices
    assert data.count(rows) == 1
    with pytest.raises(MXNetFileError, match=r"array 0: row_sparse rows \[1, 5\]"):
        load_params(data.replace(rows, struct.pack("<2q", 1, 5)))
    indptr = struct.pack("<4q", 0, 2, 2, 3)  # the csr array's indptr
    assert data.count(indptr) == 1
    with pytest.raises(MXNetFileError, match=r"array 1: csr indptr \[0, 2, 1, 3\]"):
        load_params(data.replace(indptr, struct.pack("<4q", 0, 2, 1, 3)))


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(sorted(PARAMS) + sorted(STATES)), st.data())
def test_any_flipped_byte_loads_or_fails_cleanly(name, data):
    blob = PARAMS.get(name) or STATES[name]
    offset = data.draw(st.integers(0, len(blob) - 1))
    flipped = blob[:offset] + bytes([blob[offset] ^ data.draw(st.integers(1, 255))]) \
        + blob[offset + 1:]
    try:
        (load_params if name in PARAMS else load_states)(flipped)
    except MXNetFileError as error:
        assert str(error).startswith("<bytes>: ")


def handles(name):
    """The serialized arrays in a fixture pickle, in file order."""
    return [arg for op, arg, _ in pickletools.genops(STATES[name]) if op.name == "SHORT_BINBYTES"]


def test_constructed_pickles_match_mxnets():
    states = {i: NDArray(h) for i, h in enumerate(handles("sgd_momentum.states"))}
    expected = load_states(STATES["sgd_momentum.states"]).states
    for protocol in range(6):
        loaded = load_states(dumps(states, protocol)).states
        assert loaded.keys() == expected.keys()
        for key, array in loaded.items():
            assert array.tobytes() == expected[key].tobytes()


@pytest.mark.parametrize("protocol", range(6))
def test_numpy_values_in_attributes_constructed(protocol):
    """Attributes as NumPy pickles them (real NumPy output around a constructed optimizer)."""
    attributes = {
        "half": np.float16(-1.5), "count": np.int64(-7), "flag": np.bool_(True),
        "z": np.complex64(1 - 2j), "kind": np.dtype(">i2"), "ints": np.arange(6, dtype=">i2"),
        "fortran": np.asfortranarray(np.arange(6.0).reshape(2, 3)), "empty": np.zeros((0, 3)),
        "scalar_array": np.array(3.5, np.float32), "steps": {1, 2}, "pair": (1, [2.5, None]),
        "scheduler": Optimizer("FactorScheduler", {"step": 1}, "mxnet.lr_scheduler"),
    }
    loaded = load_states(dumps(({0: None, "w": (NDArray(None),)}, Optimizer("SGD", attributes)),
                               protocol))
    assert loaded.states == {0: None, "w": (None,)}
    got = loaded.optimizer.attributes
    assert loaded.optimizer.name == "SGD" and got.keys() == attributes.keys()
    for key, value in attributes.items():
        if isinstance(value, np.ndarray | np.generic):
            assert type(got[key]) is type(value) and got[key].dtype == value.dtype
            assert got[key].shape == value.shape and got[key].tobytes() == value.tobytes()
    assert got["kind"] == np.dtype(">i2") and got["kind"].byteorder == ">"
    assert got["steps"] == {1, 2} and got["pair"] == (1, [2.5, None])
    assert got["scheduler"] == MXNetObject("FactorScheduler", "mxnet.lr_scheduler", {"step": 1})


@pytest.mark.parametrize("name", ["trainer_np.states", "sgd_row_sparse.states"])
def test_truncated_or_padded_handles_fail(name):
    for handle in handles(name):
        for cut in [0, 3, len(handle) // 2, len(handle) - 1]:
            with pytest.raises(MXNetFileError, match=r"truncated: .* the array of state 0, "):
                load_states(dumps({0: NDArray(handle[:cut])}))
        with pytest.raises(MXNetFileError, match="1 trailing bytes after the array of state 0$"):
            load_states(dumps({0: NDArray(handle + b"\0")}))


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(sorted(STATES)), st.data())
def test_states_truncated_anywhere_fail(name, data):
    cut = data.draw(st.integers(0, len(STATES[name]) - 1))
    with pytest.raises(MXNetFileError, match=r"^<bytes>: not a valid pickle \("):
        load_states(STATES[name][:cut])


@pytest.mark.parametrize("value, message", [
    (STATES["nag.states"] + b"junk", "4 trailing bytes after the pickle"),
    ([NDArray(None)], "the pickle holds a list, not a dict"),
    (({}, 0.1), "second item is a float, not an MXNet optimizer"),
    (({}, Optimizer("FactorScheduler", {}, "mxnet.lr_scheduler")), "second item is a"),
    ({0: "momentum"}, "state 0 holds a str, not NDArrays"),
    ({0: NDArray(b"", ("mxnet.numpy.multiarray", "ndarray"))},
     "truncated: expected 4 bytes of magic of the array of state 0, 0 left"),
    ({"w": [None, (NDArray(handles("nag.states")[0][:-1]),)]},
     "expected 24 bytes of float32 data for the array of state 'w'[1][0], 23 left"),
    ({0: Global("mxnet.ndarray.sparse", "CSRNDArray")}, "state 0 holds a type"),
    (({}, Optimizer("SGD", {"x": np.array([None])})), "'O8' is not a plain numeric dtype"),
    ({0: Global("builtins", "bytearray")}, "holds a function"),
    # Allowed globals used for something else than what these files use them for.
    ({0: Call(copyreg._reconstructor, Global("mxnet.ndarray.ndarray", "NDArray"), object, None)},
     "copyreg._reconstructor of something other than an MXNet object"),
    (({}, Optimizer("SGD", {"x": Call(Global("numpy.core.multiarray", "_reconstruct"),
                                      Global("numpy", "dtype"), (0,), b"b")})),
     "_reconstruct of a class other than numpy.ndarray"),
    (b"\x80\x04\x8c\x05numpy\x8c\x05dtype\x93)\x81.", "NEWOBJ of a function"),
])
def test_pickles_that_are_not_optimizer_states_are_refused(value, message):
    data = value if isinstance(value, bytes) else dumps(value)
    with pytest.raises(MXNetFileError) as error:
        load_states(data)
    assert not isinstance(error.value, UnsafePickleError) and message in str(error.value)


def test_bytes_are_never_made_from_a_length():
    class Huge:
        def __reduce__(self):
            return bytearray, (10**15,)  # would allocate a petabyte

    with pytest.raises(MXNetFileError, match="no bytes from a int"):
        load_states(dumps({0: Huge()}))


def hostile_pickles(marker):
    touch, system = f"touch {marker}", f"{os.system.__module__}.system"  # posix.system
    yield system, pickle.dumps(Call(os.system, touch), protocol=4)  # STACK_GLOBAL
    yield system, pickle.dumps(Call(os.system, touch), protocol=0)  # GLOBAL
    yield "os.system", f"(S'{touch}'\nios\nsystem\n.".encode()  # INST
    yield "builtins.eval", pickle.dumps(Call(eval, f"__import__('os').system('{touch}')"), 3)
    yield "subprocess.Popen", pickle.dumps(Call(subprocess.Popen, ["touch", str(marker)]))
    yield "numpy.load", dumps(Call(Global("numpy", "load"), str(marker)))
    # Inside otherwise valid states, and under names that look like MXNet's.
    yield system, pickle.dumps({0: None, 1: Call(os.system, touch)})
    for module, name in [("mxnet.ndarray.ndarray", "load"), ("mxnet.base", "_LIB"),
                         ("mxnet.optimizer_evil", "SGD"), ("mxnet.optimizer.optimizer", "SGD.x"),
                         ("numpy.core.multiarray", "_vec_string"), ("copyreg", "__newobj__")]:
        yield f"{module}.{name}", dumps(({}, Call(Global(module, name), touch)), protocol=2)


def test_hostile_pickles_run_nothing(tmp_path):
    marker = tmp_path / "pwned"
    for refused, data in hostile_pickles(marker):
        with pytest.raises(UnsafePickleError) as error:
            load_states(data)
        assert str(error.value) == (f"<bytes>: refusing to unpickle global {refused}: not an "
                                    "MXNet optimizer, scheduler or array")
        assert not marker.exists()
    path = tmp_path / "evil.states"
    path.write_bytes(pickle.dumps(Call(os.system, f"touch {marker}")))
    with pytest.raises(UnsafePickleError, match=f"^{re.escape(str(path))}: refusing .*system"):
        load_states(path)
    assert not marker.exists()
    pickle.loads(path.read_bytes())  # the same bytes, unpickled by pickle itself, do run
    assert marker.exists()


def test_allowed_globals_are_all_stand_ins():
    # Not one real callable: each allowed global resolves to something defined by mxnet_pickle.
    assert all((value if callable(value) else type(value)).__module__ == "mxopt.mxnet.unpickler"
               for value in ALLOWED_GLOBALS.values())
