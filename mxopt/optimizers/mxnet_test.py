"""MXNet's ``test`` optimizer: adds the rescaled gradient and remembers the weight."""

from __future__ import annotations

from typing import NamedTuple

import jax
import optax

from mxopt import validation
from mxopt.base import Base, optimizer
from mxopt.registry import MXNet, register
from mxopt.sharding import zeros_like
from mxopt.structure import LikeParams, brief_repr


@brief_repr
class RememberWeightState(NamedTuple):
    weight: LikeParams  # the weight after the last update (zeros before any)


def remember_weight() -> optax.GradientTransformation:
    """Passes updates through and keeps the weight they lead to, ``w + u``, in the state."""

    def init_fn(params):
        return RememberWeightState(zeros_like(params))

    def update_fn(updates, state, params=None):
        validation.params_given(params, "test")
        return updates, RememberWeightState(jax.tree.map(lambda w, u: w + u.astype(w.dtype),
                                                         params, updates))

    return optax.GradientTransformation(init_fn, update_fn)


@register(name="test", mxnet=MXNet("Test", state="weight"))
@optimizer
def mxnet_test(*, base: Base) -> optax.GradientTransformation:
    """MXNet's ``test`` optimizer, which MXNet's own unit tests use.

    Per leaf::

        w = w + rescale_grad * grad
        state = w

    It steps *along* the gradient, and the state holds a copy of the new
    weight (zeros before the first update). As in MXNet, every base
    argument but ``rescale_grad`` and ``multi_precision`` is accepted and
    ignored: there is no learning rate, clipping or weight decay.
    Registered as ``"test"``.
    """
    return base.build(base.rescale(), remember_weight())
