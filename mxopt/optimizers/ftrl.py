"""FTRL-Proximal, as MXNet computes it."""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from mxopt import multipliers, validation
from mxopt.base import Base, optimizer
from mxopt.hyperparams import Given, Multipliers, NonNegative
from mxopt.multipliers import MultiplierSpec
from mxopt.numerics import cast, unzip
from mxopt.registry import MXNet, register
from mxopt.sharding import zeros_like
from mxopt.structure import LikeParams, brief_repr
from mxopt.transforms import LeafRates, LearningRateState


@brief_repr
class FtrlStepState(NamedTuple):
    rate: LearningRateState  # learning_rate and lr_mult
    lamda1: NonNegative
    beta: NonNegative
    wd: NonNegative
    wd_mult: Multipliers | None  # None for all 1
    z: LikeParams  # the gradients, less the proximal terms, summed
    n: LikeParams  # the squared gradients summed


def ftrl_step(rate: LeafRates, lamda1: float = 0.01, beta: float = 1.0, wd: float = 0.0,
              wd_mult: MultiplierSpec = None, *,
              divide_by_zero_rate: bool = False) -> optax.GradientTransformation:
    """The step to FTRL-Proximal's next weight, computed in closed form from ``z`` and ``n``.

    Per leaf, with ``lr`` the leaf's rate at this update, ``w`` the current
    weight and ``z``, ``n`` starting at zero, in the order of MXNet's
    ``ftrl_update`` kernel::

        z <- z + (g - (sqrt(n + g^2) - sqrt(n)) * w / lr)
        n <- n + g^2
        w_new = (sign(z) * lamda1 - z) / ((beta + sqrt(n)) / lr + wd) * (|z| > lamda1)
        out = w_new - w

    The new weight depends on the learning rate nonlinearly, so the rate is
    taken here (``rate``) rather than from a :func:`scale_by_learning_rate`
    at the end of a chain, and weight decay enters the denominator, not the
    gradient. Where ``lr`` is 0 the formula divides by zero (MXNet's
    weights become NaN); here the update is skipped: ``w``, ``z`` and ``n``
    stay as they are. So it is where ``lr`` is positive but below float32's
    smallest normal (about 1.18e-38; MXNet raises for such a rate).
    ``divide_by_zero_rate`` (``mxnet_quirks``) applies the formula there
    too, with MXNet's NaN weights.

    Args:
      rate: the learning rate (schedule, ``lr_mult``, ``begin_num_update``).
      lamda1: the L1 penalty, >= 0; weights whose ``|z| <= lamda1`` are 0.
      beta: added to ``sqrt(n)`` in the per-coordinate rate, >= 0.
      wd: the L2 penalty, >= 0.
      wd_mult: per-leaf multipliers of ``wd`` (see :mod:`mxopt.multipliers`).
    """
    given = Given(FtrlStepState, lamda1=lamda1, beta=beta, wd=wd)

    def init_fn(params):
        return FtrlStepState(rate.init(params), **given.fields(),
                             wd_mult=multipliers.resolve(wd_mult, params, "wd_mult"),
                             z=zeros_like(params), n=zeros_like(params))

    def update_fn(updates, state, params=None, *, count, **extra_args):
        del extra_args
        validation.params_given(params, "ftrl")
        state = given.injected(state)
        lrs = rate.at(state.rate, count, updates)
        wds = multipliers.per_leaf(state.wd, state.wd_mult, updates)

        def leaf(g, w, z, n, lr, wd):
            lr, wd, l1, b = (cast(x, g) for x in (lr, wd, state.lamda1, state.beta))
            w = w.astype(g.dtype)
            new_z = z + (g - (jnp.sqrt(n + g * g) - jnp.sqrt(n)) * w / lr)
            new_n = n + g * g
            new_w = ((jnp.sign(new_z) * l1 - new_z) / ((b + jnp.sqrt(new_n)) / lr + wd)
                     * (jnp.abs(new_z) > l1).astype(g.dtype))
            # The formula divides by lr; a rate of 0 (lr_mult=0 freezing a
            # leaf, a schedule decayed to 0, a rate float16 rounds to 0) skips
            # the update instead. So does a positive rate below float32's
            # smallest normal: MXNet refuses one ("Out of range value for
            # lr"), and XLA on CPU flushes it to 0, in comparisons too, so
            # what the formula gives there would depend on the platform.
            learns = divide_by_zero_rate or lr.astype(jnp.float32) >= jnp.finfo(jnp.float32).tiny
            return (jnp.where(learns, new_w - w, 0), jnp.where(learns, new_z, z),
                    jnp.where(learns, new_n, n))

        out = jax.tree.map(leaf, updates, params, state.z, state.n, lrs, wds)
        steps, z, n = unzip(updates, out, 3)
        return steps, state._replace(rate=rate.given.injected(state.rate), z=z, n=n)

    return rate.with_counter(optax.GradientTransformationExtraArgs(init_fn, update_fn))


@register(mxnet=MXNet("Ftrl", state=("z", "n"), scheduler_ignores_learning_rate=True))
@optimizer
def ftrl(lamda1: float = 0.01, learning_rate: float | None = None, beta: float = 1.0, *,
         base: Base) -> optax.GradientTransformation:
    """MXNet's ``ftrl``: FTRL-Proximal (McMahan et al., 2013).

    Per leaf, with ``lr`` the (scheduled) learning rate times ``lr_mult``,
    as MXNet 1.9.1's ``ftrl_update`` kernel computes it::

        g = clip(rescale_grad * grad, clip_gradient)
        z = z + g - (sqrt(n + g^2) - sqrt(n)) * w / lr
        n = n + g^2
        w = (sign(z) * lamda1 - z) / ((beta + sqrt(n)) / lr + wd * wd_mult) * (|z| > lamda1)

    The weight is recomputed from ``z`` and ``n`` at every update, so a zero
    gradient still moves it (to the proximal point). Weight decay is an L2
    penalty in the denominator, not a term of the gradient.

    ``learning_rate`` defaults to 0.1 without a scheduler. With
    ``lr_scheduler``, the scheduler's ``base_lr`` is used unless
    ``learning_rate`` is given, which then overrides ``base_lr`` as for every
    other optimizer. MXNet 1.9.1's ``Ftrl`` ignores a ``learning_rate`` given
    with a scheduler, and so does ``mxnet_quirks=True`` (see
    docs/mxnet_differences.md).

    Float16 weights without ``multi_precision`` are updated in float16, with
    float16 ``z`` and ``n`` (MXNet 1.9.1 fails there: it makes float32
    states for them).

    Args:
      lamda1: the L1 regularization coefficient, >= 0.
      learning_rate: the step size; 0.1 without a scheduler.
      beta: the per-coordinate learning-rate parameter, >= 0.

    References:
      McMahan et al., "Ad Click Prediction: a View from the Trenches",
      KDD 2013, https://dl.acm.org/doi/10.1145/2487575.2488200.
    """
    del learning_rate  # in ``base``
    if base.lr_scheduler is None and base.learning_rate is None:
        base = dataclasses.replace(base, learning_rate=0.1)
    elif base.mxnet_quirks and base.lr_scheduler is not None:  # MXNet's Ftrl keeps it to itself
        base = dataclasses.replace(base, learning_rate=None)
    return base.build(base.rescale(), base.clip(),
                      ftrl_step(base.rate(), lamda1, beta, base.wd, base.wd_mult,
                                divide_by_zero_rate=base.mxnet_quirks))
