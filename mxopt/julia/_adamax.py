"""MXNet.jl's ``AdaMax``, with its epsilon."""

from __future__ import annotations

import dataclasses

from mxopt import validation
from mxopt.julia._optimizer import _Optimizer, _Options, option
from mxopt.julia._schedulers import _open_unit
from mxopt.optimizers.adamax import scale_by_adamax


@dataclasses.dataclass(frozen=True, kw_only=True)
class AdaMaxOptions(_Options):
    """:class:`AdaMax`'s options (MXNet.jl: ``AdaMaxOptions``); see :class:`AdaMax`."""

    lr: float = 0.002
    beta1: float = option(0.9, _open_unit)
    beta2: float = option(0.999, _open_unit)
    epsilon: float = option(1e-8, validation.positive)
    weight_decay: float = 0.00001


class AdaMax(_Optimizer):
    """AdaMax, Adam with the infinity norm (MXNet.jl: ``AdaMax``).

    ``AdaMax(*, lr=0.002, beta1=0.9, beta2=0.999, epsilon=1e-8, grad_clip=0,
    weight_decay=0.00001, lr_scheduler=None)``. At this weight's update ``t``,
    with ``g`` from :func:`~mxopt.julia.normalized_gradient` and ``lr`` from
    the scheduler::

        mt = beta1 * mt + (1 - beta1) * g
        ut = max(beta2 * ut, |g|)
        w = w - lr / (1 - beta1^t) * mt / (ut + epsilon)

    MXNet.jl adds ``epsilon`` to ``ut`` where MXNet's Python ``adamax``
    does not, and puts weight decay after clipping. The state is
    :func:`mxopt.optimizers.adamax.scale_by_adamax`'s with ``epsilon``
    (``mean`` is ``mt``, ``norm`` is ``ut``; ``beta1Power`` is
    ``beta1^count``).

    Args:
      lr: the learning rate, > 0; overridden by ``lr_scheduler``.
      beta1: decay of the first moment, in (0, 1).
      beta2: decay of the infinity norm, in (0, 1).
      epsilon: > 0, added to ``ut``.
      grad_clip: clip the batch-averaged gradient if > 0.
      weight_decay: >= 0, added after clipping.
      lr_scheduler: an ``AbstractLearningRateScheduler``.

    References:
      Kingma & Ba (2015), Adam: A Method for Stochastic Optimization,
      arXiv:1412.6980, section 7.
    """

    Options = AdaMaxOptions

    @classmethod
    def _direction(cls, opts):
        return scale_by_adamax(opts.beta1, opts.beta2, opts.epsilon)
