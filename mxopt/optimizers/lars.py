"""LARS: SGD with a layer-wise trust ratio on the learning rate, as MXNet computes it."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import chex
import jax
import jax.numpy as jnp
import optax

from mxopt import counting, hyperparams, transforms, validation
from mxopt.base import Base, optimizer
from mxopt.hyperparams import Given, NonNegative
from mxopt.numerics import unzip
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
    """``sum(x * x)`` as MXNet's ``multi_sum_sq``: squares in ``x``'s dtype, summed in float32.

    The squares are rounded to ``x``'s dtype explicitly, where XLA would otherwise keep a
    bfloat16 product in float32 in some programs and not in others (as sharded).
    """
    squares = x * x
    if x.dtype != jnp.float32:
        info = jnp.finfo(x.dtype)
        squares = jax.lax.reduce_precision(squares, exponent_bits=info.nexp,
                                           mantissa_bits=info.nmant)
    return jnp.sum(squares.astype(jnp.float32))


@brief_repr
class LeafNormsState(NamedTuple):
    """:func:`record_leaf_norms`'s state: this update's norms, for the links after it."""

    weight_sum_sq: chex.ArrayTree  # f32 scalar per leaf: |w|^2, 0 for an exempt leaf
    grad_sum_sq: chex.ArrayTree  # f32 scalar per leaf: |grad|^2, 0 for an exempt leaf


def record_leaf_norms(exempt: Exemption = False, *, stored: bool = True,
                      optimizer: str = "record_leaf_norms") -> optax.GradientTransformation:
    """Keeps each leaf's ``|w|^2`` and ``|grad|^2`` of this update in the state, for the
    links after it (:func:`mxopt.counted`'s ``earlier_states``); passes the gradient on
    unchanged. Placed first in a chain, its norms are the raw gradient's.

    The gradient is taken in the weight's dtype; each is squared in its dtype
    and summed in float32 (:func:`sum_of_squares`). Under
    :func:`mxopt.multi_precision` the weights are the stored ones
    (``stored_params``), as MXNet's LARS takes them, or with ``stored=False``
    the float32 masters, as MXNet's LBSGD does (it updates the masters). A
    leaf that ``exempt`` exempts (see :func:`exemption_rule`; by default
    none) records 0 for both, and its norms cost nothing. ``optimizer``
    names the optimizer in errors.
    """
    exempted = exemption_rule(exempt)

    def norms(path, w, g):
        if exempted(leaf_name(path)):
            return jnp.zeros((), jnp.float32), jnp.zeros((), jnp.float32)
        return sum_of_squares(w), sum_of_squares(g.astype(w.dtype))

    def init_fn(params):
        refuse_packed(params, optimizer, "takes each leaf's norms")
        zeros = jax.tree.map(lambda _: jnp.zeros((), jnp.float32), params)
        return LeafNormsState(zeros, zeros)

    def update_fn(updates, state, params=None, *, stored_params=None, **extra_args):
        del state, extra_args
        validation.params_given(params, optimizer)
        weights = params if stored_params is None or not stored else stored_params
        pairs = jax.tree_util.tree_map_with_path(norms, weights, updates)
        return updates, LeafNormsState(*unzip(weights, pairs, 2))

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


@brief_repr
class ScaleByLarsState(NamedTuple):
    eta: NonNegative
    eps: NonNegative
    last_lr: jax.Array  # f32 scalar: this update's rate before lr_mult; 0 before any
    momentum_scale: jax.Array  # f32 scalar: lr_t / lr_{t-1}, for the momentum (1: none)
    rate: transforms.LearningRateState


def scale_by_lars(rate: transforms.LeafRates, *, eta: float = 0.001, eps: float = 0.0,
                  momentum_correction: bool = True) -> optax.GradientTransformation:
    """MXNet's layer-wise rate: each leaf's update times ``-lr_layer``.

    In a chain after :func:`record_leaf_norms`, :func:`transforms.rescale`
    and :func:`transforms.add_decayed_weights`, whose states it reads for
    this update's norms, ``rescale_grad`` and ``wd * wd_mult``; per leaf,
    with ``lr`` from ``rate`` (lr_mult included)::

        ratio = eta * |w| / (rescale_grad * |grad| + wd * |w| + eps)
        lr_layer = lr * ratio   if |w| > 0 and |grad| > 0 (and the leaf is not exempt)
                   lr           otherwise

    With ``momentum_correction`` the state's ``momentum_scale`` is
    ``lr_t / lr_{t-1}`` (rates before lr_mult; 1 on the first update or
    after a rate of 0), which the momentum buffer after it multiplies its
    momentum by (:func:`lars_momentum_scale`).
    """
    given = Given(ScaleByLarsState, eta=eta, eps=eps)

    def init_fn(params):
        return ScaleByLarsState(**given.fields(), last_lr=jnp.zeros((), jnp.float32),
                                momentum_scale=jnp.ones((), jnp.float32), rate=rate.init(params))

    def update_fn(updates, state, params=None, *, count, earlier_states, **extra_args):
        del params, extra_args
        s = given.injected(state)
        norms = counting.earlier_state(earlier_states, LeafNormsState, "lars")
        scale = hyperparams.effective(
            counting.earlier_state(earlier_states, transforms.RescaleState, "lars"),
            "rescale_grad")
        wds = transforms.weight_decays(counting.earlier_state(
            earlier_states, transforms.AddDecayedWeightsState, "lars"), updates)

        def layer_rate(lr, wd, w_sum_sq, g_sum_sq):
            w_norm = jnp.sqrt(w_sum_sq)
            ratio = lr * s.eta * w_norm / (jnp.sqrt(g_sum_sq) * scale + wd * w_norm + s.eps)
            return jnp.where((w_norm > 0) & (g_sum_sq > 0), ratio, lr)

        layer_lrs = jax.tree.map(layer_rate, rate.at(s.rate, count, updates), wds,
                                 norms.weight_sum_sq, norms.grad_sum_sq)
        steps = jax.tree.map(lambda g, lr: -lr.astype(g.dtype) * g, updates, layer_lrs)
        lr, last = rate.unscaled(s.rate, count), s.last_lr
        momentum_scale = (jnp.where(last != 0, lr / jnp.where(last != 0, last, 1), 1)
                          if momentum_correction else s.momentum_scale)
        return steps, ScaleByLarsState(s.eta, s.eps, lr, momentum_scale.astype(jnp.float32),
                                       rate.given.injected(s.rate))

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def lars_momentum_scale(first_leaf_only: bool = False) -> transforms.BufferTerm:
    """The momentum's factor of each leaf this update, from :func:`scale_by_lars`'s state
    before it; with ``first_leaf_only``, 1 but for the first leaf (``mxnet_quirks``:
    MXNet's LARS moves its ``last_lr`` at each call, and its first index takes the change)."""
    def factors(earlier_states, count, like):
        del count
        scale = counting.earlier_state(earlier_states, ScaleByLarsState, "lars").momentum_scale
        leaves, treedef = jax.tree.flatten(like)
        rest = jnp.ones((), jnp.float32) if first_leaf_only else scale
        return jax.tree.unflatten(treedef, [scale, *[rest] * len(leaves)][:len(leaves)])

    return factors


# MXNet's LARS and LBSGD keep the previous rate, or the accumulated gradients, in the object.
STATE_IN_THE_OBJECT = Unimportable("MXNet keeps part of its state in the optimizer object itself")


def exemption_by_index(arguments, name: str) -> dict:
    """MXNet's object updates one index at a time, a leaf without a name: the rule of
    :func:`is_exempt` takes the index's name (an ``exempt`` given applies as it is)."""
    return {} if arguments["exempt"] is not None else {"exempt": is_exempt(name)}


# MXNet's LARS.set_wd_mult decays "_weight" parameters only.
@register(mxnet=MXNet("LARS", state=STATE_IN_THE_OBJECT, decayed_suffixes=("_weight",),
                      index_arguments=exemption_by_index, aggregate_num=4,
                      shared_state=("last_lr",)))
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
    MXNet 1.9.1 corrects only the first parameter of each update call; with
    ``mxnet_quirks=True`` only the first leaf is corrected here, and the
    object surface's per-index updates share one ``last_lr`` as MXNet's
    object does. With ``momentum=0`` there is no buffer and ``w = w - lr_layer * (...)``.

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

    return base.build(
        record_leaf_norms(exempt, optimizer="lars"), base.rescale(), base.clip(),
        base.weight_decay(),
        scale_by_lars(base.rate(), eta=eta, eps=eps, momentum_correction=momentum_correction),
        transforms.momentum_buffer(momentum,
                                   momentum_scale=lars_momentum_scale(base.mxnet_quirks)))
