"""Hyperparameters held in optimizer state as float32 scalar arrays.

Keeping ``learning_rate``, ``wd``, ``momentum``, ``beta1``, ... in the state,
not in the traced function, means a jitted training step is compiled once and
then takes any value of them: change one between steps with
:func:`set_hyperparams`, read them with :func:`get_hyperparams`.

Where MXNet uses a hyperparameter in double precision on the host (Adam's bias
correction ``1 - beta**t``), its float32 rounding error is kept too, in a
``<name>_residual`` field beside it, so ``value + residual`` is the double
value to float32 precision.

Scalar fields that are not hyperparameters but running values, updated by
every step, are ``count``, the ``*_residual`` fields, and those a state class
names in its ``RUNNING`` class attribute (Nadam's schedule product, say).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import chex
import jax
import jax.numpy as jnp
import numpy as np

from mxopt import validation
from mxopt.structure import is_concrete

_CHECKS: dict[str, Callable[[str, object], float]] = {
    "learning_rate": validation.non_negative,
    "wd": validation.non_negative,
    "rescale_grad": validation.positive,
    "clip_gradient": validation.positive,
    "momentum": validation.decay_rate,
    "beta1": validation.decay_rate,
    "beta2": validation.decay_rate,
    "epsilon": validation.positive,
    "eps": validation.non_negative,
    "gamma1": validation.decay_rate,
    "gamma2": validation.decay_rate,
    "rho": validation.decay_rate,
    "eta": validation.non_negative,
    "lamda": validation.non_negative,
    "lamda1": validation.non_negative,
    "beta": validation.non_negative,
    "wd_lh": validation.non_negative,
    "schedule_decay": validation.non_negative,
    "lower_bound": validation.positive,
    "upper_bound": validation.positive,
    "clip_weights": validation.positive,
}
_RESIDUAL = "_residual"


def scalar(name: str, value: float | jax.Array) -> jax.Array:
    """Checks hyperparameter ``name`` and returns it as a float32 scalar.

    Concrete values are checked by the rule for ``name`` (ValueError naming
    it); traced values pass through, cast to float32.
    """
    if not isinstance(value, jax.core.Tracer):
        value = _CHECKS.get(name, validation.real)(name, value)
    return jnp.asarray(value, jnp.float32)


def residual(value: float | jax.Array) -> jax.Array:
    """``value - float32(value)`` as a float32 scalar (0 for traced values)."""
    if isinstance(value, jax.core.Tracer):
        return jnp.zeros((), jnp.float32)
    return jnp.asarray(float(value) - float(np.float32(value)), jnp.float32)


def _is_state_node(node: Any) -> bool:
    return isinstance(node, tuple) and hasattr(node, "_fields")


def _is_hyperparameter(node: Any, field: str, value: Any) -> bool:
    running = ("count", *getattr(type(node), "RUNNING", ()))
    return (field not in running and not field.endswith(_RESIDUAL)
            and isinstance(value, jax.Array | np.ndarray) and jnp.ndim(value) == 0
            and jnp.issubdtype(jnp.result_type(value), jnp.floating))


def walk(node: Any, visit: Callable[[Any], Any]) -> Any:
    """Rebuilds ``node`` bottom-up, calling ``visit`` on every NamedTuple state."""
    if _is_state_node(node):
        node = type(node)(*(walk(child, visit) for child in node))
        return visit(node)
    if isinstance(node, (list, tuple)):
        return type(node)(walk(child, visit) for child in node)
    if isinstance(node, dict):
        return {k: walk(v, visit) for k, v in node.items()}
    return node


def nodes_of(state: chex.ArrayTree, kind: type) -> list:
    """Every NamedTuple state of type ``kind`` found in ``state``, inner ones first."""
    found = []

    def visit(node):
        if isinstance(node, kind):
            found.append(node)
        return node

    walk(state, visit)
    return found


def get_hyperparams(state: chex.ArrayTree) -> dict[str, jax.Array]:
    """The scalar hyperparameters found anywhere in an optimizer state.

    Returns:
      A dict from field name (``"learning_rate"``, ``"momentum"``, ...) to its
      float32 scalar. A name used by several transforms maps to the first.
    """
    found: dict[str, jax.Array] = {}

    def visit(node):
        for field, value in zip(node._fields, node):
            if _is_hyperparameter(node, field, value):
                found.setdefault(field, value)
        return node

    walk(state, visit)
    return found


def encode(**values: float | jax.Array) -> dict[str, jax.Array]:
    """Checks hyperparameter values and returns them with their residuals.

    Returns:
      ``{name: float32 scalar, name + "_residual": float32 scalar}`` for each
      value, ready for :func:`assign`.
    """
    arrays = {name: scalar(name, value) for name, value in values.items()}
    arrays.update({name + _RESIDUAL: residual(value) for name, value in values.items()})
    return arrays


def _placed_like(value: jax.Array, old: jax.Array) -> jax.Array:
    if is_concrete(old) and old.committed:
        return jax.device_put(value, old.sharding)
    return value


def assign(state: chex.ArrayTree, encoded: dict[str, jax.Array]) -> chex.ArrayTree:
    """Returns ``state`` with the fields named in ``encoded`` (from :func:`encode`) replaced.

    No checks: it runs inside ``jit`` too, with ``encoded`` traced, which is
    how a compiled step takes new values without a recompile. Names the
    state does not have are ignored. Outside ``jit`` each new value is put
    on the devices of the old, with its sharding, so a jitted step that
    takes a state placed on a mesh is not compiled again for it.
    """

    def visit(node):
        changes = {f: _placed_like(encoded[f], v) for f, v in zip(node._fields, node)
                   if f in encoded and (f.endswith(_RESIDUAL) or _is_hyperparameter(node, f, v))}
        return node._replace(**changes) if changes else node

    return walk(state, visit)


def set_hyperparams(state: chex.ArrayTree, **values: float | jax.Array) -> chex.ArrayTree:
    """Returns ``state`` with the named hyperparameters replaced.

    Values keep the state's dtype, so a jitted step that takes the new state
    is not recompiled. Each value is checked as at construction.

    Raises:
      ValueError: a name that is no hyperparameter of this state (the message
        lists those it has), or a value out of range.
    """
    missing = set(values) - set(get_hyperparams(state))
    if missing:
        raise ValueError(f"no hyperparameter {sorted(missing)} in this optimizer state; it has "
                         f"{sorted(get_hyperparams(state))}")
    return assign(state, encode(**values))


def set_count(state: chex.ArrayTree, count: int) -> chex.ArrayTree:
    """Returns ``state`` with every ``count`` field (the update counts) set to ``count``."""

    def visit(node):
        if "count" not in node._fields:
            return node
        return node._replace(count=_placed_like(jnp.asarray(count, jnp.int32), node.count))

    return walk(state, visit)
