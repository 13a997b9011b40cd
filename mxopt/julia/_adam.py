"""MXNet.jl's ``ADAM``."""

from __future__ import annotations

import dataclasses

from mxopt import transforms, validation
from mxopt.julia._optimizer import _Optimizer, _Options, option
from mxopt.julia._schedulers import _open_unit


@dataclasses.dataclass(frozen=True, kw_only=True)
class ADAMOptions(_Options):
    """:class:`ADAM`'s options (MXNet.jl: ``ADAMOptions``); see :class:`ADAM`."""

    lr: float = 0.001
    weight_decay: float = 0.00001
    beta1: float = option(0.9, _open_unit)
    beta2: float = option(0.999, _open_unit)
    epsilon: float = option(1e-8, validation.positive)


class ADAM(_Optimizer):
    """Adam (MXNet.jl: ``ADAM``; Kingma & Ba, 2015, arXiv:1412.6980).

    ``ADAM(*, lr=0.001, grad_clip=0, weight_decay=0.00001, beta1=0.9,
    beta2=0.999, epsilon=1e-8, lr_scheduler=None)``. At this weight's update
    ``t`` (1, 2, ...), with ``g`` from :func:`~mxopt.julia.normalized_gradient`
    and ``lr`` from the scheduler at ``opt.state``::

        mt = beta1 * mt + (1 - beta1) * g
        vt = beta2 * vt + (1 - beta2) * g^2
        w = w - lr * sqrt(1 - beta2^t) / (1 - beta1^t) * mt / (sqrt(vt) + epsilon)

    ``1 - beta1``, ``1 - beta2`` and the bias correction ``sqrt(1 -
    beta2Power) / (1 - beta1Power)`` are computed to float32 precision from
    the double-precision betas, as MXNet.jl computes them in Julia
    (:func:`mxopt.transforms.scale_by_adam` with ``exact_complement``, whose
    state this is: ``mean`` is ``mt``, ``var`` is ``vt``, ``count`` is ``t``).

    MXNet.jl documents ``lr_scheduler`` as a dynamic schedule, but its code
    reads it once, in ``create_state``, and keeps that rate for the weight
    for ever. mxopt follows the documentation: the scheduler is read at
    every update.

    Args:
      lr: the learning rate, > 0; overridden by ``lr_scheduler``.
      grad_clip: clip the batch-averaged gradient if > 0.
      weight_decay: >= 0, added after clipping.
      beta1, beta2: moment decay rates, in (0, 1) (MXNet.jl asserts > 0;
        1 or more would divide by zero).
      epsilon: > 0, added to ``sqrt(vt)``.
      lr_scheduler: an ``AbstractLearningRateScheduler``.
    """

    Options = ADAMOptions

    @classmethod
    def _direction(cls, opts):
        return transforms.scale_by_adam(opts.beta1, opts.beta2, opts.epsilon,
                                        exact_complement=True)
