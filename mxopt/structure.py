"""Leaf names, the declared kinds of state fields, the opt-in checks that params, grads
and state belong together, and states' reprs.

A leaf's *name* is its key path in the params pytree, keys joined by ``/``:
``{"dense": {"w": ...}}`` names its leaf ``"dense/w"``, a list's elements are
named by their index (``"layers/0/w"``) and a dataclass field by its name. A
trailing ``.value`` is left out: Flax's ``Variable`` holds its array there, so
a tree of Variables (what ``nnx.Optimizer`` gives ``init``) names its leaves
as the plain arrays it holds do (what it gives ``update``). Multipliers given
by name (:mod:`mxopt.multipliers`) and every error message use these names.

A state is a pytree of ``NamedTuple`` nodes; a field's annotation may say what
it holds: :data:`LikeParams` (one array per param, of its shape), or a
hyperparameter (:mod:`mxopt.hyperparams`). :func:`describe` renders a state
for reading: hyperparameters by value, moments by dtype and shape.
"""

from __future__ import annotations

import functools
import sys
import typing
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Annotated, Any, NamedTuple

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax

_BOX_KEY = jax.tree_util.GetAttrKey("value")


def leaf_name(path: tuple) -> str:
    """The name of the leaf at key path ``path``: its keys joined by ``/``, but a last .value."""
    if path and path[-1] == _BOX_KEY:
        path = path[:-1]
    return jax.tree_util.keystr(path, simple=True, separator="/") or "<root>"


def named_leaves(tree: chex.ArrayTree) -> list[tuple[str, Any]]:
    """``(name, leaf)`` for every leaf of ``tree``, in flattening order."""
    return [(leaf_name(p), leaf) for p, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]]


def is_concrete(leaf) -> bool:
    """Whether ``leaf`` is a JAX array with a value and a placement: not a tracer, not a number."""
    return isinstance(leaf, jax.Array) and not isinstance(leaf, jax.core.Tracer)


def is_state_node(node: Any) -> bool:
    """Whether ``node`` is a ``NamedTuple``, the node every optax and mxopt state is made of."""
    return isinstance(node, tuple) and hasattr(node, "_fields")


def state_nodes(tree: Any) -> Iterator[NamedTuple]:
    """Every ``NamedTuple`` in ``tree`` (any pytree: dicts, dataclasses, Flax's states, ...),
    each before those it holds."""
    for node in jax.tree.leaves(tree, is_leaf=is_state_node):
        if is_state_node(node):
            yield node
            for child in node:
                yield from state_nodes(child)


def map_states(fn: Callable[[NamedTuple], NamedTuple], tree: Any) -> Any:
    """``tree`` with every ``NamedTuple`` in it replaced by ``fn`` of it, inner ones first."""
    def visit(node):
        if not is_state_node(node):
            return node
        return fn(type(node)(*(map_states(fn, child) for child in node)))

    return jax.tree.map(visit, tree, is_leaf=is_state_node)


def fields_named(tree: Any, names: Iterable[str]) -> dict[str, Any]:
    """The fields called ``names`` of the state nodes in ``tree``, from the first node that
    has each (names no node has are left out)."""
    found: dict[str, Any] = {}
    for node in state_nodes(tree):
        found.update({name: getattr(node, name) for name in names
                      if name in node._fields and name not in found})
    return found


def with_fields(tree: Any, values: Mapping[str, Any]) -> Any:
    """``tree`` with the fields of its state nodes called as the keys of ``values`` replaced."""
    if not values:
        return tree
    return map_states(lambda node: node._replace(
        **{name: value for name, value in values.items() if name in node._fields}), tree)


def _metadata(hint: Any) -> tuple:
    if typing.get_origin(hint) is Annotated:
        return hint.__metadata__
    return tuple(m for arg in typing.get_args(hint) for m in _metadata(arg))  # ``X | None``


@functools.cache
def field_kinds(state_class: type) -> dict[str, tuple]:
    """The ``Annotated`` metadata of each annotated field of a ``NamedTuple`` class."""
    namespace = vars(sys.modules[state_class.__module__])
    kinds = {}
    for name, hint in getattr(state_class, "__annotations__", {}).items():
        if isinstance(hint, typing.ForwardRef):  # NamedTuple's form of a postponed annotation
            hint = hint.__forward_arg__
        if isinstance(hint, str):  # postponed (``from __future__ import annotations``)
            try:
                hint = eval(hint, namespace)  # the class's own annotation
            except Exception:  # a foreign class's annotation that does not resolve
                continue
        if _metadata(hint):
            kinds[name] = _metadata(hint)
    return kinds


class _LikeParams:
    def __repr__(self):
        return "LikeParams"


