"""mxopt.numerics: the copy that keeps XLA's CPU loops fast changes no value; a product is
rounded before its sum, as MXNet's kernels round it, inside jit too."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mxopt import numerics

SPECIAL = np.array([0.0, -0.0, 1.5, -2.0, np.inf, -np.inf, np.nan, 1e-3, 6e4], np.float32)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float16, jnp.bfloat16])
@pytest.mark.parametrize("jit", [False, True])
def test_the_opaque_copy_keeps_every_bit(dtype, jit):
    tree = {"kernel": jnp.resize(SPECIAL, (4, 3, 3)).astype(dtype),  # minor 3: multiplied
            "dense": jnp.resize(SPECIAL, (2, 8)).astype(dtype),      # minor 8: left as is
            "scalar": jnp.asarray(-0.0, dtype)}
    copy = (jax.jit(numerics.opaque_copy) if jit else numerics.opaque_copy)(tree)
    assert jax.tree.structure(copy) == jax.tree.structure(tree)
    for name in tree:
        assert copy[name].dtype == tree[name].dtype and copy[name].shape == tree[name].shape
        np.testing.assert_array_equal(np.atleast_1d(copy[name]).view(np.uint8),
                                      np.atleast_1d(tree[name]).view(np.uint8))


def test_the_opaque_copy_multiplies_only_where_xla_loops_slowly_alone():
    def ops(tree):
        return [eqn.primitive.name for eqn in jax.make_jaxpr(numerics.opaque_copy)(tree).eqns]

    assert ops({"w": jnp.ones((4, 32)), "b": jnp.ones(16)}) == []  # small: no barrier either
    assert ops({"w": jnp.ones((4, 32)), "k": jnp.ones((2, 2, 3, 3)), "b": jnp.ones((2, 1))}) \
        == ["optimization_barrier", "mul", "mul"]
    assert ops({"big": jnp.ones((256, 256)), "b": jnp.ones(16)}) == ["optimization_barrier", "mul"]


def test_weights_stepped_by_an_opaque_copy_are_those_stepped_by_the_buffer():
    # XLA's CPU arithmetic flushes subnormals to zero, in ``w + m`` as in ``m * 1``
    w = jnp.resize(SPECIAL, (5, 3, 3))
    m = jnp.resize(np.array([1e-45, -1e-40, 2.0**-126, np.nan, -0.0], np.float32), (5, 3, 3))
    plain = jax.jit(lambda w, m: w + m)(w, m)
    copied = jax.jit(lambda w, m: w + numerics.opaque_copy(m))(w, m)
    np.testing.assert_array_equal(np.asarray(copied).view(np.uint32),
                                  np.asarray(plain).view(np.uint32))


@pytest.mark.parametrize("beta", [0.9, 0.999, 0.9999, 0.5])
def test_rounded_products_are_summed_as_numpy_sums_them(beta):
    """``beta * (v - g^2) + g^2`` cancels near beta = 1: a fused multiply-add would be
    1e-5 off NumPy's (and MXNet's) rounding of each operation."""
    rng = np.random.default_rng(int(beta * 1e4))
    g = rng.standard_normal(20000).astype(np.float32)
    v = np.square(rng.standard_normal(20000)).astype(np.float32)
    beta = np.float32(beta)

    def moment(v, g, beta):
        g2 = numerics.rounded(g * g, beta)
        return numerics.rounded(beta * (v - g2), beta) + g2

    want = beta * (v - g * g) + g * g
    for run in (moment, jax.jit(moment)):
        np.testing.assert_array_equal(np.asarray(run(v, g, beta)), want)


@pytest.mark.parametrize("jit", [False, True])
def test_a_quotient_by_the_root_is_numpys_division(jit):
    """XLA rewrites ``a / sqrt(x)`` into ``a * rsqrt(x)``: about 4 in 10 quotients an ulp
    off NumPy's (and MXNet's) division; by :func:`numerics.root` none."""
    rng = np.random.default_rng(7)
    a = rng.standard_normal(20000).astype(np.float32)
    x = rng.uniform(1e-6, 4.0, 20000).astype(np.float32)
    eps = np.float32(1e-8)

    def quotient(a, x, eps):
        return a / numerics.root(x + eps, eps)

    run = jax.jit(quotient) if jit else quotient
    np.testing.assert_array_equal(np.asarray(run(a, x, eps)), a / np.sqrt(x + eps))
    if jit:  # what the rewrite does to a plain square root
        rewritten = jax.jit(lambda a, x, eps: a / jnp.sqrt(x + eps))(a, x, eps)
        assert (np.asarray(rewritten) != a / np.sqrt(x + eps)).mean() > 0.1
