"""ftrl: randomized agreement with a NumPy reference of MXNet's kernel, the
learning-rate defaults, frozen leaves, state layout, hyperparameter changes
and errors."""

import chex
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given, settings
from reference import base_rates
from steps import assert_float32_master, counting_step
from strategies import base_arguments, floats, schedulers
from trajectory import assert_matches_reference

import mxopt
from mxopt import ftrl

F32 = np.float32
SHAPES = {"fc_weight": (3, 4), "fc_bias": (4,), "bn_gamma": (2, 2, 2)}


def kernel(w, z, n, g, lr, lamda1, beta, wd):
    """One update of MXNet's ``ftrl_update`` kernel, in float32; returns (w, z, n).

    A rate below float32's smallest normal leaves everything as it is, as in
    mxopt: at 0 the kernel would divide by zero, and MXNet refuses a positive
    rate that small ("Out of range value for lr").
    """
    if lr < np.finfo(F32).tiny:
        return w, z, n
    z = z + (g - (np.sqrt(n + g * g) - np.sqrt(n)) * w / lr)
    n = n + g * g
    w = (np.sign(z) * lamda1 - z) / ((beta + np.sqrt(n)) / lr + wd) * (np.abs(z) > lamda1)
    return w, z, n


def reference(kw, params, grads_seq, lr_mult, wd_mult):
    """Weights after each step, from MXNet's kernel with its Python side's rates.

    ``learning_rate`` defaults to 0.1 without a scheduler and overrides a
    scheduler's ``base_lr`` only when given.
    """
    rates = base_rates(kw, len(grads_seq), None if "lr_scheduler" in kw else 0.1)
    l1, beta = F32(kw.get("lamda1", 0.01)), F32(kw.get("beta", 1.0))
    rescale, wd, clip = F32(kw.get("rescale_grad", 1.0)), kw.get("wd", 0.0), kw.get("clip_gradient")
    w = {k: np.array(v, F32) for k, v in params.items()}
    z = {k: np.zeros_like(v) for k, v in w.items()}
    n = {k: np.zeros_like(v) for k, v in w.items()}
    out = []
    for rate, grads in zip(rates, grads_seq):
        for k in w:
            g = np.asarray(grads[k], F32) * rescale
            if clip is not None:
                g = np.clip(g, -F32(clip), F32(clip))
            w[k], z[k], n[k] = kernel(w[k], z[k], n[k], g, F32(rate * lr_mult[k]), l1, beta,
                                      F32(wd * wd_mult[k]))
        out.append({k: v.copy() for k, v in w.items()})
    return out


@st.composite
def configs(draw):
    kw = {"lamda1": draw(st.sampled_from([0.0, 0.01]) | floats(0, 0.1)),
          "beta": draw(st.sampled_from([1.0]) | floats(0.05, 2.0))}
    if draw(st.booleans()):
        kw["learning_rate"] = draw(floats(1e-3, 0.5))
    if draw(st.booleans()):
        kw["lr_scheduler"] = draw(schedulers())
    return base_arguments(draw, kw, SHAPES, begin_num_update=20, lr_mults=[1.0, 0.5, 2.0, 0.0])


@settings(max_examples=25, deadline=None)
@given(configs(), st.integers(0, 2**31 - 1))
def test_matches_numpy_reference(config, seed):
    assert_matches_reference("ftrl", reference, config, seed, SHAPES, jit=False)


def _first_rate(**kw):
    """The rate of the first update, read off a one-coordinate FTRL step.

    From ``w = 0``, ``g = 1`` and ``lamda1 = 0``: ``z = 1``, ``n = 1`` and
    ``w = -1 / ((beta + 1) / lr) = -lr / 2`` with ``beta = 1``.
    """
    tx = ftrl(lamda1=0.0, beta=1.0, **kw)
    params = {"w": jnp.zeros(())}
    updates, _ = tx.update({"w": jnp.ones(())}, tx.init(params), params)
    return -2 * float(updates["w"])


def test_learning_rate_defaults_and_scheduler_override():
    sched = mxopt.FactorScheduler(step=10, factor=0.5, base_lr=0.3)
    assert _first_rate() == pytest.approx(0.1)
    assert _first_rate(learning_rate=0.05) == pytest.approx(0.05)
    # MXNet's default learning_rate=0.1 does not replace the scheduler's base_lr ...
    assert _first_rate(lr_scheduler=sched) == pytest.approx(0.3)
    # ... and one given explicitly does, as documented (MXNet 1.9.1's Ftrl ignores it).
    assert _first_rate(lr_scheduler=sched, learning_rate=0.05) == pytest.approx(0.05)
    assert _first_rate(learning_rate=None) == pytest.approx(0.1)


def test_zero_rate_leaves_leaf_and_state_unchanged():
    # MXNet divides by the rate and turns such weights into NaN; lr_mult=0 freezes them here.
    tx = ftrl(learning_rate=0.1, lr_mult={"frozen": 0.0})
    params = {"frozen": jnp.array([0.5, -2.0]), "live": jnp.array([0.5, -2.0])}
    state = tx.init(params)
    for i in range(3):
        grads = jax.tree.map(lambda p, i=i: jnp.full_like(p, 0.3 * (i + 1)), params)
        updates, state = tx.update(grads, state, params)
        params = optax.apply_updates(params, updates)
    np.testing.assert_array_equal(params["frozen"], [0.5, -2.0])
    z, n = optax.tree.get(state, "z"), optax.tree.get(state, "n")
    np.testing.assert_array_equal(z["frozen"], [0.0, 0.0])
    np.testing.assert_array_equal(n["frozen"], [0.0, 0.0])
    assert not np.allclose(params["live"], [0.5, -2.0])


