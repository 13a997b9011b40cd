"""AdaMax, Adam's variant on the infinity norm, as MXNet computes it."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from mxopt.base import Base, optimizer
from mxopt.counting import counted
from mxopt.hyperparams import DecayRate, ExactDecayRate, Given, Positive
from mxopt.numerics import cast, complement, one_minus_power, unzip
from mxopt.registry import MXNet, register
from mxopt.sharding import zeros_like
from mxopt.structure import LikeParams, brief_repr


@brief_repr
class ScaleByAdamaxState(NamedTuple):
    beta1: ExactDecayRate
    beta2: DecayRate
    epsilon: Positive | None  # None for none
    beta1_residual: jax.Array  # f32 scalar: beta1 - float32(beta1)
    mean: LikeParams  # m
    norm: LikeParams  # u, the decayed infinity norm of the gradients


def scale_by_adamax(beta1: float = 0.9, beta2: float = 0.999, epsilon: float | None = None, *,
                    begin_num_update: int = 0,
                    divide_by_zero_norm: bool = False) -> optax.GradientTransformation:
    """AdaMax's direction (Kingma & Ba, 2015, section 7), with bias correction.

    At update ``t`` (counted from ``begin_num_update``), per leaf::

        m <- beta1 * m + (1 - beta1) * g
        u <- max(beta2 * u, |g|)
        out = m / u / (1 - beta1^t)               (epsilon None, MXNet's Python AdaMax)
        out = m / (u + epsilon) / (1 - beta1^t)   (MXNet.jl's AdaMax)

    ``1 - beta1`` and ``1 - beta1^t`` are taken from the double-precision
    ``beta1``, as MXNet computes them on the host. Without ``epsilon``, an element whose ``u`` is
    0 (every gradient so far 0, so ``m`` is 0 too unless ``beta2`` is 0)
    gets 0 where the formula gives ``0/0`` (MXNet: NaN; and NaN here with
    ``divide_by_zero_norm``, for ``mxnet_quirks``).

    Args:
      beta1: decay rate of the mean, in [0, 1).
      beta2: decay rate of the infinity norm, in [0, 1).
      epsilon: added to ``u``, > 0, or None to add nothing.
      begin_num_update: the update count the run starts from.
      divide_by_zero_norm: divide by ``u`` where it is 0 too, as MXNet does.
    """
    given = Given(ScaleByAdamaxState, beta1=beta1, beta2=beta2, epsilon=epsilon)

    def init_fn(params):
        return ScaleByAdamaxState(**given.fields(), mean=zeros_like(params),
                                  norm=zeros_like(params))

    def update_fn(updates, state, params=None, *, count, **extra_args):
        del params, extra_args
        s = given.injected(state)
        correction = 1 / one_minus_power(s.beta1, s.beta1_residual, count.astype(jnp.float32))
        one_minus_beta1 = complement(s.beta1, s.beta1_residual)

        def leaf(g, m, u):
            m = cast(s.beta1, g) * m + cast(one_minus_beta1, g) * g
            u = jnp.maximum(cast(s.beta2, g) * u, jnp.abs(g))
            if s.epsilon is None and divide_by_zero_norm:
                ratio = m / u
            elif s.epsilon is None:
                ratio = jnp.where(u > 0, m / jnp.where(u > 0, u, 1), 0)
            else:
                ratio = m / (u + cast(s.epsilon, u))
            return cast(correction, g) * ratio, m, u

        out = jax.tree.map(leaf, updates, s.mean, s.norm)
        updates, mean, norm = unzip(updates, out, 3)
        return updates, s._replace(mean=mean, norm=norm)

    return counted(optax.GradientTransformationExtraArgs(init_fn, update_fn),
                   begin_num_update=begin_num_update)


@register(mxnet=MXNet("Adamax", state=("mean", "norm")))
@optimizer
def adamax(learning_rate: float | None = 0.002, beta1: float = 0.9, beta2: float = 0.999, *,
           base: Base) -> optax.GradientTransformation:
    """MXNet's ``adamax`` (Kingma & Ba, 2015, arXiv:1412.6980, section 7).

    At update ``t`` (counted from ``begin_num_update``), per leaf, as
    MXNet 1.9.1's ``Adamax.update`` computes it::

        g = clip(rescale_grad * grad + wd * wd_mult * w, clip_gradient)
        m = beta1 * m + (1 - beta1) * g
        u = max(beta2 * u, |g|)
        w = w - lr / (1 - beta1^t) * m / u

    Weight decay is added before clipping, as in Adam. There is no epsilon:
    an element whose gradients have all been 0 has ``m = u = 0``; mxopt
    leaves it unchanged where MXNet's ``0/0`` makes it NaN (as
    ``mxnet_quirks=True`` does; see docs/mxnet_differences.md). The default ``learning_rate=0.002``
    overrides a scheduler's ``base_lr`` unless ``learning_rate=None`` is
    passed, as in MXNet.

    Args:
      learning_rate: the step size, 0.002 by default.
      beta1: decay rate of the mean, in [0, 1).
      beta2: decay rate of the infinity norm, in [0, 1).
    """
    del learning_rate  # in ``base``
    return base.build(base.rescale(), base.weight_decay(), base.clip(),
                      scale_by_adamax(beta1, beta2, begin_num_update=base.begin_num_update,
                                      divide_by_zero_norm=base.mxnet_quirks),
                      base.scale_by_learning_rate())
