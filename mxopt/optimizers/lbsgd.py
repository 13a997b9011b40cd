"""Large-batch SGD: accumulated gradients and a warmup of the rate, as MXNet computes it."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from mxopt import transforms, validation
from mxopt.base import Base, optimizer
from mxopt.multipliers import MultiplierSpec
from mxopt.optimizers.lars import STATE_IN_THE_OBJECT, sum_of_squares
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


def lars_multiplier(w: jax.Array, g: jax.Array, wd: jax.Array) -> jax.Array:
    """MXNet's LBSGD ``_get_lars``: ``sqrt(|w|^2 / (|g|^2 + wd |w|^2 + 1e-18))`` in [0.01, 100]."""
    w2, g2 = sum_of_squares(w), sum_of_squares(g)
    return jnp.clip(jnp.sqrt(w2 / (g2 + wd * w2 + 1e-18)), 0.01, 100.0)


@brief_repr
class ScaleByLbsgdState(NamedTuple):
    grad_sum: optax.Updates | None  # like params: grads since the last update (None: batch_scale 1)
    rescale: transforms.RescaleState
    clip: transforms.ClipState | optax.EmptyState
    decay: transforms.AddDecayedWeightsState
    rate: transforms.LearningRateState
    mom: transforms.TraceState | optax.EmptyState  # EmptyState when momentum is 0


def scale_by_lbsgd(rate: transforms.LearningRate, *, momentum: float = 0.0,
                   warmup_strategy: str = "linear", warmup_updates: int = 0, batch_scale: int = 1,
                   begin_count: int = 0, rescale_grad: float = 1.0,
                   clip_gradient: float | None = None, wd: float = 0.0,
                   wd_mult: MultiplierSpec = None) -> optax.GradientTransformation:
    """MXNet's LBSGD step, from the raw gradient to the weight update.

    Each call counts ``n`` (from ``begin_count``: ``n`` is the update count
    less ``rate.begin_num_update`` plus ``begin_count``) and adds the
    gradient to a sum. Every call where ``n`` is a multiple of ``batch_scale``, per leaf::

        g = sum / batch_scale;  sum = 0
        mult = warmup_multiplier(n)   or, for 'lars', lars_multiplier(w, g, wd)
        mom = momentum * mom - lr * mult * (clip(rescale_grad * g, clip_gradient) + wd * w)
        update = mom

    Other calls return a zero update and leave the momentum alone. ``lr``
    (from ``rate``, lr_mult included) counts every call.
    """
    validation.one_of("warmup_strategy", warmup_strategy, WARMUP_STRATEGIES)
    rescale = transforms.rescale(rescale_grad)
    clip = transforms.clip(clip_gradient)
    decay = transforms.add_decayed_weights(wd, wd_mult)
    trace = transforms.momentum_buffer(momentum)

    def init_fn(params):
        refuse_packed(params, "lbsgd", "takes each leaf's norms")
        grad_sum = None if batch_scale == 1 else zeros_like(params)
        return ScaleByLbsgdState(grad_sum, rescale.init(params), clip.init(params),
                                 decay.init(params), rate.init(params), trace.init(params))

    def update_fn(updates, state, params=None, *, count, **extra_args):
        del extra_args
        if params is None:
            raise ValueError("lbsgd needs params: call update(grads, state, params)")
        s = state
        calls = count + (begin_count - rate.begin_num_update)  # MXNet's num_cums
        lrs = rate.at(s.rate, count, updates)
        if s.grad_sum is None:
            grads = updates
        else:
            total = jax.tree.map(jnp.add, s.grad_sum, updates)
            grads = jax.tree.map(lambda t: t / jnp.asarray(batch_scale, t.dtype), total)
        if warmup_strategy == "lars":
            wds = transforms.weight_decays(s.decay, updates)
            mults = jax.tree.map(lars_multiplier, params, grads, wds)
        else:
            mult = warmup_multiplier(warmup_strategy, calls, warmup_updates, batch_scale)
            mults = jax.tree.map(lambda _: mult, lrs)
        g, rescale_state = rescale.update(grads, s.rescale)
        g, clip_state = clip.update(g, s.clip)
        g, decay_state = decay.update(g, s.decay, params)
        steps = jax.tree.map(lambda g, lr, m: -(lr * m).astype(g.dtype) * g,
                             g, lrs, mults)
        steps, trace_state = trace.update(steps, s.mom)
        grad_sum = None
        if s.grad_sum is not None:
            apply = calls % batch_scale == 0

            def when(new, old):
                return jnp.where(apply, new, old)

            steps = jax.tree.map(lambda u: when(u, jnp.zeros_like(u)), steps)
            trace_state = jax.tree.map(when, trace_state, s.mom)
            grad_sum = jax.tree.map(lambda t: when(jnp.zeros_like(t), t), total)
        return steps, ScaleByLbsgdState(grad_sum, rescale_state, clip_state, decay_state,
                                        rate.given.injected(s.rate), trace_state)

    return rate.with_counter(optax.GradientTransformationExtraArgs(init_fn, update_fn))


@register(mxnet=MXNet("LBSGD", state=STATE_IN_THE_OBJECT))
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
    return base.build(scale_by_lbsgd(
        base.rate(), momentum=momentum, warmup_strategy=warmup_strategy,
        warmup_updates=warmup_updates, batch_scale=batch_scale,
        begin_count=begin_count, rescale_grad=base.rescale_grad,
        clip_gradient=base.clip_gradient, wd=base.wd, wd_mult=base.wd_mult))
