"""LARS: SGD with a layer-wise trust ratio on the learning rate, as MXNet computes it."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from mxopt import hyperparams, transforms
from mxopt.base import Base, optimizer
from mxopt.hyperparams import Given, NonNegative
from mxopt.multipliers import MultiplierSpec
from mxopt.packing import refuse_packed
from mxopt.registry import MXNet, Unimportable, register
from mxopt.structure import brief_repr, leaf_name

# MXNet skips the trust ratio for parameters whose names end so (biases and
# batch-norm scales and shifts): a plain suffix test on the leaf's name.
EXEMPT_SUFFIXES = ("gamma", "beta", "bias")


def is_exempt(name: str) -> bool:
    """Whether the leaf named ``name`` keeps the plain learning rate (no trust ratio)."""
    return name.endswith(EXEMPT_SUFFIXES)


Exemption = bool | Callable[[str], bool] | None


def exemption_rule(exempt: Exemption) -> Callable[[str], bool]:
    """``exempt`` as a predicate of leaf names: MXNet's rule (:func:`is_exempt`) for None,
    the same answer for every leaf for a bool."""
    if exempt is None:
        return is_exempt
    if isinstance(exempt, bool):
        return lambda name: exempt
    if not callable(exempt):
        raise ValueError(f"exempt must be None, a bool or a predicate of leaf names, got "
                         f"{exempt!r}")
    return exempt


def sum_of_squares(x: jax.Array) -> jax.Array:
    """``sum(x * x)`` as MXNet's ``multi_sum_sq``: squares in ``x``'s dtype, summed in float32."""
    return jnp.sum((x * x).astype(jnp.float32))


@brief_repr
class ScaleByLarsState(NamedTuple):
    eta: NonNegative
    eps: NonNegative
    last_lr: jax.Array  # f32 scalar: the previous update's rate before lr_mult; 0 before any
    rescale: transforms.RescaleState
    clip: transforms.ClipState | optax.EmptyState
    decay: transforms.AddDecayedWeightsState
    rate: transforms.LearningRateState
    mom: transforms.TraceState | optax.EmptyState  # EmptyState when momentum is 0


def scale_by_lars(rate: transforms.LearningRate, *, momentum: float = 0.0, eta: float = 0.001,
                  eps: float = 0.0, momentum_correction: bool = True, rescale_grad: float = 1.0,
                  clip_gradient: float | None = None, wd: float = 0.0,
                  wd_mult: MultiplierSpec = None,
                  exempt: Exemption = None) -> optax.GradientTransformation:
    """MXNet's LARS step, from the raw gradient to the weight update.

    Per leaf, with ``lr`` from ``rate`` (lr_mult included) and ``wd`` times
    ``wd_mult``::

        ratio = eta * |w| / (rescale_grad * |grad| + wd * |w| + eps)
        lr_layer = lr * ratio   if |w| > 0 and |grad| > 0 and the leaf is not exempt
                   lr           otherwise
        mom = mu * mom - lr_layer * (clip(rescale_grad * grad, clip_gradient) + wd * w)
        update = mom

    ``|.|`` is the L2 norm of the whole leaf; the gradient's norm is taken
    before clipping. ``mu`` is ``momentum * lr_t / lr_{t-1}`` (learning rates
    before lr_mult) with ``momentum_correction``, unless ``lr_{t-1}`` is 0 or
    this is the first update. A leaf is exempt as ``exempt`` says: by default
    when its name ends with ``gamma``, ``beta`` or ``bias`` (:func:`is_exempt`).

    The rescale, clip and weight-decay hyperparameters are held once, in the
    states of :func:`transforms.rescale`, :func:`transforms.clip` and
    :func:`transforms.add_decayed_weights`, which this transform applies.

    The norms are those of the weights and gradients as stored, squared in
    their dtype and summed in float32, as MXNet's ``multi_sum_sq``: under
    :func:`mxopt.multi_precision` the transform updates float32 master
    copies, and takes the norms of the stored weights, which it passes as
    ``stored_params``.
    """
    given = Given(ScaleByLarsState, eta=eta, eps=eps)
    exempted = exemption_rule(exempt)
    rescale = transforms.rescale(rescale_grad)
    clip = transforms.clip(clip_gradient)
    decay = transforms.add_decayed_weights(wd, wd_mult)
    trace = transforms.momentum_buffer(momentum)

    def init_fn(params):
        refuse_packed(params, "lars", "takes each leaf's norms and exempts leaves by name")
        return ScaleByLarsState(**given.fields(), last_lr=jnp.zeros((), jnp.float32),
                                rescale=rescale.init(params), clip=clip.init(params),
                                decay=decay.init(params), rate=rate.init(params),
                                mom=trace.init(params))

    def update_fn(updates, state, params=None, *, count, stored_params=None, **extra_args):
        del extra_args
        if params is None:
            raise ValueError("lars needs params: call update(grads, state, params)")
        stored = params if stored_params is None else stored_params
        s = given.injected(state)
        lrs = rate.at(s.rate, count, updates)
        wds = transforms.weight_decays(s.decay, updates)
        scale = hyperparams.effective(s.rescale, "rescale_grad")

        def layer_rate(path, lr, wd, w, g):  # w as stored
            if exempted(leaf_name(path)):
                return lr
            w_norm = jnp.sqrt(sum_of_squares(w))
            g_sum_sq = sum_of_squares(g.astype(w.dtype))
            ratio = lr * s.eta * w_norm / (jnp.sqrt(g_sum_sq) * scale + wd * w_norm + s.eps)
            return jnp.where((w_norm > 0) & (g_sum_sq > 0), ratio, lr)

        layer_lrs = jax.tree_util.tree_map_with_path(layer_rate, lrs, wds, stored, updates)
        grads, rescale_state = rescale.update(updates, s.rescale)
        grads, clip_state = clip.update(grads, s.clip)
        grads, decay_state = decay.update(grads, s.decay, params)
        steps = jax.tree.map(lambda g, lr: -lr.astype(g.dtype) * g, grads, layer_lrs)
        lr = rate.unscaled(s.rate, count)
        last = s.last_lr
        mu = s.mom.momentum if isinstance(s.mom, transforms.TraceState) else None
        if mu is not None and momentum_correction:
            mu = jnp.where(last != 0, mu * (lr / jnp.where(last != 0, last, 1)), mu)
        if mu is None:  # momentum 0: no buffer
            trace_state = s.mom
        else:
            steps, trace_state = trace.update(steps, s.mom, momentum=mu)
        return steps, ScaleByLarsState(s.eta, s.eps, lr, rescale_state, clip_state, decay_state,
                                       rate.given.injected(s.rate), trace_state)

    return rate.with_counter(optax.GradientTransformationExtraArgs(init_fn, update_fn))


# MXNet's LARS and LBSGD keep the previous rate, or the accumulated gradients, in the object.
STATE_IN_THE_OBJECT = Unimportable("MXNet keeps part of its state in the optimizer object itself")


def exemption_by_index(arguments, name: str) -> dict:
    """MXNet's object updates one index at a time, a leaf without a name: the rule of
    :func:`is_exempt` takes the index's name (an ``exempt`` given applies as it is)."""
    return {} if arguments["exempt"] is not None else {"exempt": is_exempt(name)}


