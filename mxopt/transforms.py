"""The gradient transformations MXNet's optimizers are made of.

Each is an ``optax.GradientTransformation`` over pytrees whose
hyperparameters live in its state as float32 scalars, declared by the state's
field types (see :mod:`mxopt.hyperparams`), so they can change between steps
without a recompile. mxopt's optimizers are chains of these, in MXNet's order
of operations, behind one update counter (:func:`mxopt.counted`); those that
read the count (the learning rate, Adam's bias correction) take it from the
chain, and alone keep their own.

Hyperparameters are cast to each leaf's dtype before use, so a float16
leaf (without ``multi_precision``) is updated in float16, as MXNet does.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from mxopt import hyperparams, multipliers, validation
from mxopt.counting import counted, update_count
from mxopt.hyperparams import (
    Decay,
    DecayRate,
    ExactDecayRate,
    Factor,
    Given,
    Multipliers,
    NonNegative,
    Positive,
)
from mxopt.multipliers import MultiplierSpec
from mxopt.numerics import cast, complement, one_minus_power, opaque_copy, rounded
from mxopt.schedules import Schedule
from mxopt.sharding import zeros_like
from mxopt.structure import LikeParams, brief_repr, state_nodes


def _elementwise(given: Given, state_class: type[NamedTuple],
                 fn) -> optax.GradientTransformation:
    """A transform applying ``fn(g, h)`` to every leaf, ``h`` the state's one hyperparameter."""

    def init_fn(params):
        del params
        return state_class(**given.fields())

    def update_fn(updates, state, params=None):
        del params
        state = given.injected(state)
        (h,) = state
        if hyperparams.is_off(h):  # the identity (see Hyperparameter.off)
            return updates, state
        return jax.tree.map(lambda g: fn(g, cast(h, g)), updates), state

    return optax.GradientTransformation(init_fn, update_fn)


@brief_repr
class RescaleState(NamedTuple):
    rescale_grad: Factor  # off at 1: no multiply in the update


def rescale(rescale_grad: float = 1.0) -> optax.GradientTransformation:
    """MXNet's ``rescale_grad``: ``g <- rescale_grad * g``.

    A ``rescale_grad`` of 1 leaves the multiply out of the update until
    :func:`mxopt.set_hyperparams` gives it a value (a jitted step then
    compiles once more; see :attr:`mxopt.hyperparams.Hyperparameter.off`).

    Args:
      rescale_grad: the factor, often ``1 / batch_size``; must be > 0.
    """
    return _elementwise(Given(RescaleState, rescale_grad=rescale_grad), RescaleState,
                        lambda g, r: r * g)


@brief_repr
class ClipState(NamedTuple):
    clip_gradient: Positive


def clip(clip_gradient: float | None = None) -> optax.GradientTransformation:
    """MXNet's ``clip_gradient``: ``g <- min(max(g, -c), c)`` elementwise.

    Args:
      clip_gradient: the bound ``c > 0``, or ``None`` for no clipping (then
        the state is empty). MXNet silently skips clipping for
        ``clip_gradient <= 0``; mxopt rejects such values.
    """
    if clip_gradient is None:
        return optax.identity()
    return _elementwise(Given(ClipState, clip_gradient=clip_gradient), ClipState,
                        lambda g, c: jnp.clip(g, -c, c))


@brief_repr
class AddDecayedWeightsState(NamedTuple):
    wd: Decay  # off at 0: no decay term in the update
    wd_mult: Multipliers | None  # None for all 1


def weight_decays(state: AddDecayedWeightsState, like: optax.Updates) -> optax.Updates:
    """Each leaf's ``wd * wd_mult`` (f32 scalars shaped like ``like``), 0 where ``wd`` is off."""
    return multipliers.per_leaf(hyperparams.effective(state, "wd"), state.wd_mult, like)


