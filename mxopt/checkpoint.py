"""Saving and restoring optimizer states, or any pytree of arrays, with Orbax.

A checkpoint is a directory written by ``orbax-checkpoint``, JAX's standard
checkpoint library (also what Flax and MaxText use). Orbax was picked over
``flax.serialization`` because it stores each array as it is (float16 and
bfloat16 masters, int32 counts, typed and raw PRNG keys) without a trip
through one in-memory blob, restores onto the devices and shardings of a
template, and writes from many hosts at once; ``flax.serialization`` would
bring in flax for a msgpack of host arrays.

The state's structure is not saved as Python objects (nothing to unpickle):
:func:`restore` takes a template with the structure to fill, such as
``tx.init(params)``, so a restored state is of the same NamedTuple classes
as one never saved, and a run restored at step ``k`` continues bit for bit
as the uninterrupted run. For step-numbered checkpoints, retention and
asynchronous saving, use ``orbax.checkpoint.CheckpointManager`` directly on
the same trees.
"""

from __future__ import annotations

import os
import pathlib
import shutil

import chex
import jax
import numpy as np
import orbax.checkpoint as ocp
from jax.experimental import multihost_utils


def _path(directory: str | os.PathLike) -> pathlib.Path:
    return pathlib.Path(directory).expanduser().absolute()  # Orbax wants absolute paths


def _beside(path: pathlib.Path, role: str) -> pathlib.Path:
    """Where a save writes the new checkpoint (``new``) or keeps the one it replaces (``old``)."""
    return path.with_name(f".{path.name}.mxopt-{role}")


def _recover(path: pathlib.Path) -> None:
    """Finishes what an interrupted save left: the checkpoint back at ``path``, no leftovers.

    A save replaces ``path`` in two renames, ``path -> old`` then ``new -> path``;
    between them ``old`` is the checkpoint.
    """
    old = _beside(path, "old")
    if old.exists():
        if path.exists():
            shutil.rmtree(old)
        else:
            old.rename(path)
    for leftover in path.parent.glob(f"{_beside(path, 'new').name}*"):
        shutil.rmtree(leftover)  # a new checkpoint never renamed into place, or Orbax's temporary


def _on_primary(action, name: str) -> None:
    """``action()`` on the first process only, then every process waits for it."""
    if jax.process_index() == 0:
        action()
    if jax.process_count() > 1:
        multihost_utils.sync_global_devices(f"mxopt.checkpoint.{name}")


def save(directory: str | os.PathLike, tree: chex.ArrayTree, *,
         overwrite: bool = False) -> pathlib.Path:
    """Writes ``tree`` (an optimizer state, or ``(params, state)``, ...) to ``directory``.

    The checkpoint is written beside ``directory`` and renamed into place once
    complete. A save interrupted at any moment (a crash, a kill, a full disk)
    leaves either the old checkpoint or the new one, which :func:`restore`
    reads and the next save tidies.

    Args:
      directory: the checkpoint's directory; it must not exist unless
        ``overwrite``.
      tree: a pytree of arrays.
      overwrite: replace an existing checkpoint.

    Returns:
      The checkpoint's absolute path, once it is completely written.
    """
    path = _path(directory)
    _on_primary(lambda: _recover(path), "recover")
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True to replace it")
    new, old = _beside(path, "new"), _beside(path, "old")
    with ocp.StandardCheckpointer() as checkpointer:
        checkpointer.save(new, tree)
        checkpointer.wait_until_finished()

    def replace():
        if path.exists():
            path.rename(old)
        new.rename(path)
        if old.exists():
            shutil.rmtree(old)

    _on_primary(replace, "replace")
    return path


# What Orbax raises for a directory that is not a complete checkpoint.
_DAMAGED = (OSError, ValueError, KeyError, TypeError, AttributeError)


def _readable(path: pathlib.Path) -> pathlib.Path:
    """The checkpoint to read for ``path``: itself, or the old one of an interrupted save."""
    if path.is_dir():
        return path
    if _beside(path, "old").is_dir():
        return _beside(path, "old")
    raise FileNotFoundError(f"no checkpoint at {path}")


def _as_array(leaf):
    """A Python number as the array JAX makes of it (``step=0`` of a fresh ``TrainState``
    is the int32 a jitted step makes it), other leaves as they are."""
    return jax.ShapeDtypeStruct((), jax.numpy.asarray(leaf).dtype) if np.isscalar(leaf) else leaf


def _described(tree) -> dict[str, tuple]:
    """Each leaf's ``(shape, dtype)`` as saved, by its path (NamedTuple fields and dict keys alike).

    A typed PRNG key is saved as its key data; dtypes are those JAX computes
    in (int64 is int32 unless ``jax_enable_x64``).
    """
    def stored(leaf):
        leaf = _as_array(leaf)
        if jax.numpy.issubdtype(leaf.dtype, jax.dtypes.prng_key):
            leaf = jax.eval_shape(jax.random.key_data, leaf)
        return tuple(leaf.shape), str(jax.dtypes.canonicalize_dtype(leaf.dtype))

    leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
    return {jax.tree_util.keystr(path, simple=True, separator="/"): stored(leaf)
            for path, leaf in leaves}


def restore(directory: str | os.PathLike, like: chex.ArrayTree) -> chex.ArrayTree:
    """Reads the checkpoint in ``directory`` into the structure of ``like``.

    Args:
      directory: a checkpoint written by :func:`save`.
      like: a pytree of the saved structure, whose leaves (arrays or
        ``jax.ShapeDtypeStruct``) give each array's shape, dtype and sharding,
        e.g. ``tx.init(params)``. Its values are not used.

    Raises:
      FileNotFoundError: no checkpoint in ``directory``.
      ValueError: the checkpoint's metadata is missing or damaged, or it
        holds other paths, shapes or dtypes than ``like`` (the message names
        the first difference).
    """
    path = _readable(_path(directory))
    with ocp.StandardCheckpointer() as checkpointer:
        try:
            saved = _described(checkpointer.metadata(path).item_metadata.tree)
        except _DAMAGED as error:
            raise ValueError(f"{path} holds no readable checkpoint: its metadata is missing "
                             f"or damaged ({type(error).__name__}: {error})") from None
        wanted = _described(like)
        for name in sorted(saved.keys() | wanted.keys()):
            if saved.get(name) != wanted.get(name):
                shown = {k: "absent" if d is None else f"{d[1]}{list(d[0])}"
                         for k, d in (("checkpoint", saved.get(name)), ("like", wanted.get(name)))}
                raise ValueError(f"the checkpoint at {path} does not match `like` at {name!r}: "
                                 f"{shown['checkpoint']} in the checkpoint, {shown['like']} in "
                                 "`like`")
        template = jax.tree.map(lambda leaf: ocp.utils.to_shape_dtype_struct(_as_array(leaf)), like)
        try:
            return checkpointer.restore(path, template)
        except _DAMAGED as error:
            raise ValueError(f"{path} holds no readable checkpoint: its arrays are missing or "
                             f"damaged ({type(error).__name__}: {error})") from None
