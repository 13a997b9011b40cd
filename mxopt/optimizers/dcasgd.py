"""DCASGD: SGD with delay compensation for asynchronous training."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from mxopt import transforms, validation
from mxopt.base import Base, optimizer
from mxopt.hyperparams import Given, NonNegative
from mxopt.numerics import cast
from mxopt.optimizers.sgd import momentum_state
from mxopt.registry import MXNet, register
from mxopt.structure import LikeParams, brief_repr


@brief_repr
class AddDelayCompensationState(NamedTuple):
    lamda: NonNegative
    previous_weight: LikeParams  # the weight the previous update started from


def add_delay_compensation(lamda: float = 0.04) -> optax.GradientTransformation:
    """DCASGD's correction of a stale gradient: ``g <- g + lamda * g * g * (w - w_prev)``.

    ``w_prev`` is the weight the previous update started from (the initial
    weight before the first update, so the first correction is 0); each
    update then remembers ``w``. ``g * g`` is the diagonal approximation of
    the Hessian the paper uses.

    Args:
      lamda: the strength of the compensation, >= 0.
    """
    given = Given(AddDelayCompensationState, lamda=lamda)

    def init_fn(params):
        # A copy, so that donating the state does not delete the params.
        return AddDelayCompensationState(**given.fields(),
                                         previous_weight=jax.tree.map(jnp.copy, params))

    def update_fn(updates, state, params=None):
        validation.params_given(params, "dcasgd")
        state = given.injected(state)
        lam = state.lamda
        updates = jax.tree.map(lambda g, w, p: g + cast(lam, g) * g * g * (w - p).astype(g.dtype),
                               updates, params, state.previous_weight)
        return updates, state._replace(previous_weight=params)

    return optax.GradientTransformation(init_fn, update_fn)


@register(mxnet=MXNet("DCASGD", state=lambda arguments: (momentum_state(arguments),
                                                          "previous_weight")))
@optimizer
def dcasgd(momentum: float = 0.0, lamda: float = 0.04, *,
           base: Base) -> optax.GradientTransformation:
    """MXNet's ``dcasgd``: delay-compensated asynchronous SGD.

    Per leaf, with ``lr`` the (scheduled) learning rate times ``lr_mult``
    and ``w_prev`` the weight the previous update started from::

        g = clip(rescale_grad * grad, clip_gradient)
        d = g + wd * wd_mult * w + lamda * g * g * (w - w_prev)
        mom = momentum * mom - lr * d
        w = w + mom

    With ``momentum=0`` there is no buffer and ``w = w - lr * d``. The
    compensation uses the clipped gradient without weight decay.
    MXNet 1.9.1 fails with ``momentum > 0`` (its Python code tests the
    truth of the momentum NDArray); mxopt runs the formula above, the one
    that code spells out (see docs/mxnet_differences.md).

    Args:
      momentum: in [0, 1).
      lamda: the strength of the delay compensation, >= 0.

    References:
      Zheng, Meng, Wang, Chen, Yu, Ma & Liu, "Asynchronous Stochastic
      Gradient Descent with Delay Compensation", ICML 2017, arXiv:1609.08326.
    """
    return base.build(base.rescale(), base.clip(), add_delay_compensation(lamda),
                      base.weight_decay(), base.scale_by_learning_rate(),
                      transforms.momentum_buffer(momentum))
