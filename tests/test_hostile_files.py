"""Hostile and damaged files: every reader stays within its limits and fails with a ValueError.

The readers run in a subprocess (hostile_reader.py) that caps its own address
space, so that a regression fails the test rather than the machine. Each
file there is read by ``load_params``, ``load_states``, ``import_optimizer``
and ``Updater.set_states``; the limits checked are those of the issue that
asked for them: with the default ``ReadLimits``, no file of up to 1 MB may
take a reader more than 256 MiB or 10 s, or raise anything but a ValueError.
"""

import io
import json
import pathlib
import struct
import subprocess
import sys
import zipfile

import hypothesis.strategies as st
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from mxnet_encoding import NDArray, Optimizer, array_bytes, dumps, file_bytes, shape_bytes

from mxopt.mxnet import npz
from mxopt.mxnet.files import MXNetFileError, load_params, load_states
from mxopt.optimizer import Optimizer as MXNetOptimizer
from mxopt.optimizer import Updater, create
from mxopt.reading import ReadLimits

HERE = pathlib.Path(__file__).parent
FIXTURES = HERE / "fixtures" / "mxnet_files"
SEEDS = sorted((FIXTURES / "params").iterdir()) + sorted((FIXTURES / "states").iterdir())
MAX_SECONDS, MAX_MIB = 10, 256


