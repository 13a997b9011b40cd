"""lamb: randomized agreement with a NumPy reference written from MXNet 1.9.1's
lamb_update_phase1 / lamb_update_phase2 kernels, the trust ratio's special
cases, any leaf shape under jit, multi-precision, state shapes and dtypes,
errors, and hyperparameter changes without recompiling."""

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
from mxopt.numerics import one_minus_float32_power
from mxopt.optimizers.lamb import lamb

F32 = np.float32
SHAPES = {"fc_weight": (3, 4), "fc_bias": (4,), "bn_gamma": (2, 2, 2)}


def reference(kw, params, grads_seq, rates, lr_mult, wd_mult):
    """Weights after each step, float32, in the order of MXNet's kernels.

    ``rates[i]`` is the learning rate of step ``i``.
    """
    beta1, beta2 = kw.get("beta1", 0.9), kw.get("beta2", 0.999)
    eps, bias_correction = F32(kw.get("epsilon", 1e-6)), kw.get("bias_correction", True)
    lower, upper = kw.get("lower_bound"), kw.get("upper_bound")
    rescale, clip, wd = F32(kw.get("rescale_grad", 1.0)), kw.get("clip_gradient"), kw.get("wd", 0)
    w = {k: np.array(v, F32) for k, v in params.items()}
    m = {k: np.zeros_like(v) for k, v in w.items()}
    v = {k: np.zeros_like(x) for k, x in w.items()}
    t, out = kw.get("begin_num_update", 0), []
    for grads, rate in zip(grads_seq, rates):
        t += 1
        # lamb_update_phase1: the float32 beta raised in double, rounded to float32.
        beta1_t, beta2_t = F32(float(F32(beta1)) ** t), F32(float(F32(beta2)) ** t)
        for k in w:
            g = rescale * np.asarray(grads[k], F32)
            if clip is not None:
                g = np.clip(g, -F32(clip), F32(clip))
            m[k] = F32(beta1) * m[k] + (F32(1) - F32(beta1)) * g
            v[k] = F32(beta2) * v[k] + (F32(1) - F32(beta2)) * g * g
            mean, var = m[k], v[k]
            if bias_correction:
                mean, var = mean / (F32(1) - beta1_t), var / (F32(1) - beta2_t)
            u = mean / (np.sqrt(var) + eps) + F32(wd * wd_mult[k]) * w[k]
            # lamb_update_phase2
            r1, r2 = F32(np.linalg.norm(w[k].ravel())), F32(np.linalg.norm(u.ravel()))
            if lower is not None:
                r1 = max(r1, F32(lower))
            if upper is not None:
                r1 = min(r1, F32(upper))
            lr = F32(rate * lr_mult[k])
            if r1 != 0 and r2 != 0:
                lr = lr * r1 / r2
            w[k] = w[k] - lr * u
        out.append({k: x.copy() for k, x in w.items()})
    return out


@st.composite
def configs(draw):
    kw = {"beta1": draw(st.sampled_from([0.9]) | floats(0, 0.99)),
          "beta2": draw(st.sampled_from([0.999, 0.9999]) | floats(0.5, 0.9999)),
          "epsilon": draw(st.sampled_from([1e-6]) | floats(1e-8, 1e-3)),
          "bias_correction": draw(st.booleans()),
          "lower_bound": draw(st.none() | floats(1e-3, 2.0)),
          "upper_bound": draw(st.none() | floats(0.5, 10.0))}
    kw, lr_mult, wd_mult = base_arguments(draw, kw, SHAPES, begin_num_update=500)
    rates = draw(st.lists(floats(1e-3, 0.1), min_size=6, max_size=6))
    return kw, rates, lr_mult, wd_mult


@settings(max_examples=25, deadline=None)
@given(configs(), st.integers(0, 2**31 - 1))
def test_matches_numpy_reference(config, seed):
    kw, rates, lr_mult, wd_mult = config
    params, grads = random_problem(SHAPES, seed, len(rates))
    expected = reference(kw, params, grads, rates, lr_mult, wd_mult)

    tx = lamb(lr_mult=lr_mult, wd_mult=wd_mult, **kw)
    assert_close_to(trajectory(tx, params, grads, rates), expected)


@pytest.mark.parametrize("beta", [0.9, 0.999, 0.9999, 0.5, 0.123])
@pytest.mark.parametrize("t", [1, 2, 3, 7, 100, 391, 5000])
def test_bias_correction_rounds_power_to_float32(beta, t):
    # As lamb_update_phase1 and ftml_update compute it: 1 - float32(float32(beta)**t).
    got = jax.jit(one_minus_float32_power)(jnp.float32(beta), jnp.float32(t))
    assert got == F32(1) - F32(float(F32(beta)) ** t)


def _first_update(tx, params, grads):
    updates, _ = tx.update(grads, tx.init(params), params)
    return updates


def test_zero_weight_norm_steps_with_plain_learning_rate():
    # r1 = 0: no trust ratio, so the first bias-corrected step is lr * g / (|g| + eps).
    params, grads = {"w": jnp.zeros(3)}, {"w": jnp.array([2.0, -0.5, 0.0])}
    updates = _first_update(lamb(learning_rate=0.1, epsilon=1e-12), params, grads)
    np.testing.assert_allclose(updates["w"], [-0.1, 0.1, 0.0], rtol=1e-6)


