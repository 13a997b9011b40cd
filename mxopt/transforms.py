"""The gradient transformations MXNet's optimizers are made of.

Each is an ``optax.GradientTransformation`` over pytrees whose
hyperparameters live in its state as float32 scalars (see
:mod:`mxopt.hyperparams`), so they can change between steps without a
recompile. mxopt's optimizers are ``optax.chain``\\ s of these, in MXNet's
order of operations.

Hyperparameters are cast to each leaf's dtype before use, so a float16
leaf (without ``multi_precision``) is updated in float16, as MXNet does.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import chex
import jax
import jax.numpy as jnp
import optax

from mxopt import hyperparams, multipliers, validation
from mxopt.multipliers import MultiplierSpec
from mxopt.numerics import complement, like, one_minus_power, tree_map
from mxopt.schedules import Schedule
from mxopt.structure import readable


def _elementwise(state: NamedTuple, fn) -> optax.GradientTransformation:
    """A transform applying ``fn(g, h)`` to every leaf, ``h`` the state's one hyperparameter."""

    def init_fn(params):
        del params
        return state

    def update_fn(updates, state, params=None):
        del params
        (h,) = state
        return tree_map(lambda g: fn(g, like(h, g)), updates), state

    return optax.GradientTransformation(init_fn, update_fn)


@readable
class RescaleState(NamedTuple):
    rescale_grad: jax.Array  # f32 scalar


def rescale(rescale_grad: float = 1.0) -> optax.GradientTransformation:
    """MXNet's ``rescale_grad``: ``g <- rescale_grad * g``.

    Args:
      rescale_grad: the factor, often ``1 / batch_size``; must be > 0.
    """
    return _elementwise(RescaleState(hyperparams.scalar("rescale_grad", rescale_grad)),
                        lambda g, r: r * g)


@readable
class ClipState(NamedTuple):
    clip_gradient: jax.Array  # f32 scalar


def clip(clip_gradient: float | None = None) -> optax.GradientTransformation:
    """MXNet's ``clip_gradient``: ``g <- min(max(g, -c), c)`` elementwise.

    Args:
      clip_gradient: the bound ``c > 0``, or ``None`` for no clipping (then
        the state is empty). MXNet silently skips clipping for
        ``clip_gradient <= 0``; mxopt rejects such values.
    """
    if clip_gradient is None:
        return optax.identity()
    return _elementwise(ClipState(hyperparams.scalar("clip_gradient", clip_gradient)),
                        lambda g, c: jnp.clip(g, -c, c))


@readable
class AddDecayedWeightsState(NamedTuple):
    wd: jax.Array  # f32 scalar
    wd_mult: chex.ArrayTree | None  # f32 scalar per leaf, or None for all 1


def add_decayed_weights(wd: float = 0.0,
                        wd_mult: MultiplierSpec = None) -> optax.GradientTransformation:
    """MXNet's weight decay: ``g <- g + wd * wd_mult * w``.

    Args:
      wd: the weight-decay coefficient (L2 penalty ``wd/2 * |w|^2``), >= 0.
      wd_mult: per-leaf multipliers (see :mod:`mxopt.multipliers`).
    """
    initial = hyperparams.scalar("wd", wd)

    def init_fn(params):
        return AddDecayedWeightsState(initial, multipliers.resolve(wd_mult, params, "wd_mult"))

    def update_fn(updates, state, params=None):
        if params is None:
            raise ValueError("weight decay needs params: call update(grads, state, params)")
        decay = multipliers.per_leaf(state.wd, state.wd_mult, updates)
        return tree_map(lambda g, w, d: g + like(d, g) * w.astype(g.dtype),
                    updates, params, decay), state

    return optax.GradientTransformation(init_fn, update_fn)


@readable
class ScaleByLearningRateState(NamedTuple):
    count: jax.Array  # i32 scalar: MXNet's num_update, updates applied so far
    learning_rate: jax.Array | None  # f32 scalar; None when a schedule sets it
    lr_mult: chex.ArrayTree | None  # f32 scalar per leaf, or None for all 1


