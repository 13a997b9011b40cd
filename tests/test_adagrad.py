"""adagrad and groupadagrad: randomized agreement with a NumPy reference written
from MXNet 1.9.1's AdaGrad.update / GroupAdaGrad.update, state shapes and dtypes,
errors, and hyperparameter changes without recompiling."""

import chex
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from mxnet_fixtures import with_scheduler
from reference import StatefulScheduler
from steps import counting_step
from strategies import floats
from trajectory import assert_close_to, train_on_large_float16_gradients, trajectory

import mxopt
from mxopt.optimizers.adagrad import adagrad, groupadagrad

F32 = np.float32
SHAPES = {"adagrad": {"fc_weight": (3, 4), "fc_bias": (4,), "bn_gamma": (2, 2, 2)},
          "groupadagrad": {"embed_weight": (5, 3), "fc_weight": (2, 4)}}


def reference(name, kw, params, grads_seq, lr_mult, wd_mult):
    """Weights after each step, float32, in the order of MXNet's NDArray operations."""
    sched = kw.get("lr_scheduler")
    sched = sched and StatefulScheduler(sched["type"], **sched["kwargs"])
    lr0 = kw.get("learning_rate", 0.01)
    eps = F32(kw.get("eps", 1e-7 if name == "adagrad" else 1e-5))
    rescale, clip, wd = F32(kw.get("rescale_grad", 1.0)), kw.get("clip_gradient"), kw.get("wd", 0)
    w = {k: np.array(v, F32) for k, v in params.items()}
    history = {k: np.zeros(v.shape if name == "adagrad" else (v.shape[0], 1), F32)
               for k, v in w.items()}
    t, out = kw.get("begin_num_update", 0), []
    for grads in grads_seq:
        t += 1
        base = sched(t) if sched else lr0
        for k in w:
            lr, wdk = F32(base * lr_mult[k]), F32(wd * wd_mult[k])
            g = np.asarray(grads[k], F32) * rescale
            if clip is not None:
                g = np.clip(g, -F32(clip), F32(clip))
            if name == "adagrad":
                history[k] += np.square(g)
                div = g / np.sqrt(history[k] + eps)
                w[k] += (div + w[k] * wdk) * -lr
            else:
                history[k] += np.mean(np.square(g), axis=1, keepdims=True)
                w[k] -= lr * g / np.sqrt(history[k] + eps)
        out.append({k: v.copy() for k, v in w.items()})
    return out


@st.composite
def configs(draw):
    name = draw(st.sampled_from(["adagrad", "groupadagrad"]))
    kw = {"eps": draw(st.sampled_from([1e-7, 1e-5]) | floats(1e-8, 1e-2))}
    if draw(st.booleans()):
        kw["learning_rate"] = draw(floats(1e-3, 0.5))
    else:
        kw["lr_scheduler"] = {"type": "FactorScheduler", "kwargs": {
            "base_lr": draw(floats(0.01, 0.5)), "step": draw(st.integers(1, 3)),
            "factor": draw(floats(0.3, 1.0))}}
    if name == "adagrad" and draw(st.booleans()):
        kw["wd"] = draw(floats(0, 0.1))
    if draw(st.booleans()):
        kw["rescale_grad"] = draw(floats(0.05, 2.0))
    if draw(st.booleans()):
        kw["clip_gradient"] = draw(floats(0.05, 2.0))
    if draw(st.booleans()):
        kw["begin_num_update"] = draw(st.integers(0, 20))
    names = SHAPES[name]
    lr_mult = {n: draw(st.sampled_from([1.0, 0.5, 2.0])) for n in names}
    wd_mult = {n: draw(st.sampled_from([1.0, 0.0, 1.5])) for n in names}
    return name, kw, lr_mult, wd_mult


@settings(max_examples=25, deadline=None)
@given(configs(), st.integers(0, 2**31 - 1))
def test_matches_numpy_reference(config, seed):
    name, kw, lr_mult, wd_mult = config
    rng = np.random.default_rng(seed)
    shapes = SHAPES[name]
    params = {n: rng.uniform(-1, 1, s).astype(F32) for n, s in shapes.items()}
    grads = [{n: rng.normal(0, 1, s).astype(F32) for n, s in shapes.items()} for _ in range(6)]
    expected = reference(name, kw, params, grads, lr_mult, wd_mult)

    tx = mxopt.create(name, lr_mult=lr_mult, wd_mult=wd_mult if name == "adagrad" else None,
                      **with_scheduler(kw))
    assert_close_to(trajectory(tx, params, grads, jit=False), expected)


def _history(state):
    return state[3].history


class StateTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_adagrad_state_and_updates_keep_shapes_and_dtypes(self):
        params = {"w": jnp.ones((3, 2), jnp.float32), "h": jnp.ones(5, jnp.float16)}
        tx = adagrad(learning_rate=0.1)
        state = tx.init(params)
        update = self.variant(tx.update)
        for _ in range(2):
            updates, state = update(jax.tree.map(jnp.ones_like, params), state, params)
        chex.assert_trees_all_equal_shapes_and_dtypes(updates, params)
        chex.assert_trees_all_equal_shapes_and_dtypes(_history(state), params)
        # Two unit gradients: history 2, step lr / sqrt(2 + eps).
        np.testing.assert_allclose(updates["w"], -0.1 / np.sqrt(2.0), rtol=1e-6)

    @chex.variants(with_jit=True, without_jit=True)
    def test_groupadagrad_keeps_one_history_value_per_row(self):
        params = {"emb": jnp.zeros((4, 3), jnp.float32), "fc": jnp.zeros((2, 5), jnp.float16)}
        tx = groupadagrad(learning_rate=1.0, eps=1e-12)
        state = tx.init(params)
        chex.assert_shape(_history(state)["emb"], (4, 1))
        chex.assert_type(_history(state)["fc"], jnp.float16)
        grads = {"emb": jnp.array([[3.0, 0.0, 0.0], [1.0, 1.0, 1.0], [0.0, 0.0, 0.0],
                                   [2.0, -2.0, 0.0]]),
                 "fc": jnp.ones((2, 5), jnp.float16)}
        updates, state = self.variant(tx.update)(grads, state, params)
        chex.assert_trees_all_equal_shapes_and_dtypes(updates, params)
        np.testing.assert_allclose(_history(state)["emb"][:, 0], [3.0, 1.0, 0.0, 8 / 3],
                                   rtol=1e-6)
        # A row's step is g / sqrt(mean of the row's g^2): the whole row shares one scale.
        np.testing.assert_allclose(updates["emb"][0], [-np.sqrt(3.0), 0.0, 0.0], rtol=1e-6)
        np.testing.assert_allclose(updates["emb"][3], [-np.sqrt(1.5), np.sqrt(1.5), 0.0],
                                   rtol=1e-6)


def test_weight_decay_is_added_after_the_division():
    # w = 2, g = 0: history 0 + eps, div 0; the step is lr * wd * w alone.
    tx = adagrad(learning_rate=0.5, wd=0.1)
    params = {"w": jnp.full(2, 2.0)}
    updates, _ = tx.update({"w": jnp.zeros(2)}, tx.init(params), params)
    np.testing.assert_allclose(updates["w"], -0.5 * 0.1 * 2.0, rtol=1e-6)


@pytest.mark.parametrize("name", ["adagrad", "groupadagrad"])
def test_pure_float16_trains_finitely(name):
    # MXNet 1.9.1 raises here (its history is float32 next to a float16 weight).
    params = {"w": jnp.linspace(-1, 1, 12, dtype=jnp.float16).reshape(4, 3)}
    tx = mxopt.create(name, learning_rate=0.05)
    params = train_on_large_float16_gradients(tx, params)
    assert params["w"].dtype == jnp.float16
    assert np.isfinite(np.asarray(params["w"], np.float32)).all()


def test_changing_hyperparameters_does_not_recompile():
    tx = adagrad(learning_rate=0.1)
    params = {"w": jnp.zeros(3)}
    step, traces = counting_step(tx, apply_updates=False)

    state = tx.init(params)
    _, state = step(params, state, {"w": jnp.ones(3)})
    state = mxopt.set_hyperparams(state, eps=2.0, learning_rate=0.3, wd=0.0)
    updates, state = step(params, state, {"w": jnp.ones(3)})
    assert len(traces) == 1
    # history 2, eps 2: the step is 0.3 / sqrt(4).
    np.testing.assert_allclose(updates["w"], -0.15, rtol=1e-6)
    assert mxopt.get_hyperparams(state)["eps"] == 2.0


@pytest.mark.parametrize("name,kw,arg", [
    ("adagrad", {"eps": -1e-7}, "eps"),
    ("adagrad", {"eps": 0.0}, "eps"),
    ("adagrad", {"eps": float("nan")}, "eps"),
    ("adagrad", {"clip_gradient": 0.0}, "clip_gradient"),
    ("adagrad", {"wd": -0.1}, "wd"),
    ("groupadagrad", {"eps": -1.0}, "eps"),
    ("groupadagrad", {"wd": 1e-4}, "wd"),
    ("groupadagrad", {"wd": -1e-4}, "wd"),
    ("groupadagrad", {"learning_rate": -0.1}, "learning_rate"),
])
def test_invalid_arguments_fail_at_construction(name, kw, arg):
    with pytest.raises(ValueError, match=arg):
        mxopt.create(name, **kw)


def test_groupadagrad_names_the_leaf_that_is_not_2d():
    tx = groupadagrad()
    params = {"embed": {"weight": jnp.ones((4, 2)), "bias": jnp.ones(2)}}
    with pytest.raises(ValueError, match=r"2-D.*'embed/bias'.*\(2,\)"):
        tx.init(params)
    with pytest.raises(ValueError, match="'conv/0'"):
        groupadagrad(multi_precision=True).init(
            {"conv": [jnp.ones((2, 2, 3), jnp.float16)]})
