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

_MANIFEST = "manifest"


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


def loads(data: bytes, what: str = "archive") -> tuple[dict, list[jax.Array | np.ndarray]]:
    """The manifest and arrays of :func:`dumps`'s bytes.

    Raises:
      ValueError: ``data`` is not such an archive, or is damaged (the message
        says what, naming ``what``).
    """
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as archive:
            manifest = json.loads(bytes(archive[_MANIFEST]).decode())
            arrays = []
            for i, entry in enumerate(manifest.pop("arrays")):
                bits = archive[f"a{i}"]
                array = bits.view(jnp.dtype(entry["dtype"])).reshape(entry["shape"])
                if "key_impl" in entry:
                    array = jax.random.wrap_key_data(array, impl=entry["key_impl"])
                arrays.append(array)
    except (OSError, KeyError, ValueError, TypeError, zipfile.BadZipFile) as error:
        raise ValueError(f"{what} is not a readable mxopt archive: {error}") from error
    return manifest, arrays
