"""MXNet.jl's ``Nadam``: Adam with Nesterov momentum on a momentum schedule."""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from mxopt import counting, hyperparams, validation
from mxopt.hyperparams import ExactDecayRate, Given, Positive
from mxopt.julia.optimizer import _checked, _f32, _Optimizer, _Options, option
from mxopt.julia.schedulers import (
    AbstractMomentumScheduler,
    Momentum,
    _open_unit,
    get_momentum,
    get_momentum_scheduler,
)
from mxopt.numerics import complement
from mxopt.optimizers.nadam import nadam_step
from mxopt.sharding import zeros_like
from mxopt.structure import LikeParams, brief_repr


@brief_repr
class ScaleByNadamState(NamedTuple):
    """:func:`scale_by_nadam`'s state: MXNet.jl's ``NadamState``.

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


def scale_by_nadam(beta1: float = 0.99, beta2: float = 0.999,
                   epsilon: float = 1e-8) -> optax.GradientTransformation:
    """Nadam's direction as MXNet.jl computes it (Dozat, 2016).

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

    The step is :func:`mxopt.optimizers.nadam.nadam_step`, as in
    :func:`mxopt.optimizers.nadam.scale_by_nadam`; that transform derives
    ``mu_t`` from its own update count with fixed constants (MXNet's Python
    ``Nadam``), where MXNet.jl takes any momentum scheduler's values at
    ``curr_iter``; so this one takes them as inputs.

    Args:
      beta1: decay of the first moment, in [0, 1).
      beta2: decay of the second moment, in [0, 1).
      epsilon: added to ``sqrt(nt')``, > 0.
    """
    given = Given(ScaleByNadamState, beta1=beta1, beta2=beta2, epsilon=epsilon,
                  momentum=0.0, momentum_next=0.0)

    def init_fn(params):
        return ScaleByNadamState(jnp.zeros((), jnp.int32), **given.fields(),
                                 schedule=jnp.zeros((), jnp.float32), mean=zeros_like(params),
                                 var=zeros_like(params))

    def update_fn(updates, state, params=None):
        del params
        s = given.injected(state)
        count = counting.next_count(s.count)
        updates, mean, var, schedule = nadam_step(
            updates, s, count.astype(jnp.float32), complement(s.momentum, s.momentum_residual),
            s.momentum_next, complement(s.momentum_next, s.momentum_next_residual))
        return updates, s._replace(count=count, schedule=schedule, mean=mean, var=var)

    return optax.GradientTransformation(init_fn, update_fn)


@dataclasses.dataclass(frozen=True, kw_only=True)
class NadamOptions(_Options):
    """:class:`Nadam`'s options (MXNet.jl: ``NadamOptions``); see :class:`Nadam`."""

    lr: float = 0.001
    beta1: float = option(0.99, _open_unit)
    beta2: float = option(0.999, _open_unit)
    epsilon: float = option(1e-8, validation.positive)
    weight_decay: float = 0.00001
    momentum_scheduler: AbstractMomentumScheduler | None = option(
        None, lambda name, value: get_momentum_scheduler(value, Momentum.Null()))


class Nadam(_Optimizer):
    """Nesterov-accelerated Adam (MXNet.jl: ``Nadam``; Dozat, 2016).

    ``Nadam(*, lr=0.001, beta1=0.99, beta2=0.999, epsilon=1e-8, grad_clip=0,
    weight_decay=0.00001, lr_scheduler=None, momentum_scheduler=None)``. At
    this weight's update ``t``, with ``g`` from
    :func:`~mxopt.julia.normalized_gradient`, ``lr`` from the scheduler and
    ``(mu_t, mu_{t+1}) = get_momentum(momentum_scheduler, opt.state)``::

        m_schedule = m_schedule * mu_t                 # per weight, from 1
        mt = beta1 * mt + (1 - beta1) * g
        nt = beta2 * nt + (1 - beta2) * g^2
        g' = g / (1 - m_schedule)
        mt' = mt / (1 - m_schedule * mu_{t+1})
        nt' = nt / (1 - beta2^t)
        w = w - lr * ((1 - mu_t) * g' + mu_{t+1} * mt') / (sqrt(nt') + epsilon)

    The momentum schedule defaults to
    ``Momentum.NadamScheduler(mu0=beta1)``: ``mu_t = beta1 * (1 - 0.5 *
    0.96^(0.004 * curr_iter))``, read from ``opt.state.curr_iter``. The
    state is :func:`scale_by_nadam`'s.

    Args:
      lr: the learning rate, > 0; overridden by ``lr_scheduler``.
      beta1: decay of the first moment and the schedule's ``mu0``, in (0, 1).
      beta2: decay of the second moment, in (0, 1).
      epsilon: > 0, added to ``sqrt(nt')``.
      grad_clip: clip the batch-averaged gradient if > 0.
      weight_decay: >= 0, added after clipping.
      lr_scheduler: an ``AbstractLearningRateScheduler``.
      momentum_scheduler: an ``AbstractMomentumScheduler`` whose
        ``get_momentum`` returns the pair ``(mu_t, mu_{t+1})``, each in [0, 1).

    References:
      Dozat (2016), Incorporating Nesterov Momentum into Adam.
      Sutskever et al. (2013), On the importance of initialization and
      momentum in deep learning.
    """

    Options = NadamOptions

    def _resolve(self, opts):
        return dataclasses.replace(super()._resolve(opts), momentum_scheduler=(
            get_momentum_scheduler(opts.momentum_scheduler,
                                   Momentum.NadamScheduler(mu0=opts.beta1))))

    @classmethod
    def _direction(cls, opts):
        return scale_by_nadam(opts.beta1, opts.beta2, opts.epsilon)

    def _hyperparameters(self, state):
        h = super()._hyperparameters(state)
        pair = get_momentum(self.opts.momentum_scheduler, state)
        if not (isinstance(pair, tuple) and len(pair) == 2):
            raise ValueError("momentum_scheduler must give the pair (mu_t, mu_t+1) for Nadam, "
                             f"got {pair!r}")
        for name, mu in zip(("momentum", "momentum_next"), pair):
            mu = _checked(f"{name} from momentum_scheduler", mu, validation.decay_rate)
            h[name] = _f32(mu)
            h[name + "_residual"] = hyperparams.residual(mu)
        return h

    @classmethod
    def _scheduled(cls, state, h):
        return state._replace(**{k: h[k] for k in ("momentum", "momentum_residual",
                                                   "momentum_next", "momentum_next_residual")})
