"""Every registered optimizer inside the libraries JAX users train with, run for real.

Flax NNX's ``nnx.Optimizer``, Flax Linen's ``TrainState`` with checkpoints,
Equinox's filtered trees, ``flax.serialization``, and optax's own wrappers
(``inject_hyperparams``, ``MultiSteps``, ``masked``, ``optax.tree``). Each
test compares the numbers with the same optimizer run on a plain dict of
arrays, so what it checks is that the library changes nothing.
"""

import equinox as eqx
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx, serialization
from flax.training import train_state
from full_state import accepted, build, draw
from trajectory import same_bits

import mxopt
from mxopt.structure import named_leaves

NAMES = mxopt.registered_names()
X = jax.random.normal(jax.random.key(0), (16, 4))
Y = jax.random.normal(jax.random.key(1), (16, 2))


def optimizer(name, **kwargs):
    """``name`` with its full state; SGLD without noise, whose draws follow the leaves' order."""
    return build(name, learning_rate=0.05, **({"noise": False} if name == "sgld" else {}),
                 **kwargs)


def biased(name):
    return name != "groupadagrad"  # which takes 2-D weights only


def plain(tree):
    """A tree's arrays as a dict by leaf name (Variables and None leaves left out)."""
    return dict(named_leaves(tree))


def plain_run(tx, params, grads_seq, change=None):
    """The params and state after jitted steps of ``tx`` on a dict of arrays.

    ``change`` (a dict of hyperparameters) is set after the first step.
    """
    state = tx.init(params)
    step = jax.jit(lambda p, s, g: tx.update(g, s, p))
    for i, grads in enumerate(grads_seq):
        if i == 1 and change:
            state = mxopt.set_hyperparams(state, **change)
        updates, state = step(params, state, grads)
        params = optax.apply_updates(params, updates)
    return params, state


def assert_same(actual: dict, expected: dict):
    assert actual.keys() == expected.keys()
    for k in expected:
        np.testing.assert_allclose(actual[k], expected[k], rtol=1e-6, atol=1e-7, err_msg=k)


class MLP(nnx.Module):
    def __init__(self, bias: bool, rngs: nnx.Rngs):
        self.dense0 = nnx.Linear(4, 8, use_bias=bias, rngs=rngs)
        self.dense1 = nnx.Linear(8, 2, use_bias=bias, rngs=rngs)

    def __call__(self, x):
        return self.dense1(jax.nn.relu(self.dense0(x)))


def mse(predict):
    return jnp.mean((predict(X) - Y) ** 2)


@pytest.mark.parametrize("name", NAMES)
def test_nnx_optimizer_trains_and_its_hyperparameters_change(name):
    model = MLP(biased(name), nnx.Rngs(0))
    start = plain(nnx.state(model, nnx.Param))
    tx = optimizer(name, rescale_grad=2.0)  # given, so that setting it is no new program
    opt = nnx.Optimizer(model, tx, wrt=nnx.Param)
    traces, grads_seq = [], []

    @nnx.jit
    def step(model, opt):
        traces.append(None)
        grads = nnx.grad(lambda m: mse(m))(model)
        opt.update(model, grads)
        return grads

    held = mxopt.get_hyperparams(opt.opt_state)
    assert float(held["rescale_grad"]) == 2.0
    for i in range(4):
        if i == 1:
            opt.opt_state = mxopt.set_hyperparams(opt.opt_state, rescale_grad=0.5)
            assert float(mxopt.get_hyperparams(opt.opt_state)["rescale_grad"]) == 0.5
        grads_seq.append(plain(step(model, opt)))
    assert len(traces) == 1  # a new hyperparameter value is no new program
    assert int(mxopt.update_count(opt.opt_state)) == 4
    expected, _ = plain_run(tx, start, grads_seq, change={"rescale_grad": 0.5})
    assert_same(plain(nnx.state(model, nnx.Param)), expected)
    unchanged, _ = plain_run(tx, start, grads_seq)
    assert not all(np.array_equal(unchanged[k], expected[k]) for k in expected)


