"""Nadam: Adam with Nesterov momentum, as MXNet documents it."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from mxopt import validation
from mxopt.base import Base, optimizer
from mxopt.counting import counted, next_count
from mxopt.hyperparams import ExactDecayRate, Given, NonNegative, Positive
from mxopt.numerics import cast, complement, one_minus_power, unzip
from mxopt.packing import refuse_packed
from mxopt.registry import MXNet, register
from mxopt.sharding import zeros_like
from mxopt.structure import LikeParams, brief_repr


@brief_repr
class ScaleByNadamState(NamedTuple):
    beta1: ExactDecayRate
    beta2: ExactDecayRate
    epsilon: Positive
    schedule_decay: NonNegative
    beta1_residual: jax.Array  # f32 scalar: beta1 - float32(beta1)
    beta2_residual: jax.Array  # f32 scalar: beta2 - float32(beta2)
    schedule: jax.Array  # f32 scalar: 1 - P_t, P_t the momentum schedule's product so far
    mean: LikeParams  # m
    var: LikeParams  # v


def _momentum_complement(beta1: jax.Array, beta1_residual: jax.Array, decay: jax.Array,
                         t: jax.Array, gamma: float, alpha: float) -> tuple[jax.Array, jax.Array]:
    """``mu_t = beta1 * (1 - gamma * alpha^(t * decay))`` and ``1 - mu_t``.

    ``1 - mu_t = (1 - beta1) + beta1 * gamma * alpha^(t * decay)`` is a sum
    of non-negative terms, with ``1 - beta1`` from the double-precision
    ``beta1``, so it keeps float32's relative precision where ``mu_t`` is
    close to 1.
    """
    warm = gamma * jnp.exp(t * decay * jnp.log(jnp.float32(alpha)))
    return beta1 * (1 - warm), complement(beta1, beta1_residual) + beta1 * warm


def nadam_step(updates: optax.Updates, s: NamedTuple, t: jax.Array, one_minus_mu: jax.Array,
               mu_next: jax.Array, one_minus_mu_next: jax.Array, *, per_leaf: bool = False):
    """One Nadam step at update ``t``, given ``1 - mu_t``, ``mu_{t+1}`` and ``1 - mu_{t+1}``.

    ``s`` is a state with ``beta1``, ``beta2``, ``epsilon``, their
    ``*_residual``, ``schedule`` (``1 - P``, ``P`` the product of the ``mu``
    so far), ``mean`` and ``var``. Per leaf::

        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g^2
        out = ((1 - mu_t) / (1 - P_t) * g + mu_{t+1} / (1 - P_t * mu_{t+1}) * m)
              / (sqrt(v / (1 - beta2^t)) + epsilon)

    ``1 - P`` is updated as ``(1 - P) + P * (1 - mu_t)``, a sum of
    non-negative terms, so it keeps float32's relative precision near 1.
    With ``per_leaf`` (MXNet 1.9.1's one product for all parameters,
    ``mxnet_quirks``) it gains the factor ``mu_t`` at each leaf in turn, and
    each leaf steps with the product as it stands after its own factor.

    Returns:
      ``(out, m, v, 1 - P_t)``.
    """
    def multiplied(schedule):  # 1 - P * mu_t
        return schedule + (1 - schedule) * one_minus_mu

    def scales(schedule):  # the factors of g and m, from 1 - P_t
        schedule_next = schedule + (1 - schedule) * one_minus_mu_next  # 1 - P_t * mu_{t+1}
        return one_minus_mu / schedule, mu_next / schedule_next

    leaves, treedef = jax.tree.flatten(updates)
    schedule = multiplied(s.schedule)  # 1 - P_t
    per_leaf_scales = [scales(schedule)] * len(leaves)
    if per_leaf:
        for k in range(1, len(leaves)):
            schedule = multiplied(schedule)
            per_leaf_scales[k] = scales(schedule)
    var_correction = one_minus_power(s.beta2, s.beta2_residual, t)
    one_minus_beta1 = complement(s.beta1, s.beta1_residual)
    one_minus_beta2 = complement(s.beta2, s.beta2_residual)

    def leaf(g, m, v, leaf_scales):
        grad_scale, mean_scale = leaf_scales
        m = cast(s.beta1, g) * m + cast(one_minus_beta1, g) * g
        v = cast(s.beta2, g) * v + cast(one_minus_beta2, g) * g * g
        m_bar = cast(grad_scale, g) * g + cast(mean_scale, m) * m
        return m_bar / (jnp.sqrt(v / cast(var_correction, v)) + cast(s.epsilon, v)), m, v

    out = jax.tree.map(leaf, updates, s.mean, s.var,
                       jax.tree.unflatten(treedef, per_leaf_scales))
    updates, mean, var = unzip(updates, out, 3)
    return updates, mean, var, schedule


def scale_by_nadam(beta1: float = 0.9, beta2: float = 0.999, epsilon: float = 1e-8,
                   schedule_decay: float = 0.004, *, begin_num_update: int = 0,
                   gamma: float = 0.5, alpha: float = 0.96,
                   per_leaf_schedule: bool = False) -> optax.GradientTransformation:
    """Nadam's direction (Dozat, 2016), with its momentum schedule.

    At update ``t`` (counted from ``begin_num_update``), per leaf, with the
    momentum schedule ``mu_t = beta1 * (1 - gamma * alpha^(t * schedule_decay))``
    and ``P_t = mu_{b+1} * ... * mu_t`` its product over the updates of this
    run (``b = begin_num_update``; ``P_b = 1``)::

        m <- beta1 * m + (1 - beta1) * g
        v <- beta2 * v + (1 - beta2) * g^2
        m_bar = (1 - mu_t) * g / (1 - P_t) + mu_{t+1} * m / (1 - P_t * mu_{t+1})
        out = m_bar / (sqrt(v / (1 - beta2^t)) + epsilon)

    ``P_t`` is one product for all leaves, multiplied once per update. The
    state keeps ``1 - P_t``, and ``1 - P_t = (1 - P_{t-1}) + P_{t-1} * (1 - mu_t)``
    is a sum of non-negative terms; and ``1 - beta1``, ``1 - beta2`` and
    ``1 - beta2^t`` come from the double-precision betas: all keep
    float32's relative precision, so the result matches MXNet's
    double-precision host computation.

    Args:
      beta1: decay rate of the mean and the momentum schedule's limit, in [0, 1).
      beta2: decay rate of the second moment, in [0, 1).
      epsilon: added to the corrected ``sqrt(v)``, > 0.
      schedule_decay: how fast ``mu_t`` warms up to ``beta1``, >= 0.
      begin_num_update: the update count the run starts from.
      gamma, alpha: the shape of the warm-up (0.5 and 0.96 in MXNet and in
        the report; MXNet.jl's ``NadamScheduler`` calls them ``γ`` and ``α``).
      per_leaf_schedule: multiply ``P`` at each leaf in turn, as MXNet 1.9.1
        does at each parameter (:func:`nadam_step`'s ``per_leaf``).
    """
    given = Given(ScaleByNadamState, beta1=beta1, beta2=beta2, epsilon=epsilon,
                  schedule_decay=schedule_decay)
    gamma, alpha = validation.real("gamma", gamma), validation.positive("alpha", alpha)

    def init_fn(params):
        if per_leaf_schedule:
            refuse_packed(params, "nadam with mxnet_quirks", "multiplies its schedule per leaf")
        return ScaleByNadamState(**given.fields(), schedule=jnp.zeros((), jnp.float32),
                                 mean=zeros_like(params), var=zeros_like(params))

    def update_fn(updates, state, params=None, *, count, **extra_args):
        del params, extra_args
        s = given.injected(state)
        t = count.astype(jnp.float32)
        mu, one_minus_mu = _momentum_complement(s.beta1, s.beta1_residual, s.schedule_decay, t,
                                                gamma, alpha)
        mu_next, one_minus_mu_next = _momentum_complement(s.beta1, s.beta1_residual,
                                                          s.schedule_decay, t + 1, gamma, alpha)
        updates, mean, var, schedule = nadam_step(updates, s, t, one_minus_mu, mu_next,
                                                  one_minus_mu_next, per_leaf=per_leaf_schedule)
        return updates, s._replace(schedule=schedule, mean=mean, var=var)

    return counted(optax.GradientTransformationExtraArgs(init_fn, update_fn),
                   begin_num_update=begin_num_update)


@brief_repr
class ScaleByNadamWithMomentaState(NamedTuple):
    """:func:`scale_by_nadam_with_momenta`'s state: MXNet.jl's ``NadamState``.

    MXNet.jl's ``momentum`` is ``1 - schedule`` and its ``beta2Power`` is
    ``beta2^count``.
    """

    count: jax.Array  # i32 scalar: t, this weight's updates so far
    beta1: ExactDecayRate
    beta2: ExactDecayRate
    epsilon: Positive
    beta1_residual: jax.Array  # f32 scalar: beta1 - float32(beta1)
    beta2_residual: jax.Array  # f32 scalar: beta2 - float32(beta2)
    momentum: ExactDecayRate  # mu_t, set before each update
    momentum_residual: jax.Array  # f32 scalar: mu_t - float32(mu_t)
    momentum_next: ExactDecayRate  # mu_{t+1}, set before each update
    momentum_next_residual: jax.Array  # f32 scalar: mu_{t+1} - float32(mu_{t+1})
    schedule: jax.Array  # f32 scalar: 1 - P, P the product of the mu_t so far
    mean: LikeParams  # MXNet.jl's mt
    var: LikeParams  # MXNet.jl's nt


def scale_by_nadam_with_momenta(beta1: float = 0.99, beta2: float = 0.999,
                                epsilon: float = 1e-8) -> optax.GradientTransformation:
    """Nadam's direction on a momentum schedule set from outside, as MXNet.jl computes it.

    Before each update, the momentum schedule's ``mu_t`` and ``mu_{t+1}`` go
    into the state's ``momentum`` and ``momentum_next`` (with their float32
    residuals). At update ``t`` (1, 2, ...), with ``P`` the product of the
    ``mu`` so far (MXNet.jl's ``state.momentum``, from 1)::

        P = P * mu_t
        mt = beta1 * mt + (1 - beta1) * g
        nt = beta2 * nt + (1 - beta2) * g^2
        g' = g / (1 - P)
        mt' = mt / (1 - P * mu_{t+1})
        nt' = nt / (1 - beta2^t)
        out = ((1 - mu_t) * g' + mu_{t+1} * mt') / (sqrt(nt') + epsilon)

    MXNet.jl keeps ``P`` in double precision. The state keeps ``1 - P``,
    updated as ``(1 - P) + P * (1 - mu_t)`` (non-negative terms) with
    ``1 - mu_t`` from the double-precision ``mu_t``; ``1 - beta1``, ``1 -
    beta2`` and ``1 - beta2^t`` come from the double-precision betas. All
    keep float32's relative precision where the ``mu`` or betas are near 1.

    The step is :func:`nadam_step`, as in :func:`scale_by_nadam`; that
    transform derives ``mu_t`` from its own update count with fixed constants
    (MXNet's Python ``Nadam``), where MXNet.jl's ``Nadam``
    (:class:`mxopt.julia.Nadam`) takes any momentum scheduler's values at
    ``curr_iter``; so this one takes them as inputs.

    Args:
      beta1: decay of the first moment, in [0, 1).
      beta2: decay of the second moment, in [0, 1).
      epsilon: added to ``sqrt(nt')``, > 0.
    """
    given = Given(ScaleByNadamWithMomentaState, beta1=beta1, beta2=beta2, epsilon=epsilon,
                  momentum=0.0, momentum_next=0.0)

    def init_fn(params):
        return ScaleByNadamWithMomentaState(jnp.zeros((), jnp.int32), **given.fields(),
                                            schedule=jnp.zeros((), jnp.float32),
                                            mean=zeros_like(params), var=zeros_like(params))

    def update_fn(updates, state, params=None):
        del params
        s = given.injected(state)
        count = next_count(s.count)
        updates, mean, var, schedule = nadam_step(
            updates, s, count.astype(jnp.float32), complement(s.momentum, s.momentum_residual),
            s.momentum_next, complement(s.momentum_next, s.momentum_next_residual))
        return updates, s._replace(count=count, schedule=schedule, mean=mean, var=var)

    return optax.GradientTransformation(init_fn, update_fn)



# MXNet's object keeps the product P as m_schedule; the state keeps 1 - P.
@register(mxnet=MXNet("Nadam", state=("mean", "var"), shared_state=("schedule",),
                      saved_shared_state=lambda saved: {"schedule": 1 - saved["m_schedule"]}))
@optimizer
def nadam(learning_rate: float | None = 0.001, beta1: float = 0.9, beta2: float = 0.999,
          epsilon: float = 1e-8, schedule_decay: float = 0.004, *,
          base: Base) -> optax.GradientTransformation:
    """MXNet's ``nadam``: Adam with Nesterov momentum (Dozat, 2016).

    At update ``t`` (counted from ``begin_num_update``), per leaf, with
    ``mu_t = beta1 * (1 - 0.5 * 0.96^(t * schedule_decay))`` and ``P_t`` the
    product of ``mu`` over this run's updates so far, including ``t``::

        g = clip(rescale_grad * grad + wd * wd_mult * w, clip_gradient)
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g^2
        m_bar = (1 - mu_t) * g / (1 - P_t) + mu_{t+1} * m / (1 - P_t * mu_{t+1})
        w = w - lr * m_bar / (sqrt(v / (1 - beta2^t)) + epsilon)

    ``P_t`` gains one factor per update, as in the report and Keras's Nadam
    that MXNet's follows; a run from ``begin_num_update`` starts it at 1, as
    a fresh MXNet optimizer does. MXNet 1.9.1 keeps one product for the whole
    optimizer and multiplies it once per parameter per update, so its
    steps depend on how many parameters it updates and in which order
    (see docs/mxnet_differences.md); ``mxnet_quirks=True`` does that, over
    the leaves in order (and over the indices in call order on the object
    surface). Weight decay is added before clipping,
    as in Adam. The default ``learning_rate=0.001`` overrides a scheduler's
    ``base_lr`` unless ``learning_rate=None`` is passed, as in MXNet.

    Args:
      learning_rate: the step size, 0.001 by default.
      beta1: decay rate of the mean, in [0, 1); the momentum schedule
        warms up to it.
      beta2: decay rate of the second moment, in [0, 1).
      epsilon: added to the corrected ``sqrt(v)``, > 0.
      schedule_decay: how fast the momentum schedule warms up, >= 0.

    References:
      Dozat, "Incorporating Nesterov Momentum into Adam", 2016,
      http://cs229.stanford.edu/proj2015/054_report.pdf.
    """
    del learning_rate  # in ``base``
    return base.build(base.rescale(), base.weight_decay(), base.clip(),
                      scale_by_nadam(beta1, beta2, epsilon, schedule_decay,
                                     begin_num_update=base.begin_num_update,
                                     per_leaf_schedule=base.mxnet_quirks),
                      base.scale_by_learning_rate())
