"""adamax: randomized agreement with a NumPy reference of MXNet's Python
update, the double-precision bias correction, zero gradients, MXNet.jl's
epsilon form, state layout, hyperparameter changes and errors."""

import chex
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given, settings
from reference import base_rates
from steps import assert_float32_master, counting_step, random_problem
from strategies import base_arguments, floats, schedulers
from trajectory import assert_close_to, assert_matches_reference, trajectory

import mxopt
from mxopt import adamax
from mxopt.optimizers.adamax import scale_by_adamax

F32 = np.float32
SHAPES = {"fc_weight": (3, 4), "fc_bias": (4,), "bn_gamma": (2, 2, 2)}


def update(w, m, u, g, lr, beta1, beta2, t, epsilon=None):
    """One step of MXNet 1.9.1's ``Adamax.update`` on a preprocessed gradient; (w, m, u).

    Scalars are Python doubles (``lr / (1 - beta1**t)``, ``1 - beta1``) that
    meet float32 arrays; an element with ``u = 0`` does not move. With
    ``epsilon``, ``u + epsilon`` divides instead (MXNet.jl's AdaMax).
    """
    m = m * F32(beta1) + F32(1.0 - beta1) * g
    u = np.maximum(F32(beta2) * u, np.abs(g))
    if epsilon is None:
        ratio = np.divide(m, u, out=np.zeros_like(m), where=u > 0)
    else:
        ratio = m / (u + F32(epsilon))
    return w - F32(lr / (1.0 - beta1**t)) * ratio, m, u


def reference(kw, params, grads_seq, lr_mult, wd_mult, epsilon=None):
    """Weights after each step: ``g = clip(rescale_grad * grad + wd * w)``, then ``update``."""
    rates = base_rates(kw, len(grads_seq), 0.002)
    b1, b2 = kw.get("beta1", 0.9), kw.get("beta2", 0.999)
    rescale, wd, clip = F32(kw.get("rescale_grad", 1.0)), kw.get("wd", 0.0), kw.get("clip_gradient")
    w = {k: np.array(v, F32) for k, v in params.items()}
    m = {k: np.zeros_like(v) for k, v in w.items()}
    u = {k: np.zeros_like(v) for k, v in w.items()}
    t = kw.get("begin_num_update", 0)
    out = []
    for rate, grads in zip(rates, grads_seq):
        t += 1
        for k in w:
            g = np.asarray(grads[k], F32) * rescale + F32(wd * wd_mult[k]) * w[k]
            if clip is not None:
                g = np.clip(g, -F32(clip), F32(clip))
            w[k], m[k], u[k] = update(w[k], m[k], u[k], g, rate * lr_mult[k], b1, b2, t, epsilon)
        out.append({k: v.copy() for k, v in w.items()})
    return out


@st.composite
def configs(draw):
    kw = {"beta1": draw(st.sampled_from([0.9, 0.0]) | floats(0, 0.99)),
          "beta2": draw(st.sampled_from([0.999, 0.9999]) | floats(0, 0.9999))}
    if draw(st.booleans()):
        kw["learning_rate"] = draw(floats(1e-3, 0.05))
    if draw(st.booleans()):
        kw["lr_scheduler"] = draw(schedulers())
    return base_arguments(draw, kw, SHAPES, begin_num_update=1000)


@settings(max_examples=20, deadline=None)
@given(configs(), st.integers(0, 2**31 - 1))
def test_matches_numpy_reference(config, seed):
    assert_matches_reference("adamax", reference, config, seed, SHAPES, jit=False)


def test_epsilon_form_matches_reference():
    # MXNet.jl's AdaMax: u + epsilon divides; no rescale, clip or decay here.
    params, grads = random_problem(SHAPES, 3)
    expected = reference({"learning_rate": 0.01, "beta1": 0.8, "beta2": 0.99}, params, grads,
                         dict.fromkeys(SHAPES, 1.0), dict.fromkeys(SHAPES, 0.0), epsilon=0.5)
    tx = optax.chain(scale_by_adamax(0.8, 0.99, epsilon=0.5), mxopt.scale_by_learning_rate(0.01))
    assert_close_to(trajectory(tx, params, grads, jit=False), expected)


@pytest.mark.parametrize("beta1", [0.9, 0.9999, 0.123456789])
def test_first_step_is_lr_times_sign(beta1):
    # m = (1 - beta1) g, u = |g|, and the correction 1 / (1 - beta1): exactly lr * sign(g)
    # when 1 - beta1 is taken from the double-precision beta1 in both places.
    tx = adamax(learning_rate=0.1, beta1=beta1)
    params = {"w": jnp.array([1.0, -2.0, 3.0])}
    grads = {"w": jnp.array([0.5, -4.0, 1e-3])}
    updates, _ = tx.update(grads, tx.init(params), params)
    np.testing.assert_allclose(updates["w"], [-0.1, 0.1, -0.1], rtol=2e-7)