# MXNet's LARS.set_wd_mult decays "_weight" parameters only.
@register(mxnet=MXNet("LARS", state=STATE_IN_THE_OBJECT, decayed_suffixes=("_weight",),
                      index_arguments=exemption_by_index))
@optimizer
def lars(momentum: float = 0.0, lazy_update: bool = True, eta: float = 0.001, eps: float = 0,
         momentum_correction: bool = True, *, exempt: Exemption = None,
         base: Base) -> optax.GradientTransformation:
    """MXNet's ``lars``: layer-wise adaptive rate scaling (You et al., 2017).

    SGD with momentum and weight decay whose learning rate is scaled per
    leaf by a trust ratio. Per leaf, with ``lr`` the (scheduled) learning
    rate times ``lr_mult`` and ``wd`` the weight decay times ``wd_mult``::

        ratio = eta * |w| / (rescale_grad * |grad| + wd * |w| + eps)
        lr_layer = lr * ratio    (lr where |w| = 0, |grad| = 0, or for exempt leaves)
        mom = mu * mom - lr_layer * (clip(rescale_grad * grad, clip_gradient) + wd * w)
        w = w + mom

    ``|.|`` is the L2 norm over the whole leaf, the gradient's taken before
    clipping. With ``momentum_correction``, ``mu = momentum * lr_t / lr_{t-1}``
    (Goyal et al., 2017; rates before lr_mult; plain ``momentum`` on the
    first update or after a rate of 0), so a scheduled change of rate does
    not rescale the steps already in the buffer; otherwise ``mu = momentum``.
    With ``momentum=0`` there is no buffer and ``w = w - lr_layer * (...)``.

    Exempt leaves, which keep ``lr``: those whose name (the key path joined
    by ``/``, see :mod:`mxopt.structure`) ends with ``gamma``, ``beta`` or
    ``bias``, the suffix test MXNet applies to parameter names; so
    ``"bn0_gamma"``, ``"bn/beta"`` and ``"dense/bias"`` are exempt while
    ``"dense/kernel"`` or Flax's ``"BatchNorm_0/scale"`` are not. ``exempt``
    replaces that rule (an mxopt argument; MXNet has only its rule).

    Args:
      momentum: in [0, 1).
      lazy_update: accepted for compatibility; it only changes MXNet's
        updates of row-sparse gradients, and JAX gradients are dense.
      eta: the LARS coefficient, >= 0.
      eps: added to the trust ratio's denominator, >= 0.
      momentum_correction: scale the momentum by the change of learning rate.
      exempt: which leaves keep ``lr``: None for MXNet's rule by name, a
        predicate ``f(name) -> bool``, or a bool for all leaves.

    References:
      You, Gitman and Ginsburg, "Large Batch Training of Convolutional
      Networks", arXiv:1708.03888. Goyal et al., "Accurate, Large Minibatch
      SGD: Training ImageNet in 1 Hour", arXiv:1706.02677.
    """
    del lazy_update
    if not isinstance(momentum_correction, bool):
        raise ValueError(f"momentum_correction must be a bool, got {momentum_correction!r}")

    return base.build(scale_by_lars(
        base.rate(), momentum=momentum, eta=eta, eps=eps, momentum_correction=momentum_correction,
        rescale_grad=base.rescale_grad, clip_gradient=base.clip_gradient, wd=base.wd,
        wd_mult=base.wd_mult, exempt=exempt))
