"""AdaGrad, as MXNet computes it: ``adagrad`` and the row-wise contrib ``groupadagrad``."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from mxopt import validation
from mxopt.base import Base, optimizer
from mxopt.hyperparams import Given, Positive
from mxopt.numerics import cast, root
from mxopt.packing import refuse_packed
from mxopt.registry import MXNet, register
from mxopt.sharding import zeros_like
from mxopt.structure import brief_repr, named_leaves


@brief_repr
class ScaleByAdagradState(NamedTuple):
    # eps = 0 would give 0/0 for a leaf whose gradients have all been 0.
    eps: Positive
    history: optax.Updates  # like params; (rows, 1) per leaf in the row-wise form


def _scale_by_history(eps: float, increment: Callable[[jax.Array], jax.Array],
                      zeros: Callable[[jax.Array], jax.Array]) -> optax.GradientTransformation:
    """``history += increment(g)``; ``out = g / sqrt(history + eps)``, ``history`` broadcast."""
    given = Given(ScaleByAdagradState, eps=eps)

    def init_fn(params):
        return ScaleByAdagradState(**given.fields(), history=jax.tree.map(zeros, params))

    def update_fn(updates, state, params=None):
        del params
        state = given.injected(state)
        history = jax.tree.map(lambda g, h: h + increment(g), updates, state.history)
        updates = jax.tree.map(lambda g, h: g / root(h + cast(state.eps, h), state.eps),
                               updates, history)
        return updates, state._replace(history=history)

    return optax.GradientTransformation(init_fn, update_fn)


def scale_by_adagrad(eps: float = 1e-7) -> optax.GradientTransformation:
    """AdaGrad's direction (Duchi et al., 2011), elementwise.

    Per leaf, with ``history`` starting at zero::

        history <- history + g^2
        out = g / sqrt(history + eps)

    The learning rate comes after it in a chain; MXNet's Python AdaGrad adds
    weight decay between the two, an optimizer that decays the gradient
    puts :func:`mxopt.transforms.add_decayed_weights` before it.

    Args:
      eps: added to the history under the square root, > 0 (MXNet calls it
        the history's initial value, which is the same thing). MXNet accepts 0,
        which gives NaN where a leaf's gradients have all been 0.
    """
    return _scale_by_history(eps, lambda g: g * g, zeros_like)


def _row_history(param: jax.Array) -> jax.Array:
    # zeros shaped (rows, 1), sharded as the param's rows are
    return zeros_like(param.sum(axis=1, keepdims=True))


def scale_by_group_adagrad(eps: float = 1e-5) -> optax.GradientTransformation:
    """AdaGrad with one history value per row of each 2-D leaf (MXNet's GroupAdaGrad).

    Per leaf ``g`` of shape ``(rows, columns)``, with ``history`` of shape
    ``(rows, 1)`` starting at zero::

        history <- history + mean(g^2, axis=1, keepdims=True)
        out = g / sqrt(history + eps)

    Every element of a row (an embedding vector, say) shares its step size.

    Args:
      eps: added to the history under the square root, > 0.

    Raises:
      ValueError: at ``init``, naming the first params leaf that is not 2-D.
    """
    inner = _scale_by_history(eps, lambda g: jnp.mean(g * g, axis=1, keepdims=True),
                              _row_history)

    def init_fn(params):
        refuse_packed(params, "groupadagrad", "keeps one history value per row of each leaf")
        for name, leaf in named_leaves(params):
            if jnp.ndim(leaf) != 2:
                raise ValueError(
                    f"groupadagrad keeps one history value per row and takes 2-D weights only "
                    f"(as MXNet asserts); params leaf {name!r} has shape {jnp.shape(leaf)}")
        return inner.init(params)

    return optax.GradientTransformation(init_fn, inner.update)


# MXNet keeps eps as float_stable_eps.
@register(mxnet=MXNet("AdaGrad", state="history", renamed={"float_stable_eps": "eps"}))
@optimizer
def adagrad(eps: float = 1e-7, *, base: Base) -> optax.GradientTransformation:
    """MXNet's ``adagrad`` (Duchi, Hazan & Singer, 2011, JMLR 12).

    Per leaf, as MXNet 1.9.1's ``AdaGrad.update`` computes it for dense
    gradients::

        g = clip(rescale_grad * grad, clip_gradient)
        history = history + g^2
        w = w - lr * (g / sqrt(history + eps) + wd * wd_mult * w)

    Weight decay is added after the division, so it is not scaled by the
    history.

    Args:
      eps: added to the history under the square root, > 0.
    """
    return base.build(base.rescale(), base.clip(), scale_by_adagrad(eps), base.weight_decay(),
                      base.scale_by_learning_rate())


@register(mxnet=MXNet("GroupAdaGrad", state="history", renamed={"float_stable_eps": "eps"}))
@optimizer
def groupadagrad(eps: float = 1e-5, *, base: Base) -> optax.GradientTransformation:
    """MXNet's contrib ``groupadagrad``: AdaGrad with one step size per row.

    For 2-D weights only (embedding tables, dense layers). Per leaf of shape
    ``(rows, columns)``, as MXNet 1.9.1's ``GroupAdaGrad.update`` computes it
    for dense gradients::

        g = clip(rescale_grad * grad, clip_gradient)
        history = history + mean(g^2, axis=1, keepdims=True)   # (rows, 1)
        w = w - lr * g / sqrt(history + eps)

    MXNet supports no weight decay here: ``wd`` must be 0.

    Args:
      eps: added to the history under the square root, > 0.

    Raises:
      ValueError: ``wd`` other than 0 (when built), or a params leaf that is
        not 2-D (at ``init``, naming the leaf).
    """
    wd = validation.non_negative("wd", base.wd)
    if not validation.is_traced(wd) and wd != 0:
        raise ValueError(f"wd must be 0: groupadagrad supports no weight decay (MXNet asserts "
                         f"wd == 0), got {base.wd!r}")
    return base.build(base.rescale(), base.clip(), scale_by_group_adagrad(eps),
                      base.scale_by_learning_rate())
