"""sgd, nag and adam: randomized agreement with a NumPy reference, the
registry, multi-precision, compile counts and errors."""

import chex
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import reference
from hypothesis import given, settings
from mxnet_fixtures import with_scheduler
from steps import counting_step
from strategies import base_arguments, floats, schedulers
from trajectory import assert_close_to, assert_master_follows_float32, trajectory

import mxopt

NAMES = ("conv_weight", "conv_bias", "bn_gamma")
SHAPES = {"conv_weight": (3, 4), "conv_bias": (4,), "bn_gamma": (2, 2, 2)}


@st.composite
def configs(draw):
    name = draw(st.sampled_from(["sgd", "nag", "adam"]))
    kw = {}
    if name == "adam":
        kw.update(beta1=draw(floats(0, 0.99)), beta2=draw(floats(0.5, 0.9999)),
                  epsilon=draw(floats(1e-8, 1e-3)))
    else:
        kw["momentum"] = draw(st.sampled_from([0.0, 0.5, 0.9]) | floats(0, 0.99))
    if draw(st.booleans()):
        kw["learning_rate"] = draw(floats(1e-3, 0.3))
    if draw(st.booleans()):
        kw["lr_scheduler"] = draw(schedulers())
    kw, lr_mult, wd_mult = base_arguments(draw, kw, NAMES, begin_num_update=20)
    return name, kw, lr_mult, wd_mult


@settings(max_examples=60, deadline=None)
@given(configs(), st.integers(0, 2**31 - 1))
def test_matches_numpy_reference(config, seed):
    name, kw, lr_mult, wd_mult = config
    rng = np.random.default_rng(seed)
    params = {n: rng.uniform(-1, 1, SHAPES[n]).astype(np.float32) for n in NAMES}
    grads = [{n: rng.normal(0, 1, SHAPES[n]).astype(np.float32) for n in NAMES}
             for _ in range(8)]
    expected = reference.run(name, kw, params, grads, lr_mult, wd_mult)

    tx = mxopt.create(name, lr_mult=lr_mult, wd_mult=wd_mult, **with_scheduler(kw))
    assert_close_to(trajectory(tx, params, grads), expected)


class JitTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_adam_first_step_is_lr_times_sign(self):
        # With bias correction and epsilon -> 0, Adam's first step is -lr * sign(g).
        tx = mxopt.adam(learning_rate=0.1, epsilon=1e-12)
        params = {"w": jnp.array([1.0, -2.0, 3.0])}
        grads = {"w": jnp.array([0.5, -4.0, 1e-3])}
        updates, _ = self.variant(tx.update)(grads, tx.init(params), params)
        np.testing.assert_allclose(updates["w"], [-0.1, 0.1, -0.1], rtol=1e-5)

    @chex.variants(with_jit=True, without_jit=True)
    def test_sgd_momentum_keeps_lr_inside_buffer(self):
        # mom = 0.5*mom - lr*g: halving lr after step 1 leaves step 1's momentum at full size.
        tx = mxopt.sgd(learning_rate=1.0, momentum=0.5)
        params = {"w": jnp.zeros(2)}
        grads = {"w": jnp.ones(2)}
        update = self.variant(tx.update)
        u1, state = update(grads, tx.init(params), params)
        state = mxopt.set_hyperparams(state, learning_rate=0.5)
        u2, _ = update(grads, state, params)
        np.testing.assert_allclose(u1["w"], [-1.0, -1.0])
        np.testing.assert_allclose(u2["w"], [-1.0, -1.0])  # 0.5 * -1 - 0.5 * 1


def test_changing_hyperparameters_does_not_recompile():
    tx = mxopt.adam(learning_rate=0.01, wd=0.1)
    params = {"w": jnp.ones(3)}
    step, traces = counting_step(tx)

    state = tx.init(params)
    for i in range(6):
        state = mxopt.set_hyperparams(state, learning_rate=0.01 / (i + 1), beta2=0.99,
                                      wd=0.01 * i, epsilon=1e-6)
        params, state = step(params, state, {"w": jnp.full(3, 0.5)})
    assert len(traces) == 1
    assert mxopt.get_hyperparams(state)["learning_rate"] == pytest.approx(0.01 / 6)


