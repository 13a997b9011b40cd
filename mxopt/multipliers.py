"""Per-leaf multipliers: MXNet's ``lr_mult`` and ``wd_mult``.

A multiplier spec is one of

* ``None``: every leaf gets 1 (nothing is stored);
* a number: every leaf gets it;
* a mapping from leaf names to numbers (see :mod:`mxopt.structure` for the
  naming rule, e.g. ``{"dense/bias": 0.0}``); unnamed leaves get 1, and a name
  that matches no leaf is an error;
* a callable ``f(name, leaf) -> number``;
* a pytree of numbers with the structure of the params.

It is resolved against the params when the optimizer state is initialised,
into a pytree of float32 scalars held in the state, so changing a multiplier
later does not recompile a jitted step. For packed params
(:mod:`mxopt.packing`) it is resolved against the leaves they hold, into one
float32 value per block.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Mapping
from typing import Any

import chex
import jax
import jax.numpy as jnp

from mxopt import validation
from mxopt.packing import Packed
from mxopt.structure import TreeSignature, named_leaves

MultiplierSpec = (None | float | Mapping[str, float] | Callable[[str, Any], float]
                  | chex.ArrayTree)


def _is_name_mapping(spec: Any, params: chex.ArrayTree) -> bool:
    return (isinstance(spec, Mapping)
            and all(isinstance(k, str) for k in spec)
            and all(isinstance(v, numbers.Real) for v in spec.values())
            and jax.tree_util.tree_structure(spec) != jax.tree_util.tree_structure(params))


def check(spec: MultiplierSpec, arg: str) -> None:
    """Checks what can be checked before the params are known: a number, a mapping's values.

    Raises:
      ValueError: a multiplier that is not a finite real >= 0, named with its leaf.
    """
    spec = validation.host_number(arg, spec)
    if isinstance(spec, numbers.Real):
        validation.non_negative(arg, spec)
    elif isinstance(spec, Mapping):
        for name, value in spec.items():
            if isinstance(value, numbers.Real):
                validation.non_negative(f"{arg}[{name!r}]", value)


def resolve(spec: MultiplierSpec, params: chex.ArrayTree, arg: str) -> chex.ArrayTree | None:
    """Resolves ``spec`` for ``params`` into a pytree of float32 scalars.

    Args:
      spec: a multiplier spec (see the module docstring).
      params: the params pytree.
      arg: the argument's name, for error messages (``"lr_mult"``).

    Returns:
      ``None`` for ``spec=None``, else a pytree shaped like ``params`` whose
      leaves are float32 scalars; for packed params, packed ``(blocks, 1)``
      float32 buffers, each block holding its leaf's multiplier.
    """
    if spec is None:
        return None
    if isinstance(params, Packed):
        return params.layout.per_block(_values(spec, params.layout.leaves(), arg))
    treedef = jax.tree_util.tree_structure(params)
    return jax.tree_util.tree_unflatten(
        treedef, [jnp.asarray(v, jnp.float32) for v in _values(spec, params, arg)])


def _values(spec: MultiplierSpec, params: chex.ArrayTree, arg: str) -> list[float]:
    """The multiplier of each leaf of ``params``, in flattening order, checked."""
    leaves = named_leaves(params)
    spec = validation.host_number(arg, spec)
    if isinstance(spec, numbers.Real) and not isinstance(spec, bool):
        values = [spec] * len(leaves)
    elif callable(spec):
        values = [spec(name, leaf) for name, leaf in leaves]
    elif _is_name_mapping(spec, params):
        names = {name for name, _ in leaves}
        unknown = sorted(set(spec) - names)
        if unknown:
            raise ValueError(f"{arg} names {unknown} match no params leaf; leaves are "
                             f"{sorted(names)}")
        values = [spec.get(name, 1.0) for name, _ in leaves]
    else:
        skeleton = lambda tree: jax.tree.map(lambda _: 0, tree)
        TreeSignature(skeleton(params), "params").check(skeleton(spec), arg)
        values = jax.tree_util.tree_leaves(spec)
    for (name, _), value in zip(leaves, values):
        validation.non_negative(f"{arg}[{name!r}]", value)
    return values


def per_leaf(scale: jax.Array, multipliers: chex.ArrayTree | None,
             like: chex.ArrayTree) -> chex.ArrayTree:
    """``scale * multiplier`` for each leaf of ``like`` (``scale`` without multipliers)."""
    if multipliers is None:
        return jax.tree.map(lambda _: scale, like)
    return jax.tree.map(lambda m: scale * m, multipliers)
