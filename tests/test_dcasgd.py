"""dcasgd: randomized agreement with a NumPy reference, the previous-weight
state, momentum (where MXNet 1.9.1 fails), hyperparameter changes and errors."""

import chex
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given, settings
from steps import counting_step
from strategies import base_arguments, floats
from trajectory import assert_matches_reference

import mxopt

F32 = np.float32
SHAPES = {"fc_weight": (3, 4), "fc_bias": (4,), "bn_gamma": (2, 2, 2)}


def reference(kw, params, grads_seq, lr_mult, wd_mult):
    """Weights after each step, from MXNet's DCASGD.update in its order of operations.

    With momentum, the buffer update MXNet's code spells out (and fails to
    reach): ``mom = momentum * mom - lr * d``, ``w += mom``.
    """
    lr0, momentum = kw.get("learning_rate", 0.01), F32(kw.get("momentum", 0.0))
    rescale, wd, clip = F32(kw.get("rescale_grad", 1.0)), kw.get("wd", 0.0), kw.get("clip_gradient")
    lamda = F32(kw.get("lamda", 0.04))
    w = {k: np.array(v, F32) for k, v in params.items()}
    previous = {k: v.copy() for k, v in w.items()}
    mom = {k: np.zeros_like(v) for k, v in w.items()}
    out = []
    for grads in grads_seq:
        for k in w:
            lr, wdk = F32(lr0 * lr_mult[k]), F32(wd * wd_mult[k])
            g = np.asarray(grads[k], F32) * rescale
            if clip is not None:
                g = np.clip(g, -F32(clip), F32(clip))
            step = -lr * (g + wdk * w[k] + lamda * g * g * (w[k] - previous[k]))
            if momentum:
                mom[k] = momentum * mom[k] + step
                step = mom[k]
            previous[k] = w[k].copy()
            w[k] = w[k] + step
        out.append({k: v.copy() for k, v in w.items()})
    return out


@st.composite
def configs(draw):
    kw = {"momentum": draw(st.sampled_from([0.0, 0.9]) | floats(0, 0.99)),
          "lamda": draw(st.sampled_from([0.04]) | floats(0, 1))}
    if draw(st.booleans()):
        kw["learning_rate"] = draw(floats(1e-3, 0.3))
    return base_arguments(draw, kw, SHAPES)


@settings(max_examples=20, deadline=None)
@given(configs(), st.integers(0, 2**31 - 1))
def test_matches_numpy_reference(config, seed):
    assert_matches_reference("dcasgd", reference, config, seed, SHAPES)


class LayoutTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_state_keeps_the_weight_each_update_started_from(self):
        params = {"w": jnp.arange(6.0, dtype=jnp.float16).reshape(3, 2),
                  "b": jnp.zeros(4, jnp.float32)}
        tx = mxopt.create("dcasgd", momentum=0.9, learning_rate=0.1)
        update = self.variant(tx.update)
        state = tx.init(params)
        chex.assert_trees_all_equal(optax.tree.get(state, "previous_weight"), params)
        for i in range(2):
            grads = jax.tree.map(lambda p, i=i: jnp.full(p.shape, 0.5 + i, p.dtype), params)
            updates, state = update(grads, state, params)
            chex.assert_trees_all_equal_shapes_and_dtypes(updates, params)
            chex.assert_trees_all_equal_shapes_and_dtypes(optax.tree.get(state, "trace"), params)
            chex.assert_trees_all_equal(optax.tree.get(state, "previous_weight"), params)
            params = optax.apply_updates(params, updates)

    @chex.variants(with_jit=True, without_jit=True)
    def test_multi_precision_compensates_with_float32_master(self):
        params = {"w": jnp.linspace(-1, 1, 6).astype(jnp.float16)}
        tx = mxopt.create("dcasgd", learning_rate=0.1, lamda=0.5, multi_precision=True)
        update = self.variant(tx.update)
        state = tx.init(params)
        for i in range(3):
            grads = {"w": jnp.cos(jnp.arange(6.0) + i).astype(jnp.float16)}
            master_before = state.master["w"]
            updates, state = update(grads, state, params)
            params = optax.apply_updates(params, updates)
            previous = optax.tree.get(state, "previous_weight")["w"]
            assert previous.dtype == jnp.float32
            np.testing.assert_array_equal(previous, master_before)
        np.testing.assert_array_equal(params["w"], state.master["w"].astype(jnp.float16))


def _steps(tx, w0, grads):
    params, state, out = {"w": jnp.asarray(w0)}, tx.init({"w": jnp.asarray(w0)}), []
    for g in grads:
        updates, state = tx.update({"w": jnp.asarray(g)}, state, params)
        params = optax.apply_updates(params, updates)
        out.append(float(params["w"]))
    return out, state


def test_compensation_uses_the_previous_weight():
    # Step 1: no compensation (w_prev = w0 = 1): w = 1 - 0.5 * 1 = 0.5.
    # Step 2: d = 2 + 0.25 * 2 * 2 * (0.5 - 1) = 1.5: w = 0.5 - 0.75 = -0.25.
    (w1, w2), _ = _steps(mxopt.create("dcasgd", learning_rate=0.5, lamda=0.25), 1.0, [1.0, 2.0])
    assert (w1, w2) == pytest.approx((0.5, -0.25))


def test_momentum_follows_the_formula_mxnet_fails_on():
    # mom1 = -0.5 * 1 = -0.5; d2 = 2 + 0.25 * 4 * (0.5 - 1) = 1.5;
    # mom2 = 0.5 * -0.5 - 0.5 * 1.5 = -1.0: w = 0.5 - 1.0.
    tx = mxopt.create("dcasgd", momentum=0.5, learning_rate=0.5, lamda=0.25)
    (w1, w2), _ = _steps(tx, 1.0, [1.0, 2.0])
    assert (w1, w2) == pytest.approx((0.5, -0.5))


def test_changing_lamda_does_not_recompile():
    tx = mxopt.create("dcasgd", learning_rate=0.5, lamda=0.0)
    params = {"w": jnp.ones(3)}
    step, traces = counting_step(tx)

    state = tx.init(params)
    params, state = step(params, state, {"w": jnp.ones(3)})
    state = mxopt.set_hyperparams(state, lamda=0.25, learning_rate=1.0)
    params, state = step(params, state, {"w": 2 * jnp.ones(3)})
    assert len(traces) == 1
    np.testing.assert_allclose(params["w"], np.full(3, 0.5 - 1.5), rtol=1e-6)


@pytest.mark.parametrize("kw,arg", [
    ({"momentum": 1.0}, "momentum"),
    ({"momentum": -0.5}, "momentum"),
    ({"lamda": -0.1}, "lamda"),
    ({"lamda": float("inf")}, "lamda"),
    ({"clip_gradient": 0.0}, "clip_gradient"),
])
def test_invalid_arguments_are_named(kw, arg):
    with pytest.raises(ValueError, match=arg):
        mxopt.create("dcasgd", **kw)


def test_update_without_params_is_refused():
    tx = mxopt.create("dcasgd")
    state = tx.init({"w": jnp.ones(2)})
    with pytest.raises(ValueError, match="params"):
        tx.update({"w": jnp.ones(2)}, state)
