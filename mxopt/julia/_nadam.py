"""MXNet.jl's ``Nadam``: Adam with Nesterov momentum on a momentum schedule."""

from __future__ import annotations

import dataclasses

from mxopt import hyperparams, validation
from mxopt.julia._optimizer import _checked, _f32, _Optimizer, _Options, option
from mxopt.julia._schedulers import (
    AbstractMomentumScheduler,
    Momentum,
    _open_unit,
    get_momentum,
    get_momentum_scheduler,
)
from mxopt.optimizers.nadam import scale_by_nadam_with_momenta


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
    state is :func:`mxopt.optimizers.nadam.scale_by_nadam_with_momenta`'s.

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
        return scale_by_nadam_with_momenta(opts.beta1, opts.beta2, opts.epsilon)

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