def read_all(files: dict[str, bytes], tmp_path: pathlib.Path) -> dict[str, dict]:
    """Each file's outcome with each reader, from one watched subprocess; checks the limits."""
    for name, data in files.items():
        assert len(data) <= 2**20, name
        (tmp_path / name).write_bytes(data)
    run = subprocess.run([sys.executable, str(HERE / "hostile_reader.py"), str(tmp_path)],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, f"the reader died ({run.returncode}):\n{run.stderr[-3000:]}"
    *lines, peak = [json.loads(line) for line in run.stdout.splitlines()]
    outcomes = {line["file"]: line["readers"] for line in lines}
    assert outcomes.keys() == files.keys()
    for name, readers in outcomes.items():
        for reader, outcome in readers.items():
            raised = outcome["raised"]
            assert raised is None or raised["value_error"], (name, reader, raised["trace"])
            assert outcome["seconds"] < MAX_SECONDS, (name, reader, outcome["seconds"])
    assert peak["peak_growth_mib"] < MAX_MIB, peak
    return outcomes


def raised(outcome: dict) -> str | None:
    return outcome["raised"] and outcome["raised"]["type"]


# The cases found by trying, as an attacker would.

def deep_tuple(depth: int) -> bytes:
    """Protocol-4 opcodes pushing a tuple nested ``depth`` deep: ``()`` then TUPLE1s."""
    return b")" + b"\x85" * depth


def billion_laughs(leaf, width=50, levels=5):
    """``width**levels`` paths to one ``leaf``, through lists shared by memo reference."""
    for _ in range(levels):
        leaf = [leaf] * width
    return leaf


def sparse_params(stype: int) -> bytes:
    """A row_sparse (1) or csr (2) array of one stored value, whose dense shape is 1 GiB."""
    shape, storage = ((2**28, 1), (1, 1)) if stype == 1 else ((1, 2**28), (1,))
    aux = [(6, (1,), [0])] if stype == 1 else [(6, (2,), [0, 1]), (6, (1,), [0])]
    head = struct.pack("<Ii", 0xF993FAC9, stype) + shape_bytes(storage) + shape_bytes(shape)
    head += struct.pack("<iii", 1, 0, 0)  # context cpu(0), float32
    head += b"".join(struct.pack("<i", flag) + shape_bytes(s) for flag, s, _ in aux)
    data = np.ones(1, np.float32).tobytes() + b"".join(
        np.array(v, np.int64).tobytes() for _, _, v in aux)
    return file_bytes([head + data])


def npz_blob(members: dict[str, bytes], compression=zipfile.ZIP_STORED) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return out.getvalue()


def npy(array_header: str, data: bytes) -> bytes:
    header = array_header.encode().ljust(118) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header + data


def manifest_npy(manifest: dict) -> bytes:
    text = json.dumps(manifest).encode()
    return npy(f"{{'descr': '|u1', 'fortran_order': False, 'shape': ({len(text)},), }}", text)


KIB64 = NDArray(array_bytes(np.zeros(2**14, np.float32)))
STATES_MANIFEST = {"format": "mxopt.Updater", "version": 1, "optimizer": None,
                   "states": [{"index": 0, "shape": [8192, 16384], "dtype": "float32",
                               "leaves": [1, 2]}],
                   "arrays": [{"dtype": "int32", "shape": []},
                              {"dtype": "float32", "shape": [8192, 16384]}]}
CRAFTED = {
    # LONG_BINPUT 2**26: pickle's own memo would be an array of 2**27 pointers.
    "memo": b"\x80\x04}r" + struct.pack("<I", 2**26) + b".",
    # Hashing a tuple nested 300,000 deep recursed in C until the process died.
    "deep_key": b"\x80\x04}" + deep_tuple(300_000) + b"Ns.",
    "deep_frozenset": b"\x80\x04}K\x00(" + deep_tuple(300_000) + b"\x91s.",
    "deep_set": b"\x80\x02}K\x00cbuiltins\nset\n]" + deep_tuple(300_000) + b"a\x85Rs.",
    "deep_lists": b"\x80\x04}K\x00" + b"]" * 300_000 + b"a" * 299_999 + b"s.",
    "self_holding": b"\x80\x04}K\x00]\x94h\x00a" + b"s.",
    "billion_laughs": dumps({0: billion_laughs(NDArray(array_bytes(np.ones(1, np.float32))))}),
    "billion_laughs_attribute": dumps(({}, Optimizer("SGD", {"x": billion_laughs({"a": [1.5]})}))),
    "wide_tuple_laughs": dumps({(tuple([tuple(range(64))] * 64),) * 64: None}),
    "one_array_2000_times": dumps({i: KIB64 for i in range(2000)}),
    "row_sparse_1gib": sparse_params(1),
    "csr_1gib": sparse_params(2),
    "npz_header_says_1tib": npz_blob({
        "manifest.npy": manifest_npy({**STATES_MANIFEST, "arrays": STATES_MANIFEST["arrays"][:1]}),
        "a0.npy": npy("{'descr': '<u4', 'fortran_order': False, 'shape': (2**38,), }", b"\0" * 4)}),
    "npz_bzip2_bomb": npz_blob({
        "manifest.npy": manifest_npy(STATES_MANIFEST),
        "a0.npy": npy("{'descr': '<u4', 'fortran_order': False, 'shape': (1,), }", b"\0" * 4),
        "a1.npy": npy("{'descr': '<u4', 'fortran_order': False, 'shape': (2**24,), }",
                      bytes(2**26))}, zipfile.ZIP_BZIP2),
    "npz_deflate_bomb": npz_blob({"manifest.npy": manifest_npy(STATES_MANIFEST),
                                  "a1.npy": bytes(2**26)}, zipfile.ZIP_DEFLATED),
    "npz_deep_json": npz_blob({"manifest.npy": npy(
        "{'descr': '|u1', 'fortran_order': False, 'shape': (200000,), }", b"[" * 200_000)}),
    "many_empty_sets": b"\x80\x04(" + b"\x8f" * 900_000 + b"l.",
}


# Which reader must refuse each crafted file: the one it was made for.
REFUSED_BY = {**{name: "load_states" for name in CRAFTED},
              "row_sparse_1gib": "load_params", "csr_1gib": "load_params",
              **{name: "set_states" for name in CRAFTED if name.startswith("npz")}}


def test_crafted_files_stay_within_limits(tmp_path):
    outcomes = read_all(CRAFTED, tmp_path)
    assert raised(outcomes["memo"]["load_states"]) is None  # an empty dict: harmless
    for name, reader in REFUSED_BY.items():
        if name != "memo":
            assert raised(outcomes[name][reader]) in ("MXNetFileError", "ValueError"), name


def test_limits_say_what_was_too_much():
    with pytest.raises(MXNetFileError, match=r"sparse, made dense would take decoding past "
                                             r"67108864 bytes, the most ReadLimits allow"):
        load_params(CRAFTED["row_sparse_1gib"])
    with pytest.raises(MXNetFileError, match="nested more than 64 deep"):
        load_states(CRAFTED["deep_key"])
    with pytest.raises(MXNetFileError, match="nested more than 64 deep .* or holds itself"):
        load_states(CRAFTED["self_holding"])
    with pytest.raises(MXNetFileError, match="would take decoding past"):
        load_states(CRAFTED["one_array_2000_times"])
    with pytest.raises(ValueError, match="is compressed; mxopt archives store"):
        Updater(create("sgd")).set_states(CRAFTED["npz_deflate_bomb"])


def test_limits_can_be_raised_for_a_trusted_file():
    """The 1 GiB of a sparse file made dense, read when the caller allows it (lazily: zeros)."""
    small = sparse_params(1).replace(struct.pack("<q", 2**28), struct.pack("<q", 2**22), 1)
    with pytest.raises(MXNetFileError, match="would take decoding past"):
        load_params(small, limits=ReadLimits(min_bytes=2**20))
    (dense,) = load_params(small, limits=ReadLimits(min_bytes=2**24 + 2**10))
    assert dense.shape == (2**22, 1) and dense[0, 0] == 1 and dense.sum() == 1
    with pytest.raises(ValueError, match="max_depth must be >= 1|bytes_per_byte must be"):
        ReadLimits(max_depth=0)
    with pytest.raises(TypeError, match="limits must be a mxopt.reading.ReadLimits"):
        load_states(b"", limits={"max_depth": 3})


# Decoding one file cannot change what a later file decodes to.

def build_on_global(module: str, name: str, slots: bytes) -> bytes:
    """Protocol 2: BUILD on the global ``module.name`` with the slot state ``{...slots}``."""
    return (b"\x80\x02c" + f"{module}\n{name}\n".encode() + b"N}" + slots + b"\x86b0}.")


def test_a_file_cannot_change_the_stand_ins():
    empty_bytes = dumps(({}, Optimizer("SGD", {"x": b"", "kind": np.dtype("<f4")})), protocol=2)
    before = load_states(empty_bytes).optimizer.attributes
    defaults = b"X\x0c\x00\x00\x00__defaults__C\x05PWNEDN\x86s"
    for hostile in [build_on_global("builtins", "bytes", defaults),
                    build_on_global("__builtin__", "bytes", defaults),
                    build_on_global("_codecs", "encode", defaults),
                    build_on_global("builtins", "object", b"X\t\x00\x00\x00__class__N" + b"s"),
                    build_on_global("numpy", "dtype", defaults),
                    build_on_global("mxnet.optimizer", "SGD", b"X\x06\x00\x00\x00moduleX\x01"
                                    b"\x00\x00\x00xs")]:
        with pytest.raises(MXNetFileError, match="BUILD of a .*, not of an object the pickle made"):
            load_states(hostile)
    after = load_states(empty_bytes).optimizer.attributes
    assert after == before and after["x"] == b"" and after["kind"] == np.dtype("<f4")


# Damaged copies of real MXNet files and of get_states blobs, generated.

def updater_blobs() -> list[bytes]:
    updater = Updater(create("adam", learning_rate=0.1, lr_scheduler=None))
    for index in range(2):
        updater(index, jnp.ones((2, 3)), jnp.zeros((2, 3)))
    return [updater.get_states(False), updater.get_states(True)]


SEED_BLOBS = [p.read_bytes() for p in SEEDS] + updater_blobs()
NUMBERS = [0, 1, 2**31 - 1, 2**31, 2**32 - 1, 2**63 - 1, 2**64 - 1, -1, -(2**31)]


@st.composite
def damaged(draw) -> bytes:
    """A seed file with a few of: bytes flipped, a field set to an extreme number, a span
    repeated, cut out or moved, the file truncated."""
    data = bytearray(draw(st.sampled_from(SEED_BLOBS)))
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(data) - 1))
        kind = draw(st.sampled_from(["flip", "number", "repeat", "cut", "truncate"]))
        if kind == "flip":
            data[at] ^= draw(st.integers(1, 255))
        elif kind == "number":
            fmt = draw(st.sampled_from(["<i", "<I", "<q", "<Q"]))
            value = draw(st.sampled_from(NUMBERS))
            try:
                data[at:at + struct.calcsize(fmt)] = struct.pack(fmt, value)
            except struct.error:
                data[at] = 0xFF
        elif kind in ("repeat", "cut"):
            size = draw(st.integers(1, 64))
            span = data[at:at + size]
            data[at:at + size] = span * draw(st.integers(2, 64)) if kind == "repeat" else b""
        else:
            del data[at:]
        if not data:
            data = bytearray(b"\0")
    return bytes(data)


