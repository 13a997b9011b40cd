"""Terms that do nothing at their construction value (``wd=0``, ``rescale_grad=1``) are left
out of the step, and come back, with one more compile, when a value is set."""

import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx
from hypothesis import given, settings
from steps import counting_step
from strategies import floats

import mxopt
from mxopt import hyperparams

PARAMS = {"w": jnp.array([0.5, -1.0, 2.0]), "b": jnp.array([0.25])}
GRADS = [jax.tree.map(lambda x, i=i: (i + 1) * jnp.cos(x), PARAMS) for i in range(3)]


# the optimizers that read the weights for the decay alone
@pytest.mark.parametrize("name", ["sgd", "nag", "adam", "nadam", "rmsprop", "adagrad"])
def test_an_off_weight_decay_reads_no_weights(name):
    tx = mxopt.create(name, learning_rate=0.1)
    state = tx.init(PARAMS)
    assert hyperparams.is_off(hyperparams.stored(state, "wd"))
    assert mxopt.get_hyperparams(state)["wd"] == 0.0
    poisoned = jax.tree.map(lambda w: jnp.full_like(w, jnp.nan), PARAMS)
    clean, _ = tx.update(GRADS[0], state, PARAMS)
    blind, _ = tx.update(GRADS[0], state, poisoned)
    jax.tree.map(np.testing.assert_array_equal, blind, clean)
    live, _ = tx.update(GRADS[0], mxopt.set_hyperparams(state, wd=1e-3), poisoned)
    assert all(np.isnan(leaf).all() for leaf in jax.tree.leaves(live))  # read again


@settings(max_examples=20, deadline=None)
@given(wd=floats(1e-4, 0.5), rescale=floats(0.1, 4.0))
def test_setting_an_off_term_turns_it_on_with_one_more_compile(wd, rescale):
    lr = 0.1
    tx = mxopt.sgd(learning_rate=lr)
    state = tx.init(PARAMS)
    step, traces = counting_step(tx)
    params, state = step(PARAMS, state, GRADS[0])
    treedef = jax.tree.structure(state)
    state = mxopt.set_hyperparams(state, wd=0.0, rescale_grad=1.0)  # their off values: no change
    params, state = step(params, state, GRADS[1])
    assert len(traces) == 1
    on = mxopt.set_hyperparams(state, wd=wd, rescale_grad=rescale)
    assert jax.tree.structure(on) == treedef  # NNX and checkpoints see the same tree
    assert mxopt.get_hyperparams(on)["wd"] == np.float32(wd)
    new_params, on = step(params, on, GRADS[2])
    new_params, on = step(new_params, on, GRADS[2])
    assert len(traces) == 2  # once more, for the term
    for k in PARAMS:  # MXNet's sgd: w <- w - lr * (rescale_grad * g + wd * w), twice
        # atol: a weight can end near 0, where float32 rounding is large relative to it
        w = params[k]
        for _ in range(2):
            w = w - np.float32(lr) * (np.float32(rescale) * GRADS[2][k] + np.float32(wd) * w)
        np.testing.assert_allclose(new_params[k], w, rtol=2e-6, atol=1e-7)


def test_an_off_term_stays_off_through_a_dynamic_loss_scale_in_a_scan():
    tx = mxopt.dynamic_loss_scale(mxopt.adam(learning_rate=0.01), init_scale=2.0**4)
    state = tx.init(PARAMS)
    grads = jnp.stack([2.0**4 * jnp.cos(jnp.arange(3.0) + i) for i in range(4)])

    def body(carry, g):
        params, state = carry
        updates, state = tx.update({"w": g, "b": g[:1]}, state, params)
        return (optax.apply_updates(params, updates), state), None

    (params, end), _ = jax.lax.scan(body, (PARAMS, state), grads)
    assert jax.tree.structure(end) == jax.tree.structure(state)
    assert hyperparams.is_off(hyperparams.stored(end, "rescale_grad"))
    plain, plain_state = PARAMS, mxopt.adam(learning_rate=0.01).init(PARAMS)
    for g in grads / 2.0**4:
        updates, plain_state = mxopt.adam(learning_rate=0.01).update(
            {"w": g, "b": g[:1]}, plain_state, plain)
        plain = optax.apply_updates(plain, updates)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6), params, plain)


def test_nnx_optimizer_turns_an_off_term_on():
    class Linear(nnx.Module):
        def __init__(self, rngs):
            self.dense = nnx.Linear(3, 1, rngs=rngs)

    model = Linear(nnx.Rngs(0))
    start = jax.tree.map(jnp.copy, nnx.state(model, nnx.Param))
    tx = mxopt.sgd(learning_rate=0.1, momentum=0.9)
    opt = nnx.Optimizer(model, tx, wrt=nnx.Param)
    traces = []

    @nnx.jit
    def step(model, opt, x):
        traces.append(None)
        grads = nnx.grad(lambda m: jnp.sum(m.dense(x) ** 2))(model)
        opt.update(model, grads)
        return grads

    xs = [jnp.array([[1.0, -2.0, 0.5]]) * (i + 1) for i in range(3)]
    grads_seq = [step(model, opt, xs[0])]
    opt.opt_state = mxopt.set_hyperparams(opt.opt_state, wd=0.01, rescale_grad=0.5)
    grads_seq += [step(model, opt, x) for x in xs[1:]]
    assert len(traces) == 2
    state = tx.init(start)
    params = start
    for i, grads in enumerate(grads_seq):
        if i == 1:
            state = mxopt.set_hyperparams(state, wd=0.01, rescale_grad=0.5)
        updates, state = tx.update(grads, state, params)
        params = optax.apply_updates(params, updates)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6),
                 nnx.state(model, nnx.Param), params)


@pytest.mark.parametrize("names", [("wd",), ("rescale_grad",)])
def test_an_mxnet_optimizer_object_applies_a_term_set_after_it_was_built(names):
    opt = mxopt.optimizer.create("sgd", learning_rate=0.1)
    weight, grad = jnp.array([1.0, -2.0]), jnp.array([0.5, 0.25])
    state = opt.create_state(0, weight)
    for name in names:
        setattr(opt, name, 0.5)
    new_weight, _ = opt.update(0, weight, grad, state)
    wd, rescale = (0.5, 1.0) if names == ("wd",) else (0.0, 0.5)
    np.testing.assert_allclose(new_weight, weight - 0.1 * (rescale * grad + wd * weight),
                               rtol=1e-6)


@given(st.sampled_from(["wd", "rescale_grad"]))
def test_an_off_term_reprs_as_off(name):
    state = mxopt.sgd().init(PARAMS)
    assert f"{name}=off" in repr(state)
    assert f"{name}=off" not in repr(mxopt.set_hyperparams(state, **{name: 0.5}))
