"""sgld: the deterministic part against a NumPy reference, the Langevin noise
by its statistics, its reproducibility from the seed, state layout and errors.

The statistical checks use one seeded draw of many elements; each tolerance
is 5 standard errors of the statistic for that sample size (a false failure
would need a 5-sigma deviation, about 6e-7 per check, and the draw is fixed).
"""

import math

import chex
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given, settings
from reference import StatefulScheduler
from strategies import base_arguments, floats
from trajectory import assert_matches_reference

import mxopt

F32 = np.float32
SHAPES = {"fc_weight": (3, 4), "fc_bias": (4,), "bn_gamma": (2, 2, 2)}
SIGMAS = 5


def reference(kw, params, grads_seq, lr_mult, wd_mult):
    """Weights after each step of MXNet's SGLD.update without its noise.

    ``w += -lr/2 * (clip(rescale_grad * grad) + wd * w)``, with a scheduler
    called once per update from ``begin_num_update + 1`` on.
    """
    sched = kw.get("lr_scheduler")
    sched = StatefulScheduler(sched["type"], **sched["kwargs"]) if sched else None
    rescale, wd, clip = F32(kw.get("rescale_grad", 1.0)), kw.get("wd", 0.0), kw.get("clip_gradient")
    t = kw.get("begin_num_update", 0)
    w = {k: np.array(v, F32) for k, v in params.items()}
    out = []
    for grads in grads_seq:
        t += 1
        base = sched(t) if sched else kw.get("learning_rate", 0.01)
        for k in w:
            lr, wdk = base * lr_mult[k], F32(wd * wd_mult[k])
            g = np.asarray(grads[k], F32) * rescale
            if clip is not None:
                g = np.clip(g, -F32(clip), F32(clip))
            w[k] = w[k] + F32(-lr / 2) * (g + wdk * w[k])
        out.append({k: v.copy() for k, v in w.items()})
    return out


@st.composite
def configs(draw):
    kw = {}
    if draw(st.booleans()):
        kw["learning_rate"] = draw(floats(1e-3, 0.3))
    elif draw(st.booleans()):
        kw["lr_scheduler"] = {"type": "FactorScheduler", "kwargs": {
            "base_lr": draw(floats(0.01, 0.3)), "step": draw(st.integers(1, 3)),
            "factor": draw(floats(0.2, 1.0))}}
    return base_arguments(draw, kw, SHAPES, begin_num_update=10)


@settings(max_examples=20, deadline=None)
@given(configs(), st.integers(0, 2**31 - 1))
def test_deterministic_part_matches_numpy_reference(config, seed):
    assert_matches_reference("sgld", reference, config, seed, SHAPES, noise=False)


def _noise(kw, params, grads, steps=1):
    """The noise of each update: sgld's step minus the same step with noise=False."""
    noisy, quiet = mxopt.create("sgld", **kw), mxopt.create("sgld", noise=False, **kw)
    noisy_update, quiet_update = jax.jit(noisy.update), jax.jit(quiet.update)
    state, quiet_state, out = noisy.init(params), quiet.init(params), []
    for _ in range(steps):
        updates, state = noisy_update(grads, state, params)
        drift, quiet_state = quiet_update(grads, quiet_state, params)
        out.append(jax.tree.map(lambda u, d: np.asarray(u - d, np.float64), updates, drift))
    return out


def _check_standard_normal(z, what):
    """Mean 0, variance 1 and the normal's 1-sigma mass, within 5 standard errors."""
    n = z.size
    assert abs(z.mean()) < SIGMAS / math.sqrt(n), what
    # The sample variance of n standard normals has standard error sqrt(2 / (n - 1)).
    assert abs(z.var(ddof=1) - 1) < SIGMAS * math.sqrt(2 / (n - 1)), what
    inside, p = np.mean(np.abs(z) < 1), math.erf(1 / math.sqrt(2))
    assert abs(inside - p) < SIGMAS * math.sqrt(p * (1 - p) / n), what


def test_noise_is_normal_with_variance_lr_per_element():
    lr, shape = 0.01, (200, 100)
    key = jax.random.PRNGKey(42)
    params = {"a_weight": jax.random.uniform(key, shape, minval=-1, maxval=1),
              "b_weight": jnp.zeros(shape)}
    grads = jax.tree.map(lambda p: jnp.cos(p * 7.0), params)
    kw = {"learning_rate": lr, "wd": 0.05, "lr_mult": {"b_weight": 4.0}, "seed": 3}
    first, second = _noise(kw, params, grads, steps=2)
    for noise in (first, second):
        _check_standard_normal(noise["a_weight"] / math.sqrt(lr), "a_weight: variance lr")
        _check_standard_normal(noise["b_weight"] / math.sqrt(4 * lr), "b_weight: lr * lr_mult")
    # Independent across leaves and across updates: correlations within 5/sqrt(n).
    n = first["a_weight"].size
    for x, y in ((first["a_weight"], first["b_weight"]),
                 (first["a_weight"], second["a_weight"])):
        assert abs(np.corrcoef(x.ravel(), y.ravel())[0, 1]) < SIGMAS / math.sqrt(n)