def test_lower_bound_replaces_zero_weight_norm():
    # r1 = lower_bound, r2 = |u| = sqrt(2): the step is lr * lower_bound / sqrt(2) * sign(g).
    params, grads = {"w": jnp.zeros(2)}, {"w": jnp.array([3.0, -1.0])}
    updates = _first_update(lamb(learning_rate=0.1, epsilon=1e-12, lower_bound=0.5),
                            params, grads)
    np.testing.assert_allclose(updates["w"], 0.05 / np.sqrt(2) * np.array([-1.0, 1.0]),
                               rtol=1e-6)


def test_zero_update_norm_leaves_weights():
    # r2 = 0 (zero gradient, no weight decay): ratio 1 times a zero update.
    params = {"w": jnp.array([1.0, -2.0])}
    updates = _first_update(lamb(learning_rate=0.1), params, {"w": jnp.zeros(2)})
    np.testing.assert_array_equal(updates["w"], [0.0, 0.0])


def test_trust_ratio_sets_step_norm_per_leaf():
    # Each leaf's step has norm lr * clip(|w|, lower, upper), whatever the gradient's scale.
    params = {"a": jnp.full((4, 5), 0.5), "b": jnp.full((3,), 4.0), "c": jnp.array(2.0)}
    grads = {"a": jnp.arange(20.0).reshape(4, 5) - 7.0, "b": jnp.array([1e-3, -2e-3, 5e-3]),
             "c": jnp.array(30.0)}
    tx = lamb(learning_rate=0.1, upper_bound=3.0)
    updates, _ = jax.jit(tx.update)(grads, tx.init(params), params)
    norms = {k: float(jnp.linalg.norm(u)) for k, u in updates.items()}
    assert norms == pytest.approx({"a": 0.1 * np.sqrt(20 * 0.25), "b": 0.3, "c": 0.2}, rel=1e-5)


@pytest.mark.parametrize("dtype", [jnp.float16, jnp.bfloat16])
def test_multi_precision_runs_float32_lamb_on_master(dtype):
    """The whole update, norms and weight decay included, uses the float32 master copy."""
    assert_master_follows_float32(
        lambda **mp: lamb(learning_rate=0.05, wd=0.01, lower_bound=0.1, **mp),
        jnp.linspace(-1, 1, 12).reshape(3, 4).astype(dtype))


class StateTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_state_and_updates_keep_shapes_and_dtypes(self):
        params = {"w": jnp.ones((3, 2), jnp.float32), "h": jnp.ones(5, jnp.float16),
                  "s": jnp.ones((), jnp.bfloat16), "k": jnp.ones((2, 1, 3, 2), jnp.float32)}
        for bounds in ({}, {"lower_bound": 0.1, "upper_bound": 2.0}):
            tx = lamb(learning_rate=0.1, **bounds)
            state = tx.init(params)
            updates, state = self.variant(tx.update)(jax.tree.map(jnp.ones_like, params),
                                                     state, params)
            chex.assert_trees_all_equal_shapes_and_dtypes(updates, params)
            moments = state[3]
            chex.assert_trees_all_equal_shapes_and_dtypes(moments.mean, params)
            chex.assert_trees_all_equal_shapes_and_dtypes(moments.var, params)
            count = mxopt.update_count(state)
            assert count.dtype == jnp.int32 and int(count) == 1
            assert all(np.isfinite(np.asarray(u, np.float32)).all() for u in updates.values())


def test_changing_hyperparameters_does_not_recompile():
    tx = lamb(learning_rate=0.01, lower_bound=0.1, upper_bound=5.0, wd=0.1)
    params = {"w": jnp.linspace(0.1, 1, 6)}
    step, traces = counting_step(tx)

    state = tx.init(params)
    for i in range(5):
        state = mxopt.set_hyperparams(state, learning_rate=0.01 * (i + 1), beta1=0.5,
                                      beta2=0.99, epsilon=1e-5, lower_bound=0.2 + i,
                                      upper_bound=10.0, wd=0.01 * i)
        params, state = step(params, state, {"w": jnp.full(6, 0.5)})
    assert len(traces) == 1
    held = mxopt.get_hyperparams(state)
    assert float(held["lower_bound"]) == pytest.approx(4.2)
    assert float(held["learning_rate"]) == pytest.approx(0.05)


def test_bounds_not_given_are_not_hyperparameters():
    state = lamb().init({"w": jnp.ones(2)})
    with pytest.raises(ValueError, match="no hyperparameter.*lower_bound"):
        mxopt.set_hyperparams(state, lower_bound=0.5)


def test_default_learning_rate():
    held = mxopt.get_hyperparams(mxopt.create("lamb").init({"w": jnp.ones(2)}))
    assert float(held["learning_rate"]) == pytest.approx(0.001)
    assert float(held["epsilon"]) == pytest.approx(1e-6)


@pytest.mark.parametrize("kw,arg", [
    ({"beta1": 1.0}, "beta1"),
    ({"beta2": -0.1}, "beta2"),
    ({"epsilon": 0.0}, "epsilon"),
    ({"lower_bound": -1.0}, "lower_bound"),
    ({"upper_bound": 0.0}, "upper_bound"),
    ({"upper_bound": float("inf")}, "upper_bound"),
    ({"bias_correction": 1}, "bias_correction"),
    ({"begin_num_update": -3}, "begin_num_update"),
    ({"clip_gradient": -1.0}, "clip_gradient"),
])
def test_invalid_arguments_are_named(kw, arg):
    with pytest.raises(ValueError, match=arg):
        lamb(**kw)


def test_unknown_keyword_is_named():
    with pytest.raises(TypeError, match="lowerbound"):
        lamb(lowerbound=0.1)
