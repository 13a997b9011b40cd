"""Arrays and a JSON manifest in one ``.npz`` archive: a byte format that runs no code.

It is read with ``np.load(..., allow_pickle=False)``. Each array is stored
as its raw bits (unsigned integers of its width), its dtype named in the
manifest, so that dtypes NumPy lacks (bfloat16), NaN payloads and ``-0.0``
come back exactly; a typed PRNG key is stored as its key data and its
implementation's name.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from mxopt.reading import DEFAULT_LIMITS, Budget, ReadLimits

_MANIFEST = "manifest"
_JSON_COST = 32  # bytes of budget per byte of JSON: what Python's objects of it may take


def _is_key(leaf) -> bool:
    return jnp.issubdtype(jnp.result_type(leaf), jax.dtypes.prng_key)


def dumps(manifest: dict, arrays: Sequence[jax.Array | np.ndarray]) -> bytes:
    """``manifest`` (JSON-able) and ``arrays`` as the bytes of one archive."""
    stored, described = {}, []
    for i, array in enumerate(arrays):
        entry = {}
        if _is_key(array):
            entry["key_impl"] = str(jax.random.key_impl(array))
            array = jax.random.key_data(array)
        array = np.asarray(array)
        entry.update(dtype=array.dtype.name, shape=list(array.shape))
        stored[f"a{i}"] = array.reshape(-1).view(f"u{array.dtype.itemsize}")
        described.append(entry)
    text = json.dumps({"arrays": described, **manifest})
    buffer = io.BytesIO()
    np.savez(buffer, **{_MANIFEST: np.frombuffer(text.encode(), np.uint8)}, **stored)
    return buffer.getvalue()


def loads(data: bytes, what: str = "archive", *, limits: ReadLimits = DEFAULT_LIMITS
          ) -> tuple[dict, list[jax.Array | np.ndarray]]:
    """The manifest and arrays of :func:`dumps`'s bytes.

    The archive is read within ``limits``: its members must be stored
    uncompressed, as :func:`dumps` writes them, so that an array takes no more
    memory than its bytes in ``data``.

    Raises:
      ValueError: ``data`` is not such an archive, is damaged, or would cost
        more than ``limits`` to read (the message says what, naming ``what``).
    """
    budget = limits.budget(len(data))
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            text = _member(archive, _MANIFEST, budget).tobytes().decode()
            budget.spend(_JSON_COST * len(text), "the manifest")
            manifest = json.loads(text)
            arrays = [_array(entry, _member(archive, f"a{i}", budget))
                      for i, entry in enumerate(manifest.pop("arrays"))]
    except (OSError, EOFError, KeyError, ValueError, TypeError, AttributeError, IndexError,
            OverflowError, RecursionError, NotImplementedError, zipfile.BadZipFile) as error:
        # What zipfile, numpy's .npy header and json raise for a damaged archive.
        raise ValueError(f"{what}: not a readable mxopt archive ({error})") from None
    return manifest, arrays


def _member(archive: zipfile.ZipFile, name: str, budget: Budget) -> np.ndarray:
    """The 1-d unsigned array stored as ``name.npy``, its size checked before it is read."""
    info = archive.getinfo(f"{name}.npy")
    if info.compress_type != zipfile.ZIP_STORED:
        raise ValueError(f"{name} is compressed; mxopt archives store their arrays as they are")
    budget.spend(info.file_size, name)
    with archive.open(info) as member:
        version = np.lib.format.read_magic(member)
        read_header = {(1, 0): np.lib.format.read_array_header_1_0,
                       (2, 0): np.lib.format.read_array_header_2_0}.get(version)
        if read_header is None:
            raise ValueError(f"{name} is an .npy of version {version}")
        shape, fortran, dtype = read_header(member)
        if len(shape) != 1 or dtype.kind != "u" or dtype.byteorder == ">":
            raise ValueError(f"{name} is {dtype}{list(shape)}, not the raw bits of an array")
        size = shape[0] * dtype.itemsize
        raw = member.read(size + 1)
    if len(raw) != size:
        raise ValueError(f"{name} holds {len(raw)} bytes, its header says {size}")
    return np.frombuffer(raw, dtype)


def _array(entry: dict, bits: np.ndarray) -> jax.Array | np.ndarray:
    """The array ``entry`` of the manifest describes, of its stored bits."""
    dtype = jnp.dtype(entry["dtype"])
    if not (jnp.issubdtype(dtype, jnp.number) or jnp.issubdtype(dtype, jnp.bool_)):
        raise ValueError(f"an array of dtype {dtype}, not a numeric one")
    shape = tuple(entry["shape"])
    if not all(isinstance(d, int) and d >= 0 for d in shape):
        raise ValueError(f"an array of shape {list(shape)}")
    array = bits.view(dtype).reshape(shape)
    if "key_impl" in entry:
        array = jax.random.wrap_key_data(array, impl=entry["key_impl"])
    return array
