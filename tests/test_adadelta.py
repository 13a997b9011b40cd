"""adadelta: randomized agreement with a NumPy reference written from MXNet 1.9.1's
AdaDelta.update, state shapes and dtypes, the unused learning rate, errors, and
hyperparameter changes without recompiling."""

import chex
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from steps import counting_step
from strategies import base_arguments, floats
from trajectory import (
    assert_matches_reference,
    train_on_large_float16_gradients,
)

import mxopt
from mxopt.optimizers.adadelta import adadelta

F32 = np.float32
SHAPES = {"fc_weight": (3, 4), "fc_bias": (4,), "bn_gamma": (2, 2, 2)}


def reference(kw, params, grads_seq, wd_mult):
    """Weights after each step, float32, in the order of MXNet's NDArray operations.

    ``1 - rho`` is computed in double and rounded once, as MXNet's Python does.
    """
    rho = kw.get("rho", 0.9)
    eps = F32(kw.get("epsilon", 1e-5))
    rescale, clip, wd = F32(kw.get("rescale_grad", 1.0)), kw.get("clip_gradient"), kw.get("wd", 0)
    w = {k: np.array(v, F32) for k, v in params.items()}
    acc_g = {k: np.zeros_like(v) for k, v in w.items()}
    acc_delta = {k: np.zeros_like(v) for k, v in w.items()}
    out = []
    for grads in grads_seq:
        for k in w:
            g = np.asarray(grads[k], F32) * rescale
            if clip is not None:
                g = np.clip(g, -F32(clip), F32(clip))
            acc_g[k] = acc_g[k] * F32(rho) + F32(1 - rho) * g * g
            delta = np.sqrt(acc_delta[k] + eps) / np.sqrt(acc_g[k] + eps) * g
            acc_delta[k] = acc_delta[k] * F32(rho) + F32(1 - rho) * delta * delta
            w[k] = w[k] - (delta + F32(wd * wd_mult[k]) * w[k])
        out.append({k: v.copy() for k, v in w.items()})
    return out


@st.composite
def configs(draw):
    kw = {"rho": draw(st.sampled_from([0.9, 0.99, 0.9999]) | floats(0, 0.999)),
          "epsilon": draw(st.sampled_from([1e-5]) | floats(1e-8, 1e-2))}
    if draw(st.booleans()):
        kw["learning_rate"] = draw(floats(1e-3, 2.0))
    return base_arguments(draw, kw, SHAPES)


@settings(max_examples=25, deadline=None)
@given(configs(), st.integers(0, 2**31 - 1))
def test_matches_numpy_reference(config, seed):
    assert_matches_reference("adadelta", lambda kw, params, grads, lr_mult, wd_mult: reference(
        kw, params, grads, wd_mult), config, seed, SHAPES, jit=False)


def _adadelta_state(state):
    return state[3]


class StateTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_state_and_updates_keep_shapes_and_dtypes(self):
        params = {"w": jnp.ones((3, 2), jnp.float32), "h": jnp.ones(5, jnp.float16)}
        tx = adadelta(rho=0.5, epsilon=1e-2)
        state = tx.init(params)
        updates, state = self.variant(tx.update)(jax.tree.map(jnp.ones_like, params), state,
                                                 params)
        chex.assert_trees_all_equal_shapes_and_dtypes(updates, params)
        s = _adadelta_state(state)
        chex.assert_trees_all_equal_shapes_and_dtypes(s.acc_g, params)
        chex.assert_trees_all_equal_shapes_and_dtypes(s.acc_delta, params)
        # acc_g = 0.5, delta = sqrt(0.01) / sqrt(0.51) * 1, acc_delta = 0.5 * delta^2.
        delta = np.sqrt(0.01 / 0.51)
        np.testing.assert_allclose(updates["w"], -delta, rtol=1e-6)
        np.testing.assert_allclose(s.acc_delta["w"], 0.5 * delta**2, rtol=1e-6)


def test_learning_rate_has_no_effect():
    params = {"w": jnp.linspace(-1, 1, 6)}
    grads = {"w": jnp.cos(jnp.arange(6.0))}
    plain, scaled = adadelta(wd=0.01), adadelta(wd=0.01, learning_rate=5.0, lr_mult=0.1,
                                                 lr_scheduler=mxopt.FactorScheduler(step=1))
    u1, _ = plain.update(grads, plain.init(params), params)
    u2, s2 = scaled.update(grads, scaled.init(params), params)
    np.testing.assert_array_equal(u1["w"], u2["w"])
    assert "learning_rate" not in mxopt.get_hyperparams(s2)


def test_weight_decay_is_applied_to_the_weight_unscaled():
    # g = 0: delta = 0, and the step is wd * w alone.
    tx = adadelta(wd=0.1)
    params = {"w": jnp.full(2, 2.0)}
    updates, _ = tx.update({"w": jnp.zeros(2)}, tx.init(params), params)
    np.testing.assert_allclose(updates["w"], -0.2, rtol=1e-6)


def test_pure_float16_trains_finitely():
    # MXNet 1.9.1 raises here (its states are float32 next to a float16 weight).
    params = {"w": jnp.linspace(-1, 1, 12, dtype=jnp.float16)}
    tx = adadelta(wd=0.01)
    params = train_on_large_float16_gradients(tx, params)
    assert params["w"].dtype == jnp.float16
    assert np.isfinite(np.asarray(params["w"], np.float32)).all()


def test_changing_hyperparameters_does_not_recompile():
    tx = adadelta(rho=0.9, epsilon=1e-5, wd=0.1)
    params = {"w": jnp.zeros(3)}
    step, traces = counting_step(tx, apply_updates=False)

    for rho in (0.5, 0.9999):
        state = tx.init(params)
        state = mxopt.set_hyperparams(state, rho=rho, epsilon=1.0, wd=0.0)
        updates, state = step(params, state, {"w": jnp.ones(3)})
        # acc_g = 1 - rho (from the double rho), delta = sqrt(1) / sqrt(acc_g + 1).
        np.testing.assert_allclose(updates["w"], -1 / np.sqrt(2 - rho), rtol=1e-6)
        acc_g = _adadelta_state(state).acc_g["w"]
        np.testing.assert_allclose(acc_g, 1 - rho, rtol=1e-6)
    assert len(traces) == 1


@pytest.mark.parametrize("kw,arg", [
    ({"rho": 1.0}, "rho"),
    ({"rho": -0.5}, "rho"),
    ({"epsilon": 0.0}, "epsilon"),
    ({"epsilon": -1e-5}, "epsilon"),
    ({"wd": -0.1}, "wd"),
    ({"begin_num_update": -1}, "begin_num_update"),
    ({"clip_gradient": 0.0}, "clip_gradient"),
])
def test_invalid_arguments_fail_at_construction(kw, arg):
    with pytest.raises(ValueError, match=arg):
        mxopt.create("adadelta", **kw)
