"""Leaf names, the checks that params, grads and state belong together, and states' reprs.

A leaf's *name* is its key path in the params pytree, keys joined by ``/``:
``{"dense": {"w": ...}}`` names its leaf ``"dense/w"``, a list's elements are
named by their index (``"layers/0/w"``) and a dataclass field by its name.
Multipliers given by name (:mod:`mxopt.multipliers`) and every error message
use these names. :func:`describe` renders a state for reading: hyperparameters
by value, moments by dtype and shape.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax


def leaf_name(path: tuple) -> str:
    """The name of the leaf at key path ``path``: its keys joined by ``/``."""
    return jax.tree_util.keystr(path, simple=True, separator="/") or "<root>"


def named_leaves(tree: chex.ArrayTree) -> list[tuple[str, Any]]:
    """``(name, leaf)`` for every leaf of ``tree``, in flattening order."""
    return [(leaf_name(p), leaf) for p, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]]


def is_concrete(leaf) -> bool:
    """Whether ``leaf`` is a JAX array with a value and a placement: not a tracer, not a number."""
    return isinstance(leaf, jax.Array) and not isinstance(leaf, jax.core.Tracer)


def _short_dtype(dtype) -> str:
    """jax's short names (``f32``, ``bf16``, ``i32``) for numeric dtypes."""
    dtype = jnp.dtype(dtype)
    if jnp.issubdtype(dtype, jnp.number):
        return f"{'bf' if dtype == jnp.bfloat16 else dtype.kind}{8 * dtype.itemsize}"
    return str(dtype)


def _describe_leaf(leaf) -> str:
    dtype = jnp.result_type(leaf)
    if jnp.ndim(leaf) == 0 and not isinstance(leaf, jax.core.Tracer) and (
            getattr(leaf, "is_fully_addressable", True)) and jnp.issubdtype(dtype, jnp.number):
        value = np.asarray(jax.device_get(leaf)).item()
        text = f"{value:.6g}"
        # 1.0 rather than 1 for a float, as Python writes it
        return text + ".0" if isinstance(value, float) and text.lstrip("-").isdigit() else text
    return f"{_short_dtype(dtype)}[{','.join(map(str, jnp.shape(leaf)))}]"


def describe(tree: Any, max_leaves: int = 6) -> str:
    """A short rendering of a state (or any pytree) for reading, not for round-trips.

    Scalars show their value (``momentum=0.9``), arrays their dtype and shape
    (``f32[64,32]``), a container of more than ``max_leaves`` leaves a count
    by dtype (``<161 leaves: 25557032 f32>``), ``None`` fields are left out,
    and the states of a chain are listed one per line. Tracers show only
    dtype and shape, so it also works inside ``jit``. It is the repr of
    every mxopt state class (:func:`readable`).
    """
    return _describe(tree, max_leaves, "")


def readable(state_class: type) -> type:
    """Makes :func:`describe` the repr of a state class (a class decorator)."""
    state_class.__repr__ = describe
    return state_class


def _describe(tree: Any, max_leaves: int, indent: str) -> str:
    if tree is None:
        return "None"
    if isinstance(tree, tuple) and hasattr(tree, "_fields"):
        fields = ", ".join(f"{name}={_describe(value, max_leaves, indent)}"
                           for name, value in zip(tree._fields, tree) if value is not None)
        return f"{type(tree).__name__}({fields})"
    if type(tree) in (tuple, list) and tree and all(hasattr(x, "_fields") for x in tree):
        inner = indent + "  "
        items = "".join(f"\n{inner}{_describe(x, max_leaves, inner)}," for x in tree)
        brackets = "()" if type(tree) is tuple else "[]"
        return f"{brackets[0]}{items}\n{indent}{brackets[1]}"
    leaves = jax.tree.leaves(tree)
    if len(leaves) > max_leaves:
        sizes: dict[str, int] = {}
        for leaf in leaves:
            dtype = _short_dtype(jnp.result_type(leaf))
            sizes[dtype] = sizes.get(dtype, 0) + int(jnp.size(leaf))
        counts = ", ".join(f"{size} {dtype}" for dtype, size in sizes.items())
        return f"<{len(leaves)} leaves: {counts}>"
    if isinstance(tree, dict):
        return "{" + ", ".join(f"{key!r}: {_describe(value, max_leaves, indent)}"
                               for key, value in tree.items()) + "}"
    if type(tree) in (tuple, list):
        items = ", ".join(_describe(x, max_leaves, indent) for x in tree)
        return f"({items})" if type(tree) is tuple else f"[{items}]"
    if len(leaves) == 1 and leaves[0] is tree:
        return _describe_leaf(tree)
    return repr(tree)


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
        count = len(self.paths)
        return f"TreeSignature({count} {'leaf' if count == 1 else 'leaves'})"

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


@readable
class CheckedState(NamedTuple):
    """State of :func:`check_trees`, the outer state of every mxopt optimizer."""
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