def add_decayed_weights(wd: float = 0.0,
                        wd_mult: MultiplierSpec = None) -> optax.GradientTransformation:
    """MXNet's weight decay: ``g <- g + wd * wd_mult * w``.

    A ``wd`` of 0 leaves the term out of the update, so the step does not
    read the weights for it, until :func:`mxopt.set_hyperparams` gives it a
    value (a jitted step then compiles once more; see
    :attr:`mxopt.hyperparams.Hyperparameter.off`).

    Args:
      wd: the weight-decay coefficient (L2 penalty ``wd/2 * |w|^2``), >= 0.
      wd_mult: per-leaf multipliers (see :mod:`mxopt.multipliers`).
    """
    given = Given(AddDecayedWeightsState, wd=wd)

    def init_fn(params):
        return AddDecayedWeightsState(**given.fields(),
                                      wd_mult=multipliers.resolve(wd_mult, params, "wd_mult"))

    def update_fn(updates, state, params=None):
        validation.params_given(params, "weight decay")
        state = given.injected(state)
        if hyperparams.is_off(state.wd):
            return updates, state
        decay = weight_decays(state, updates)
        return jax.tree.map(lambda g, w, d: g + cast(d, g) * w.astype(g.dtype),
                            updates, params, decay), state

    return optax.GradientTransformation(init_fn, update_fn)


@brief_repr
class LearningRateState(NamedTuple):
    learning_rate: NonNegative | None  # None when a schedule sets it
    lr_mult: Multipliers | None  # None for all 1


@dataclasses.dataclass(frozen=True)
class LeafRates:
    """Each leaf's learning rate at each update, for transforms that need it.

    ``lr = learning_rate * lr_mult``, where ``learning_rate`` is a number
    held in the state or ``schedule(num_update)``; ``num_update`` is the
    update count (:func:`mxopt.counted`), so the first update sees
    ``begin_num_update + 1``, as in MXNet. With a schedule the state holds no
    ``learning_rate``, so ``set_hyperparams`` refuses one, as MXNet's
    ``set_learning_rate`` does under a scheduler.

    A transform whose update is not linear in the rate (FTRL, FTML, ...)
    keeps a :class:`LearningRateState` from :meth:`init` in its own state and
    calls :meth:`at` with each update's count.

    Args:
      learning_rate: a number >= 0 or a schedule of the update count.
      lr_mult: per-leaf multipliers (see :mod:`mxopt.multipliers`).
      begin_num_update: the update count a transform using it alone counts
        from (in a :func:`mxopt.counted` chain, the chain's counter serves).
    """

    learning_rate: float | Schedule
    lr_mult: MultiplierSpec = None
    begin_num_update: int = 0

    def __post_init__(self):
        held = None if callable(self.learning_rate) else self.learning_rate
        object.__setattr__(self, "given", Given(LearningRateState, learning_rate=held))
        validation.count("begin_num_update", self.begin_num_update)

    def init(self, params: optax.Params) -> LearningRateState:
        return LearningRateState(**self.given.fields(),
                                 lr_mult=multipliers.resolve(self.lr_mult, params, "lr_mult"))

    def unscaled(self, state: LearningRateState, count: jax.Array) -> jax.Array:
        """The rate before ``lr_mult`` at update ``count`` (f32 scalar)."""
        if callable(self.learning_rate):  # a plain function may give a Python number
            return jnp.asarray(self.learning_rate(count), jnp.float32)
        return self.given.injected(state).learning_rate

    def at(self, state: LearningRateState, count: jax.Array,
           like: optax.Updates) -> optax.Updates:
        """Each leaf's rate at update ``count`` (f32 scalars, shaped like ``like``)."""
        return multipliers.per_leaf(self.unscaled(state, count), state.lr_mult, like)

    def with_counter(self, step: optax.GradientTransformation) -> optax.GradientTransformation:
        """``step``, which reads the update count, behind a counter from ``begin_num_update``."""
        return counted(step, begin_num_update=self.begin_num_update)


def scale_by_learning_rate(learning_rate: float | Schedule, *, lr_mult: MultiplierSpec = None,
                           begin_num_update: int = 0) -> optax.GradientTransformation:
    """Steps against the gradient: ``g <- -lr * g``, ``lr`` as :class:`LeafRates` gives it.

    Args:
      learning_rate: a number >= 0 (held in the state) or a schedule.
      lr_mult: per-leaf multipliers (see :mod:`mxopt.multipliers`).
      begin_num_update: the update count the run starts from.
    """
    rate = LeafRates(learning_rate, lr_mult, begin_num_update)

    def update_fn(updates, state, params=None, *, count, **extra_args):
        del params, extra_args
        # negated once, before the per-leaf multipliers (exact: -(lr * m) == -lr * m)
        steps = multipliers.per_leaf(-rate.unscaled(state, count), state.lr_mult, updates)
        return jax.tree.map(lambda g, s: cast(s, g) * g, updates, steps), rate.given.injected(state)

    return rate.with_counter(optax.GradientTransformationExtraArgs(rate.init, update_fn))


