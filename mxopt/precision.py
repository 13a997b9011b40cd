"""Mixed-precision training: float32 master weights, loss scaling, skipped steps.

MXNet's ``multi_precision=True`` keeps a float32 copy of each float16 weight,
runs the whole update on it in float32 (the gradient cast up first), and
writes the copy back rounded to float16. :func:`multi_precision` does the
same for float16 and bfloat16 leaves of any mxopt or optax transformation.

:func:`dynamic_loss_scale` is the dynamic loss scaling of MXNet's AMP
(``mxnet.contrib.amp``), and :func:`apply_if_finite` the guard it skips
overflowed steps with, usable around any optimizer.
"""

from __future__ import annotations

from typing import NamedTuple

import chex
import jax
import jax.numpy as jnp
import optax

from mxopt import hyperparams, validation
from mxopt.structure import brief_repr, state_nodes

LOW_PRECISION = (jnp.float16, jnp.bfloat16)


def _needs_master(leaf: jax.Array) -> bool:
    return jnp.result_type(leaf) in LOW_PRECISION


@brief_repr
class MultiPrecisionState(NamedTuple):
    master: chex.ArrayTree  # f32 copy of each low-precision leaf; None for the others
    inner: optax.OptState


def multi_precision(inner: optax.GradientTransformation) -> optax.GradientTransformation:
    """Runs ``inner`` on float32 master copies of float16/bfloat16 leaves.

    For each low-precision weight ``w`` with master ``w32``::

        w32 <- w32 + inner(float32(g))
        update = float32(round_to_dtype(w32)) - float32(w)

    The update is float32; ``optax.apply_updates`` adds it in float32 and
    rounds to the weight's dtype, which gives ``round_to_dtype(w32)`` bit for
    bit. Other leaves pass through ``inner`` unchanged. ``update`` needs params.

    ``inner``'s update also gets ``stored_params=``, the weights as stored
    (each the rounding of its master), for transforms that read them beside
    the masters: MXNet's LARS takes its norms of the float16 weights.
    """
    validation.transformation("inner", inner)
    inner_update = optax.with_extra_args_support(inner).update

    def working_copy(params, master):
        return jax.tree.map(lambda p, m: p if m is None else m, params, master,
                            is_leaf=lambda x: x is None)

    def init_fn(params):
        master = jax.tree.map(
            lambda p: p.astype(jnp.float32) if _needs_master(p) else None, params)
        return MultiPrecisionState(master, inner.init(working_copy(params, master)))

    def update_fn(updates, state, params=None, **extra_args):
        validation.params_given(params, "multi_precision")
        work = working_copy(params, state.master)
        grads = jax.tree.map(lambda g, w: g.astype(w.dtype), updates, work)
        steps, inner_state = inner_update(grads, state.inner, work,
                                          **{**extra_args, "stored_params": params})
        new_work = optax.apply_updates(work, steps)

        def master_of(p, w):
            return w if _needs_master(p) else None

        def update_of(p, w, s):
            if not _needs_master(p):
                return s
            return w.astype(p.dtype).astype(jnp.float32) - p.astype(jnp.float32)

        master = jax.tree.map(master_of, params, new_work)
        updates = jax.tree.map(update_of, params, new_work, steps)
        return updates, MultiPrecisionState(master, inner_state)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def all_finite(tree: chex.ArrayTree) -> jax.Array:
    """Whether every element of every leaf is finite (no inf, no NaN): a bool scalar."""
    return jnp.all(jnp.asarray([jnp.isfinite(leaf).all() for leaf in jax.tree.leaves(tree)],
                               bool))


@brief_repr
class ApplyIfFiniteState(NamedTuple):
    notfinite_count: jax.Array  # int32: non-finite steps in a row, up to the last
    total_notfinite: jax.Array  # int32: non-finite (skipped) steps in all
    last_finite: jax.Array  # bool: whether the last step's gradients were finite
    inner: optax.OptState


def apply_if_finite(inner: optax.GradientTransformation) -> optax.GradientTransformation:
    """Skips the step of ``inner`` whose gradients, or the updates it makes of them, hold an
    inf or NaN.

    On such a step the updates are ``-0.0`` (``w + -0.0`` is ``w`` bit for
    bit, ``-0.0`` included), ``inner``'s state (moments, master copies,
    update count, PRNG key) is left as it was, and the counters record the
    skip. Unlike ``optax.apply_if_finite``, it never gives up and applies a
    non-finite step, as MXNet's AMP never does.
    """
    validation.transformation("inner", inner)

    def init_fn(params):
        return ApplyIfFiniteState(jnp.zeros((), jnp.int32), jnp.zeros((), jnp.int32),
                                  jnp.asarray(True), inner.init(params))

    def update_fn(updates, state, params=None):
        steps, inner_state = inner.update(updates, state.inner, params)
        finite = all_finite(updates) & all_finite(steps)
        steps = jax.tree.map(lambda s: jnp.where(finite, s, jnp.asarray(-0.0, s.dtype)), steps)
        inner_state = jax.tree.map(lambda new, old: jnp.where(finite, new, old),
                                   inner_state, state.inner)
        skipped = (~finite).astype(jnp.int32)
        return steps, ApplyIfFiniteState(
            jnp.where(finite, 0, state.notfinite_count + 1), state.total_notfinite + skipped,
            finite, inner_state)

    return optax.GradientTransformation(init_fn, update_fn)


