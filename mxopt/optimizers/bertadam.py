"""GluonNLP's BERTAdam, as MXNet's aggregated AdamW kernel computes it."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from mxopt import validation
from mxopt.base import Base, optimizer
from mxopt.hyperparams import DecayRate, Given, Positive
from mxopt.numerics import cast, rounded
from mxopt.registry import MXNet, register
from mxopt.sharding import zeros_like
from mxopt.structure import LikeParams, brief_repr


@brief_repr
class ScaleByBertAdamState(NamedTuple):
    beta1: DecayRate
    beta2: DecayRate
    epsilon: Positive
    mean: LikeParams
    var: LikeParams


def scale_by_bertadam(beta1: float = 0.9, beta2: float = 0.999,
                      epsilon: float = 1e-6) -> optax.GradientTransformation:
    """BERTAdam's direction: Adam's moments without bias correction.

    Per leaf, in the arrangement of MXNet 1.9.1's ``multi_adamw_update``
    kernel, each product rounded before it is added (see
    :func:`mxopt.numerics.rounded`)::

        m <- beta1 * (m - g) + g            # = beta1 * m + (1 - beta1) * g
        v <- beta2 * (v - g^2) + g^2        # = beta2 * v + (1 - beta2) * g^2
        out = m / (sqrt(v) + epsilon)

    A float16 or bfloat16 leaf updated in its own dtype is refused where that
    dtype rounds a beta to 1 or epsilon to 0 (see
    :func:`mxopt.validation.held_in_leaf_dtypes`); MXNet's kernel refuses such
    weights without ``multi_precision`` altogether.

    Args:
      beta1, beta2: decay rates of the moment estimates, in [0, 1).
      epsilon: added to ``sqrt(v)``, > 0.
    """
    given = Given(ScaleByBertAdamState, beta1=beta1, beta2=beta2, epsilon=epsilon)

    def init_fn(params):
        validation.held_in_leaf_dtypes(params, "bertadam", decay_rates={
            "beta1": beta1, "beta2": beta2}, positives={"epsilon": epsilon})
        return ScaleByBertAdamState(**given.fields(), mean=zeros_like(params),
                                    var=zeros_like(params))

    def update_fn(updates, state, params=None):
        del params
        s = given.injected(state)

        def moment(beta, old, new):
            return rounded(cast(beta, new) * (old - new), beta) + new

        mean = jax.tree.map(lambda g, m: moment(s.beta1, m, g), updates, s.mean)
        var = jax.tree.map(lambda g, v: moment(s.beta2, v, rounded(g * g, s.beta2)),
                           updates, s.var)
        direction = jax.tree.map(lambda m, v: m / (jnp.sqrt(v) + cast(s.epsilon, v)), mean, var)
        return direction, s._replace(mean=mean, var=var)

    return optax.GradientTransformation(init_fn, update_fn)


# GluonNLP's create_state is (mean, var), as Adam's; its create_state_multi_precision puts the
# float32 master copy after that pair, as SGD's family does. Its aggregate_num is 4.
@register(mxnet=MXNet("BERTAdam", state=("mean", "var"), master_last=True, aggregate_num=4))
@optimizer
def bertadam(learning_rate: float | None = 0.001, beta1: float = 0.9, beta2: float = 0.999,
             epsilon: float = 1e-6, *, base: Base) -> optax.GradientTransformation:
    """GluonNLP's ``bertadam`` (GluonNLP 0.10.0's ``BERTAdam``): Adam with decoupled
    weight decay and no bias correction, as BERT was trained.

    Per leaf, with ``lr`` the (scheduled) learning rate times ``lr_mult``::

        g = clip(rescale_grad * grad, clip_gradient)
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g^2
        w = w - lr * (m / (sqrt(v) + epsilon) + wd * wd_mult * w)

    The learning rate scales the weight decay too (GluonNLP passes it to
    MXNet's AdamW kernel as ``eta``, with the kernel's own rate 1). With
    ``multi_precision``, float16 weights are updated through float32 masters
    and float32 moments. The moments are computed as
    :func:`scale_by_bertadam` writes them.

    Args:
      learning_rate: the step size, 0.001 by default (it overrides a
        scheduler's ``base_lr`` unless ``None``, as in MXNet).
      beta1, beta2: decay rates of the moment estimates, in [0, 1).
      epsilon: added to ``sqrt(v)``, > 0; 1e-6 by default.
    """
    del learning_rate  # the rate is in ``base``
    return base.build(base.rescale(), base.clip(), scale_by_bertadam(beta1, beta2, epsilon),
                      base.weight_decay(), base.scale_by_learning_rate())
