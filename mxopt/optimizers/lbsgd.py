"""Large-batch SGD: accumulated gradients and a warmup of the rate, as MXNet computes it."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from mxopt import counting, transforms, validation
from mxopt.base import Base, optimizer
from mxopt.optimizers.lars import STATE_IN_THE_OBJECT, LeafNormsState, record_leaf_norms
from mxopt.packing import refuse_packed
from mxopt.registry import MXNet, register
from mxopt.sharding import zeros_like
from mxopt.structure import brief_repr

WARMUP_STRATEGIES = ("linear", "power2", "sqrt", "lars")


def warmup_multiplier(strategy: str, nup: jax.Array, warmup_updates: int,
                      batch_scale: int) -> jax.Array:
    """MXNet's ``_get_lbmult``: the rate multiplier after ``nup`` calls (f32 scalar).

    It rises from 1 to ``batch_scale`` over ``warmup_updates`` calls, linearly,
    quadratically (``power2``) or as a square root (``sqrt``) of
    ``nup / warmup_updates``, and is ``batch_scale`` from then on.
    """
    top = jnp.float32(batch_scale)
    if warmup_updates <= 1:
        return top  # nup >= 1 >= warmup_updates on every call
    frac = nup.astype(jnp.float32) / warmup_updates
    shape = {"linear": frac, "power2": frac * frac, "sqrt": jnp.sqrt(frac)}[strategy]
    return jnp.where(nup >= warmup_updates, top, 1 + (top - 1) * shape)


def lars_multiplier(w_sum_sq: jax.Array, g_sum_sq: jax.Array, wd: jax.Array) -> jax.Array:
    """MXNet's LBSGD ``_get_lars``: ``sqrt(|w|^2 / (|g|^2 + wd |w|^2 + 1e-18))`` in [0.01, 100]."""
    return jnp.clip(jnp.sqrt(w_sum_sq / (g_sum_sq + wd * w_sum_sq + 1e-18)), 0.01, 100.0)


@brief_repr
class AccumulateGradientsState(NamedTuple):
    grad_sum: optax.Updates  # like params: the gradients since the last update
    links: tuple  # the accumulated links' states


def accumulate_gradients(batch_scale: int, call_offset: int,
                         *links: optax.GradientTransformation) -> optax.GradientTransformation:
    """MXNet's LBSGD accumulation: ``links`` update every ``batch_scale``-th call, on the
    mean of the gradients since their last update.

    In a :func:`mxopt.counted` chain, call ``n = count + call_offset``
    (MXNet's ``num_cums``) adds its gradient to a sum. Where ``n`` is a
    multiple of ``batch_scale``, ``links`` run in turn under the same count on
    ``sum / batch_scale``, their output is the update, and the sum restarts
    from 0; on the other calls the update is 0 and their states stay as they
    were.
    """
    steps = [optax.with_extra_args_support(link) for link in links]

    def init_fn(params):
        return AccumulateGradientsState(zeros_like(params),
                                        tuple(link.init(params) for link in links))

    def update_fn(updates, state, params=None, *, count, **extra_args):
        total = jax.tree.map(jnp.add, state.grad_sum, updates)
        mean = jax.tree.map(lambda t: t / jnp.asarray(batch_scale, t.dtype), total)
        steps_out, link_states = counting.update_in_turn(steps, state.links, mean, params,
                                                         count=count, **extra_args)
        apply = (count + call_offset) % batch_scale == 0

        def when(new, old):
            return jnp.where(apply, new, old)

        return (jax.tree.map(lambda u: when(u, jnp.zeros_like(u)), steps_out),
                AccumulateGradientsState(jax.tree.map(lambda t: when(jnp.zeros_like(t), t), total),
                                         jax.tree.map(when, link_states, state.links)))

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


@brief_repr
class ScaleByLbsgdState(NamedTuple):
    rate: transforms.LearningRateState
    num_update: jax.Array  # i32 scalar: the update count of the last update made


def scale_by_lbsgd(rate: transforms.LeafRates, *, warmup_strategy: str = "linear",
                   warmup_updates: int = 0, batch_scale: int = 1, begin_count: int = 0,
                   rate_before_count: bool = False) -> optax.GradientTransformation:
    """MXNet's LBSGD rate: each leaf's update times ``-lr * mult``.

    ``lr`` comes from ``rate`` (lr_mult included) and counts every call;
    ``mult`` is :func:`warmup_multiplier` of MXNet's call count ``n`` (the
    update count less ``rate.begin_num_update`` plus ``begin_count``) or, for
    ``'lars'``, :func:`lars_multiplier` of each leaf's norms, read in a
    :func:`mxopt.counted` chain from :func:`record_leaf_norms` and
    :func:`transforms.add_decayed_weights` before it.

    With ``rate_before_count`` (``mxnet_quirks``) the first leaf takes the
    rate at MXNet's ``num_update`` before this update counted, the larger of
    the state's ``num_update`` and ``count - 1``, as MXNet 1.9.1's first
    parameter of each step does.
    """
    validation.one_of("warmup_strategy", warmup_strategy, WARMUP_STRATEGIES)

    def init_fn(params):
        refuse_packed(params, "lbsgd", "takes each leaf's norms")
        return ScaleByLbsgdState(rate.init(params),
                                 jnp.asarray(rate.begin_num_update, jnp.int32))

    def update_fn(updates, state, params=None, *, count, earlier_states=(), **extra_args):
        del params, extra_args
        lrs = rate.at(state.rate, count, updates)
        leaves, treedef = jax.tree.flatten(lrs)
        if rate_before_count and leaves:
            seen = jnp.maximum(state.num_update, count - 1)
            leaves[0] = jax.tree.leaves(rate.at(state.rate, seen, updates))[0]
            lrs = jax.tree.unflatten(treedef, leaves)
        if warmup_strategy == "lars":
            norms = counting.earlier_state(earlier_states, LeafNormsState, "lbsgd")
            wds = transforms.weight_decays(counting.earlier_state(
                earlier_states, transforms.AddDecayedWeightsState, "lbsgd"), updates)
            mults = jax.tree.map(lars_multiplier, norms.weight_sum_sq, norms.grad_sum_sq, wds)
        else:
            calls = count + (begin_count - rate.begin_num_update)  # MXNet's num_cums
            mult = warmup_multiplier(warmup_strategy, calls, warmup_updates, batch_scale)
            mults = jax.tree.map(lambda _: mult, lrs)
        steps = jax.tree.map(lambda g, lr, m: -(lr * m).astype(g.dtype) * g, updates, lrs, mults)
        return steps, ScaleByLbsgdState(rate.given.injected(state.rate), count)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


