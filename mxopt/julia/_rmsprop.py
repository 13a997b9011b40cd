"""MXNet.jl's ``RMSProp``."""

from __future__ import annotations

import dataclasses

from mxopt import validation
from mxopt.julia._optimizer import _Optimizer, _Options, option
from mxopt.julia._schedulers import _open_unit
from mxopt.optimizers.rmsprop import scale_by_rmsprop


@dataclasses.dataclass(frozen=True, kw_only=True)
class RMSPropOptions(_Options):
    """:class:`RMSProp`'s options (MXNet.jl: ``RMSPropOptions``); see :class:`RMSProp`."""

    lr: float = 0.001
    rho: float = option(0.9, _open_unit)
    epsilon: float = option(1e-6, validation.positive)
    weight_decay: float = 0.00001


class RMSProp(_Optimizer):
    """RMSProp (MXNet.jl: ``RMSProp``; Tieleman & Hinton, 2012, lecture 6.5).

    ``RMSProp(*, lr=0.001, rho=0.9, epsilon=1e-6, grad_clip=0,
    weight_decay=0.00001, lr_scheduler=None)``. Per update, with ``g`` from
    :func:`~mxopt.julia.normalized_gradient` and ``lr`` from the scheduler::

        r = rho * r + (1 - rho) * g^2
        w = w - lr * g / sqrt(r + epsilon)

    MXNet's ``rmsprop`` with ``gamma1 = rho``, except that MXNet.jl clips
    before adding weight decay. The state is
    :func:`mxopt.optimizers.rmsprop.scale_by_rmsprop`'s (``gamma1`` is
    ``rho``, ``mean_square`` is ``r``). The default ``lr`` is 0.001, MXNet.jl's
    code default (its docstring says 0.1).

    Args:
      lr: the learning rate, > 0; overridden by ``lr_scheduler``.
      rho: decay of the running average of ``g^2``, in (0, 1).
      epsilon: > 0, added under the square root.
      grad_clip: clip the batch-averaged gradient if > 0.
      weight_decay: >= 0, added after clipping.
      lr_scheduler: an ``AbstractLearningRateScheduler``.
    """

    Options = RMSPropOptions

    @classmethod
    def _direction(cls, opts):
        return scale_by_rmsprop(opts.rho, opts.epsilon)