@brief_repr
class DynamicLossScaleState(NamedTuple):
    loss_scale: jax.Array  # float32: multiply this step's loss by it
    next_loss_scale: jax.Array  # float32: the scale after this step's check (MXNet's lag)
    unskipped: jax.Array  # int32: finite steps since the scale last changed
    guarded: ApplyIfFiniteState  # the skip counters and the inner state


def dynamic_loss_scale(inner: optax.GradientTransformation, *, init_scale: float = 2.0**16,
                       scale_seq_len: int = 2000,
                       max_loss_scale: float = 2.0**24,
                       min_loss_scale: float = 2.0**-24) -> optax.GradientTransformation:
    """MXNet AMP's dynamic loss scaling around ``inner``, with its defaults.

    The loss of each step is multiplied by ``loss_scale(state)`` before
    differentiating; ``update`` takes those scaled gradients. A step whose
    gradients are all finite runs ``inner`` on ``g / loss_scale``, one with
    an inf or NaN is skipped (:func:`apply_if_finite`). Then, as MXNet's
    ``LossScaler.has_overflow`` does::

        loss_scale <- next_loss_scale
        overflow:  next_loss_scale <- max(min_loss_scale, loss_scale / 2);  unskipped <- 0
        else:      unskipped <- unskipped + 1
        if unskipped == scale_seq_len:
            next_loss_scale <- min(max_loss_scale, 2 * loss_scale);  unskipped <- 0

    so a change takes effect one step late, as in MXNet. Where ``inner`` has
    a ``rescale_grad`` hyperparameter (every mxopt optimizer), the step runs
    with ``rescale_grad / loss_scale`` in its place, as MXNet's Trainer folds
    the scale into ``rescale_grad``; other transforms get the gradients
    divided by the scale in float32 and cast back to their dtype.

    Args:
      inner: the optimizer.
      init_scale: the first loss scale, > 0 (MXNet: 2**16).
      scale_seq_len: finite steps in a row before the scale doubles, >= 1
        (MXNet: 2000).
      max_loss_scale: the most the scale grows to, >= ``init_scale`` (MXNet: 2**24).
      min_loss_scale: the least the scale shrinks to, > 0 and <= ``init_scale``.
        MXNet halves without end, until its float64 scale reaches 0; in
        float32 that would take about 150 overflows, after which
        ``g / loss_scale`` is not finite. The default, ``2**-24``, keeps
        ``1 / loss_scale`` within float32 for any float16 gradient.
    """
    validation.transformation("inner", inner)
    init_scale = validation.positive("init_scale", init_scale)
    max_loss_scale = validation.positive("max_loss_scale", max_loss_scale)
    min_loss_scale = validation.positive("min_loss_scale", min_loss_scale)
    if not min_loss_scale <= init_scale <= max_loss_scale:
        raise ValueError(f"init_scale ({init_scale}) must be within [min_loss_scale, "
                         f"max_loss_scale] = [{min_loss_scale}, {max_loss_scale}]")
    scale_seq_len = validation.count("scale_seq_len", scale_seq_len, minimum=1)
    guarded = apply_if_finite(inner)

    def init_fn(params):
        return DynamicLossScaleState(jnp.asarray(init_scale, jnp.float32),
                                     jnp.asarray(init_scale, jnp.float32),
                                     jnp.zeros((), jnp.int32), guarded.init(params))

    def update_fn(updates, state, params=None):
        rescale = hyperparams.get_hyperparams(state.guarded.inner).get("rescale_grad")
        if rescale is None:
            updates = jax.tree.map(
                lambda g: (g.astype(jnp.float32) / state.loss_scale).astype(g.dtype), updates)
            steps, guarded_state = guarded.update(updates, state.guarded, params)
        else:
            unscaling = hyperparams.assign(state.guarded,
                                           {"rescale_grad": rescale / state.loss_scale})
            steps, guarded_state = guarded.update(updates, unscaling, params)
            guarded_state = hyperparams.assign(
                guarded_state, {"rescale_grad": hyperparams.stored(state.guarded, "rescale_grad")})
        finite = guarded_state.last_finite
        scale = state.next_loss_scale
        unskipped = jnp.where(finite, state.unskipped + 1, 0)
        grow = unskipped == scale_seq_len
        next_scale = jnp.where(finite, scale, jnp.maximum(min_loss_scale, scale / 2))
        next_scale = jnp.where(grow, jnp.minimum(max_loss_scale, scale * 2), next_scale)
        return steps, DynamicLossScaleState(scale, next_scale, jnp.where(grow, 0, unskipped),
                                            guarded_state)

    return optax.GradientTransformation(init_fn, update_fn)


def loss_scale(state: optax.OptState) -> jax.Array:
    """The loss scale of the next step: the ``loss_scale`` of the
    :func:`dynamic_loss_scale` state found in ``state``.

    Raises:
      ValueError: ``state`` holds no :func:`dynamic_loss_scale` state.
    """
    found = [node for node in state_nodes(state) if isinstance(node, DynamicLossScaleState)]
    if not found:
        raise ValueError("this optimizer state has no dynamic_loss_scale state")
    return found[0].loss_scale
