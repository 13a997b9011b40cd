"""LAMB, as MXNet computes it: Adam's direction plus weight decay, scaled by a trust ratio."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from mxopt import validation
from mxopt.base import Base, optimizer
from mxopt.counting import counted
from mxopt.hyperparams import DecayRate, Given, Positive
from mxopt.numerics import cast, one_minus_float32_power
from mxopt.packing import leaf_sums
from mxopt.registry import MXNet, register
from mxopt.sharding import zeros_like
from mxopt.structure import LikeParams, brief_repr


def _norm(leaf: jax.Array, leaf_sum) -> jax.Array:
    """The L2 norm of each params leaf in ``leaf``, summed in float32, in the leaf's dtype."""
    return jnp.sqrt(leaf_sum(jnp.square(leaf.astype(jnp.float32)))).astype(leaf.dtype)


@brief_repr
class ScaleByLambState(NamedTuple):
    beta1: DecayRate
    beta2: DecayRate
    epsilon: Positive
    mean: LikeParams
    var: LikeParams


def scale_by_lamb(beta1: float = 0.9, beta2: float = 0.999, epsilon: float = 1e-6,
                  bias_correction: bool = True, *,
                  begin_num_update: int = 0) -> optax.GradientTransformation:
    """LAMB's Adam-like direction, before weight decay and the trust ratio.

    At update ``t`` (counted from ``begin_num_update``), per leaf::

        m <- beta1 * m + (1 - beta1) * g
        v <- beta2 * v + (1 - beta2) * g^2
        out = m_hat / (sqrt(v_hat) + epsilon)

    with ``m_hat = m / (1 - beta1^t)`` and ``v_hat = v / (1 - beta2^t)``, or
    ``m`` and ``v`` themselves with ``bias_correction=False``. Unlike Adam's,
    the correction divides the moments, so epsilon is not scaled by it; and
    ``beta^t`` is rounded to float32 as in MXNet's ``lamb_update_phase1``
    kernel (see :func:`mxopt.numerics.one_minus_float32_power`).

    Args:
      beta1, beta2: decay rates of the moment estimates, in [0, 1).
      epsilon: added to ``sqrt(v_hat)``, > 0.
      bias_correction: divide the moments by ``1 - beta^t``.
      begin_num_update: the update count the run starts from.
    """
    given = Given(ScaleByLambState, beta1=beta1, beta2=beta2, epsilon=epsilon)
    if not isinstance(bias_correction, bool):
        raise ValueError(f"bias_correction must be a bool, got {bias_correction!r}")

    def init_fn(params):
        return ScaleByLambState(**given.fields(), mean=zeros_like(params), var=zeros_like(params))

    def update_fn(updates, state, params=None, *, count, **extra_args):
        del params, extra_args
        s = given.injected(state)
        t = count.astype(jnp.float32)

        def moment(beta, old, new):
            return cast(beta, new) * old + cast(1 - beta, new) * new

        mean = jax.tree.map(lambda g, m: moment(s.beta1, m, g), updates, s.mean)
        var = jax.tree.map(lambda g, v: moment(s.beta2, v, g * g), updates, s.var)

        def direction(m, v):
            if bias_correction:
                m = m / cast(one_minus_float32_power(s.beta1, t), m)
                v = v / cast(one_minus_float32_power(s.beta2, t), v)
            return m / (jnp.sqrt(v) + cast(s.epsilon, v))

        return jax.tree.map(direction, mean, var), s._replace(mean=mean, var=var)

    return counted(optax.GradientTransformationExtraArgs(init_fn, update_fn),
                   begin_num_update=begin_num_update)


@brief_repr
class ScaleByTrustRatioState(NamedTuple):
    lower_bound: Positive | None  # None for no lower bound
    upper_bound: Positive | None  # None for no upper bound


