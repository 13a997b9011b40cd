"""Hyperparameters held in optimizer state, declared by the types of the state's fields.

A transform keeps each hyperparameter (``learning_rate``, ``wd``,
``momentum``, ``beta1``, ...) in its state as a float32 scalar, so a jitted
training step is compiled once and takes any value of it: change one between
steps with :func:`set_hyperparams`, read them with :func:`get_hyperparams`.

A field is a hyperparameter because its annotation says so. The state class
declares it with a :class:`Hyperparameter`, which carries the rule its values
obey; the transform's constructor checks its arguments by that rule
(:class:`Given`) and :func:`set_hyperparams` checks new values by the same::

    class ScaleByAdamState(NamedTuple):
        count: jax.Array                    # not declared: a running value
        beta1: hyperparams.ExactDecayRate   # in [0, 1), held to double precision
        beta1_residual: jax.Array
        ...

Where MXNet uses a hyperparameter in double precision on the host (Adam's
bias correction ``1 - beta**t``), its declaration is ``exact`` and the state
holds its float32 rounding error too, in the field ``<name>_residual``, so
``value + residual`` is the double value to float32 precision.

A term that does nothing at its construction value (``wd=0``,
``rescale_grad=1``) is left out of the step, its field declared with an
``off`` value (:attr:`Hyperparameter.off`); setting it brings the term back,
at the cost of one more compile of a jitted step.

Per-leaf multipliers (``lr_mult``, ``wd_mult``) are declared ``per_leaf``:
a tree of float32 scalars, one per params leaf, which :func:`set_hyperparams`
sets from any multiplier spec (:mod:`mxopt.multipliers`).

A value given to a constructor as a JAX array, as ``optax.inject_hyperparams``
gives them (traced inside ``jit``), belongs to the transform: its update uses
that array instead of the state's copy (:meth:`Given.injected`). A Python or
NumPy number is the state's starting value.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Annotated, Any, NamedTuple

import chex
import jax
import jax.numpy as jnp
import numpy as np

from mxopt import multipliers, validation
from mxopt.sharding import placed_like
from mxopt.structure import field_kinds, map_states, state_nodes

_RESIDUAL = "_residual"


@dataclasses.dataclass(frozen=True)
class Hyperparameter:
    """Declares a state field a hyperparameter, in its annotation.

    Attributes:
      rule: the check of a value, ``rule(name, value)``, one of
        :mod:`mxopt.validation`'s; it raises ValueError naming the argument.
      exact: the state also holds ``<name>_residual``, the value's float32
        rounding error.
      per_leaf: the field is a tree of values, one per params leaf.
      off: the value at which the transform's term does nothing (weight
        decay's 0, ``rescale_grad``'s 1). Given that number, the state holds
        it as a one-element vector, not a scalar (:func:`is_off`), and the
        update leaves the term out, so no loop reads what the term would
        need. :func:`get_hyperparams` reports the number; setting another
        value makes the field a scalar and the term live: the state keeps
        its structure, and a jitted step compiles once more, for the new
        shape.
    """

    rule: Callable[[str, object], object]
    exact: bool = False
    per_leaf: bool = False
    off: float | None = None


Real = Annotated[jax.Array, Hyperparameter(validation.real)]  # f32 scalar
NonNegative = Annotated[jax.Array, Hyperparameter(validation.non_negative)]  # f32 scalar, >= 0
Positive = Annotated[jax.Array, Hyperparameter(validation.positive)]  # f32 scalar, > 0
DecayRate = Annotated[jax.Array, Hyperparameter(validation.decay_rate)]  # f32 scalar in [0, 1)
ExactDecayRate = Annotated[jax.Array, Hyperparameter(validation.decay_rate, exact=True)]
# f32 scalars, or f32[1] where off (0, 1) and their term is skipped (see Hyperparameter.off)
Decay = Annotated[jax.Array, Hyperparameter(validation.non_negative, off=0.0)]
Factor = Annotated[jax.Array, Hyperparameter(validation.positive, off=1.0)]
ExactNonNegative = Annotated[jax.Array, Hyperparameter(validation.non_negative, exact=True)]
# f32 scalar per params leaf, each >= 0
Multipliers = Annotated[chex.ArrayTree, Hyperparameter(validation.non_negative, per_leaf=True)]


def declarations(state_class: type) -> dict[str, Hyperparameter]:
    """The hyperparameter fields of a state class, with their declarations."""
    return {name: kind for name, kinds in field_kinds(state_class).items()
            for kind in kinds if isinstance(kind, Hyperparameter)}


def residual(value: float | jax.Array) -> jax.Array:
    """``value - float32(value)`` as a float32 scalar (0 for an array, which holds no more)."""
    if isinstance(value, jax.Array):
        return jnp.zeros((), jnp.float32)
    return jnp.asarray(float(value) - float(np.float32(value)), jnp.float32)


def is_off(field: jax.Array) -> bool:
    """Whether a hyperparameter field is off: the one-element vector of
    :attr:`Hyperparameter.off` (seen in the shape, so known when a step is traced)."""
    return jnp.shape(field) == (1,)


def _encoded(name: str, value: Any, declaration: Hyperparameter) -> dict[str, jax.Array]:
    """A checked value as the state holds it: a float32 scalar, and its residual if exact."""
    fields = {name: jnp.asarray(value, jnp.float32)}
    if declaration.exact:
        fields[name + _RESIDUAL] = residual(value)
    return fields


class Given:
    """The hyperparameters a transform was built with, checked by its state's declarations.

    ``Given(ScaleByAdamState, beta1=0.9, ...)`` checks each value by the rule
    ``ScaleByAdamState`` declares for it (ValueError naming it); ``None`` is
    kept as the field's "none" (no clipping, say). :meth:`fields` makes the
    state's arrays, afresh at each ``init``; :meth:`injected` puts values
    given as JAX arrays into the state at each update.
    """

    def __init__(self, state_class: type[NamedTuple], **values: Any):
        declared = declarations(state_class)
        self.declared = {name: declared[name] for name in values}
        self.values = {}
        for name, value in values.items():
            checked = None if value is None else declared[name].rule(name, value)
            self.values[name] = value if isinstance(value, jax.Array) else checked

    def fields(self) -> dict[str, jax.Array | None]:
        """The state's fields for these values: new float32 scalars (and residuals), None,
        or a one-element vector for a number that is its declaration's ``off``."""
        fields = {}
        for name, value in self.values.items():
            if value is None:
                fields[name] = None
            elif not isinstance(value, jax.Array) and value == self.declared[name].off:
                fields[name] = jnp.full((1,), value, jnp.float32)
            else:
                fields.update(_encoded(name, value, self.declared[name]))
        return fields

    def injected(self, state: NamedTuple) -> NamedTuple:
        """``state`` with the values given as JAX arrays in place of its own."""
        fields = {}
        for name, value in self.values.items():
            if isinstance(value, jax.Array):
                fields.update(_encoded(name, value, self.declared[name]))
        return state._replace(**fields) if fields else state


