"""Stochastic gradient descent with MXNet's momentum forms: ``sgd``, ``nag`` (and ``ccsgd``)."""

from __future__ import annotations

import warnings

import optax

from mxopt import transforms
from mxopt.base import Base, optimizer
from mxopt.registry import MXNet, register


def momentum_state(arguments) -> str | None:
    """MXNet's state of SGD's family: the momentum buffer, or none at momentum 0."""
    return "trace" if arguments["momentum"] else None


# Their create_state_multi_precision puts the float32 master copy last.
@register(mxnet=MXNet("SGD", state=momentum_state, master_last=True))
@optimizer
def sgd(momentum: float = 0.0, lazy_update: bool = True, *,
        base: Base) -> optax.GradientTransformation:
    """MXNet's ``sgd``: SGD with momentum and weight decay.

    Per leaf, with ``lr`` the (scheduled) learning rate times ``lr_mult``::

        g = clip(rescale_grad * grad, clip_gradient) + wd * wd_mult * w
        mom = momentum * mom - lr * g
        w = w + mom

    The learning rate sits inside the momentum buffer, so a change of rate
    takes effect gradually, as in MXNet. With ``momentum=0`` there is no
    buffer and ``w = w - lr * g``. Weight decay is added after clipping.

    Args:
      momentum: in [0, 1).
      lazy_update: accepted for compatibility; it only changes MXNet's
        updates of row-sparse gradients, and JAX gradients are dense.
    """
    del lazy_update
    return _sgd(momentum, base)


def _sgd(momentum: float, base: Base) -> optax.GradientTransformation:
    return base.build(base.rescale(), base.clip(), base.weight_decay(),
                      base.scale_by_learning_rate(), transforms.momentum_buffer(momentum))


@register(mxnet=MXNet("NAG", state=momentum_state, master_last=True))
@optimizer
def nag(momentum: float = 0.0, *, base: Base) -> optax.GradientTransformation:
    """MXNet's ``nag``: Nesterov accelerated gradient.

    Per leaf, as MXNet 1.9.1's ``nag_mom_update`` kernel computes it::

        g = clip(rescale_grad * grad, clip_gradient) + wd * wd_mult * w
        mom = momentum * mom - lr * g
        w = w + momentum * mom - lr * g

    With ``momentum=0`` it is plain SGD. (MXNet's docstring writes the same
    recursion with ``lr`` outside the buffer; the two agree while ``lr`` is
    constant, and the kernel's form is what MXNet computes.)

    Args:
      momentum: in [0, 1).
    """
    return base.build(base.rescale(), base.clip(), base.weight_decay(),
                      base.scale_by_learning_rate(),
                      transforms.momentum_buffer(momentum, nesterov=True))


@register(mxnet=MXNet("ccSGD", state=momentum_state, master_last=True))
@optimizer
def ccsgd(momentum: float = 0.0, lazy_update: bool = True, *,
          base: Base) -> optax.GradientTransformation:
    del lazy_update
    warnings.warn("ccsgd is deprecated; use sgd", DeprecationWarning, stacklevel=4)
    return _sgd(momentum, base)


ccsgd.__doc__ = ("MXNet's deprecated ``ccsgd``: the same as :func:`sgd`, with a "
                 "DeprecationWarning.\n\n    As :func:`sgd`:\n\n    " + sgd.__doc__)
