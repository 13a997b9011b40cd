"""Small numerical helpers the transforms share: dtype casts, unzipping leafwise results,
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


def unzip(like: object, tree_of_tuples: object, n: int) -> tuple:
    """The ``n`` trees shaped like ``like`` in a tree of ``n``-tuples (a ``tree_map`` whose
    function returns ``n`` values), for an empty ``like`` too."""
    treedef = jax.tree_util.tree_structure(like)
    leaves = treedef.flatten_up_to(tree_of_tuples)
    return tuple(treedef.unflatten([leaf[i] for leaf in leaves]) for i in range(n))


def cast(value: jax.Array, leaf: jax.Array) -> jax.Array:
    """``value`` (a float32 hyperparameter) cast to ``leaf``'s dtype, as MXNet's kernels use it."""
    return value.astype(leaf.dtype)


def _loops_slowly_alone(leaf: jax.Array) -> bool:
    """Whether XLA's CPU loop over ``leaf + other`` alone is slower than with a scalar in it:
    a minor dimension that is not a multiple of 8 (``(…, 3, 3)`` and ``(…, 1, 1)``
    kernels), or 2**16 values and more. Over smaller leaves the add alone is as fast."""
    return leaf.ndim > 0 and (leaf.shape[-1] % 8 != 0 or leaf.size >= 2**16)


def opaque_copy(tree: object) -> object:
    """``tree`` with the leaves :func:`_loops_slowly_alone` times a 1 XLA cannot fold away.

    XLA's CPU backend loops slowly over a fusion of arrays alone, such as the
    ``w + mom`` of ``optax.apply_updates`` when the updates are a state
    buffer: 4-5x slower over a ``(512, 512, 3, 3)`` kernel, 2x over
    ``(4096, 7)``, a few percent over ``(256, 1024)``. A scalar
    broadcast in the fusion gives it the fast loop. The multiply is exact
    (``x * 1 == x`` for every float, NaN and -0 included, but for subnormals,
    which XLA's CPU arithmetic flushes to zero in the ``w + mom`` too) and
    costs nothing in a memory-bound loop. Other leaves are left as they are,
    and a tree without such leaves needs no barrier: each costs compile time.
    """
    if not any(map(_loops_slowly_alone, jax.tree_util.tree_leaves(tree))):
        return tree
    one = jax.lax.optimization_barrier(jnp.ones((), jnp.float32))
    return jax.tree.map(lambda leaf: leaf * cast(one, leaf) if _loops_slowly_alone(leaf) else leaf,
                        tree)


def rounded(product: jax.Array, finite: jax.Array) -> jax.Array:
    """``product``, rounded to its dtype before the sum it goes into, as MXNet's kernels round.

    XLA's CPU and GPU backends contract a product and the sum it goes into into
    one fused multiply-add, which rounds once. Where the sum cancels, the two
    roundings differ: BERTAdam's ``beta2 * (v - g^2) + g^2`` at ``beta2 = 0.999``
    by up to 6e-5 relative. ``product * one``, with a 1 the compiler cannot see
    through (``1 + 0 * finite``, of a finite scalar known only at run time),
    leaves the compiler a product of the rounded product to contract, and
    ``fma(p, 1, c)`` is ``round(p + c)``. Where no compiler contracts (outside
    ``jit``) the multiply is exact.
    """
    one = 1 + 0 * finite
    return product * cast(one, product)


def root(x: jax.Array, finite: jax.Array) -> jax.Array:
    """``sqrt(x)``, to be divided by as MXNet's kernels divide by it.

    XLA rewrites ``a / sqrt(x)`` into ``a * rsqrt(x)``, which rounds
    differently (in about 4 of 10 quotients, by an ulp); where a centered
    RMSProp's ``n - m^2`` cancels, such ulps grow to 1e-4 relative within
    ten steps. The root :func:`rounded` is no ``sqrt`` to the rewrite, so
    the quotient is the division as written.
    """
    return rounded(jnp.sqrt(x), finite)


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
