"""AdaDelta, as MXNet computes it."""

from __future__ import annotations

from typing import NamedTuple, Unpack

import jax
import jax.numpy as jnp
import optax

from mxopt import hyperparams, validation
from mxopt.numerics import like, tree_map
from mxopt.optimizers._base import BASE_ARGS_DOC, Base, BaseArgs
from mxopt.registry import register
from mxopt.structure import readable


@readable
class ScaleByAdadeltaState(NamedTuple):
    rho: jax.Array  # f32 scalar
    epsilon: jax.Array  # f32 scalar
    rho_residual: jax.Array  # f32 scalar: rho - float32(rho)
    acc_g: optax.Updates  # like params: running mean of g^2
    acc_delta: optax.Updates  # like params: running mean of delta^2


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
    initial_rho, eps = hyperparams.scalar("rho", rho), hyperparams.scalar("epsilon", epsilon)

    def init_fn(params):
        zeros = optax.tree.zeros_like(params)
        return ScaleByAdadeltaState(initial_rho, eps, hyperparams.residual(rho), zeros, zeros)

    def update_fn(updates, state, params=None):
        del params
        s = state
        complement = (1 - s.rho) - s.rho_residual

        def average(old, square):
            return like(s.rho, old) * old + like(complement, square) * square

        acc_g = tree_map(lambda g, a: average(a, g * g), updates, s.acc_g)
        updates = tree_map(lambda g, a, d: jnp.sqrt(d + like(s.epsilon, d))
                       / jnp.sqrt(a + like(s.epsilon, a)) * g, updates, acc_g, s.acc_delta)
        acc_delta = tree_map(lambda d, a: average(a, d * d), updates, s.acc_delta)
        return updates, s._replace(acc_g=acc_g, acc_delta=acc_delta)

    return optax.GradientTransformation(init_fn, update_fn)


@register
def adadelta(rho: float = 0.9, epsilon: float = 1e-5,
             **base: Unpack[BaseArgs]) -> optax.GradientTransformation:
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
    b = Base.parse("adadelta", base)
    validation.count("begin_num_update", b.begin_num_update)
    return b.build(b.rescale(), b.clip(), scale_by_adadelta(rho, epsilon), b.weight_decay(),
                   optax.scale(-1.0))


adadelta.__doc__ += BASE_ARGS_DOC