@brief_repr
class TraceState(NamedTuple):
    momentum: DecayRate
    trace: LikeParams


BufferTerm = Callable[[tuple, jax.Array, optax.Updates], optax.Updates]


def trace(momentum: float, nesterov: bool = False, *,
          momentum_scale: BufferTerm | None = None,
          buffer_correction: BufferTerm | None = None) -> optax.GradientTransformation:
    """MXNet's momentum buffer, fed with learning-rate-scaled updates ``u``.

    ``m <- momentum * m + u``, the product rounded before the sum as MXNet's
    kernels round it (:func:`mxopt.numerics.rounded`; Graves's momentum over a
    centered RMSProp magnifies the difference); the output is ``m``, or
    ``momentum * m + u`` with ``nesterov=True``. Placed after
    :func:`scale_by_learning_rate`, the learning rate sits inside the buffer
    as in MXNet's SGD and NAG, so a changing rate acts as it does there.

    Args:
      momentum: the decay of the buffer, in [0, 1).
      nesterov: Nesterov's look-ahead form (MXNet's NAG).
      momentum_scale: in a :func:`mxopt.counted` chain, a function
        ``(earlier_states, count, updates)`` of the earlier links' states, the
        update count and the updates, giving each leaf's factor of the
        momentum this update, ``m <- momentum * factor * m + u``; the state
        keeps ``momentum`` (LARS's momentum correction).
      buffer_correction: likewise a function of ``(earlier_states, count,
        out)``, ``out`` this update's output, giving a term added to the new
        buffer ``m`` (NAG's in-place kernel under ``mxnet_quirks``).
    """
    given = Given(TraceState, momentum=momentum)

    def init_fn(params):
        return TraceState(**given.fields(), trace=zeros_like(params))

    def update_fn(updates, state, params=None, *, earlier_states=(), count=None, **extra_args):
        del params, extra_args
        held = given.injected(state).momentum
        if momentum_scale is None:
            mus = jax.tree.map(lambda _: held, updates)
        else:
            mus = jax.tree.map(lambda f: held * f, momentum_scale(earlier_states, count, updates))
        new_trace = jax.tree.map(lambda u, m, mu: rounded(cast(mu, u) * m, mu) + u,
                                 updates, state.trace, mus)
        if nesterov:
            updates = jax.tree.map(lambda u, m, mu: cast(mu, u) * m + u, updates, new_trace, mus)
        else:  # a copy, so that the caller's ``w + updates`` is no lone add (see opaque_copy)
            updates = opaque_copy(new_trace)
        if buffer_correction is not None:
            new_trace = jax.tree.map(jnp.add, new_trace,
                                     buffer_correction(earlier_states, count, updates))
        return updates, TraceState(held, new_trace)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def without_buffer(momentum: float | jax.Array) -> bool:
    """Whether a momentum keeps no buffer, as MXNet keeps none for a momentum of 0.

    Only a number 0 drops the buffer: a momentum given as a JAX array (by
    ``optax.inject_hyperparams``, say) may change later, and keeps one.
    """
    return not isinstance(momentum, jax.Array) and validation.decay_rate("momentum",
                                                                         momentum) == 0


def momentum_buffer(momentum: float, nesterov: bool = False, *,
                    momentum_scale: BufferTerm | None = None,
                    buffer_correction: BufferTerm | None = None,
                    ) -> optax.GradientTransformation:
    """:func:`trace`, or no buffer at all (the identity) where :func:`without_buffer`."""
    if without_buffer(momentum):
        return optax.identity()
    return trace(momentum, nesterov=nesterov, momentum_scale=momentum_scale,
                 buffer_correction=buffer_correction)


