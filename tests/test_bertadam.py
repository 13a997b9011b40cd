"""bertadam: randomized agreement with a NumPy reference written from GluonNLP 0.10.0's
BERTAdam and MXNet 1.9.1's multi_adamw_update kernel (jitted, where XLA would fuse the
moments' products into their sums), multi-precision, and the pieces a BERT recipe changes
between steps without recompiling. Recorded MXNet trajectories: tests/test_parity.py."""

import re

import chex
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from steps import counting_step, random_problem
from strategies import base_arguments, floats
from trajectory import assert_close_to, assert_master_follows_float32, trajectory

import mxopt
from mxopt.optimizers.bertadam import ScaleByBertAdamState

F32 = np.float32
SHAPES = {"dense0_weight": (3, 4), "dense0_bias": (4,), "ln_gamma": (2, 2, 2)}


def reference(kw, params, grads_seq, rates, lr_mult, wd_mult):
    """Weights after each step, every operation rounded to float32, as the kernel computes:
    ``m = beta1 * (m - g) + g``, ``v = beta2 * (v - g^2) + g^2``,
    ``w = w - eta * (m / (sqrt(v) + eps) + wd * w)`` with ``eta`` the learning rate."""
    beta1, beta2 = F32(kw.get("beta1", 0.9)), F32(kw.get("beta2", 0.999))
    eps, rescale = F32(kw.get("epsilon", 1e-6)), F32(kw.get("rescale_grad", 1.0))
    clip, wd = kw.get("clip_gradient"), kw.get("wd", 0.0)
    w = {k: np.array(v, F32) for k, v in params.items()}
    m = {k: np.zeros_like(v) for k, v in w.items()}
    v = {k: np.zeros_like(x) for k, x in w.items()}
    out = []
    for grads, rate in zip(grads_seq, rates):
        for k in w:
            g = rescale * np.asarray(grads[k], F32)
            if clip is not None:
                g = np.clip(g, -F32(clip), F32(clip))
            m[k] = beta1 * (m[k] - g) + g
            v[k] = beta2 * (v[k] - g * g) + g * g
            direction = m[k] / (np.sqrt(v[k]) + eps)
            w[k] = w[k] - F32(rate * lr_mult[k]) * (direction + F32(wd * wd_mult[k]) * w[k])
        out.append({k: x.copy() for k, x in w.items()})
    return out


@st.composite
def configs(draw):
    kw = {"beta1": draw(st.sampled_from([0.9]) | floats(0, 0.99)),
          "beta2": draw(st.sampled_from([0.999, 0.9999]) | floats(0.5, 0.9999)),
          "epsilon": draw(st.sampled_from([1e-6]) | floats(1e-8, 1e-3))}
    kw, lr_mult, wd_mult = base_arguments(draw, kw, SHAPES, begin_num_update=500)
    rates = draw(st.lists(floats(1e-4, 0.05), min_size=6, max_size=6))
    return kw, rates, lr_mult, wd_mult


@settings(max_examples=25, deadline=None)
@given(configs(), st.integers(0, 2**31 - 1))
def test_matches_numpy_reference(config, seed):
    kw, rates, lr_mult, wd_mult = config
    params, grads = random_problem(SHAPES, seed, len(rates))
    expected = reference(kw, params, grads, rates, lr_mult, wd_mult)
    tx = mxopt.bertadam(lr_mult=lr_mult, wd_mult=wd_mult, **kw)
    assert_close_to(trajectory(tx, params, grads, rates), expected)


@pytest.mark.parametrize("jit", [False, True])
def test_moments_round_as_the_kernel_does(jit):
    """At beta2 = 0.999 the second moment's sum cancels a thousandfold; unfused, it equals
    the kernel's float32 rounding exactly, inside jit too."""
    tx = mxopt.scale_by_bertadam(beta1=0.9, beta2=0.999, epsilon=1e-6)
    rng = np.random.default_rng(7)
    grads = [{"w": rng.standard_normal(4096).astype(F32)} for _ in range(3)]
    update = jax.jit(tx.update) if jit else tx.update
    state = tx.init({"w": jnp.zeros(4096)})
    m = v = np.zeros(4096, F32)
    for g in grads:
        _, state = update(g, state)
        g = g["w"]
        m = F32(0.9) * (m - g) + g
        v = F32(0.999) * (v - g * g) + g * g
        np.testing.assert_array_equal(np.asarray(state.mean["w"]), m)
        np.testing.assert_array_equal(np.asarray(state.var["w"]), v)


