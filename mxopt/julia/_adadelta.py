"""MXNet.jl's ``AdaDelta``."""

from __future__ import annotations

import dataclasses

from mxopt import validation
from mxopt.julia._optimizer import _Optimizer, _Options, option
from mxopt.julia._schedulers import _open_unit
from mxopt.optimizers.adadelta import scale_by_adadelta


@dataclasses.dataclass(frozen=True, kw_only=True)
class AdaDeltaOptions(_Options):
    """:class:`AdaDelta`'s options (MXNet.jl: ``AdaDeltaOptions``); see :class:`AdaDelta`."""

    lr: float = 1.0
    rho: float = option(0.95, _open_unit)
    epsilon: float = option(1e-6, validation.positive)
    weight_decay: float = 0.00001


class AdaDelta(_Optimizer):
    """AdaDelta (MXNet.jl: ``AdaDelta``; Zeiler, 2012, arXiv:1212.5701).

    ``AdaDelta(*, lr=1.0, rho=0.95, epsilon=1e-6, grad_clip=0,
    weight_decay=0.00001, lr_scheduler=None)``. Per update, with ``g`` from
    :func:`~mxopt.julia.normalized_gradient` and ``lr`` from the scheduler::

        acc = rho * acc + (1 - rho) * g^2
        delta = g * sqrt(delta_acc + epsilon) / sqrt(acc + epsilon)
        w = w - lr * delta
        delta_acc = rho * delta_acc + (1 - rho) * delta^2

    ``delta_acc`` accumulates the step before the learning rate scales it.
    Unlike MXNet's Python AdaDelta, MXNet.jl's has a learning rate and puts
    weight decay into ``g``. The state is
    :func:`mxopt.optimizers.adadelta.scale_by_adadelta`'s (``acc_g`` is
    ``acc``, ``acc_delta`` is ``delta_acc``). The default ``rho`` is 0.95,
    MXNet.jl's code default (its docstring says 0.9).

    Args:
      lr: the learning rate, > 0 (1.0, as the paper has none); overridden
        by ``lr_scheduler``.
      rho: decay of both running averages, in (0, 1).
      epsilon: > 0, added under both square roots.
      grad_clip: clip the batch-averaged gradient if > 0.
      weight_decay: >= 0, added after clipping.
      lr_scheduler: an ``AbstractLearningRateScheduler``.
    """

    Options = AdaDeltaOptions

    @classmethod
    def _direction(cls, opts):
        return scale_by_adadelta(opts.rho, opts.epsilon)