def _is_injection(node: Any) -> bool:
    """Whether ``node`` is an ``optax.inject_hyperparams`` state, whose ``hyperparams`` rule."""
    return "hyperparams" in node._fields and isinstance(node.hyperparams, dict)


def _leaf(field: Any) -> jax.Array:
    """The one array a scalar field holds (directly, or in a box such as Flax's Variable)."""
    (leaf,) = jax.tree.leaves(field)
    return leaf


def get_hyperparams(state: Any) -> dict[str, jax.Array | chex.ArrayTree]:
    """The hyperparameters held anywhere in ``state``.

    ``state`` is any pytree that holds optimizer states: an mxopt or optax
    state, a Flax ``TrainState``, ``nnx.Optimizer.opt_state``, a dict...
    Those of an ``optax.inject_hyperparams`` state are found too.

    Returns:
      A dict from name (``"learning_rate"``, ``"momentum"``, ...) to its
      float32 scalar, or to a tree of them for per-leaf multipliers. A name
      held by several transforms maps to the outermost, first.
    """
    found: dict[str, Any] = {}
    for node in state_nodes(state):
        if _is_injection(node):
            for name, value in node.hyperparams.items():
                found.setdefault(name, _leaf(value))
        for name, declaration in declarations(type(node)).items():
            value = getattr(node, name)
            if value is not None:
                found.setdefault(name, value if declaration.per_leaf else effective(node, name))
    return found


def effective(node: NamedTuple, name: str) -> jax.Array:
    """The scalar hyperparameter ``name`` of the state ``node``, its ``off`` value where off."""
    value = _leaf(getattr(node, name))
    if is_off(value):
        return jnp.asarray(declarations(type(node))[name].off, jnp.float32)
    return value


def stored(state: Any, name: str) -> jax.Array:
    """The scalar hyperparameter ``name`` as the first state in ``state`` holding it stores it
    (the one-element vector where off): :func:`assign` it back to restore the state as it was."""
    return next(_leaf(getattr(node, name)) for node in state_nodes(state)
                if name in declarations(type(node)) and getattr(node, name) is not None)