@pytest.mark.parametrize("name", NAMES)
def test_linen_train_state_resumes_from_a_checkpoint_bit_for_bit(name, tmp_path):
    class Net(nn.Module):
        @nn.compact
        def __call__(self, x):
            hidden = nn.relu(nn.Dense(8, use_bias=biased(name))(x))
            return nn.Dense(2, use_bias=biased(name))(hidden)

    net, tx = Net(), optimizer(name)

    @jax.jit
    def step(state):
        grads = jax.grad(lambda p: mse(lambda x: state.apply_fn({"params": p}, x)))(state.params)
        return state.apply_gradients(grads=grads)

    state = train_state.TrainState.create(
        apply_fn=net.apply, params=net.init(jax.random.key(0), X)["params"], tx=tx)
    for _ in range(3):
        state = step(state)
    mxopt.checkpoint.save(tmp_path / "ckpt", state)
    fresh = train_state.TrainState.create(
        apply_fn=net.apply, params=net.init(jax.random.key(1), X)["params"], tx=tx)
    restored = mxopt.checkpoint.restore(tmp_path / "ckpt", like=fresh)
    assert same_bits(restored, state) and int(restored.step) == 3
    assert jax.tree.map(lambda x: x.dtype, restored) == jax.tree.map(lambda x: x.dtype, state)
    assert same_bits(step(restored), step(state))


@pytest.mark.parametrize("name", NAMES)
def test_equinox_filtered_trees_with_none_leaves(name):
    bias = biased(name)
    model = eqx.nn.MLP(4, 2, 8, 1, key=jax.random.key(0), use_bias=bias, use_final_bias=bias)
    start = plain(eqx.filter(model, eqx.is_array))
    tx = optimizer(name)
    state = tx.init(eqx.filter(model, eqx.is_array))
    grads_seq = []

    @eqx.filter_jit
    def step(model, state):
        grads = eqx.filter_grad(lambda m: mse(jax.vmap(m)))(model)
        updates, state = tx.update(grads, state, eqx.filter(model, eqx.is_array))
        return eqx.apply_updates(model, updates), state, grads

    for _ in range(3):
        model, state, grads = step(model, state)
        grads_seq.append(plain(grads))
    expected, _ = plain_run(tx, start, grads_seq)
    assert_same(plain(eqx.filter(model, eqx.is_array)), expected)


def small_problem(name, steps=2):
    shapes = accepted(name, {"w": (3, 4), "b": (4,), "c": (2, 3)})
    return draw(shapes, 0), [draw(shapes, i + 1) for i in range(steps)]


@pytest.mark.parametrize("name", NAMES)
def test_flax_serialization_round_trips_bit_for_bit(name):
    tx = optimizer(name)
    params, grads_seq = small_problem(name)
    _, state = plain_run(tx, params, grads_seq)
    restored = serialization.from_bytes(tx.init(params), serialization.to_bytes(state))
    assert same_bits(restored, state)
    assert jax.tree.map(lambda x: x.dtype, restored) == jax.tree.map(lambda x: x.dtype, state)
    assert same_bits(tx.update(grads_seq[0], restored, params), tx.update(grads_seq[0], state,
                                                                          params))


@pytest.mark.parametrize("name", NAMES)
def test_a_state_holds_one_update_count(name):
    tx = optimizer(name, begin_num_update=3)
    params, grads_seq = small_problem(name, steps=4)
    _, state = plain_run(tx, params, grads_seq)
    assert int(optax.tree.get(state, "count")) == 7 == int(mxopt.update_count(state))
    assert same_bits(optax.tree.set(state, count=jnp.int32(0)), mxopt.counting.set_count(state, 0))


# Integer arguments that shape the update (loop lengths, a seed), static under optax.
STATIC = {"lbsgd": ["warmup_epochs", "batch_scale", "updates_per_epoch", "begin_epoch",
                    "num_epochs"], "sgld": ["seed"]}


