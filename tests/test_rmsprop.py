"""rmsprop: randomized agreement with a NumPy reference written from MXNet 1.9.1's
rmsprop_update / rmspropalex_update kernels, state shapes and dtypes, weight
clipping, errors, and hyperparameter changes without recompiling."""

import chex
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given, settings
from reference import StatefulScheduler
from steps import counting_step
from strategies import base_arguments, floats
from trajectory import (
    assert_matches_reference,
    train_on_large_float16_gradients,
)

import mxopt
from mxopt.optimizers.rmsprop import rmsprop

F32 = np.float32
SHAPES = {"fc_weight": (3, 4), "fc_bias": (4,), "bn_gamma": (2, 2, 2)}


def reference(kw, params, grads_seq, lr_mult, wd_mult):
    """Weights after each step, float32, in the order of MXNet's kernels."""
    sched = kw.get("lr_scheduler")
    sched = sched and StatefulScheduler(sched["type"], **sched["kwargs"])
    lr0 = kw.get("learning_rate", 0.001)
    if sched:
        # MXNet's RMSProp passes its learning_rate (0.001 by default) on to
        # the scheduler, where it replaces base_lr after warmup.
        sched.lr = lr0
    gamma1, gamma2 = F32(kw.get("gamma1", 0.9)), F32(kw.get("gamma2", 0.9))
    eps, centered = F32(kw.get("epsilon", 1e-8)), kw.get("centered", False)
    rescale, clip, wd = F32(kw.get("rescale_grad", 1.0)), kw.get("clip_gradient"), kw.get("wd", 0)
    clip_weights = kw.get("clip_weights")
    w = {k: np.array(v, F32) for k, v in params.items()}
    n, m, delta = ({k: np.zeros_like(v) for k, v in w.items()} for _ in range(3))
    t, out = kw.get("begin_num_update", 0), []
    for grads in grads_seq:
        t += 1
        base = sched(t) if sched else lr0
        for k in w:
            lr, wdk = F32(base * lr_mult[k]), F32(wd * wd_mult[k])
            g = rescale * np.asarray(grads[k], F32) + wdk * w[k]
            if clip is not None:
                g = np.clip(g, -F32(clip), F32(clip))
            if centered:  # rmspropalex_update multiplies from the left; rmsprop_update not
                n[k] = (F32(1) - gamma1) * g * g + gamma1 * n[k]
                m[k] = (F32(1) - gamma1) * g + gamma1 * m[k]
                delta[k] = gamma2 * delta[k] - lr * g / np.sqrt(n[k] - m[k] * m[k] + eps)
                w[k] = w[k] + delta[k]
            else:
                n[k] = (F32(1) - gamma1) * (g * g) + gamma1 * n[k]
                w[k] = w[k] - lr * (g / np.sqrt(n[k] + eps))
            if clip_weights is not None:
                w[k] = np.clip(w[k], -F32(clip_weights), F32(clip_weights))
        out.append({k: v.copy() for k, v in w.items()})
    return out


@st.composite
def configs(draw):
    centered = draw(st.booleans())
    # Centered, the variance n - mean^2 is gamma1 * (1 - gamma1) * g^2 at the
    # first step: a gamma1 near 0 cancels, so that every rounding shows.
    kw = {"gamma1": draw(st.sampled_from([0.9, 0.95, 0.05]) | floats(0, 0.99)),
          "gamma2": draw(st.sampled_from([0.9]) | floats(0, 0.99)),
          "epsilon": draw(st.sampled_from([1e-8]) | floats(1e-8, 1e-3)),
          "centered": centered}
    if draw(st.booleans()):
        kw["clip_weights"] = draw(floats(0.1, 2.0))
    if draw(st.booleans()):
        kw["learning_rate"] = draw(floats(1e-3, 0.05))
    elif draw(st.booleans()):
        kw["lr_scheduler"] = {"type": "FactorScheduler", "kwargs": {
            "base_lr": draw(floats(0.001, 0.05)), "step": draw(st.integers(1, 3)),
            "factor": draw(floats(0.3, 1.0))}}
    return base_arguments(draw, kw, SHAPES, begin_num_update=20)


@settings(max_examples=25, deadline=None)
@given(configs(), st.integers(0, 2**31 - 1))
def test_matches_numpy_reference(config, seed):
    """Jitted: XLA's fused multiply-adds and its rsqrt would show where ``n - m^2`` cancels."""
    assert_matches_reference("rmsprop", reference, config, seed, SHAPES)


class StateTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_state_and_updates_keep_shapes_and_dtypes(self):
        params = {"w": jnp.ones((3, 2), jnp.float32), "h": jnp.ones(5, jnp.float16)}
        for centered in (False, True):
            tx = rmsprop(learning_rate=0.1, centered=centered, gamma1=0.5, epsilon=1e-6)
            state = tx.init(params)
            updates, state = self.variant(tx.update)(jax.tree.map(jnp.ones_like, params),
                                                     state, params)
            chex.assert_trees_all_equal_shapes_and_dtypes(updates, params)
            rms = state[4]
            chex.assert_trees_all_equal_shapes_and_dtypes(rms.mean_square, params)
            if centered:
                chex.assert_trees_all_equal_shapes_and_dtypes(rms.mean, params)
                chex.assert_trees_all_equal_shapes_and_dtypes(state[6].delta, params)
                # n = 0.5, mean = 0.5: the step is lr / sqrt(0.5 - 0.25 + eps).
                np.testing.assert_allclose(updates["w"], -0.1 / np.sqrt(0.25 + 1e-6), rtol=1e-5)
            else:
                assert rms.mean is None
                np.testing.assert_allclose(updates["w"], -0.1 / np.sqrt(0.5 + 1e-6), rtol=1e-5)

    @chex.variants(with_jit=True, without_jit=True)
    def test_clip_weights_bounds_the_new_weights(self):
        params = {"w": jnp.array([0.9, -0.9, 0.0, 1.5])}
        tx = rmsprop(learning_rate=0.5, gamma1=0.0, epsilon=1e-12, clip_weights=1.0)
        grads = {"w": jnp.array([-1.0, 1.0, 1.0, 0.0])}
        updates, _ = self.variant(tx.update)(grads, tx.init(params), params)
        # Each step is -0.5 * sign(g); 1.5 (g = 0) is clipped back too, as in MXNet.
        np.testing.assert_allclose(optax.apply_updates(params, updates)["w"],
                                   [1.0, -1.0, -0.5, 1.0], rtol=1e-6)


def test_centered_momentum_keeps_lr_inside_delta():
    # delta = gamma2 * delta - lr * step: halving lr after step 1 leaves step 1's delta whole.
    # With gamma1 = 0, n = g^2 = 1 and mean = g = 1, so each step is g / sqrt(1 - 1 + 1) = 1.
    tx = rmsprop(learning_rate=1.0, gamma1=0.0, gamma2=0.5, epsilon=1.0, centered=True)
    params = {"w": jnp.zeros(1)}
    grads = {"w": jnp.ones(1)}
    u1, state = tx.update(grads, tx.init(params), params)
    state = mxopt.set_hyperparams(state, learning_rate=0.5)
    u2, _ = tx.update(grads, state, params)
    np.testing.assert_allclose(u1["w"], [-1.0])
    np.testing.assert_allclose(u2["w"], [-1.0])  # 0.5 * -1 - 0.5 * 1


def test_pure_float16_trains_finitely():
    # MXNet 1.9.1 raises here (its states are float32 next to a float16 weight).
    for centered in (False, True):
        params = {"w": jnp.linspace(-1, 1, 12, dtype=jnp.float16)}
        tx = rmsprop(learning_rate=0.01, centered=centered, epsilon=1e-4, clip_weights=2.0)
        params = train_on_large_float16_gradients(tx, params)
        assert params["w"].dtype == jnp.float16
        assert np.isfinite(np.asarray(params["w"], np.float32)).all()


def test_changing_hyperparameters_does_not_recompile():
    tx = rmsprop(learning_rate=0.1, centered=True, clip_weights=5.0)
    params = {"w": jnp.zeros(3)}
    step, traces = counting_step(tx, apply_updates=False)

    state = tx.init(params)
    held = mxopt.get_hyperparams(state)
    assert {"learning_rate", "gamma1", "gamma2", "epsilon", "clip_weights"} <= set(held)
    for i in range(4):
        state = mxopt.set_hyperparams(state, learning_rate=0.1 / (i + 1), gamma1=0.5,
                                      gamma2=0.1 * i, epsilon=1e-4, clip_weights=0.01)
        updates, state = step(params, state, {"w": jnp.ones(3)})
    assert len(traces) == 1
    # The last clip_weights (0.01) bounds the new weight of 0 + update.
    np.testing.assert_allclose(updates["w"], -0.01, rtol=1e-6)
    assert mxopt.get_hyperparams(state)["gamma2"] == pytest.approx(0.3)


@pytest.mark.parametrize("kw,arg", [
    ({"gamma1": 1.0}, "gamma1"),
    ({"gamma1": -0.1}, "gamma1"),
    ({"gamma2": 1.5}, "gamma2"),
    ({"epsilon": 0.0}, "epsilon"),
    ({"clip_weights": 0.0}, "clip_weights"),
    ({"clip_weights": -1.0}, "clip_weights"),
    ({"centered": "yes"}, "centered"),
    ({"learning_rate": -1.0}, "learning_rate"),
    ({"clip_gradient": -1.0}, "clip_gradient"),
])
def test_invalid_arguments_fail_at_construction(kw, arg):
    with pytest.raises(ValueError, match=arg):
        mxopt.create("rmsprop", **kw)


def test_default_learning_rate_is_mxnets():
    state = rmsprop().init({"w": jnp.ones(2)})
    assert mxopt.get_hyperparams(state)["learning_rate"] == pytest.approx(0.001)