@brief_repr
class ScaleByAdamState(NamedTuple):
    beta1: ExactDecayRate
    beta2: ExactDecayRate
    epsilon: Positive
    beta1_residual: jax.Array  # f32 scalar: beta1 - float32(beta1)
    beta2_residual: jax.Array  # f32 scalar: beta2 - float32(beta2)
    mean: LikeParams
    var: LikeParams


def scale_by_adam(beta1: float = 0.9, beta2: float = 0.999, epsilon: float = 1e-8, *,
                  begin_num_update: int = 0,
                  exact_complement: bool = False) -> optax.GradientTransformation:
    """Adam's direction, with MXNet's bias correction.

    At update ``t`` (the update count, from ``begin_num_update``), per leaf::

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
    given = Given(ScaleByAdamState, beta1=beta1, beta2=beta2, epsilon=epsilon)

    def init_fn(params):
        return ScaleByAdamState(**given.fields(), mean=zeros_like(params), var=zeros_like(params))

    def update_fn(updates, state, params=None, *, count, **extra_args):
        del params, extra_args
        s = given.injected(state)
        if exact_complement:
            c1, c2 = complement(s.beta1, s.beta1_residual), complement(s.beta2, s.beta2_residual)
        else:
            c1, c2 = 1 - s.beta1, 1 - s.beta2
        mean = jax.tree.map(lambda g, m: cast(s.beta1, g) * m + cast(c1, g) * g, updates, s.mean)
        var = jax.tree.map(lambda g, v: cast(s.beta2, g) * v + cast(c2, g) * g * g, updates, s.var)
        t = count.astype(jnp.float32)
        correction = (jnp.sqrt(one_minus_power(s.beta2, s.beta2_residual, t))
                      / one_minus_power(s.beta1, s.beta1_residual, t))
        updates = jax.tree.map(
            lambda m, v: cast(correction, m) * m / (jnp.sqrt(v) + cast(s.epsilon, v)), mean, var)
        return updates, s._replace(mean=mean, var=var)

    return counted(optax.GradientTransformationExtraArgs(init_fn, update_fn),
                   begin_num_update=begin_num_update)


def next_learning_rate(tx: optax.GradientTransformation, state: optax.OptState,
                       params: optax.Params | None = None) -> jax.Array | optax.Updates:
    """The learning rate the next update of ``tx`` steps with.

    That is ``schedule(update_count(state) + 1)`` for a scheduled rate, else
    the ``learning_rate`` the state holds (as :func:`mxopt.set_hyperparams`
    left it); with ``params``, each leaf's rate, times its ``lr_mult``.
    (Gluon's ``trainer.learning_rate`` is the last update's rate:
    :meth:`mxopt.gluon.Trainer.learning_rate`.)

    Args:
      tx: an mxopt optimizer (it tells its schedule).
      state: its state, or any pytree holding it (see :func:`mxopt.update_count`).
      params: a params tree, for the rate of each of its leaves.

    Returns:
      A float32 scalar, or a tree of them like ``params``.

    Raises:
      ValueError: ``tx`` is no mxopt optimizer, or it has no learning rate
        (AdaDelta, MXNet's ``test``).
    """
    return learning_rate_at(tx, state, update_count(state) + 1, params)


def learning_rate_at(tx: optax.GradientTransformation, state: optax.OptState,
                     count: int | jax.Array,
                     params: optax.Params | None = None) -> jax.Array | optax.Updates:
    """``tx``'s learning rate at update number ``count``: ``schedule(count)`` for a scheduled
    rate, else the one ``state`` holds; with ``params``, per leaf, times its ``lr_mult``.

    Raises:
      ValueError: as :func:`next_learning_rate`.
    """
    schedule = getattr(tx, "learning_rate", None)
    if schedule is None:
        raise ValueError(f"{tx!r} is no mxopt optimizer: build it with mxopt.create or an "
                         "optimizer's function (mxopt.sgd, ...)")
    rates = [node for node in state_nodes(state) if isinstance(node, LearningRateState)]
    if not rates:
        raise ValueError("this optimizer's updates take no learning rate")
    if callable(schedule):
        rate = jnp.asarray(schedule(count), jnp.float32)
    else:
        (rate,) = jax.tree.leaves(rates[0].learning_rate)
    if params is None:
        return rate
    return multipliers.per_leaf(rate, rates[0].lr_mult, params)
