"""FTML (Follow the Moving Leader), as MXNet computes it."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from mxopt import transforms, validation
from mxopt.base import Base, optimizer
from mxopt.hyperparams import DecayRate, Given, Positive
from mxopt.numerics import cast, one_minus_float32_power, unzip
from mxopt.registry import MXNet, register
from mxopt.sharding import zeros_like
from mxopt.structure import LikeParams, brief_repr


@brief_repr
class ScaleByFtmlState(NamedTuple):
    rate: transforms.LearningRateState
    beta1: DecayRate
    beta2: DecayRate
    epsilon: Positive
    d: LikeParams  # d_{t-1}
    v: LikeParams
    z: LikeParams


def scale_by_ftml(rate: transforms.LeafRates, beta1: float = 0.6, beta2: float = 0.999,
                  epsilon: float = 1e-8, *,
                  divide_by_zero_rate: bool = False) -> optax.GradientTransformation:
    """FTML's step: the update that moves ``w`` to ``-z / d_t``.

    At update ``t``, per leaf, with ``lr`` from ``rate``::

        v <- beta2 * v + (1 - beta2) * g^2
        d_t = (1 - beta1^t) / lr * (sqrt(v / (1 - beta2^t)) + epsilon)
        z <- beta1 * z + (1 - beta1) * g - (d_t - beta1 * d_{t-1}) * w
        out = -z / d_t - w

    The learning rate sits inside ``d_t``, so this transform takes it
    itself; where it is 0 the output is 0 and ``d``, ``z`` stay as they
    were, which is the limit ``lr -> 0`` (``divide_by_zero_rate``,
    for ``mxnet_quirks``: MXNet's division, and NaN). ``beta^t`` is rounded to float32
    as in MXNet's ``ftml_update`` kernel (see
    :func:`mxopt.numerics.one_minus_float32_power`).

    Args:
      rate: the learning rate per leaf and update.
      beta1, beta2: decay rates, in [0, 1).
      epsilon: added to the root, > 0.
    """
    given = Given(ScaleByFtmlState, beta1=beta1, beta2=beta2, epsilon=epsilon)

    def init_fn(params):
        return ScaleByFtmlState(rate.init(params), **given.fields(), d=zeros_like(params),
                                v=zeros_like(params), z=zeros_like(params))

    def update_fn(updates, state, params=None, *, count, **extra_args):
        del extra_args
        validation.params_given(params, "ftml")
        s = given.injected(state)
        lrs = rate.at(s.rate, count, updates)
        t = count.astype(jnp.float32)
        corrections = (one_minus_float32_power(s.beta1, t), one_minus_float32_power(s.beta2, t))

        def step(g, w, lr, d, v, z):
            w, lr = w.astype(g.dtype), cast(lr, g)
            beta1 = cast(s.beta1, g)
            v = cast(s.beta2, g) * v + cast(1 - s.beta2, g) * (g * g)
            # MXNet divides by lr = 0 and returns NaN. As lr -> 0, -z_t / d_t
            # tends to w, and keeping d and z gives the same next step. d_t is
            # also 0 where v is 0 and epsilon underflows (float16): no step.
            divisor = lr if divide_by_zero_rate else jnp.where(lr != 0, lr, 1)
            d_t = (cast(corrections[0], g) / divisor
                   * (jnp.sqrt(v / cast(corrections[1], g)) + cast(s.epsilon, g)))
            moving = True if divide_by_zero_rate else (lr != 0) & (d_t > 0)
            z_t = beta1 * z + cast(1 - s.beta1, g) * g - (d_t - beta1 * d) * w
            return (jnp.where(moving, -z_t / d_t - w, 0), jnp.where(moving, d_t, d), v,
                    jnp.where(moving, z_t, z))

        out = jax.tree.map(step, updates, params, lrs, s.d, s.v, s.z)
        updates, d, v, z = unzip(updates, out, 4)
        return updates, s._replace(rate=rate.given.injected(s.rate), d=d, v=v, z=z)

    return rate.with_counter(optax.GradientTransformationExtraArgs(init_fn, update_fn))


@register(mxnet=MXNet("FTML", state=("d", "v", "z")))
@optimizer
def ftml(beta1: float = 0.6, beta2: float = 0.999, epsilon: float = 1e-8, *,
         base: Base) -> optax.GradientTransformation:
    """MXNet's ``ftml`` (Zheng & Kwok, 2017).

    At update ``t`` (counted from ``begin_num_update``), per leaf, with
    ``lr`` the (scheduled) learning rate times ``lr_mult``::

        g = clip(rescale_grad * grad + wd * wd_mult * w, clip_gradient)
        v = beta2 * v + (1 - beta2) * g^2
        d_t = (1 - beta1^t) / lr * (sqrt(v / (1 - beta2^t)) + epsilon)
        z = beta1 * z + (1 - beta1) * g - (d_t - beta1 * d_{t-1}) * w
        w = -z / d_t

    Weight decay is added before clipping. The learning rate enters
    ``d_t`` nonlinearly. Where it is 0 (a schedule decayed to
    ``final_lr=0``, an ``lr_mult`` of 0) the leaf takes no step, the limit
    of the formula as ``lr -> 0``; MXNet divides by zero there and its
    weights become NaN, as they do with ``mxnet_quirks=True``.

    Args:
      beta1: decay of ``z`` and of ``d``, in [0, 1); around 0.5.
      beta2: decay of ``v``, in [0, 1); close to 1.
      epsilon: added to the root, > 0.

    References:
      Zheng & Kwok, 2017, "Follow the Moving Leader in Deep Learning",
      ICML, http://proceedings.mlr.press/v70/zheng17a/zheng17a.pdf.
    """
    return base.build(base.rescale(), base.weight_decay(), base.clip(),
                      scale_by_ftml(base.rate(), beta1, beta2, epsilon,
                                    divide_by_zero_rate=base.mxnet_quirks))