def test_rate_below_float32_normals_is_refused():
    # MXNet 1.9.1 steps at lr=tiny and raises "Out of range value for lr" below it (XLA would
    # flush such a rate to 0); mxopt refuses it when the optimizer is built.
    tiny = float(np.finfo(F32).tiny)
    params = {"w": jnp.array([0.5, -0.25])}
    grads = {"w": jnp.array([0.3, -0.6])}

    def step(lr):
        tx = ftrl(learning_rate=lr)
        updates, state = jax.jit(tx.update)(grads, tx.init(params), params)
        return optax.apply_updates(params, updates)["w"], optax.tree.get(state, "z")["w"]

    # From z = n = 0: z = g - |g| * w / lr (about -1e37) and w -> w * |g| / (beta + |g|).
    w, z = step(tiny)
    np.testing.assert_allclose(w, [0.5 * 0.3 / 1.3, -0.25 * 0.6 / 1.6], rtol=1e-6)
    np.testing.assert_allclose(z, F32([0.3, -0.6]) - F32([0.15, -0.15]) / F32(tiny), rtol=1e-6)
    for lr in (tiny / 2, tiny / 2**20):
        with pytest.raises(ValueError, match="learning_rate=.* below float32's smallest normal"):
            ftrl(learning_rate=lr)


def test_zero_gradient_moves_to_proximal_point():
    # With z = n = 0 a zero gradient leaves z = 0, so |z| <= lamda1 and w becomes 0.
    tx = ftrl()
    params = {"w": jnp.array([0.5, -2.0])}
    updates, _ = tx.update({"w": jnp.zeros(2)}, tx.init(params), params)
    np.testing.assert_array_equal(optax.apply_updates(params, updates)["w"], [0.0, 0.0])


def test_l1_penalty_zeroes_small_accumulated_gradients():
    # One step from w = 0: z = g, n = g^2; |g| <= lamda1 gives exactly 0.
    tx = ftrl(lamda1=0.5, beta=1.0, learning_rate=1.0)
    params = {"w": jnp.zeros(3)}
    updates, _ = tx.update({"w": jnp.array([0.4, -0.5, 2.0])}, tx.init(params), params)
    # The third: (0.5 - 2) / ((1 + 2) / 1) = -0.5.
    np.testing.assert_allclose(updates["w"], [0.0, 0.0, -0.5], rtol=1e-6)


class LayoutTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_state_and_updates_keep_shapes_and_dtypes(self):
        params = {"w": jnp.ones((3, 2), jnp.float16), "b": jnp.zeros(4, jnp.float32)}
        grads = jax.tree.map(lambda p: jnp.full(p.shape, -0.5, p.dtype), params)
        tx = ftrl(wd=0.1, clip_gradient=1.0)
        updates, state = self.variant(tx.update)(grads, tx.init(params), params)
        chex.assert_trees_all_equal_shapes_and_dtypes(updates, params)
        chex.assert_trees_all_equal_shapes_and_dtypes(optax.tree.get(state, "z"), params)
        chex.assert_trees_all_equal_shapes_and_dtypes(optax.tree.get(state, "n"), params)
        assert np.isfinite(np.asarray(updates["w"], np.float32)).all()

    @chex.variants(with_jit=True, without_jit=True)
    def test_multi_precision_keeps_float32_master_and_state(self):
        tx = ftrl(learning_rate=0.1, wd=0.01, multi_precision=True)
        assert_float32_master(tx, self.variant(tx.update), ["z"])


def test_changing_hyperparameters_does_not_recompile():
    params = {"w": jnp.linspace(-1, 1, 5)}
    grads = [{"w": jnp.sin(jnp.arange(5.0) + i)} for i in range(4)]
    values = [dict(lamda1=0.01 * i, beta=1.0 + i, learning_rate=0.1 / (i + 1), wd=0.01 * i)
              for i in range(4)]
    tx = ftrl()
    step, traces = counting_step(tx)

    p, state = params, tx.init(params)
    for g, v in zip(grads, values):
        p, state = step(p, mxopt.set_hyperparams(state, **v), g)
    assert len(traces) == 1
    # The same as the kernel with each step's hyperparameters.
    w = np.asarray(params["w"], F32)
    z, n = np.zeros_like(w), np.zeros_like(w)
    for g, v in zip(grads, values):
        w, z, n = kernel(w, z, n, np.asarray(g["w"], F32),
                         *(F32(v[k]) for k in ("learning_rate", "lamda1", "beta", "wd")))
    np.testing.assert_allclose(p["w"], w, rtol=2e-5, atol=2e-6)


@pytest.mark.parametrize("kw,arg", [
    ({"lamda1": -0.1}, "lamda1"),
    ({"beta": -1.0}, "beta"),
    ({"beta": float("nan")}, "beta"),
    ({"wd": -0.1}, "wd"),
    ({"learning_rate": -0.1}, "learning_rate"),
    ({"clip_gradient": 0.0}, "clip_gradient"),
])
def test_invalid_arguments_are_named(kw, arg):
    with pytest.raises(ValueError, match=arg):
        ftrl(**kw)


def test_set_hyperparams_checks_values():
    state = ftrl().init({"w": jnp.ones(2)})
    with pytest.raises(ValueError, match="lamda1"):
        mxopt.set_hyperparams(state, lamda1=-1.0)


def test_update_needs_params():
    tx = ftrl()
    params = {"w": jnp.ones(2)}
    with pytest.raises(ValueError, match="params"):
        tx.update(params, tx.init(params))