def test_bias_correction_from_begin_num_update_in_double_precision():
    # beta1 = 0.9999 is not a float32; at t = 3 the correction is 1 / (1 - 0.9999**3).
    tx = adamax(learning_rate=1.0, beta1=0.9999, beta2=0.5, begin_num_update=2)
    params = {"w": jnp.zeros(1)}
    updates, _ = tx.update({"w": jnp.ones(1)}, tx.init(params), params)
    np.testing.assert_allclose(updates["w"], [-(1 - 0.9999) / (1 - 0.9999**3)], rtol=2e-7)


def test_zero_gradient_elements_stay_finite_and_still():
    # MXNet divides 0 by 0 here (NaN); mxopt leaves such elements where they are.
    tx = adamax(learning_rate=0.1)
    params = {"w": jnp.array([1.0, -2.0])}
    state = tx.init(params)
    for g in ([0.0, 0.5], [0.0, -0.5]):
        updates, state = tx.update({"w": jnp.array(g)}, state, params)
        params = optax.apply_updates(params, updates)
    assert params["w"][0] == 1.0
    assert np.isfinite(np.asarray(params["w"])).all() and params["w"][1] != -2.0


class LayoutTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_state_and_updates_keep_shapes_and_dtypes(self):
        params = {"w": jnp.ones((3, 2), jnp.bfloat16), "b": jnp.zeros(4, jnp.float32)}
        grads = jax.tree.map(lambda p: jnp.full(p.shape, -0.5, p.dtype), params)
        tx = adamax(wd=0.1, clip_gradient=1.0)
        updates, state = self.variant(tx.update)(grads, tx.init(params), params)
        chex.assert_trees_all_equal_shapes_and_dtypes(updates, params)
        for field in ("mean", "norm"):
            chex.assert_trees_all_equal_shapes_and_dtypes(optax.tree.get(state, field), params)
        adamax_state = optax.tree.get(state, "ScaleByAdamaxState")
        assert int(mxopt.update_count(state)) == 1 and adamax_state.epsilon is None

    @chex.variants(with_jit=True, without_jit=True)
    def test_multi_precision_keeps_float32_master_and_moments(self):
        tx = adamax(learning_rate=0.01, wd=0.01, multi_precision=True)
        assert_float32_master(tx, self.variant(tx.update), ["norm"])


def test_changing_hyperparameters_does_not_recompile():
    params, grads = random_problem(SHAPES, 5, 4)
    values = [dict(learning_rate=0.01 / (i + 1), beta1=0.5 + 0.1 * i, beta2=0.9 + 0.02 * i,
                   wd=0.01 * i) for i in range(4)]
    tx = adamax(wd=1e-3)  # a live wd: from 0, the off value, setting it compiles once more
    step, traces = counting_step(tx)

    p, state = jax.tree.map(jnp.asarray, params), tx.init(params)
    for g, v in zip(grads, values):
        p, state = step(p, mxopt.set_hyperparams(state, **v), jax.tree.map(jnp.asarray, g))
    assert len(traces) == 1
    # The same as the reference with each step's hyperparameters.
    w = {k: np.asarray(v, F32) for k, v in params.items()}
    m, u = ({k: np.zeros_like(v) for k, v in w.items()} for _ in range(2))
    for t, (g, v) in enumerate(zip(grads, values), start=1):
        for k in w:
            w[k], m[k], u[k] = update(w[k], m[k], u[k], g[k] + F32(v["wd"]) * w[k],
                                      v["learning_rate"], v["beta1"], v["beta2"], t)
    for n in SHAPES:
        np.testing.assert_allclose(p[n], w[n], rtol=2e-5, atol=2e-6, err_msg=n)


@pytest.mark.parametrize("kw,arg", [
    ({"beta1": 1.0}, "beta1"),
    ({"beta1": -0.1}, "beta1"),
    ({"beta2": 1.5}, "beta2"),
    ({"learning_rate": -0.1}, "learning_rate"),
    ({"begin_num_update": -1}, "begin_num_update"),
])
def test_invalid_arguments_are_named(kw, arg):
    with pytest.raises(ValueError, match=arg):
        adamax(**kw)


def test_invalid_epsilon_is_named():
    with pytest.raises(ValueError, match="epsilon"):
        scale_by_adamax(epsilon=0.0)


def test_default_learning_rate_overrides_scheduler_base_lr():
    sched = mxopt.FactorScheduler(step=10, factor=0.5, base_lr=0.3)
    params = {"w": jnp.zeros(1)}
    for kw, lr in (({}, 0.002), ({"lr_scheduler": sched}, 0.002),
                   ({"lr_scheduler": sched, "learning_rate": None}, 0.3)):
        tx = adamax(**kw)
        updates, _ = tx.update({"w": jnp.ones(1)}, tx.init(params), params)
        np.testing.assert_allclose(updates["w"], [-lr], rtol=1e-6)
