"""MXNet.jl's ``AdaGrad``."""

from __future__ import annotations

import dataclasses

from mxopt import validation
from mxopt.julia._optimizer import _Optimizer, _Options, option
from mxopt.optimizers.adagrad import scale_by_adagrad


@dataclasses.dataclass(frozen=True, kw_only=True)
class AdaGradOptions(_Options):
    """:class:`AdaGrad`'s options (MXNet.jl: ``AdaGradOptions``); see :class:`AdaGrad`."""

    lr: float = 0.1
    epsilon: float = option(1e-6, validation.positive)
    weight_decay: float = 0.00001


class AdaGrad(_Optimizer):
    """AdaGrad (MXNet.jl: ``AdaGrad``; Duchi, Hazan & Singer, 2011, JMLR 12).

    ``AdaGrad(*, lr=0.1, epsilon=1e-6, grad_clip=0, weight_decay=0.00001,
    lr_scheduler=None)``. Per update, with ``g`` from
    :func:`~mxopt.julia.normalized_gradient` and ``lr`` from the scheduler::

        history = history + g^2
        w = w - lr * g / sqrt(history + epsilon)

    Weight decay is part of ``g``, so it enters the history (MXNet's Python
    AdaGrad adds it after the division instead). The state is
    :func:`mxopt.optimizers.adagrad.scale_by_adagrad`'s, whose ``eps`` is
    ``epsilon``.

    Args:
      lr: the learning rate, > 0; overridden by ``lr_scheduler``.
      epsilon: > 0, added to the history under the square root.
      grad_clip: clip the batch-averaged gradient if > 0.
      weight_decay: >= 0, added after clipping.
      lr_scheduler: an ``AbstractLearningRateScheduler``.

    References:
      Duchi, Hazan & Singer (2011), Adaptive subgradient methods for online
      learning and stochastic optimization. Dyer, Notes on AdaGrad (epsilon).
    """

    Options = AdaGradOptions

    @classmethod
    def _direction(cls, opts):
        return scale_by_adagrad(opts.epsilon)