@dataclasses.dataclass(frozen=True)
class LearningRate:
    """Each leaf's learning rate at each update, for transforms that need it.

    ``lr = learning_rate * lr_mult``, where ``learning_rate`` is a number
    held in the state or ``schedule(num_update)``; ``num_update`` counts
    updates from ``begin_num_update`` and the first update sees
    ``begin_num_update + 1``, as in MXNet. With a schedule the state holds no
    ``learning_rate``, so ``set_hyperparams`` refuses one, as MXNet's
    ``set_learning_rate`` does under a scheduler.

    A transform whose update is not linear in the rate (FTRL, FTML, ...)
    keeps a :class:`ScaleByLearningRateState` from :meth:`init` in its own
    state and calls :meth:`next` once per update.

    Args:
      learning_rate: a number >= 0 or a schedule of the update count.
      lr_mult: per-leaf multipliers (see :mod:`mxopt.multipliers`).
      begin_num_update: the update count the run starts from.
    """

    learning_rate: float | Schedule
    lr_mult: MultiplierSpec = None
    begin_num_update: int = 0

    def __post_init__(self):
        if not callable(self.learning_rate):
            hyperparams.scalar("learning_rate", self.learning_rate)
        validation.count("begin_num_update", self.begin_num_update)

    def init(self, params: optax.Params) -> ScaleByLearningRateState:
        held = None if callable(self.learning_rate) else hyperparams.scalar(
            "learning_rate", self.learning_rate)
        return ScaleByLearningRateState(jnp.asarray(self.begin_num_update, jnp.int32), held,
                                        multipliers.resolve(self.lr_mult, params, "lr_mult"))

    def unscaled(self, state: ScaleByLearningRateState) -> jax.Array:
        """The rate before ``lr_mult`` at the update ``state`` counted last (f32 scalar)."""
        if callable(self.learning_rate):
            return self.learning_rate(state.count)
        return state.learning_rate

    def next(self, state: ScaleByLearningRateState,
             like: chex.ArrayTree) -> tuple[chex.ArrayTree, ScaleByLearningRateState]:
        """Counts one update; returns each leaf's rate (f32 scalars, shaped like ``like``)."""
        state = state._replace(count=state.count + 1)
        return multipliers.per_leaf(self.unscaled(state), state.lr_mult, like), state


def scale_by_learning_rate(learning_rate: float | Schedule, *, lr_mult: MultiplierSpec = None,
                           begin_num_update: int = 0) -> optax.GradientTransformation:
    """Steps against the gradient: ``g <- -lr * g``, ``lr`` as :class:`LearningRate` gives it.

    Args:
      learning_rate: a number >= 0 (held in the state) or a schedule.
      lr_mult: per-leaf multipliers (see :mod:`mxopt.multipliers`).
      begin_num_update: the update count the run starts from.
    """
    rate = LearningRate(learning_rate, lr_mult, begin_num_update)

    def update_fn(updates, state, params=None):
        del params
        lrs, state = rate.next(state, updates)
        return tree_map(lambda g, lr: -like(lr, g) * g, updates, lrs), state

    return optax.GradientTransformation(rate.init, update_fn)


@readable
class TraceState(NamedTuple):
    momentum: jax.Array  # f32 scalar
    trace: optax.Updates  # like params


def trace(momentum: float, nesterov: bool = False) -> optax.GradientTransformation:
    """MXNet's momentum buffer, fed with learning-rate-scaled updates ``u``.

    ``m <- momentum * m + u``; the output is ``m``, or ``momentum * m + u``
    with ``nesterov=True``. Placed after :func:`scale_by_learning_rate`, the
    learning rate sits inside the buffer as in MXNet's SGD and NAG, so a
    changing rate acts as it does there.

    Args:
      momentum: the decay of the buffer, in [0, 1).
      nesterov: Nesterov's look-ahead form (MXNet's NAG).
    """
    initial = hyperparams.scalar("momentum", momentum)

    def init_fn(params):
        return TraceState(initial, optax.tree.zeros_like(params))

    def update_fn(updates, state, params=None):
        del params
        mu = state.momentum
        new_trace = tree_map(lambda u, m: like(mu, u) * m + u, updates, state.trace)
        if nesterov:
            updates = tree_map(lambda u, m: like(mu, u) * m + u, updates, new_trace)
        else:
            updates = new_trace
        return updates, TraceState(mu, new_trace)

    return optax.GradientTransformation(init_fn, update_fn)


