"""One update count per optimizer, shared by the transforms that need it.

MXNet counts updates once per optimizer (``num_update``) and its
schedulers, Adam's bias correction and LARS's momentum all read that one
count. :func:`counted` chains transforms behind one counter and hands each
update's count to every transform of the chain that takes it, so the state
holds one ``count`` (``optax.tree.get(state, "count")`` gives it) however
many transforms read it.

A transform that reads the count takes it as the keyword argument ``count``
of its update (optax's extra arguments). The exported ones (Adam's direction,
the learning rate, ...) come as :func:`counted` chains of one, so they work
alone in ``optax.chain`` too, each with its own count; chained by
:func:`counted`, they share its counter.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from mxopt import sharding, validation
from mxopt.structure import brief_repr, map_states, state_nodes


@brief_repr
class CountState(NamedTuple):
    count: jax.Array  # i32 scalar: updates so far, from begin_num_update (MXNet's num_update)


class Counted(optax.GradientTransformationExtraArgs):
    """A chain of transforms behind one update counter, made by :func:`counted`.

    ``transforms`` are the chained transforms and ``begin_num_update`` the
    count the counter starts from.
    """

    transforms: tuple[optax.GradientTransformation, ...]
    begin_num_update: int | jax.Array


def _in_dtypes_of(old: optax.OptState, new: optax.OptState) -> optax.OptState:
    """``new`` with each array in the dtype of ``old``'s: a state keeps the dtypes ``init``
    gave it whatever the inputs' (float32 grads of float16 params, say), so that a jitted
    step is not compiled again and ``lax.scan`` carries it."""
    return jax.tree.map(lambda o, n: n if n.dtype == o.dtype else n.astype(o.dtype), old, new)


def next_count(count: jax.Array) -> jax.Array:
    """``count + 1``, staying at ``validation.MAX_COUNT`` once there, where int32 would wrap."""
    return jnp.minimum(count, validation.MAX_COUNT - 1) + 1


def counted(*transforms: optax.GradientTransformation,
            begin_num_update: int | jax.Array = 0) -> Counted:
    """``optax.chain(*transforms)`` behind one update counter that they all read.

    The state is ``(CountState(count), *the transforms' states)``. At each
    update the count goes up by one and is passed, as ``count=``, to every
    transform that takes extra arguments; so the first update sees
    ``begin_num_update + 1``, as MXNet's first update sees
    ``num_update = begin_num_update + 1``. Each also gets, as
    ``earlier_states=``, the states the transforms before it made in this
    update, for a link whose formula reads what earlier links hold
    (:func:`earlier_state`: LARS's trust ratio reads the raw norms,
    ``rescale_grad`` and ``wd``). A :class:`Counted` among
    ``transforms`` is spliced in: its transforms join this chain, under this
    counter, so nesting never makes a second count.

    Args:
      *transforms: the transforms, in order.
      begin_num_update: the update count the run starts from, >= 0.

    Raises:
      ValueError: a spliced chain that starts from another count.
    """
    begin = validation.count("begin_num_update", begin_num_update)
    members: list[optax.GradientTransformation] = []
    for tx in transforms:
        if not isinstance(tx, Counted):
            members.append(tx)
            continue
        inner_begin = tx.begin_num_update
        if isinstance(inner_begin, int) and isinstance(begin, int) and inner_begin != begin:
            raise ValueError(f"a counted transform that starts from update {inner_begin} cannot "
                             f"share a counter that starts from {begin}: give the same "
                             "begin_num_update to both")
        members.extend(tx.transforms)
    steps = [optax.with_extra_args_support(tx) for tx in members]

    def init_fn(params):
        count = jnp.asarray(begin, jnp.int32)
        # The count is made from the params, so that jax.jit(init) puts the state on
        # their devices even where nothing else in it depends on them.
        return (CountState(count + sharding.zero_from(params, jnp.int32)),
                *(tx.init(params) for tx in members))

    def update_fn(updates, state, params=None, **extra_args):
        count = next_count(state[0].count)
        updates, new_states = update_in_turn(steps, state[1:], updates, params, count=count,
                                             **extra_args)
        return updates, (CountState(count), *new_states)

    chain = Counted(init_fn, update_fn)
    chain.transforms, chain.begin_num_update = tuple(members), begin
    return chain


def update_in_turn(links: list[optax.GradientTransformationExtraArgs], states: tuple,
                   updates: optax.Updates, params: optax.Params | None, *, count: jax.Array,
                   **extra_args) -> tuple[optax.Updates, tuple]:
    """Runs a chain's ``links`` on ``updates`` in turn, each given ``count=`` and the
    ``earlier_states=`` of the links before it, as :func:`counted` does; returns the
    updates and the links' new states, each in its old state's dtypes."""
    extra_args.pop("earlier_states", None)  # a chain inside a chain starts its own
    new_states: list = []
    for link, link_state in zip(links, states, strict=True):
        updates, new_state = link.update(updates, link_state, params, count=count,
                                         earlier_states=tuple(new_states), **extra_args)
        new_states.append(_in_dtypes_of(link_state, new_state))
    return updates, tuple(new_states)


def earlier_state(earlier_states: tuple, state_class: type, user: str) -> Any:
    """The state of type ``state_class`` among a chain's ``earlier_states`` (see :func:`counted`).

    Raises:
      ValueError: there is none: ``user`` needs that transform before it in its chain.
    """
    for node in state_nodes(earlier_states):
        if isinstance(node, state_class):
            return node
    raise ValueError(f"{user} needs a {state_class.__name__} earlier in its chain")


def update_count(state: Any) -> jax.Array:
    """The number of updates the optimizer whose state ``state`` holds has applied.

    It counts from ``begin_num_update`` (MXNet's ``num_update``); the next
    update is number ``update_count(state) + 1``. ``state`` may be any pytree
    that holds one mxopt optimizer state (a ``TrainState``, an
    ``nnx.Optimizer``'s ``opt_state``, a ``MultiSteps`` state, ...).

    Raises:
      ValueError: ``state`` holds no count, or several (of several optimizers).
    """
    counts = [node.count for node in state_nodes(state) if isinstance(node, CountState)]
    if len(counts) != 1:
        raise ValueError(f"this state holds {len(counts)} mxopt update counts; update_count "
                         "takes the state of one mxopt optimizer")
    (leaf,) = jax.tree.leaves(counts[0])
    return leaf


def set_count(state: Any, count: int) -> Any:
    """Returns ``state`` with its update count set to ``count``, placed as the old one."""
    def visit(node):
        if not isinstance(node, CountState):
            return node
        return CountState(jax.tree.map(lambda old: sharding.placed_like(
            jnp.asarray(count, jnp.int32), old), node.count))

    return map_states(visit, state)