@settings(max_examples=3, deadline=None)
@given(files=st.lists(damaged(), min_size=150, max_size=150))
def test_damaged_files_stay_within_limits(files, tmp_path_factory):
    read_all({f"{i:03d}": data for i, data in enumerate(files)}, tmp_path_factory.mktemp("d"))


# A refused file changes nothing.

def test_failed_set_states_leaves_the_updater_unchanged():
    updater = Updater(create("adam", learning_rate=0.1))
    updater(0, jnp.ones(3), jnp.zeros(3))
    optimizer, states, weights = updater.optimizer, updater.states, updater._weights
    saved = updater.get_states(dump_optimizer=True)
    good = updater_blobs()[1]
    manifest_at = good.index(b'"states"')
    second_bad = good[:manifest_at] + good[manifest_at:].replace(b'"index": 1', b'"index": [1]', 1)
    for bad in [second_bad, CRAFTED["npz_deflate_bomb"], CRAFTED["billion_laughs_attribute"],
                dumps(({}, Optimizer("SGD", {"lr": 0.1, "sym_info": (), "lr_mult": {0: -1.0},
                                            "wd_mult": {}, "num_update": 0,
                                            "_index_update_count": {}}))),
                (FIXTURES / "states" / "sgd_momentum.states").read_bytes()[:-3]]:
        with pytest.raises(ValueError):
            updater.set_states(bad)
        assert updater.optimizer is optimizer and updater.states is states
        assert updater._weights is weights and updater._mxnet_states == {}
    assert updater.get_states(dump_optimizer=True) == saved


