"""MXNet's ``Updater``: an optimizer and every index's state, saved and restored.

``updater(index, grad, weight)`` is MXNet's per-index training loop;
``get_states`` saves every state as an ``.npz`` archive with a JSON manifest
(:mod:`mxopt.mxnet.npz`), and ``set_states`` restores those bytes or the
``.states`` files MXNet writes (:mod:`mxopt.mxnet.files`,
:mod:`mxopt.mxnet.importer`).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from mxopt.mxnet import files, importer, npz, tables
from mxopt.mxnet.objects import Optimizer
from mxopt.mxnet.tables import Index
from mxopt.reading import DEFAULT_LIMITS, ReadLimits


class Updater:
    """MXNet's ``Updater``: an optimizer and the state of every index it has updated.

    ``updater(index, grad, weight)`` returns the new weight (MXNet writes it
    in place and returns None); lists of indices, grads and weights give a
    list. An index's state is created at its first update, with a master
    copy when the optimizer has ``multi_precision=True``. The optimizer is
    called as MXNet's Updater calls it: for those MXNet aggregates
    (:attr:`mxopt.registry.MXNet.aggregate_num`: SGD, LARS, LAMB) with lists
    of indices of one dtype, else one index at a time.
    """

    def __init__(self, optimizer: Optimizer):
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"Updater takes an mxopt Optimizer, got {optimizer!r}")
        self.optimizer = optimizer
        self.states: dict[Index, optax.OptState] = {}
        # The weight each state was made for, which get_states saves to rebuild it.
        self._weights: dict[Index, jax.ShapeDtypeStruct] = {}
        # States read from an MXNet file, converted at the index's next update,
        # when its weight is known (MXNet's state of sgd without momentum is None).
        self._mxnet_states: dict[Index, Any] = {}

    def __repr__(self) -> str:
        return f"Updater({self.optimizer!r}, states for indices {sorted(self.states, key=str)})"

    def __call__(self, index, grad, weight):
        listed = isinstance(index, (list, tuple))
        if not listed:
            index, grad, weight = [index], [grad], [weight]
        weights = [self._prepared(i, jnp.asarray(w))
                   for i, w in zip(index, weight, strict=True)]
        new_weights = [None] * len(weights)
        size = self.optimizer.mxnet_facts().aggregate_num
        for group in self._calls(weights, size):
            if not size:
                (k,) = group
                new_weights[k], self.states[index[k]] = self.optimizer.update_multi_precision(
                    index[k], weights[k], grad[k], self.states[index[k]])
                continue
            done, states = self.optimizer.update_multi_precision(
                [index[k] for k in group], [weights[k] for k in group],
                [grad[k] for k in group], [self.states[index[k]] for k in group])
            for k, new_weight, state in zip(group, done, states):
                new_weights[k], self.states[index[k]] = new_weight, state
        return new_weights if listed else new_weights[0]

    @staticmethod
    def _calls(weights: list[jax.Array], size: int) -> list[list[int]]:
        """The positions of ``weights`` in the optimizer calls MXNet's Updater makes: one
        each, or for an optimizer whose ``aggregate_num`` is ``size``, lists of at most
        that many, grouped by dtype."""
        if not size:
            return [[k] for k in range(len(weights))]
        by_dtype: dict[Any, list[int]] = {}
        for k, w in enumerate(weights):
            by_dtype.setdefault(w.dtype, []).append(k)
        return [positions[start:start + size] for positions in by_dtype.values()
                for start in range(0, len(positions), size)]

    def _prepared(self, index: Index, weight: jax.Array) -> jax.Array:
        """``weight``, with a state for ``index`` made (or converted from MXNet's) if none."""
        if index not in self.states:
            if index in self._mxnet_states:
                saved = self._mxnet_states.pop(index)
                state = importer.index_state(self.optimizer, index, weight, saved)
            else:
                state = self.optimizer.create_state_multi_precision(index, weight)
            self.states[index] = state
            self._weights[index] = jax.ShapeDtypeStruct(weight.shape, weight.dtype)
        return weight

    def get_states(self, dump_optimizer: bool = False) -> bytes:
        """Every index's state, and the optimizer if asked, as bytes for :meth:`set_states`.

        The bytes are an ``.npz`` archive with a JSON manifest (no pickle:
        loading them runs no code), holding each state exactly. States set
        from an MXNet file and not used since are kept as MXNet saved them.

        Raises:
          ValueError: ``dump_optimizer`` with an optimizer that cannot be saved
            as data (see :meth:`Optimizer.get_config`).
        """
        entries, arrays = [], []
        for index, state in self.states.items():
            leaves = jax.tree_util.tree_leaves(state)
            weight = self._weights[index]
            entries.append({"index": index, "shape": list(weight.shape),
                            "dtype": jnp.dtype(weight.dtype).name,
                            "leaves": [len(arrays), len(arrays) + len(leaves)]})
            arrays.extend(leaves)
        for index, state in self._mxnet_states.items():
            entries.append({"index": index, "mxnet": _nesting(state, arrays)})
        optimizer = self.optimizer.get_config() if dump_optimizer else None
        return npz.dumps({"format": "mxopt.Updater", "version": 1, "states": entries,
                          "optimizer": optimizer}, arrays)

    def set_states(self, states: bytes, *, limits: ReadLimits = DEFAULT_LIMITS) -> None:
        """Restores :meth:`get_states`'s bytes, or those of an MXNet ``.states`` file.

        MXNet's files (``Updater.get_states``, ``Trainer.save_states``,
        ``Module.save_optimizer_states``) are read by
        :func:`mxopt.mxnet.files.load_states`, which unpickles only the
        classes they hold. As in MXNet, every state is replaced, and an
        optimizer in the bytes replaces this updater's (keeping its
        ``param_dict``, which neither format saves). The bytes are read and
        checked whole first: if they are refused, the updater is unchanged.

        Args:
          states: the bytes.
          limits: what decoding them may cost (:class:`mxopt.reading.ReadLimits`).

        Raises:
          ValueError: the bytes are neither format, are damaged, or would
            cost more than ``limits`` (:class:`mxopt.mxnet.files.MXNetFileError`
            for MXNet's).
        """
        if not isinstance(states, (bytes, bytearray, memoryview)):
            raise TypeError(f"set_states takes the bytes of get_states, got a "
                            f"{type(states).__name__}")
        states = bytes(states)
        read = self._read_npz if states[:2] == b"PK" else self._read_mxnet  # npz: a zip archive
        optimizer, restored, weights, mxnet_states = read(states, limits)
        if optimizer is not None:
            optimizer.param_dict = self.optimizer.param_dict
            self.optimizer = optimizer
        self.states, self._weights, self._mxnet_states = restored, weights, mxnet_states

    def _read_mxnet(self, data: bytes, limits: ReadLimits) -> tuple:
        saved = files.load_states(data, limits=limits)
        optimizer = (None if saved.optimizer is None
                     else importer.import_optimizer(saved.optimizer))
        return optimizer, {}, {}, dict(saved.states)

    def _read_npz(self, data: bytes, limits: ReadLimits) -> tuple:
        manifest, arrays = npz.loads(data, "the states", limits=limits)
        try:
            return self._restored(manifest, arrays, limits.max_depth)
        except (KeyError, TypeError, AttributeError, IndexError) as error:
            raise ValueError(f"the states are damaged ({type(error).__name__}: {error})") from None

    def _restored(self, manifest: dict, arrays: list, max_depth: int) -> tuple:
        """The optimizer, states, weights and MXNet states an npz manifest describes."""
        if manifest.get("format") != "mxopt.Updater" or manifest.get("version") != 1:
            raise ValueError("the states are an npz archive, but not one of Updater.get_states")
        optimizer = (None if manifest["optimizer"] is None
                     else Optimizer.from_config(manifest["optimizer"]))
        creator = optimizer or self.optimizer
        states, weights, mxnet_states = {}, {}, {}
        for entry in manifest["states"]:
            index = tables.index_key("the states' index", entry["index"])
            if "mxnet" in entry:
                mxnet_states[index] = _unnest(entry["mxnet"], arrays, max_depth)
                continue
            weight = jax.ShapeDtypeStruct(tuple(entry["shape"]), jnp.dtype(entry["dtype"]))
            template = jax.eval_shape(  # no allocation of a shape the file names
                lambda w, i=index: creator.create_state_multi_precision(i, w), weight)
            states[index] = _refill(template, arrays[slice(*entry["leaves"])], index)
            weights[index] = weight
        return optimizer, states, weights, mxnet_states

def _nesting(state: Any, arrays: list) -> Any:
    """MXNet's nested state as JSON, its arrays appended to ``arrays``."""
    if state is None:
        return None
    if isinstance(state, (tuple, list)):
        return {type(state).__name__: [_nesting(s, arrays) for s in state]}
    arrays.append(state)
    return {"array": len(arrays) - 1}


def _unnest(nesting: Any, arrays: list, max_depth: int, depth: int = 0) -> Any:
    """The nested state ``_nesting`` wrote, at most as deep as MXNet's files may nest."""
    if depth > max_depth:
        raise ValueError(f"an MXNet state nested more than {max_depth} deep (ReadLimits.max_depth)")
    if nesting is None:
        return None
    if "array" in nesting:
        return np.asarray(arrays[nesting["array"]])
    (kind, parts), = nesting.items()
    return {"tuple": tuple, "list": list}[kind](_unnest(p, arrays, max_depth, depth + 1)
                                                for p in parts)


def _refill(template: optax.OptState, leaves: list, index: Index) -> optax.OptState:
    """``template`` with its leaves replaced by saved ones, which must match them."""
    expected = jax.tree_util.tree_leaves(template)
    if len(leaves) != len(expected):
        raise ValueError(f"the saved state of index {index!r} has {len(leaves)} arrays, this "
                         f"optimizer's has {len(expected)}: was it saved with other settings?")
    for i, (saved, mine) in enumerate(zip(leaves, expected)):
        if jnp.shape(saved) != jnp.shape(mine) or jnp.result_type(saved) != mine.dtype:
            raise ValueError(f"array {i} of the saved state of index {index!r} is "
                             f"{jnp.result_type(saved)}{list(jnp.shape(saved))}, this "
                             f"optimizer's is {mine.dtype}{list(mine.shape)}")
    return jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(template),
                                        [jnp.asarray(a) for a in leaves])


def get_updater(optimizer: Optimizer) -> Updater:
    """MXNet's ``get_updater``: an :class:`Updater` for ``optimizer``."""
    return Updater(optimizer)