def test_weight_decay_is_decoupled_and_scaled_by_the_learning_rate():
    # One step from zero moments, g = 2, beta1 = beta2 = 0.5: m = 1, v = 2.
    tx = mxopt.bertadam(learning_rate=0.1, beta1=0.5, beta2=0.5, epsilon=1e-6, wd=0.25)
    params = {"w": jnp.array([4.0])}
    updates, _ = tx.update({"w": jnp.array([2.0])}, tx.init(params), params)
    np.testing.assert_allclose(updates["w"], [-0.1 * (1 / (np.sqrt(2) + 1e-6) + 0.25 * 4.0)],
                               rtol=1e-6)


@pytest.mark.parametrize("dtype", [jnp.float16, jnp.bfloat16])
def test_multi_precision_runs_float32_bertadam_on_master(dtype):
    assert_master_follows_float32(
        lambda **mp: mxopt.bertadam(learning_rate=0.01, wd=0.01, clip_gradient=0.5, **mp),
        jnp.linspace(-1, 1, 12).reshape(3, 4).astype(dtype))


class StateTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_state_and_updates_keep_shapes_and_dtypes(self):
        params = {"w": jnp.ones((3, 2), jnp.float32), "h": jnp.ones(5, jnp.float16),
                  "s": jnp.ones((), jnp.bfloat16)}
        tx = mxopt.bertadam(learning_rate=0.1, wd=0.01, beta2=0.99)  # 0.999 is 1 in bfloat16
        state = tx.init(params)
        updates, state = self.variant(tx.update)(jax.tree.map(jnp.ones_like, params), state,
                                                 params)
        chex.assert_trees_all_equal_shapes_and_dtypes(updates, params)
        (moments,) = [s for s in state if isinstance(s, ScaleByBertAdamState)]
        chex.assert_trees_all_equal_shapes_and_dtypes(moments.mean, params)
        chex.assert_trees_all_equal_shapes_and_dtypes(moments.var, params)


def test_changing_hyperparameters_does_not_recompile():
    tx = mxopt.bertadam(learning_rate=0.01, wd=0.01)
    params = {"w": jnp.linspace(0.1, 1, 6)}
    step, traces = counting_step(tx)
    state = tx.init(params)
    for i in range(4):
        state = mxopt.set_hyperparams(state, learning_rate=0.01 * (i + 1), beta1=0.5,
                                      beta2=0.99, epsilon=1e-5, wd=0.02 * i)
        params, state = step(params, state, {"w": jnp.full(6, 0.5)})
    assert len(traces) == 1
    held = mxopt.get_hyperparams(state)
    assert float(held["learning_rate"]) == pytest.approx(0.04)
    assert float(held["epsilon"]) == pytest.approx(1e-5)


@pytest.mark.parametrize(("argument", "value"), [("beta1", 1.0), ("beta2", -0.1),
                                                  ("epsilon", 0.0)])
def test_bad_hyperparameters_are_refused_by_name(argument, value):
    with pytest.raises(ValueError, match=argument):
        mxopt.bertadam(**{argument: value})


def test_registered_with_mxnets_object_class():
    # its defaults are checked against GluonNLP's by tests/test_registry.py
    assert isinstance(mxopt.optimizer.create("bertadam"), mxopt.optimizer.BERTAdam)


@pytest.mark.parametrize("dtype, kwargs, message", [
    (jnp.float16, {"beta2": 0.9999}, "beta2=0.9999 is 1 in float16"),
    (jnp.float16, {"epsilon": 2.6e-8}, "epsilon=2.6e-08 is 0 in float16"),
    (jnp.bfloat16, {}, "beta2=0.999 is 1 in bfloat16"),
    (jnp.float16, {"beta1": 0.99995, "epsilon": 1e-8},
     "beta1=0.99995 is 1 and epsilon=1e-08 is 0 in float16"),
])
def test_a_half_precision_leaf_that_would_never_move_is_refused_naming_it(dtype, kwargs, message):
    params = {"enc": {"w": jnp.full(3, 0.01, jnp.float32), "h": jnp.full(3, 0.01, dtype)}}
    with pytest.raises(ValueError, match=re.escape(message + ", the dtype of leaf ['enc']['h']")):
        mxopt.bertadam(**kwargs).init(params)
    with pytest.raises(ValueError, match=re.escape(message + ", the dtype of the weight")):
        mxopt.optimizer.create("bertadam", **kwargs).create_state(0, params["enc"]["h"])
    # through float32 masters the same arguments move every weight, finitely
    tx = mxopt.bertadam(multi_precision=True, learning_rate=0.1, **kwargs)
    grads = jax.tree.map(lambda p: jnp.full_like(p, 0.5), params)
    updates, _ = tx.update(grads, tx.init(params), params)
    for leaf in jax.tree.leaves(updates):
        assert np.isfinite(np.asarray(leaf, np.float32)).all() and (leaf != 0).all()