def test_set_hyperparams_rejects_unknown_and_invalid():
    state = mxopt.sgd(momentum=0.9).init({"w": jnp.ones(2)})
    with pytest.raises(ValueError, match="no hyperparameter.*beta1"):
        mxopt.set_hyperparams(state, beta1=0.9)
    with pytest.raises(ValueError, match="momentum must be in"):
        mxopt.set_hyperparams(state, momentum=1.5)


def test_set_beta_keeps_double_precision_residual():
    state = mxopt.adam().init({"w": jnp.ones(2)})
    state = mxopt.set_hyperparams(state, beta2=0.9999)
    adam_state = state[4]
    assert float(adam_state.beta2) + float(adam_state.beta2_residual) == pytest.approx(
        0.9999, abs=1e-12)


@pytest.mark.parametrize("name,kw", [("sgd", {"momentum": 0.9}), ("nag", {"momentum": 0.9}),
                                     ("adam", {}), ("sgd", {})])
@pytest.mark.parametrize("dtype", [jnp.float16, jnp.bfloat16])
def test_multi_precision_weight_is_master_cast_down(name, kw, dtype):
    tx = mxopt.create(name, learning_rate=0.01, wd=0.01, multi_precision=True, **kw)
    key = jax.random.PRNGKey(0)
    params = {"w": jax.random.normal(key, (64,)).astype(dtype), "b": jnp.zeros(8, jnp.float32)}
    state = tx.init(params)
    chex.assert_trees_all_equal_dtypes(state.master["w"], jnp.zeros((), jnp.float32))
    assert state.master["b"] is None
    step = jax.jit(lambda p, s, g: tx.update(g, s, p))
    for i in range(20):
        grads = jax.tree.map(lambda x, i=i: jnp.sin(x.astype(jnp.float32) + i).astype(x.dtype),
                             params)
        updates, state = step(params, state, grads)
        params = optax.apply_updates(params, updates)
        assert params["w"].dtype == dtype
        np.testing.assert_array_equal(np.asarray(params["w"]),
                                      np.asarray(state.master["w"].astype(dtype)))


def test_multi_precision_master_follows_float32_run():
    """The master copy takes exactly the float32 trajectory of the same grads."""
    assert_master_follows_float32(
        lambda **mp: mxopt.sgd(learning_rate=0.05, momentum=0.9, wd=0.01, **mp),
        jnp.linspace(-1, 1, 16).astype(jnp.float16))


def test_zero_gradient_without_decay_leaves_weights():
    for name in ("sgd", "nag", "adam"):
        tx = mxopt.create(name, learning_rate=0.1)
        params = {"w": jnp.array([1.0, -2.0])}
        updates, _ = tx.update({"w": jnp.zeros(2)}, tx.init(params), params)
        np.testing.assert_array_equal(optax.apply_updates(params, updates)["w"], params["w"])


def test_momentum_zero_keeps_no_buffer():
    state = mxopt.sgd().init({"w": jnp.ones(1000)})
    assert sum(x.size for x in jax.tree.leaves(state)) < 10


def test_registry(monkeypatch):
    monkeypatch.setattr(mxopt.registry, "_DECLARATIONS", dict(mxopt.registry._DECLARATIONS))
    assert {"sgd", "nag", "adam"} <= set(mxopt.registered_names())
    assert mxopt.create("SGD", momentum=0.9) is not None
    with pytest.raises(ValueError, match="unknown optimizer 'sgdd'.*adam.*nag.*sgd"):
        mxopt.create("sgdd")

    @mxopt.register(name="halfsgd")
    def half_sgd(**kw):
        return mxopt.sgd(**kw)

    assert mxopt.create("HalfSGD", learning_rate=1.0) is not None
    with pytest.warns(UserWarning, match="overridden"):
        mxopt.register(half_sgd, name="sgd")
    with pytest.warns(UserWarning, match="overridden"):
        mxopt.register(mxopt.sgd)
    assert mxopt.create("sgd") is not None


