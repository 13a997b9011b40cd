"""Multi-precision training: float32 master copies of low-precision weights.

MXNet's ``multi_precision=True`` keeps a float32 copy of each float16 weight,
runs the whole update on it in float32 (the gradient cast up first), and
writes the copy back rounded to float16. :func:`multi_precision` does the
same for float16 and bfloat16 leaves of any mxopt or optax transformation.
"""

from __future__ import annotations

from typing import NamedTuple

import chex
import jax
import jax.numpy as jnp
import optax

LOW_PRECISION = (jnp.float16, jnp.bfloat16)


def _needs_master(leaf: jax.Array) -> bool:
    return jnp.result_type(leaf) in LOW_PRECISION


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
    """

    def working_copy(params, master):
        return jax.tree_util.tree_map(lambda p, m: p if m is None else m, params, master,
                                      is_leaf=lambda x: x is None)

    def init_fn(params):
        master = jax.tree_util.tree_map(
            lambda p: p.astype(jnp.float32) if _needs_master(p) else None, params)
        return MultiPrecisionState(master, inner.init(working_copy(params, master)))

    def update_fn(updates, state, params=None):
        if params is None:
            raise ValueError("multi_precision needs params: call update(grads, state, params)")
        work = working_copy(params, state.master)
        grads = jax.tree_util.tree_map(lambda g, w: g.astype(w.dtype), updates, work)
        steps, inner_state = inner.update(grads, state.inner, work)
        new_work = optax.apply_updates(work, steps)

        def master_of(p, w):
            return w if _needs_master(p) else None

        def update_of(p, w, s):
            if not _needs_master(p):
                return s
            return w.astype(p.dtype).astype(jnp.float32) - p.astype(jnp.float32)

        master = jax.tree_util.tree_map(master_of, params, new_work)
        updates = jax.tree_util.tree_map(update_of, params, new_work, steps)
        return updates, MultiPrecisionState(master, inner_state)

    return optax.GradientTransformation(init_fn, update_fn)