_LIKE_PARAMS = _LikeParams()
LikeParams = Annotated[optax.Updates, _LIKE_PARAMS]  # one array per params leaf, of its shape


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
    and the states of a chain are listed one per line. A Flax Variable shows
    the value it holds. Tracers show only
    dtype and shape, so it also works inside ``jit``. It is the repr of
    every mxopt state class (:func:`brief_repr`).
    """
    return _describe(tree, max_leaves, "")


def brief_repr(state_class: type) -> type:
    """Makes :func:`describe` the repr of a state class (a class decorator)."""
    state_class.__repr__ = describe
    return state_class


def _describe(tree: Any, max_leaves: int, indent: str) -> str:
    if tree is None:
        return "None"
    if isinstance(tree, tuple) and hasattr(tree, "_fields"):
        offs = {name for name, kinds in field_kinds(type(tree)).items()
                if any(getattr(kind, "off", None) is not None for kind in kinds)}
        fields = ", ".join(
            f"{name}=off" if name in offs and jnp.shape(value) == (1,)
            else f"{name}={_describe(value, max_leaves, indent)}"
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
    if isinstance(tree, Mapping):  # dicts, FrozenDicts, Flax's States
        return "{" + ", ".join(f"{key!r}: {_describe(value, max_leaves, indent)}"
                               for key, value in tree.items()) + "}"
    if type(tree) in (tuple, list):
        items = ", ".join(_describe(x, max_leaves, indent) for x in tree)
        return f"({items})" if type(tree) is tuple else f"[{items}]"
    if len(leaves) == 1 and leaves[0] is tree:
        return _describe_leaf(tree)
    if len(leaves) == 1 and _is_box(tree):
        return _describe(leaves[0], max_leaves, indent)
    return repr(tree)


def _is_box(node: Any) -> bool:
    """Whether ``node`` holds one array as its ``.value``, as Flax's Variables do."""
    children = jax.tree_util.tree_flatten_with_path(node, is_leaf=lambda x: x is not node)[0]
    return [path for path, _ in children] == [(_BOX_KEY,)]


def check_float_leaves(tree: chex.ArrayTree, what: str = "params") -> None:
    """Raises TypeError naming the first leaf that is not floating point."""
    for name, leaf in named_leaves(tree):
        dtype = jnp.result_type(leaf)
        if not jnp.issubdtype(dtype, jnp.floating):
            raise TypeError(
                f"{what} leaf {name!r} has dtype {dtype}; mxopt optimizers update floating-point "
                "leaves only. Keep integer and boolean values out of the params tree (for "
                "example with optax.masked or a separate collection).")


class TreeSignature:
    """The leaf names and shapes of a tree, to check that another tree matches it."""

    def __init__(self, tree: chex.ArrayTree,
                 what: str = "params the optimizer state was built for"):
        leaves = named_leaves(tree)
        self.what = what
        self.paths = tuple(name for name, _ in leaves)
        self.shapes = tuple(tuple(jnp.shape(x)) for _, x in leaves)

    def check(self, tree: chex.ArrayTree, what: str) -> None:
        """Raises ValueError naming the first leaf where ``tree`` (``what``) differs."""
        other = TreeSignature(tree, what)
        for path, shape, other_path, other_shape in zip(
                self.paths, self.shapes, other.paths, other.shapes):
            if path != other_path:
                raise ValueError(f"{what} do not match the {self.what}: first difference at "
                                 f"{path!r} (the {self.what}) vs {other_path!r} ({what})")
            if shape != other_shape:
                raise ValueError(f"{what} leaf {path!r} has shape {other_shape}, but the "
                                 f"{self.what} have shape {shape}")
        if len(self.paths) != len(other.paths):
            longer = self if len(self.paths) > len(other.paths) else other
            extra = longer.paths[min(len(self.paths), len(other.paths))]
            raise ValueError(f"{what} do not match the {self.what}: leaf {extra!r} is only in "
                             f"the {longer.what}")


def _params_like_fields(state: optax.OptState) -> Iterator[chex.ArrayTree]:
    for node in state_nodes(state):
        for field, kinds in field_kinds(type(node)).items():
            if _LIKE_PARAMS in kinds and getattr(node, field) is not None:
                yield getattr(node, field)


def check_trees(inner: optax.GradientTransformation) -> optax.GradientTransformation:
    """``inner``, with errors that name the leaf where params, grads and state disagree.

    ``init`` rejects params with integer or boolean leaves (TypeError naming
    the leaf); ``update`` rejects grads whose leaves differ, by name or shape,
    from the params' and from those of the state's :data:`LikeParams` fields
    (ValueError naming the first difference). Names follow the rule above, so
    a tree of Flax Variables at ``init`` matches its plain arrays at
    ``update``. The checks run while tracing: no cost inside ``jit``. The
    state is ``inner``'s.
    """

    def init_fn(params):
        check_float_leaves(params)
        return inner.init(params)

    def update_fn(updates, state, params=None, **extra_args):
        check_float_leaves(updates, "grads")
        if params is not None:
            TreeSignature(params, "params").check(updates, "grads")
        for field in _params_like_fields(state):
            TreeSignature(field).check(updates, "grads")
        return optax.with_extra_args_support(inner).update(updates, state, params, **extra_args)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)
