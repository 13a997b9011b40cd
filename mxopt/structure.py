"""Leaf names, and the checks that params, grads and state belong together.

A leaf's *name* is its key path in the params pytree, keys joined by ``/``:
``{"dense": {"w": ...}}`` names its leaf ``"dense/w"``, a list's elements are
named by their index (``"layers/0/w"``) and a dataclass field by its name.
Multipliers given by name (:mod:`mxopt.multipliers`) and every error message
use these names.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import chex
import jax
import jax.numpy as jnp
import optax


def leaf_name(path: tuple) -> str:
    """The name of the leaf at key path ``path``: its keys joined by ``/``."""
    return jax.tree_util.keystr(path, simple=True, separator="/") or "<root>"


def named_leaves(tree: chex.ArrayTree) -> list[tuple[str, Any]]:
    """``(name, leaf)`` for every leaf of ``tree``, in flattening order."""
    return [(leaf_name(p), leaf) for p, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]]


def check_float_leaves(tree: chex.ArrayTree, what: str = "params") -> None:
    """Raises TypeError naming the first leaf that is not floating point."""
    for name, leaf in named_leaves(tree):
        dtype = jnp.result_type(leaf)
        if not jnp.issubdtype(dtype, jnp.floating):
            raise TypeError(
                f"{what} leaf {name!r} has dtype {dtype}; mxopt optimizers update floating-point "
                "leaves only. Keep integer and boolean values out of the params tree (for "
                "example with optax.masked or a separate collection).")


@jax.tree_util.register_static
class TreeSignature:
    """The structure and leaf shapes of a params tree, held in optimizer state.

    It has no array leaves: jit treats it as static, so it costs nothing at run
    time, and lets every update check that grads, params and state match.
    """

    def __init__(self, tree: chex.ArrayTree):
        leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
        self.paths = tuple(leaf_name(p) for p, _ in leaves)
        self.shapes = tuple(tuple(jnp.shape(x)) for _, x in leaves)
        self.treedef = jax.tree_util.tree_structure(tree)

    def __eq__(self, other):
        return (isinstance(other, TreeSignature) and self.treedef == other.treedef
                and self.shapes == other.shapes)

    def __hash__(self):
        return hash((self.treedef, self.shapes))

    def __repr__(self):
        return f"TreeSignature({len(self.paths)} leaves)"

    def check(self, tree: chex.ArrayTree, what: str) -> None:
        """Raises ValueError naming the first path where ``tree`` differs."""
        other = TreeSignature(tree)
        for path, shape, other_path, other_shape in zip(
                self.paths, self.shapes, other.paths, other.shapes):
            if path != other_path:
                raise ValueError(
                    f"{what} do not match the params the optimizer state was built for: first "
                    f"difference at {path!r} (state) vs {other_path!r} ({what})")
            if shape != other_shape:
                raise ValueError(
                    f"{what} leaf {path!r} has shape {other_shape}, but the optimizer state was "
                    f"built for shape {shape}")
        if len(self.paths) != len(other.paths):
            longer, side = (self, "state") if len(self.paths) > len(other.paths) else (other, what)
            extra = longer.paths[min(len(self.paths), len(other.paths))]
            raise ValueError(
                f"{what} do not match the params the optimizer state was built for: leaf "
                f"{extra!r} is only in the {side}")
        if self.treedef != other.treedef:
            raise ValueError(
                f"{what} have the same leaf names as the params but different containers: "
                f"{other.treedef} vs {self.treedef}")


class CheckedState(NamedTuple):
    """State of :func:`check_trees`."""
    signature: TreeSignature  # static: structure and shapes of the params
    inner: optax.OptState


def check_trees(inner: optax.GradientTransformation) -> optax.GradientTransformation:
    """Wraps ``inner`` so that mismatched trees fail with a clear error.

    ``init`` rejects params with integer or boolean leaves (TypeError naming
    the leaf); ``update`` rejects grads or params whose structure or shapes
    differ from those the state was built for (ValueError naming the first
    differing path). The checks run while tracing: no cost inside ``jit``.
    """

    def init_fn(params):
        check_float_leaves(params)
        return CheckedState(TreeSignature(params), inner.init(params))

    def update_fn(updates, state, params=None):
        state.signature.check(updates, "grads")
        check_float_leaves(updates, "grads")
        if params is not None:
            state.signature.check(params, "params")
        updates, inner_state = inner.update(updates, state.inner, params)
        return updates, CheckedState(state.signature, inner_state)

    return optax.GradientTransformation(init_fn, update_fn)
