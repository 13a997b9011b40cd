"""Adam, as MXNet computes it."""

from __future__ import annotations

import optax

from mxopt import transforms
from mxopt.base import Base, optimizer
from mxopt.registry import MXNet, register


@register(mxnet=MXNet("Adam", state=("mean", "var")))
@optimizer
def adam(learning_rate: float | None = 0.001, beta1: float = 0.9, beta2: float = 0.999,
         epsilon: float = 1e-8, lazy_update: bool = True, *,
         base: Base) -> optax.GradientTransformation:
    """MXNet's ``adam`` (Kingma & Ba, 2015, arXiv:1412.6980).

    At update ``t`` (counted from ``begin_num_update``), per leaf::

        g = clip(rescale_grad * grad + wd * wd_mult * w, clip_gradient)
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g^2
        w = w - lr * sqrt(1 - beta2^t) / (1 - beta1^t) * m / (sqrt(v) + epsilon)

    Unlike SGD, weight decay is added before clipping. The bias correction
    scales the learning rate, not epsilon. (MXNet's docstring swaps
    ``beta1`` and ``beta2`` in the correction; its code, followed here, does
    not.) The default ``learning_rate=0.001`` overrides a scheduler's
    ``base_lr`` unless ``learning_rate=None`` is passed, as in MXNet.

    Args:
      learning_rate: the step size, 0.001 by default.
      beta1, beta2: decay rates of the moment estimates, in [0, 1).
      epsilon: added to ``sqrt(v)``, > 0.
      lazy_update: accepted for compatibility; only row-sparse gradients
        differ in MXNet, and JAX gradients are dense.
    """
    del learning_rate, lazy_update  # the rate is in ``base``
    return base.build(base.rescale(), base.weight_decay(), base.clip(),
                      transforms.scale_by_adam(beta1, beta2, epsilon,
                                               begin_num_update=base.begin_num_update),
                      base.scale_by_learning_rate())
