"""ftml: randomized agreement with a NumPy reference written from MXNet 1.9.1's
ftml_update kernel, a learning rate of 0 (MXNet: NaN), multi-precision, state
shapes and dtypes, errors, and hyperparameter changes without recompiling."""

import chex
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given, settings
from steps import counting_step, random_problem
from strategies import base_arguments, floats
from trajectory import assert_close_to, assert_master_follows_float32, trajectory

import mxopt
from mxopt.optimizers.ftml import ftml

F32 = np.float32
SHAPES = {"fc_weight": (3, 4), "fc_bias": (4,), "bn_gamma": (2, 2, 2)}


def reference(kw, params, grads_seq, rates, lr_mult, wd_mult, dtype=F32):
    """Weights after each step, in the order of MXNet's kernel (float32 by default).

    ``rates[i]`` is the learning rate of step ``i``.
    """
    F = dtype
    beta1, beta2, eps = F(kw.get("beta1", 0.6)), F(kw.get("beta2", 0.999)), F(kw.get("epsilon",
                                                                                  1e-8))
    rescale, clip, wd = F(kw.get("rescale_grad", 1.0)), kw.get("clip_gradient"), kw.get("wd", 0)
    w = {k: np.array(x, F) for k, x in params.items()}
    d, v, z = ({k: np.zeros_like(x) for k, x in w.items()} for _ in range(3))
    t, out = kw.get("begin_num_update", 0), []
    for grads, rate in zip(grads_seq, rates):
        t += 1
        # power::Map(beta, t) on the weight's dtype.
        beta1_t, beta2_t = F(float(beta1) ** t), F(float(beta2) ** t)
        for k in w:
            lr = F(rate * lr_mult[k])
            g = rescale * np.asarray(grads[k], F) + F(wd * wd_mult[k]) * w[k]
            if clip is not None:
                g = np.clip(g, -F(clip), F(clip))
            v[k] = beta2 * v[k] + (F(1) - beta2) * (g * g)
            d_t = (F(1) - beta1_t) / lr * (np.sqrt(v[k] / (F(1) - beta2_t)) + eps)
            z[k] = beta1 * z[k] + (F(1) - beta1) * g - (d_t - beta1 * d[k]) * w[k]
            d[k] = d_t
            w[k] = -z[k] / d_t
        out.append({k: x.copy() for k, x in w.items()})
    return out


@st.composite
def configs(draw):
    kw = {"beta1": draw(st.sampled_from([0.6]) | floats(0, 0.99)),
          "beta2": draw(st.sampled_from([0.999, 0.9999]) | floats(0.5, 0.9999)),
          "epsilon": draw(st.sampled_from([1e-8]) | floats(1e-8, 1e-3))}
    kw, lr_mult, wd_mult = base_arguments(draw, kw, SHAPES, begin_num_update=500)
    rates = draw(st.lists(floats(1e-3, 0.1), min_size=6, max_size=6))
    return kw, rates, lr_mult, wd_mult




@settings(max_examples=25, deadline=None)
@given(configs(), st.integers(0, 2**31 - 1))
def test_matches_numpy_reference(config, seed):
    kw, rates, lr_mult, wd_mult = config
    params, grads = random_problem(SHAPES, seed, len(rates))
    expected = reference(kw, params, grads, rates, lr_mult, wd_mult)
    got = trajectory(ftml(lr_mult=lr_mult, wd_mult=wd_mult, **kw), params, grads, rates)
    assert_close_to(got, expected)