def test_noise_follows_a_changed_learning_rate_without_recompiling():
    params = {"w": jnp.zeros((200, 100))}
    tx = mxopt.create("sgld", learning_rate=0.01)
    traces = []

    @jax.jit
    def step(state):
        traces.append(1)
        return tx.update(jax.tree.map(jnp.zeros_like, params), state, params)

    state = tx.init(params)
    small, state = step(state)
    state = mxopt.set_hyperparams(state, learning_rate=0.04)
    large, state = step(state)
    assert len(traces) == 1
    _check_standard_normal(np.asarray(small["w"], np.float64) / 0.1, "lr 0.01")
    _check_standard_normal(np.asarray(large["w"], np.float64) / 0.2, "lr 0.04")


def _trajectory(seed, steps=3):
    tx = mxopt.create("sgld", learning_rate=0.1, seed=seed)
    params = {"w": jnp.linspace(-1, 1, 12).reshape(3, 4), "b": jnp.zeros(5)}
    state = tx.init(params)
    update = jax.jit(tx.update)
    out, keys = [], [optax.tree.get(state, "key")]
    for i in range(steps):
        grads = jax.tree.map(lambda p, i=i: jnp.sin(p + i), params)
        updates, state = update(grads, state, params)
        params = optax.apply_updates(params, updates)
        out.append(params)
        keys.append(optax.tree.get(state, "key"))
    return out, keys


def test_same_seed_same_trajectory_other_seed_another():
    a, keys = _trajectory(seed=7)
    b, _ = _trajectory(seed=7)
    c, _ = _trajectory(seed=8)
    for x, y, z in zip(a, b, c):
        chex.assert_trees_all_equal(x, y)
        for name in x:
            assert not np.allclose(x[name], z[name]), name
    np.testing.assert_array_equal(keys[0], jax.random.PRNGKey(7))


def test_key_advances_every_update():
    params = {"w": jnp.zeros(64)}
    tx = mxopt.create("sgld", learning_rate=0.1, seed=0)
    state = tx.init(params)
    keys, noises = [optax.tree.get(state, "key")], []
    for _ in range(4):
        updates, state = tx.update({"w": jnp.zeros(64)}, state, params)
        keys.append(optax.tree.get(state, "key"))
        noises.append(np.asarray(updates["w"]))
    assert len({tuple(np.asarray(k).tolist()) for k in keys}) == len(keys)
    for i in range(1, len(noises)):
        assert not np.allclose(noises[i], noises[i - 1])


def test_without_noise_the_state_holds_no_key():
    tx = mxopt.create("sgld", noise=False, learning_rate=0.2)
    params = {"w": jnp.array([1.0, -1.0])}
    state = tx.init(params)
    assert optax.tree.get(state, "key", None) is None
    updates, _ = tx.update({"w": jnp.array([0.5, 0.5])}, state, params)
    np.testing.assert_allclose(updates["w"], [-0.05, -0.05], rtol=1e-6)


class LayoutTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_updates_and_state_keep_dtypes(self):
        params = {"w": jnp.ones((3, 2), jnp.float16), "b": jnp.zeros(4, jnp.float32)}
        grads = jax.tree.map(lambda p: jnp.full(p.shape, 0.5, p.dtype), params)
        tx = mxopt.create("sgld", learning_rate=0.01, wd=0.1)
        updates, state = self.variant(tx.update)(grads, tx.init(params), params)
        chex.assert_trees_all_equal_shapes_and_dtypes(updates, params)
        key = optax.tree.get(state, "key")
        assert key.shape == (2,) and key.dtype == jnp.uint32
        assert all(np.isfinite(np.asarray(u, np.float32)).all() for u in jax.tree.leaves(updates))

    @chex.variants(with_jit=True, without_jit=True)
    def test_multi_precision_updates_float32_master(self):
        params = {"w": jnp.linspace(-1, 1, 6).astype(jnp.float16)}
        tx = mxopt.create("sgld", learning_rate=0.01, multi_precision=True)
        update = self.variant(tx.update)
        state = tx.init(params)
        for i in range(3):
            grads = {"w": jnp.cos(jnp.arange(6.0) + i).astype(jnp.float16)}
            updates, state = update(grads, state, params)
            params = optax.apply_updates(params, updates)
        assert state.master["w"].dtype == jnp.float32
        np.testing.assert_array_equal(params["w"], state.master["w"].astype(jnp.float16))


@pytest.mark.parametrize("kw,arg", [
    ({"seed": -1}, "seed"),
    ({"seed": 1.5}, "seed"),
    ({"noise": "no"}, "noise"),
    ({"clip_gradient": -1.0}, "clip_gradient"),
    ({"wd": -0.1}, "wd"),
])
def test_invalid_arguments_are_named(kw, arg):
    with pytest.raises(ValueError, match=arg):
        mxopt.create("sgld", **kw)
