"""RMSProp, as MXNet computes it: Tieleman & Hinton's form and Graves's centered form."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from mxopt import counting, transforms, validation
from mxopt.base import Base, optimizer
from mxopt.hyperparams import DecayRate, Given, Positive
from mxopt.numerics import cast, root, rounded
from mxopt.registry import MXNet, register
from mxopt.sharding import zeros_like
from mxopt.structure import LikeParams, brief_repr


@brief_repr
class ScaleByRMSPropState(NamedTuple):
    gamma1: DecayRate
    epsilon: Positive
    mean_square: LikeParams  # E[g^2] (MXNet's state n)
    mean: LikeParams | None  # E[g] (MXNet's state g); None unless centered


def root_mean_square(state: ScaleByRMSPropState) -> optax.Updates:
    """Each leaf's ``sqrt(mean_square - mean^2 + epsilon)`` (``mean`` 0 unless centered),
    rounded as MXNet's kernels round it (``m * m`` before the difference; see
    :func:`mxopt.numerics.root`)."""
    def leaf_root(n, m=None):
        spread = n if m is None else n - rounded(m * m, state.epsilon)
        return root(spread + cast(state.epsilon, spread), state.epsilon)

    if state.mean is None:
        return jax.tree.map(leaf_root, state.mean_square)
    return jax.tree.map(leaf_root, state.mean_square, state.mean)


def scale_by_rmsprop(gamma1: float = 0.9, epsilon: float = 1e-8, *, centered: bool = False,
                     divide: bool = True) -> optax.GradientTransformation:
    """RMSProp's direction: the gradient over a running root mean square.

    Per leaf, with the averages starting at zero::

        mean_square <- gamma1 * mean_square + (1 - gamma1) * g^2
        out = g / sqrt(mean_square + epsilon)

    and with ``centered=True`` (Graves, 2013, eqs. 38-45) the running mean
    of ``g`` is subtracted, which estimates the variance instead::

        mean <- gamma1 * mean + (1 - gamma1) * g
        out = g / sqrt(mean_square - mean^2 + epsilon)

    Epsilon sits inside the square root, as in MXNet's ``rmsprop_update``
    and ``rmspropalex_update`` kernels. The learning rate, and any momentum
    over the scaled steps (:func:`graves_momentum`), come after it in a chain.

    Args:
      gamma1: decay of the running averages, in [0, 1).
      epsilon: added under the square root, > 0.
      centered: Graves's centered form.
      divide: ``False`` keeps the averages and passes ``g`` on undivided, for
        :func:`graves_momentum` to divide after the learning rate, as MXNet's
        ``rmspropalex_update`` computes ``(lr * g) / sqrt(...)``: where
        ``n - m^2`` cancels, the order of the two roundings shows.
    """
    given = Given(ScaleByRMSPropState, gamma1=gamma1, epsilon=epsilon)

    def init_fn(params):
        return ScaleByRMSPropState(**given.fields(), mean_square=zeros_like(params),
                                   mean=zeros_like(params) if centered else None)

    def update_fn(updates, state, params=None):
        del params
        s = given.injected(state)

        def average(old, new, times=None):
            """``(1 - gamma1) * new [* times] + gamma1 * old``, each product rounded in the
            order MXNet's kernel writes it: ``n - m^2`` cancels, so one rounding moves it."""
            fresh = rounded(cast(1 - s.gamma1, new) * new, s.epsilon)
            if times is not None:
                fresh = rounded(fresh * times, s.epsilon)
            return fresh + rounded(cast(s.gamma1, old) * old, s.epsilon)

        if centered:  # rmspropalex_update: (1 - gamma1) * g * g, from the left
            mean_square = jax.tree.map(lambda g, n: average(n, g, g), updates, s.mean_square)
            mean = jax.tree.map(average, s.mean, updates)
        else:  # rmsprop_update: (1 - gamma1) * (g * g)
            mean_square = jax.tree.map(lambda g, n: average(n, g * g), updates, s.mean_square)
            mean = None
        s = s._replace(mean_square=mean_square, mean=mean)
        if divide:
            updates = jax.tree.map(jnp.divide, updates, root_mean_square(s))
        return updates, s

    return optax.GradientTransformation(init_fn, update_fn)


@brief_repr
class MomentumState(NamedTuple):
    gamma2: DecayRate
    delta: LikeParams  # the last step taken (MXNet's state delta)