def _replaced(field: Any, value: jax.Array) -> Any:
    """``field`` (an array, or a box around one) holding ``value`` in its dtype, placed alike."""
    leaves, treedef = jax.tree.flatten(field)
    (old,) = leaves
    return treedef.unflatten([placed_like(jnp.asarray(value, old.dtype), old)])


def set_hyperparams(state: Any, **values: Any) -> Any:
    """Returns ``state`` with the named hyperparameters replaced wherever it holds them.

    Each value is checked by the rule its field declares, the one the
    optimizer's constructor applied: ``set_hyperparams(state, eps=0.0)`` is
    refused where ``adagrad(eps=0.0)`` is. A value may be a Python number, a
    NumPy scalar or a JAX scalar (a tracer inside ``jit`` passes unchecked);
    a per-leaf multiplier takes any multiplier spec (:mod:`mxopt.multipliers`).
    New values keep the dtype and placement of the old, so a jitted step that
    takes the new state is not compiled again. ``state`` may be any pytree
    that holds optimizer states, as for :func:`get_hyperparams`; Flax
    Variables holding values stay Variables.

    Raises:
      ValueError: a name that is no hyperparameter of ``state`` (the message
        lists those it has), or a value out of range. Nothing is changed then.
    """
    held = get_hyperparams(state)
    unknown = validation.unknown_names(values, held, noun="hyperparameter",
                                       what="this optimizer state has")
    if unknown:
        raise ValueError(unknown)
    rules: dict[str, list[Hyperparameter]] = {name: [] for name in values}
    for node in state_nodes(state):
        for name, declaration in declarations(type(node)).items():
            if name in values and getattr(node, name) is not None:
                rules[name].append(declaration)
    checked = {}
    for name, value in values.items():
        for declaration in rules[name] or [Hyperparameter(validation.real)]:
            if declaration.per_leaf:
                multipliers.resolve(value, held[name], name)
            else:
                checked[name] = declaration.rule(name, value)

    def changed(node, name, declaration):
        old = getattr(node, name)
        if declaration.per_leaf:
            return {name: jax.tree.map(placed_like, multipliers.resolve(values[name], old, name),
                                       old)}
        if is_off(_leaf(old)) and checked[name] == declaration.off:
            return {}  # stays off, and a jitted step is not compiled again
        return {field: _replaced(getattr(node, field), value)
                for field, value in _encoded(name, checked[name], declaration).items()}

    def changed_copy(name, old):  # optax.inject_hyperparams's (per-leaf ones are its own)
        return _replaced(old, checked[name]) if name in checked else old

    return _with_declared(state, values, changed, changed_copy)


def _with_declared(state: Any, names, changed, changed_copy=None) -> Any:
    """``state`` with each hyperparameter named in ``names`` that it holds replaced.

    ``changed(node, name, declaration)`` gives the node's new fields for
    ``name``; ``changed_copy(name, old)``, if given, the new value in an
    ``optax.inject_hyperparams`` state.
    """
    def visit(node):
        changes = {}
        for name, declaration in declarations(type(node)).items():
            if name in names and getattr(node, name) is not None:
                changes.update(changed(node, name, declaration))
        if changed_copy is not None and _is_injection(node):
            copies = node.hyperparams
            changes["hyperparams"] = {name: changed_copy(name, old) if name in names else old
                                      for name, old in copies.items()}
        return node._replace(**changes) if changes else node

    return map_states(visit, state)


def encode(**values: float | jax.Array) -> dict[str, jax.Array]:
    """Values as float32 scalars, each with its residual, for :func:`assign` (no checks).

    Returns:
      ``{name: float32 scalar, name + "_residual": float32 scalar}`` for each value.
    """
    arrays = {name: jnp.asarray(value, jnp.float32) for name, value in values.items()}
    arrays.update({name + _RESIDUAL: residual(value) for name, value in values.items()})
    return arrays


def assign(state: Any, encoded: dict[str, jax.Array]) -> Any:
    """Returns ``state`` with the hyperparameters named in ``encoded`` (from :func:`encode`)
    replaced, and their residuals where their fields are exact.

    No checks: it runs inside ``jit`` too, with ``encoded`` traced, which is
    how a compiled step takes new values without a recompile. A per-leaf
    field takes one value for all its leaves. Names the state does not hold
    are ignored. Outside ``jit`` each new value is placed as the old.
    """

    def changed(node, name, declaration):
        fields = (name, name + _RESIDUAL) if declaration.exact else (name,)
        return {field: jax.tree.map(functools.partial(placed_like, encoded[field]),
                                    getattr(node, field)) for field in fields}

    return _with_declared(state, encoded, changed)