@pytest.mark.parametrize("name", NAMES)
def test_inject_hyperparams_wraps_the_constructor(name):
    constructor = mxopt.registry.lookup(name)
    kwargs = {"wd": 0.0 if name in ("groupadagrad", "test") else 1e-3}
    injected = optax.inject_hyperparams(constructor, static_args=STATIC.get(name, ()))(**kwargs)
    params, grads_seq = small_problem(name)
    state = injected.init(params)
    assert state.hyperparams["rescale_grad"] == 1.0
    step = jax.jit(injected.update)
    updates, state = step(grads_seq[0], state, params)
    plain_tx = constructor(**kwargs)
    plain_step = jax.jit(plain_tx.update)
    expected, plain_state = plain_step(grads_seq[0], plain_tx.init(params), params)
    chex_close(updates, expected)
    state = mxopt.set_hyperparams(state, rescale_grad=0.25)  # it sets optax's copy too
    assert float(state.hyperparams["rescale_grad"]) == 0.25
    updates, _ = step(grads_seq[1], state, params)
    plain_state = mxopt.set_hyperparams(plain_state, rescale_grad=0.25)
    chex_close(updates, plain_step(grads_seq[1], plain_state, params)[0])


def chex_close(actual, expected):
    for a, e in zip(jax.tree.leaves(actual), jax.tree.leaves(expected), strict=True):
        np.testing.assert_allclose(a, e, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("name", NAMES)
def test_multi_steps_and_masked(name):
    tx = optimizer(name)
    params, grads_seq = small_problem(name)
    every_two = optax.MultiSteps(tx, every_k_schedule=2)
    state = every_two.init(params)
    for grads in grads_seq:
        updates, state = jax.jit(every_two.update)(grads, state, params)
    mean = jax.tree.map(lambda *g: sum(g) / len(g), *grads_seq)
    expected, _ = tx.update(mean, tx.init(params), params)
    chex_close(updates, expected)
    assert int(mxopt.update_count(state)) == 1

    mask = {k: k != "c" for k in params}
    masked = optax.masked(tx, mask)
    updates, _ = jax.jit(masked.update)(grads_seq[0], masked.init(params), params)
    kept = {k: v for k, v in params.items() if mask[k]}
    expected, _ = tx.update({k: grads_seq[0][k] for k in kept}, tx.init(kept), kept)
    chex_close({k: updates[k] for k in kept}, expected)
    assert same_bits(updates["c"], grads_seq[0]["c"])  # optax passes masked leaves through


@pytest.mark.parametrize("name", NAMES)
def test_two_states_survive_each_others_donation(name):
    tx = optimizer(name)
    params, grads_seq = small_problem(name)
    first, second = tx.init(params), tx.init(params)
    kept = jax.tree.map(np.asarray, second)
    step = jax.jit(lambda g, s, p: tx.update(g, s, p), donate_argnums=1)
    updates, first = step(grads_seq[0], first, params)
    assert not any(leaf.is_deleted() for leaf in jax.tree.leaves((second, params)))
    assert same_bits(second, kept)
    assert same_bits(step(grads_seq[0], second, params)[0], updates)


def test_an_nnx_optimizer_state_reads_as_a_plain_one():
    model = MLP(True, nnx.Rngs(0))
    tx = mxopt.sgd(learning_rate=0.1, momentum=0.9)
    opt = nnx.Optimizer(model, tx, wrt=nnx.Param)
    assert mxopt.describe(opt.opt_state) == mxopt.describe(tx.init(plain_tree(model)))
    assert "TraceState(momentum=0.9, trace={'dense0': {'bias': f32[8]" in mxopt.describe(
        opt.opt_state, max_leaves=8)


def plain_tree(model):
    return nnx.to_pure_dict(nnx.state(model, nnx.Param))


def test_check_trees_takes_variables_at_init_and_arrays_at_update():
    model = MLP(True, nnx.Rngs(0))
    opt = nnx.Optimizer(model, mxopt.check_trees(mxopt.adam(learning_rate=0.1)), wrt=nnx.Param)
    grads = nnx.grad(lambda m: mse(m))(model)
    opt.update(model, grads)
    wrong = jax.tree.map(lambda g: g[..., :1], nnx.as_pure(nnx.state(grads)))
    with pytest.raises(ValueError, match="'dense0/bias' has shape \\(1,\\)"):
        opt.tx.update(wrong, nnx.as_pure(opt.opt_state), nnx.as_pure(nnx.state(model, nnx.Param)))