@register(mxnet=MXNet("LBSGD", state=STATE_IN_THE_OBJECT, shared_state=("num_update",)))
@optimizer
def lbsgd(momentum: float = 0.0, multi_precision: bool = False, warmup_strategy: str = "linear",
          warmup_epochs: int = 5, batch_scale: int = 1, updates_per_epoch: int = 32,
          begin_epoch: int = 0, num_epochs: int = 60, *,
          base: Base) -> optax.GradientTransformation:
    """MXNet's ``lbsgd``: large-batch SGD with gradient accumulation and rate warmup.

    It emulates a batch ``batch_scale`` times larger: each call adds the
    gradient to a sum, and only every ``batch_scale``-th call updates the
    weights, with the mean of the summed gradients; the other calls return a
    zero update. Calls are counted as ``n``, from
    ``begin_epoch * updates_per_epoch`` (MXNet's ``num_cums``); an update
    happens where ``n`` is a multiple of ``batch_scale``. On those calls, per
    leaf, with ``lr`` the (scheduled) learning rate times ``lr_mult``::

        g = (sum of the gradients since the last update) / batch_scale
        g = clip(rescale_grad * g, clip_gradient) + wd * wd_mult * w
        mom = momentum * mom - lr * mult * g
        w = w + mom

    ``mult`` follows ``warmup_strategy`` over ``W = warmup_epochs *
    updates_per_epoch`` calls: ``1 + (batch_scale - 1) * f`` with ``f`` =
    ``n / W`` (``'linear'``), ``(n / W)**2`` (``'power2'``) or
    ``sqrt(n / W)`` (``'sqrt'``) while ``n < W``, and ``batch_scale`` from
    then on (so with ``batch_scale=1`` it is 1). With ``'lars'`` it is
    instead a per-leaf ratio ``sqrt(|w|^2 / (|g|^2 + wd * |w|^2 + 1e-18))``
    clipped to [0.01, 100], ``g`` the averaged gradient before rescaling and
    clipping. The learning-rate schedule counts every call, updating or not.

    A run resumed with ``begin_epoch`` counts from ``begin_epoch *
    updates_per_epoch``; if that is not a multiple of ``batch_scale``, the
    first update comes after fewer than ``batch_scale`` calls and still
    divides their sum by ``batch_scale``, as in MXNet.

    Args:
      momentum: in [0, 1).
      multi_precision: float32 master weights for float16/bfloat16 leaves
        (MXNet lists it among LBSGD's own arguments; it is the base one).
      warmup_strategy: ``'linear'``, ``'power2'``, ``'sqrt'`` or ``'lars'``.
      warmup_epochs: the warmup's length in epochs, >= 0.
      batch_scale: how many calls make one update, >= 1.
      updates_per_epoch: calls per epoch, >= 1 (for the warmup and
        ``begin_epoch``).
      begin_epoch: the epoch a run starts from, >= 0.
      num_epochs: accepted for compatibility; MXNet does not use it.

    References:
      Goyal et al., "Accurate, Large Minibatch SGD: Training ImageNet in 1
      Hour", arXiv:1706.02677. You, Gitman and Ginsburg, "Large Batch
      Training of Convolutional Networks", arXiv:1708.03888.
    """
    warmup_epochs = validation.count("warmup_epochs", warmup_epochs)
    batch_scale = validation.count("batch_scale", batch_scale, minimum=1)
    updates_per_epoch = validation.count("updates_per_epoch", updates_per_epoch, minimum=1)
    begin_epoch = validation.count("begin_epoch", begin_epoch)
    # Both are counted in updates, within the count's range.
    warmup_updates = validation.count("warmup_epochs * updates_per_epoch",
                                      warmup_epochs * updates_per_epoch)
    begin_count = validation.count("begin_epoch * updates_per_epoch",
                                   begin_epoch * updates_per_epoch)
    validation.count("num_epochs", num_epochs)
    del multi_precision  # in ``base``
    links = (base.rescale(), base.clip(), base.weight_decay(),
             scale_by_lbsgd(base.rate(), warmup_strategy=warmup_strategy,
                            warmup_updates=warmup_updates, batch_scale=batch_scale,
                            begin_count=begin_count, rate_before_count=base.mxnet_quirks),
             transforms.momentum_buffer(momentum))
    if warmup_strategy == "lars":  # its multiplier reads each leaf's norms
        links = (record_leaf_norms(stored=False, optimizer="lbsgd"), *links)
    if batch_scale > 1:
        links = (accumulate_gradients(batch_scale, begin_count - base.begin_num_update, *links),)
    return base.build(*links)
