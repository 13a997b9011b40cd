"""AdaDelta, as MXNet computes it."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from mxopt.base import Base, optimizer
from mxopt.hyperparams import ExactDecayRate, Given, Positive
from mxopt.numerics import cast, root
from mxopt.registry import MXNet, register
from mxopt.sharding import zeros_like
from mxopt.structure import LikeParams, brief_repr


@brief_repr
class ScaleByAdadeltaState(NamedTuple):
    rho: ExactDecayRate
    epsilon: Positive
    rho_residual: jax.Array  # f32 scalar: rho - float32(rho)
    acc_g: LikeParams  # running mean of g^2
    acc_delta: LikeParams  # running mean of delta^2


def scale_by_adadelta(rho: float = 0.9, epsilon: float = 1e-5) -> optax.GradientTransformation:
    """AdaDelta's step (Zeiler, 2012), which carries its own units and needs no learning rate.

    Per leaf, with both averages starting at zero::

        acc_g <- rho * acc_g + (1 - rho) * g^2
        delta = sqrt(acc_delta + epsilon) / sqrt(acc_g + epsilon) * g
        acc_delta <- rho * acc_delta + (1 - rho) * delta^2
        out = delta

    The weight moves by ``-delta``. ``1 - rho`` is taken from the
    double-precision ``rho``, as MXNet computes it on the host.

    Args:
      rho: decay of both running averages, in [0, 1).
      epsilon: added under both square roots, > 0 (it also sets the size of
        the first steps, ``sqrt(epsilon / (acc_g + epsilon)) * g``).
    """
    given = Given(ScaleByAdadeltaState, rho=rho, epsilon=epsilon)

    def init_fn(params):
        return ScaleByAdadeltaState(**given.fields(), acc_g=zeros_like(params),
                                    acc_delta=zeros_like(params))

    def update_fn(updates, state, params=None):
        del params
        s = given.injected(state)
        complement = (1 - s.rho) - s.rho_residual

        def average(old, square):
            return cast(s.rho, old) * old + cast(complement, square) * square

        acc_g = jax.tree.map(lambda g, a: average(a, g * g), updates, s.acc_g)
        updates = jax.tree.map(lambda g, a, d: jnp.sqrt(d + cast(s.epsilon, d))
                               / root(a + cast(s.epsilon, a), s.epsilon) * g,
                               updates, acc_g, s.acc_delta)
        acc_delta = jax.tree.map(lambda d, a: average(a, d * d), updates, s.acc_delta)
        return updates, s._replace(acc_g=acc_g, acc_delta=acc_delta)

    return optax.GradientTransformation(init_fn, update_fn)


@register(mxnet=MXNet("AdaDelta", state=("acc_g", "acc_delta")))
@optimizer
def adadelta(rho: float = 0.9, epsilon: float = 1e-5, *,
             base: Base) -> optax.GradientTransformation:
    """MXNet's ``adadelta`` (Zeiler, 2012, arXiv:1212.5701).

    Per leaf, as MXNet 1.9.1's ``AdaDelta.update`` computes it::

        g = clip(rescale_grad * grad, clip_gradient)
        acc_g = rho * acc_g + (1 - rho) * g^2
        delta = sqrt(acc_delta + epsilon) / sqrt(acc_g + epsilon) * g
        acc_delta = rho * acc_delta + (1 - rho) * delta^2
        w = w - (delta + wd * wd_mult * w)

    There is no learning rate: ``learning_rate``, ``lr_scheduler`` and
    ``lr_mult`` are accepted and have no effect, as in MXNet, and the state
    holds no ``learning_rate``. Weight decay is applied to the weight
    directly, unscaled. (MXNet's docstring also adds ``wd * weight`` to the
    gradient before clipping; its code, followed here, does not.)

    Args:
      rho: decay of the running averages of ``g^2`` and ``delta^2``, in [0, 1).
      epsilon: added under both square roots, > 0.
    """
    return base.build(base.rescale(), base.clip(), scale_by_adadelta(rho, epsilon),
                      base.weight_decay(), optax.scale(-1.0))