@pytest.mark.parametrize("name,kw,arg", [
    ("sgd", {"learning_rate": -0.1}, "learning_rate"),
    ("sgd", {"momentum": 1.0}, "momentum"),
    ("nag", {"momentum": -0.1}, "momentum"),
    ("adam", {"beta1": 1.0}, "beta1"),
    ("adam", {"beta2": -0.5}, "beta2"),
    ("adam", {"epsilon": 0.0}, "epsilon"),
    ("sgd", {"clip_gradient": 0.0}, "clip_gradient"),
    ("sgd", {"clip_gradient": -1.0}, "clip_gradient"),
    ("sgd", {"wd": -1e-4}, "wd"),
    ("sgd", {"rescale_grad": 0.0}, "rescale_grad"),
    ("adam", {"learning_rate": float("nan")}, "learning_rate"),
    ("sgd", {"begin_num_update": -1}, "begin_num_update"),
    ("sgd", {"begin_num_update": 1.5}, "begin_num_update"),
])
def test_invalid_hyperparameters_fail_at_construction(name, kw, arg):
    with pytest.raises(ValueError, match=arg):
        mxopt.create(name, **kw)


def test_unknown_keyword_is_named():
    with pytest.raises(TypeError, match="momentun"):
        mxopt.create("adam", momentun=0.9)


def test_learning_rate_overrides_scheduler_base_lr_after_warmup():
    sched = mxopt.FactorScheduler(step=2, factor=0.5, base_lr=1.0, warmup_steps=2,
                                  warmup_begin_lr=0.0)
    tx = mxopt.sgd(learning_rate=0.1, lr_scheduler=sched)
    params = {"w": jnp.zeros(())}
    state = tx.init(params)
    steps = []
    for _ in range(5):
        u, state = tx.update({"w": jnp.ones(())}, state, params)
        steps.append(-float(u["w"]))
    # counts 1..5: warmup to the scheduler's own base_lr (0.5 at count 1), then
    # the optimizer's 0.1, halved once the count passes 2 and again past 4.
    np.testing.assert_allclose(steps, [0.5, 0.1, 0.05, 0.05, 0.025], rtol=1e-6)


def test_plain_callable_schedule():
    tx = mxopt.sgd(lr_scheduler=lambda n: 1.0 / n)
    params = {"w": jnp.zeros(())}
    state = tx.init(params)
    for n in (1, 2, 3):
        u, state = tx.update({"w": jnp.ones(())}, state, params)
        assert -float(u["w"]) == pytest.approx(1.0 / n)
    with pytest.raises(ValueError, match="plain callable"):
        mxopt.sgd(learning_rate=0.1, lr_scheduler=lambda n: 1.0)


def test_ccsgd_is_sgd_with_a_deprecation_warning():
    params = {"w": jnp.array([1.0, -2.0])}
    grads = {"w": jnp.array([0.5, 0.25])}
    with pytest.warns(DeprecationWarning, match="ccsgd is deprecated"):
        old = mxopt.create("ccsgd", learning_rate=0.1, momentum=0.9, wd=0.01)
    new = mxopt.sgd(learning_rate=0.1, momentum=0.9, wd=0.01)
    u_old, _ = old.update(grads, old.init(params), params)
    u_new, _ = new.update(grads, new.init(params), params)
    np.testing.assert_array_equal(u_old["w"], u_new["w"])
    np.testing.assert_allclose(u_new["w"], [-0.1 * (0.5 + 0.01), -0.1 * (0.25 - 0.02)], rtol=1e-6)


def test_trace_scales_each_updates_momentum_and_keeps_its_own():
    # In a counted chain, momentum_scale reads the states of the links before the trace.
    factor = {"value": 0.25}
    tx = mxopt.counted(mxopt.trace(0.8, momentum_scale=lambda earlier, count, like: jax.tree.map(
        lambda _: factor["value"], like)))
    params = {"w": jnp.array([1.0, 2.0])}
    state = tx.init(params)
    _, state = tx.update({"w": jnp.array([1.0, 1.0])}, state)
    updates, state = tx.update({"w": jnp.array([0.5, 0.5])}, state)
    np.testing.assert_allclose(updates["w"], [0.8 * 0.25 * 1.0 + 0.5] * 2, rtol=1e-6)
    assert float(optax.tree.get(state, "momentum")) == np.float32(0.8)
