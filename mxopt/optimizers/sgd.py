"""Stochastic gradient descent with MXNet's momentum forms: ``sgd``, ``nag`` (and ``ccsgd``)."""

from __future__ import annotations

import warnings

import jax
import optax

from mxopt import counting, transforms
from mxopt.base import Base, optimizer
from mxopt.numerics import cast
from mxopt.registry import MXNet, register


def momentum_state(arguments) -> str | None:
    """MXNet's state of SGD's family: the momentum buffer, or none at momentum 0."""
    return "trace" if arguments["momentum"] else None


# Their create_state_multi_precision puts the float32 master copy last.
@register(mxnet=MXNet("SGD", state=momentum_state, master_last=True, aggregate_num=4))
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
    constant, and the kernel's form is what MXNet computes.) The kernel
    writes the new weight before it updates the momentum, so with ``wd`` its
    momentum decays with the new weight; ``mxnet_quirks=True`` does the same,
    ``mom = momentum * mom - lr * (clip(rescale_grad * grad) + wd * wd_mult * w_new)``.

    Args:
      momentum: in [0, 1).
    """
    return base.build(base.rescale(), base.clip(), base.weight_decay(),
                      base.scale_by_learning_rate(),
                      transforms.momentum_buffer(momentum, nesterov=True, buffer_correction=(
                          _decay_of_new_weight(base) if base.mxnet_quirks else None)))


def _decay_of_new_weight(base: Base) -> transforms.BufferTerm:
    """MXNet 1.9.1's ``nag_mom_update`` writes the new weight in place before it updates
    the momentum, whose ``wd`` term then reads ``w + out``: ``mom -= lr * wd * wd_mult * out``
    (``mxnet_quirks``)."""
    rate = base.rate()

    def term(earlier_states, count, out):
        rates = rate.at(counting.earlier_state(
            earlier_states, transforms.LearningRateState, "nag"), count, out)
        decays = transforms.weight_decays(counting.earlier_state(
            earlier_states, transforms.AddDecayedWeightsState, "nag"), out)
        return jax.tree.map(lambda u, lr, wd: -cast(lr * wd, u) * u, out, rates, decays)

    return term


@register(mxnet=MXNet("ccSGD", state=momentum_state, master_last=True, aggregate_num=4))
@optimizer
def ccsgd(momentum: float = 0.0, lazy_update: bool = True, *,
          base: Base) -> optax.GradientTransformation:
    del lazy_update
    warnings.warn("ccsgd is deprecated; use sgd", DeprecationWarning, stacklevel=4)
    return _sgd(momentum, base)


ccsgd.__doc__ = ("MXNet's deprecated ``ccsgd``: the same as :func:`sgd`, with a "
                 "DeprecationWarning.\n\n    As :func:`sgd`:\n\n    " + sgd.__doc__)