def momentum_buffer(momentum: float, nesterov: bool = False) -> optax.GradientTransformation:
    """:func:`trace`, or no buffer at all (the identity) when ``momentum`` is 0, as in MXNet."""
    if validation.decay_rate("momentum", momentum) == 0:
        return optax.identity()
    return trace(momentum, nesterov=nesterov)


@readable
class ScaleByAdamState(NamedTuple):
    count: jax.Array  # i32 scalar: t, the update count from begin_num_update
    beta1: jax.Array  # f32 scalar
    beta2: jax.Array  # f32 scalar
    epsilon: jax.Array  # f32 scalar
    beta1_residual: jax.Array  # f32 scalar: beta1 - float32(beta1)
    beta2_residual: jax.Array  # f32 scalar: beta2 - float32(beta2)
    mean: optax.Updates  # like params
    var: optax.Updates  # like params


def scale_by_adam(beta1: float = 0.9, beta2: float = 0.999, epsilon: float = 1e-8, *,
                  begin_num_update: int = 0,
                  exact_complement: bool = False) -> optax.GradientTransformation:
    """Adam's direction, with MXNet's bias correction.

    At update ``t`` (counted from ``begin_num_update``)::

        m <- beta1 * m + (1 - beta1) * g
        v <- beta2 * v + (1 - beta2) * g^2
        out = sqrt(1 - beta2^t) / (1 - beta1^t) * m / (sqrt(v) + epsilon)

    The correction multiplies the step (MXNet folds it into the learning
    rate), so epsilon is not corrected. ``1 - beta`` in the moments is
    ``1 - float32(beta)``, as MXNet's ``adam_update`` kernel takes it, or with
    ``exact_complement`` that of the double-precision beta, as MXNet.jl
    takes it in Julia (they differ by 1.7e-4 relative at ``beta2 = 0.9999``).

    Args:
      beta1, beta2: decay rates of the moments, in [0, 1).
      epsilon: added to ``sqrt(v)``, > 0.
      begin_num_update: the update count the run starts from.
      exact_complement: take ``1 - beta`` from the double-precision beta.
    """
    b1, b2 = hyperparams.scalar("beta1", beta1), hyperparams.scalar("beta2", beta2)
    eps = hyperparams.scalar("epsilon", epsilon)
    begin = validation.count("begin_num_update", begin_num_update)

    def init_fn(params):
        zeros = optax.tree.zeros_like(params)
        return ScaleByAdamState(jnp.asarray(begin, jnp.int32), b1, b2, eps,
                                hyperparams.residual(beta1), hyperparams.residual(beta2),
                                zeros, zeros)

    def update_fn(updates, state, params=None):
        del params
        s = state
        count = s.count + 1
        if exact_complement:
            c1, c2 = complement(s.beta1, s.beta1_residual), complement(s.beta2, s.beta2_residual)
        else:
            c1, c2 = 1 - s.beta1, 1 - s.beta2
        mean = tree_map(lambda g, m: like(s.beta1, g) * m + like(c1, g) * g, updates, s.mean)
        var = tree_map(lambda g, v: like(s.beta2, g) * v + like(c2, g) * g * g, updates, s.var)
        t = count.astype(jnp.float32)
        correction = (jnp.sqrt(one_minus_power(s.beta2, s.beta2_residual, t))
                      / one_minus_power(s.beta1, s.beta1_residual, t))
        updates = tree_map(
            lambda m, v: like(correction, m) * m / (jnp.sqrt(v) + like(s.epsilon, v)), mean, var)
        return updates, s._replace(count=count, mean=mean, var=var)

    return optax.GradientTransformation(init_fn, update_fn)