def graves_momentum(gamma2: float = 0.9, *,
                    divide: bool = False) -> optax.GradientTransformation:
    """Graves's momentum over learning-rate-scaled steps ``u``: ``delta <- gamma2 * delta + u``.

    The output is ``delta``. This is :func:`mxopt.transforms.trace` with
    its decay held under MXNet's name ``gamma2``, so that
    ``set_hyperparams(state, gamma2=...)`` finds it.

    Args:
      gamma2: decay of the step, in [0, 1).
      divide: first ``u <- u / sqrt(n - m^2 + epsilon)``, of the averages of a
        ``scale_by_rmsprop(divide=False)`` earlier in a :func:`mxopt.counted`
        chain (MXNet's ``rmspropalex_update``: ``delta = gamma2 * delta - (lr * g) / ...``).
    """
    validation.decay_rate("gamma2", gamma2)
    inner = transforms.trace(gamma2)

    def init_fn(params):
        return MomentumState(*inner.init(params))

    def update_fn(updates, state, params=None, *, earlier_states=(), **extra_args):
        del extra_args
        if divide:
            averages = counting.earlier_state(earlier_states, ScaleByRMSPropState,
                                              "graves_momentum(divide=True)")
            updates = jax.tree.map(jnp.divide, updates, root_mean_square(averages))
        updates, traced = inner.update(updates, transforms.TraceState(*state), params)
        return updates, MomentumState(*traced)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


@brief_repr
class ClipWeightsState(NamedTuple):
    clip_weights: Positive


def clip_new_weights(bound: float | None = None) -> optax.GradientTransformation:
    """MXNet's ``clip_weights``: the new weight is clipped to ``[-bound, bound]``.

    The update ``u`` becomes ``clip(w + u, -bound, bound) - w``, so that
    ``optax.apply_updates`` yields the clipped weight (to rounding). It comes
    last in a chain, and ``update`` needs params.

    Args:
      bound: the bound, > 0, or ``None`` for no clipping (then the state is
        empty). MXNet silently skips clipping for ``clip_weights <= 0``;
        mxopt rejects such values.
    """
    if bound is None:
        return optax.identity()
    given = Given(ClipWeightsState, clip_weights=bound)

    def init_fn(params):
        del params
        return ClipWeightsState(**given.fields())

    def update_fn(updates, state, params=None):
        validation.params_given(params, "clip_weights")
        state = given.injected(state)

        def clipped(u, w):
            c = cast(state.clip_weights, u)
            w = w.astype(u.dtype)
            return jnp.clip(w + u, -c, c) - w

        return jax.tree.map(clipped, updates, params), state

    return optax.GradientTransformation(init_fn, update_fn)


@register(mxnet=MXNet("RMSProp", state=lambda arguments: (
    ("mean_square", "mean", "delta") if arguments["centered"] else ("mean_square",))))
@optimizer
def rmsprop(learning_rate: float | None = 0.001, gamma1: float = 0.9, gamma2: float = 0.9,
            epsilon: float = 1e-8, centered: bool = False, clip_weights: float | None = None, *,
            base: Base) -> optax.GradientTransformation:
    """MXNet's ``rmsprop`` (Tieleman & Hinton, 2012; centered: Graves, 2013).

    Per leaf, as MXNet 1.9.1's ``rmsprop_update`` kernel computes it::

        g = clip(rescale_grad * grad + wd * wd_mult * w, clip_gradient)
        n = gamma1 * n + (1 - gamma1) * g^2
        w = clip(w - lr * g / sqrt(n + epsilon), clip_weights)

    and with ``centered=True``, as ``rmspropalex_update`` computes it::

        n = gamma1 * n + (1 - gamma1) * g^2
        m = gamma1 * m + (1 - gamma1) * g
        delta = gamma2 * delta - lr * g / sqrt(n - m^2 + epsilon)
        w = clip(w + delta, clip_weights)

    Weight decay is added before gradient clipping. The learning rate sits
    inside the centered form's ``delta``, so a change of rate takes effect
    gradually there. ``gamma2`` is used by the centered form only. The
    default ``learning_rate=0.001`` overrides a scheduler's ``base_lr``
    unless ``learning_rate=None`` is passed, as in MXNet.

    Args:
      learning_rate: the step size, 0.001 by default.
      gamma1: decay of the running averages of ``g^2`` (and ``g``), in [0, 1).
      gamma2: decay of the centered form's step ``delta``, in [0, 1).
      epsilon: added under the square root, > 0.
      centered: Graves's centered form.
      clip_weights: clip the weights to ``[-clip_weights, clip_weights]``
        after each update, > 0; ``None`` for no clipping.
    """
    del learning_rate  # in ``base``
    if not isinstance(centered, bool):
        raise ValueError(f"centered must be a bool, got {centered!r}")
    validation.decay_rate("gamma2", gamma2)  # checked even where only the centered form uses it
    step = (graves_momentum(gamma2, divide=True),) if centered else ()
    return base.build(base.rescale(), base.weight_decay(), base.clip(),
                      scale_by_rmsprop(gamma1, epsilon, centered=centered, divide=not centered),
                      base.scale_by_learning_rate(), *step, clip_new_weights(clip_weights))