def scale_by_trust_ratio(lower_bound: float | None = None,
                         upper_bound: float | None = None) -> optax.GradientTransformation:
    """LAMB's layer-wise trust ratio: ``g <- r1 / r2 * g`` per leaf.

    ``r1 = min(max(|w|, lower_bound), upper_bound)`` and ``r2 = |g|``, the
    L2 norms of the whole leaf (weight and incoming update). Where ``r1`` or
    ``r2`` is 0 the ratio is 1, as in MXNet's ``lamb_update_phase2``. Norms
    are summed in float32 (MXNet's float16 norm without
    ``MXNET_SAFE_ACCUMULATION`` sums in float16 and saturates).

    Args:
      lower_bound, upper_bound: bounds on ``|w|``, > 0, or ``None`` for none.
    """
    given = Given(ScaleByTrustRatioState, lower_bound=lower_bound, upper_bound=upper_bound)

    def init_fn(params):
        del params
        return ScaleByTrustRatioState(**given.fields())

    def update_fn(updates, state, params=None):
        validation.params_given(params, "the trust ratio")
        state = given.injected(state)

        def scaled(g, w, leaf_sum):
            r1, r2 = _norm(w, leaf_sum).astype(g.dtype), _norm(g, leaf_sum)
            if state.lower_bound is not None:
                r1 = jnp.maximum(r1, cast(state.lower_bound, r1))
            if state.upper_bound is not None:
                r1 = jnp.minimum(r1, cast(state.upper_bound, r1))
            trusted = (r1 != 0) & (r2 != 0)
            ratio = jnp.where(trusted, r1 / jnp.where(trusted, r2, 1), 1).astype(g.dtype)
            return ratio * g

        return jax.tree.map(scaled, updates, params, leaf_sums(params)), state

    return optax.GradientTransformation(init_fn, update_fn)


# MXNet's one-tensor mp_lamb_update_phase2 never writes the float32 master copy back.
@register(mxnet=MXNet("LAMB", state=("mean", "var"), aggregate_num=45,
                      one_index_drops=("master",)))
@optimizer
def lamb(learning_rate: float | None = 0.001, beta1: float = 0.9, beta2: float = 0.999,
         epsilon: float = 1e-6, lower_bound: float | None = None,
         upper_bound: float | None = None, bias_correction: bool = True, *,
         base: Base) -> optax.GradientTransformation:
    """MXNet's ``lamb`` (You et al., 2020, arXiv:1904.00962).

    At update ``t`` (counted from ``begin_num_update``), per leaf::

        g = clip(rescale_grad * grad, clip_gradient)
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g^2
        u = m_hat / (sqrt(v_hat) + epsilon) + wd * wd_mult * w
        r1 = min(max(|w|, lower_bound), upper_bound),  r2 = |u|
        w = w - lr * r1 / r2 * u        (w - lr * u where r1 or r2 is 0)

    ``m_hat = m / (1 - beta1^t)``, ``v_hat = v / (1 - beta2^t)`` with
    ``bias_correction`` (else ``m``, ``v``); ``|.|`` is the L2 norm of the
    whole leaf. Weight decay is added after the Adam step, so neither the
    clipping nor the moments see it. The default ``learning_rate=0.001``
    overrides a scheduler's ``base_lr`` unless ``learning_rate=None`` is
    passed, as in MXNet.

    With ``multi_precision`` the whole update, both norms included, runs on
    the float32 master copy. (MXNet 1.9.1's one-tensor
    ``mp_lamb_update_phase2`` never writes its master copy back, and the
    aggregated ``multi_mp_lamb_update`` that ``mx.optimizer.Updater`` uses
    takes ``|w|`` from the float16 weights.)

    Args:
      learning_rate: the step size, 0.001 by default.
      beta1, beta2: decay rates of the moment estimates, in [0, 1).
      epsilon: added to ``sqrt(v_hat)``, > 0.
      lower_bound, upper_bound: bounds on the weight norm ``r1``, > 0, or
        ``None`` for none.
      bias_correction: divide the moments by ``1 - beta^t``.

    References:
      You et al., 2020, "Large Batch Optimization for Deep Learning:
      Training BERT in 76 minutes", arXiv:1904.00962.
    """
    del learning_rate  # in ``base``
    return base.build(base.rescale(), base.clip(),
                      scale_by_lamb(beta1, beta2, epsilon, bias_correction,
                                    begin_num_update=base.begin_num_update),
                      base.weight_decay(), scale_by_trust_ratio(lower_bound, upper_bound),
                      base.scale_by_learning_rate())
