"""Small numerical helpers the transforms share: leafwise maps, dtype casts,
and ``1 - beta`` / ``1 - beta**t`` at the precision MXNet computes them.

Hyperparameters are float32 scalars (:mod:`mxopt.hyperparams`). Where MXNet
takes ``1 - beta`` or ``1 - beta**t`` in double precision on the host, the
state also holds ``beta``'s float32 rounding error (``beta_residual``), and
these functions use it; where MXNet's kernels round ``beta**t`` to float32,
:func:`one_minus_float32_power` does the same.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def tree_map(fn, *trees):
    """``jax.tree_util.tree_map``: ``fn`` applied leafwise over trees of one structure."""
    return jax.tree_util.tree_map(fn, *trees)


def unzip(like: object, tree_of_tuples: object, n: int) -> tuple:
    """The ``n`` trees shaped like ``like`` in a tree of ``n``-tuples (a ``tree_map`` whose
    function returns ``n`` values), for an empty ``like`` too."""
    treedef = jax.tree_util.tree_structure(like)
    leaves = treedef.flatten_up_to(tree_of_tuples)
    return tuple(treedef.unflatten([leaf[i] for leaf in leaves]) for i in range(n))


def like(scale: jax.Array, leaf: jax.Array) -> jax.Array:
    """``scale`` (a float32 hyperparameter) cast to ``leaf``'s dtype, as MXNet's kernels use it."""
    return scale.astype(leaf.dtype)


def opaque_copy(tree: object) -> object:
    """``tree`` times a 1 XLA cannot fold away: the same values, new arrays.

    XLA's CPU backend loops slowly (3-4x) over a fusion of arrays alone, such
    as the ``w + mom`` of ``optax.apply_updates`` when the updates are a
    state buffer, on shapes with small minor dimensions like ``(…, 3, 3)``
    kernels; a scalar broadcast in the fusion gives it the fast loop. The
    multiply is exact (``x * 1 == x`` for every float, NaN and -0 included)
    and costs nothing in a memory-bound loop. One barrier serves the whole
    tree, so the step compiles no op per leaf for it.
    """
    one = jax.lax.optimization_barrier(jnp.ones((), jnp.float32))
    return tree_map(lambda leaf: leaf * like(one, leaf), tree)


def complement(beta: jax.Array, beta_residual: jax.Array) -> jax.Array:
    """``1 - beta`` for the double-precision beta ``beta + beta_residual``.

    ``1 - float32(beta)`` can be off by 1e-4 relative (beta = 0.9999).
    """
    return (1 - beta) - beta_residual


def one_minus_power(beta: jax.Array, beta_residual: jax.Array, t: jax.Array) -> jax.Array:
    """``1 - beta**t`` for the double-precision beta ``beta + beta_residual``.

    Computed as ``-expm1(t * log1p(-(1 - beta)))`` with the complement taken
    in double-float, so the result keeps float32 precision even where
    ``1 - beta`` is small and float32 cannot hold ``beta`` exactly.
    """
    return -jnp.expm1(t * jnp.log1p(-complement(beta, beta_residual)))


def one_minus_float32_power(beta: jax.Array, t: jax.Array) -> jax.Array:
    """``1 - beta**t`` as MXNet's kernels compute it: ``beta**t`` rounded to float32, then ``1 -``.

    The kernels (LAMB, FTML) raise the float32 beta to the power ``t`` and
    round before subtracting from one, unlike Adam, whose Python side takes
    ``1 - beta**t`` in double. The float32 result is cast to each leaf's
    dtype by the caller, so in float16 it keeps digits that
    ``1 - float16(beta**t)`` would lose.
    """
    return 1 - jnp.power(beta, t)