def test_saved_configs_name_only_mxopts_schedulers():
    config = create("sgd", learning_rate=0.1).get_config()
    config["arguments"]["lr_scheduler"] = {"type": "__loader__", "fields": {}}
    with pytest.raises(ValueError, match="lr_scheduler of type '__loader__', not one of"):
        MXNetOptimizer.from_config(config)


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=3)
                    | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=6)


def json_paths(value, path=()):
    """Every path into a JSON value, the value's own included."""
    yield path
    items = value.items() if isinstance(value, dict) else enumerate(value) \
        if isinstance(value, list) else ()
    for key, item in items:
        yield from json_paths(item, (*path, key))


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_damaged_manifests_are_refused_and_change_nothing(data):
    """A get_states blob whose manifest has one value replaced or removed (the archive
    itself intact): set_states restores it or raises a ValueError, leaving the updater as
    it was."""
    source = Updater(create("adam", learning_rate=0.1))
    for index in range(2):
        source(index, jnp.ones((2, 3)), jnp.zeros((2, 3)))
    manifest, arrays = npz.loads(source.get_states(dump_optimizer=True))
    paths = [p for p in json_paths(manifest) if p]
    path = data.draw(st.sampled_from(paths), label="path")
    parent = manifest
    for key in path[:-1]:
        parent = parent[key]
    if data.draw(st.booleans(), label="remove") and isinstance(parent, dict):
        del parent[path[-1]]
    else:
        parent[path[-1]] = data.draw(JSON, label="value")
    updater = Updater(create("sgd", learning_rate=0.5))
    updater(0, jnp.ones(3), jnp.zeros(3))
    before = updater.get_states(dump_optimizer=True)
    optimizer, states = updater.optimizer, updater.states
    try:
        updater.set_states(npz.dumps(manifest, arrays))
    except ValueError:
        assert updater.optimizer is optimizer and updater.states is states
        assert updater.get_states(dump_optimizer=True) == before
