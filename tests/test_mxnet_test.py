"""MXNet's ``test`` optimizer: ``w += rescale_grad * grad``, the state a copy of the new weight."""

import chex
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given, settings
from steps import random_problem
from strategies import floats

import mxopt
from mxopt import mxnet_test

F32 = np.float32
SHAPES = {"fc_weight": (3, 4), "fc_bias": (4,)}


@settings(max_examples=20, deadline=None)
@given(floats(0.05, 2.0), st.integers(0, 2**31 - 1))
def test_adds_the_rescaled_gradient_and_ignores_the_rest(rescale_grad, seed):
    params, grads = random_problem(SHAPES, seed, 4)
    # MXNet's Test takes and ignores the learning rate, clipping and weight decay.
    tx = mxopt.create("test", rescale_grad=rescale_grad, learning_rate=0.5, wd=0.1,
                      clip_gradient=0.01, lr_mult={"fc_bias": 3.0})
    p = jax.tree.map(jnp.asarray, params)
    state = tx.init(p)
    chex.assert_trees_all_equal(optax.tree.get(state, "weight"), jax.tree.map(jnp.zeros_like, p))

    @jax.jit
    def step(p, state, g):
        updates, state = tx.update(g, state, p)
        return optax.apply_updates(p, updates), state

    want = params
    for g in grads:
        want = {n: want[n] + F32(rescale_grad) * g[n] for n in SHAPES}
        p, state = step(p, state, jax.tree.map(jnp.asarray, g))
        # XLA may fuse w + r * g into one rounding (an FMA) where NumPy rounds twice.
        chex.assert_trees_all_close(p, want, rtol=1e-6, atol=1e-6)
        chex.assert_trees_all_equal(optax.tree.get(state, "weight"), p)


class LayoutTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_state_is_the_new_weight_in_its_dtype(self):
        params = {"w": jnp.ones((3, 2), jnp.float16), "b": jnp.zeros(4, jnp.float32)}
        grads = jax.tree.map(lambda p: jnp.full(p.shape, 0.25, p.dtype), params)
        tx = mxopt.create("test", rescale_grad=2.0)
        updates, state = self.variant(tx.update)(grads, tx.init(params), params)
        chex.assert_trees_all_equal_shapes_and_dtypes(updates, params)
        new = optax.apply_updates(params, updates)
        chex.assert_trees_all_equal(optax.tree.get(state, "weight"), new)
        np.testing.assert_array_equal(new["w"], np.full((3, 2), 1.5, np.float16))

    @chex.variants(with_jit=True, without_jit=True)
    def test_multi_precision_copies_the_float32_master(self):
        params = {"w": jnp.full(4, 1.0, jnp.float16)}
        tx = mxopt.create("test", multi_precision=True)
        update = self.variant(tx.update)
        state = tx.init(params)
        for _ in range(3):  # 1e-4 is below float16's resolution at 1; the master keeps it.
            updates, state = update({"w": jnp.full(4, 1e-4, jnp.float16)}, state, params)
            params = optax.apply_updates(params, updates)
        master = state.master["w"]
        chex.assert_trees_all_equal(optax.tree.get(state, "weight")["w"], master)
        assert master.dtype == jnp.float32 and float(master[0]) > 1.0
        np.testing.assert_array_equal(params["w"], master.astype(jnp.float16))


def test_registered_as_test():
    assert mxopt.registered_names().count("test") == 1
    assert "learning_rate" not in mxopt.get_hyperparams(
        mxopt.create("TEST").init({"w": jnp.ones(2)}))
    assert mxnet_test.__name__ == "mxnet_test"


def test_update_without_params_is_refused():
    tx = mxopt.create("test")
    with pytest.raises(ValueError, match="params"):
        tx.update({"w": jnp.ones(2)}, tx.init({"w": jnp.ones(2)}))


def test_invalid_arguments_are_named():
    with pytest.raises(ValueError, match="rescale_grad"):
        mxopt.create("test", rescale_grad=0.0)
    with pytest.raises(TypeError, match="momentum"):
        mxopt.create("test", momentum=0.9)