def test_zero_learning_rate_is_the_limit_of_small_ones():
    # MXNet divides by lr = 0 and gets NaN; mxopt takes no step, which is
    # where lr -> 0 leads (here a float64 reference at lr = 1e-9), and the
    # steps after it go on from there.
    params, grads = random_problem(SHAPES, 0, 4)
    kw, ones = {"beta1": 0.6, "beta2": 0.99, "wd": 0.01}, dict.fromkeys(SHAPES, 1.0)
    got = trajectory(ftml(**kw), params, grads, [0.05, 0.0, 0.05, 0.02])
    limit = reference(kw, params, grads, [0.05, 1e-9, 0.05, 0.02], ones, ones, dtype=np.float64)
    np.testing.assert_array_equal(got[1]["fc_weight"], got[0]["fc_weight"])
    for p, want in zip(got, limit):
        for n in SHAPES:
            np.testing.assert_allclose(p[n], want[n], rtol=1e-5, atol=1e-6, err_msg=n)


def test_zero_lr_mult_freezes_a_leaf():
    params = {"frozen": jnp.linspace(-1, 1, 4), "free": jnp.linspace(-1, 1, 4)}
    tx = ftml(learning_rate=0.1, lr_mult={"frozen": 0.0})
    state = tx.init(params)
    for i in range(3):
        grads = jax.tree.map(lambda x, i=i: jnp.cos(x + i), params)
        updates, state = tx.update(grads, state, params)
        params = optax.apply_updates(params, updates)
    np.testing.assert_array_equal(params["frozen"], jnp.linspace(-1, 1, 4))
    assert not np.allclose(params["free"], jnp.linspace(-1, 1, 4))
    assert all(np.isfinite(np.asarray(x)).all() for x in jax.tree.leaves(state))


def test_multi_precision_master_follows_float32_run():
    assert_master_follows_float32(
        lambda **mp: ftml(learning_rate=0.05, wd=0.01, beta1=0.5, **mp),
        jnp.linspace(-1, 1, 12).astype(jnp.float16))


class StateTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_state_and_updates_keep_shapes_and_dtypes(self):
        params = {"w": jnp.ones((3, 2), jnp.float32), "h": jnp.ones(5, jnp.float16),
                  "s": jnp.ones((), jnp.bfloat16)}
        tx = ftml(learning_rate=0.1, beta2=0.99, epsilon=1e-4)
        state = tx.init(params)
        updates, state = self.variant(tx.update)(jax.tree.map(jnp.ones_like, params),
                                                 state, params)
        chex.assert_trees_all_equal_shapes_and_dtypes(updates, params)
        inner = state[4]
        for tree in (inner.d, inner.v, inner.z):
            chex.assert_trees_all_equal_shapes_and_dtypes(tree, params)
        count = mxopt.update_count(state)
        assert count.dtype == jnp.int32 and int(count) == 1
        assert all(np.isfinite(np.asarray(u, np.float32)).all() for u in updates.values())


def test_changing_hyperparameters_does_not_recompile():
    tx = ftml(learning_rate=0.01, wd=0.1)
    params = {"w": jnp.linspace(0.1, 1, 6)}
    step, traces = counting_step(tx)

    state = tx.init(params)
    for i in range(5):
        state = mxopt.set_hyperparams(state, learning_rate=0.01 * (i + 1), beta1=0.5,
                                      beta2=0.99, epsilon=1e-5, wd=0.01 * i)
        params, state = step(params, state, {"w": jnp.full(6, 0.5)})
    assert len(traces) == 1
    assert float(mxopt.get_hyperparams(state)["beta1"]) == pytest.approx(0.5)


@pytest.mark.parametrize("kw,arg", [
    ({"beta1": 1.0}, "beta1"),
    ({"beta2": -0.1}, "beta2"),
    ({"epsilon": 0.0}, "epsilon"),
    ({"learning_rate": -0.1}, "learning_rate"),
    ({"clip_gradient": 0.0}, "clip_gradient"),
    ({"begin_num_update": 1.5}, "begin_num_update"),
])
def test_invalid_arguments_are_named(kw, arg):
    with pytest.raises(ValueError, match=arg):
        ftml(**kw)


def test_unknown_keyword_is_named():
    with pytest.raises(TypeError, match="beta3"):
        ftml(beta3=0.1)
