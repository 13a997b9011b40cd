"""Signum and signSGD: steps of fixed size along the sign of the (averaged) gradient."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from mxopt import transforms, validation
from mxopt.base import Base, optimizer
from mxopt.hyperparams import DecayRate, Given, NonNegative
from mxopt.numerics import cast
from mxopt.registry import MXNet, Negated, register
from mxopt.sharding import zeros_like
from mxopt.structure import LikeParams, brief_repr


@brief_repr
class ScaleBySignumState(NamedTuple):
    momentum: DecayRate
    mom: LikeParams  # the average of past gradients


def scale_by_signum(momentum: float = 0.9) -> optax.GradientTransformation:
    """The sign of an exponential average of the gradients.

    ``m <- momentum * m + (1 - momentum) * g``; the output is ``sign(m)``
    (0 where ``m`` is 0). With ``momentum=0`` no average is kept and the
    output is ``sign(g)`` (signSGD).

    Args:
      momentum: the decay of the average, in [0, 1).
    """
    if transforms.without_buffer(momentum):
        return optax.scale_by_sign()
    given = Given(ScaleBySignumState, momentum=momentum)

    def init_fn(params):
        return ScaleBySignumState(**given.fields(), mom=zeros_like(params))

    def update_fn(updates, state, params=None):
        del params
        state = given.injected(state)
        mu = state.momentum
        mom = jax.tree.map(lambda g, m: cast(mu, g) * m + cast(1 - mu, g) * g, updates, state.mom)
        return jax.tree.map(jnp.sign, mom), state._replace(mom=mom)

    return optax.GradientTransformation(init_fn, update_fn)


@brief_repr
class AddDecoupledWeightDecayState(NamedTuple):
    wd_lh: NonNegative


def add_decoupled_weight_decay(wd_lh: float = 0.0) -> optax.GradientTransformation:
    """Weight decay kept out of the gradient statistics: ``u <- u + wd_lh * w``.

    Placed after the direction is formed and before the learning rate, it
    makes the step ``w <- (1 - lr * wd_lh) * w - lr * u`` (Loshchilov &
    Hutter's decoupled weight decay). ``wd_mult`` does not apply, as in MXNet.

    Args:
      wd_lh: the decay coefficient, >= 0.
    """
    given = Given(AddDecoupledWeightDecayState, wd_lh=wd_lh)

    def init_fn(params):
        del params
        return AddDecoupledWeightDecayState(**given.fields())

    def update_fn(updates, state, params=None):
        validation.params_given(params, "wd_lh")
        state = given.injected(state)
        decay = state.wd_lh
        decayed = jax.tree.map(lambda u, w: u + cast(decay, u) * w.astype(u.dtype), updates, params)
        return decayed, state

    return optax.GradientTransformation(init_fn, update_fn)


# MXNet's signum_update keeps mom = momentum * mom - (1 - momentum) * g.
@register(mxnet=MXNet("Signum", state=lambda arguments: Negated("mom") if arguments["momentum"]
                      else None))
@optimizer
def signum(learning_rate: float | None = 0.01, momentum: float = 0.9, wd_lh: float = 0.0, *,
           base: Base) -> optax.GradientTransformation:
    """MXNet's ``signum``: Signum, and signSGD when ``momentum=0``.

    Per leaf, with ``lr`` the (scheduled) learning rate times ``lr_mult``::

        g = clip(rescale_grad * grad, clip_gradient) + wd * wd_mult * w
        m = momentum * m + (1 - momentum) * g
        w = (1 - lr * wd_lh) * w - lr * sign(m)

    ``wd`` enters the gradient before the sign; ``wd_lh`` decays the weight
    after it and is not scaled by ``wd_mult``. With ``momentum=0`` no
    average is kept and ``m = g``. MXNet 1.9.1 switches to another kernel
    there, which applies ``wd`` as decoupled decay (``(1 - lr * wd) * w -
    lr * sign(grad)``) and fails when ``wd_lh`` is given; mxopt computes the
    documented formula above for every momentum, and MXNet's decoupled ``wd``
    at ``momentum=0`` with ``mxnet_quirks=True`` (see docs/mxnet_differences.md).
    Rescaling and clipping (by a positive factor and bound) never change a
    sign; they matter only through their size relative to ``wd * w`` and the
    average.

    Args:
      learning_rate: the step size, 0.01 by default.
      momentum: the decay of the gradient average, in [0, 1).
      wd_lh: decoupled weight decay (Loshchilov & Hutter), >= 0.

    References:
      Bernstein, Wang, Azizzadenesheli & Anandkumar, "signSGD: Compressed
      Optimisation for Non-Convex Problems", ICML 2018, arXiv:1802.04434.
      Loshchilov & Hutter, "Decoupled Weight Decay Regularization",
      arXiv:1711.05101.
    """
    del learning_rate  # in ``base``
    direction = [base.weight_decay(), scale_by_signum(momentum)]
    if base.mxnet_quirks and transforms.without_buffer(momentum):  # MXNet's signsgd_update
        direction.reverse()
    return base.build(base.rescale(), base.clip(), *direction,
                      add_decoupled_weight_decay(wd_lh), base.scale_by_learning_rate())
