"""signum: randomized agreement with a NumPy reference, state layout, the
momentum-0 (signSGD) and wd_lh cases, hyperparameter changes and errors."""

import chex
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given, settings
from steps import assert_float32_master, counting_step
from strategies import base_arguments, floats
from trajectory import assert_matches_reference

import mxopt

F32 = np.float32
SHAPES = {"fc_weight": (3, 4), "fc_bias": (4,), "bn_gamma": (2, 2, 2)}


def reference(kw, params, grads_seq, lr_mult, wd_mult):
    """Weights after each step, from MXNet's documented Signum formula in its kernel's order.

    The kernel keeps ``-m`` in its buffer: ``mom = momentum * mom - (1 - momentum) * wd * w
    - (1 - momentum) * clip(rescale_grad * grad)``, then ``w = (1 - lr * wd_lh) * w +
    lr * sign(mom)``. With momentum 0 the documented formula is the same with ``mom = -g``.
    """
    lr0, momentum = kw.get("learning_rate", 0.01), F32(kw.get("momentum", 0.9))
    rescale, wd, clip = F32(kw.get("rescale_grad", 1.0)), kw.get("wd", 0.0), kw.get("clip_gradient")
    wd_lh = F32(kw.get("wd_lh", 0.0))
    w = {k: np.array(v, F32) for k, v in params.items()}
    mom = {k: np.zeros_like(v) for k, v in w.items()}
    out = []
    for grads in grads_seq:
        for k in w:
            lr, wdk = F32(lr0 * lr_mult[k]), F32(wd * wd_mult[k])
            g = rescale * np.asarray(grads[k], F32)
            if clip is not None:
                g = np.clip(g, -F32(clip), F32(clip))
            mom[k] = momentum * mom[k] - (1 - momentum) * wdk * w[k] - (1 - momentum) * g
            w[k] = (F32(1) - lr * wd_lh) * w[k] + lr * np.sign(mom[k])
        out.append({k: v.copy() for k, v in w.items()})
    return out


@st.composite
def configs(draw):
    kw = {"momentum": draw(st.sampled_from([0.0, 0.9]) | floats(0, 0.99)),
          "wd_lh": draw(st.sampled_from([0.0]) | floats(0, 0.1))}
    if draw(st.booleans()):
        kw["learning_rate"] = draw(floats(1e-3, 0.1))
    return base_arguments(draw, kw, SHAPES, wd=0.5)


@settings(max_examples=20, deadline=None)
@given(configs(), st.integers(0, 2**31 - 1))
def test_matches_numpy_reference(config, seed):
    assert_matches_reference("signum", reference, config, seed, SHAPES)


class LayoutTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_state_and_updates_keep_shapes_and_dtypes(self):
        params = {"w": jnp.ones((3, 2), jnp.float16), "b": jnp.zeros(4, jnp.float32)}
        grads = jax.tree.map(lambda p: jnp.full(p.shape, -0.5, p.dtype), params)
        for kw in ({"momentum": 0.9, "wd_lh": 0.01}, {"momentum": 0.0, "wd": 0.1}):
            tx = mxopt.create("signum", **kw)
            updates, state = self.variant(tx.update)(grads, tx.init(params), params)
            chex.assert_trees_all_equal_shapes_and_dtypes(updates, params)
            if kw["momentum"]:
                chex.assert_trees_all_equal_shapes_and_dtypes(optax.tree.get(state, "mom"),
                                                              params)
            else:  # signSGD keeps no buffer, as in MXNet
                assert sum(x.size for x in jax.tree.leaves(state)) < 10

    @chex.variants(with_jit=True, without_jit=True)
    def test_multi_precision_keeps_float32_master_and_buffer(self):
        tx = mxopt.create("signum", learning_rate=0.01, wd_lh=0.1, multi_precision=True)
        assert_float32_master(tx, self.variant(tx.update), ["mom"])


def _steps(tx, params, grads_seq):
    state = tx.init(params)
    out = []
    for g in grads_seq:
        updates, state = tx.update(g, state, params)
        params = optax.apply_updates(params, updates)
        out.append(np.asarray(params["w"]))
    return out


def test_wd_lh_without_momentum_follows_documented_formula():
    # MXNet 1.9.1 raises here; documented: w = (1 - lr * wd_lh) * w - lr * sign(g).
    tx = mxopt.create("signum", momentum=0.0, wd_lh=0.5, learning_rate=0.1)
    (w,) = _steps(tx, {"w": jnp.array([1.0, -2.0, 4.0])}, [{"w": jnp.array([0.5, -0.1, 0.0])}])
    np.testing.assert_allclose(w, [0.95 - 0.1, -1.9 + 0.1, 3.8], rtol=1e-6)


def test_weight_decay_without_momentum_acts_inside_the_sign():
    # Documented: w = w - lr * sign(g + wd * w). (MXNet's signsgd kernel would give
    # (1 - lr * wd) * w - lr * sign(g): [1.05, 0.005] here.)
    tx = mxopt.create("signum", momentum=0.0, wd=0.5, learning_rate=0.1)
    (w,) = _steps(tx, {"w": jnp.array([1.0, -0.1])}, [{"w": jnp.array([-0.2, -0.2])}])
    np.testing.assert_allclose(w, [0.9, 0.0], atol=1e-7)


def test_momentum_averages_before_the_sign():
    # m1 = 0.5 * 1 = 0.5, m2 = 0.5 * 0.5 + 0.5 * (-0.4) = 0.05 > 0: both steps go down.
    tx = mxopt.create("signum", momentum=0.5, learning_rate=0.1)
    w1, w2 = _steps(tx, {"w": jnp.zeros(1)}, [{"w": jnp.ones(1)}, {"w": jnp.full(1, -0.4)}])
    np.testing.assert_allclose([w1[0], w2[0]], [-0.1, -0.2], rtol=1e-6)


def test_changing_hyperparameters_does_not_recompile():
    tx = mxopt.create("signum", momentum=0.9, wd_lh=0.0, learning_rate=0.1)
    params = {"w": jnp.ones(3)}
    step, traces = counting_step(tx)

    state = tx.init(params)
    params, state = step(params, state, {"w": jnp.ones(3)})
    state = mxopt.set_hyperparams(state, wd_lh=0.5, learning_rate=0.2, momentum=0.0)
    params, state = step(params, state, {"w": -jnp.ones(3)})
    assert len(traces) == 1
    # Step 1: 1 - 0.1 = 0.9. Step 2, momentum 0: m = -1, w = (1 - 0.1) * 0.9 + 0.2.
    np.testing.assert_allclose(params["w"], np.full(3, 0.9 * 0.9 + 0.2), rtol=1e-6)


@pytest.mark.parametrize("kw,arg", [
    ({"momentum": 1.0}, "momentum"),
    ({"momentum": -0.1}, "momentum"),
    ({"wd_lh": -0.01}, "wd_lh"),
    ({"wd_lh": float("nan")}, "wd_lh"),
    ({"wd": -0.1}, "wd"),
    ({"learning_rate": -1.0}, "learning_rate"),
])
def test_invalid_arguments_are_named(kw, arg):
    with pytest.raises(ValueError, match=arg):
        mxopt.create("signum", **kw)
    with pytest.raises(ValueError, match=arg):
        mxopt.set_hyperparams(mxopt.create("signum").init({"w": jnp.ones(2)}), **kw)
