"""Sharded and multi-device training on the 8 simulated CPU devices of conftest.py.

Each test checks the numbers against the same steps on one device, and the
placement: state made where its params are, compiled updates that move no
state or param between devices, and outputs placed like the inputs.
"""

import contextlib
import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from full_state import accepted, build, draw
from jax.sharding import AxisType, NamedSharding
from jax.sharding import PartitionSpec as P

import mxopt
from mxopt import sharding

# A leaf of each kind of placement: split by columns, by rows, by both axes, replicated.
LAYOUT = {
    "dense0_weight": ((8, 16), P(None, "model")),
    "dense0_bias": ((16,), P("model")),
    "dense1_weight": ((16, 8), P("model", None)),
    "emb_weight": ((12, 4), P("data", "model")),
    "bn0_gamma": ((3,), P(None)),
}
MOVES = ("all-gather", "all-to-all", "collective-permute")


def layout(name):
    return accepted(name, LAYOUT)


def mesh_2d(axis_type):
    return jax.make_mesh((2, 4), ("data", "model"), axis_types=(axis_type,) * 2)


def apply_step(tx):
    def step(params, state, grads):
        updates, state = tx.update(grads, state, params)
        return optax.apply_updates(params, updates), state
    return step


def collectives(compiled) -> set[str]:
    return set(re.findall(r"\b(all-gather|all-to-all|collective-permute|all-reduce|"
                          r"reduce-scatter)\b", compiled.as_text()))


def assert_close(actual, expected):
    def check(path, a, e):
        np.testing.assert_allclose(np.asarray(a, np.float32), np.asarray(e, np.float32),
                                   rtol=1e-6, atol=1e-6, err_msg=jax.tree_util.keystr(path))
    jax.tree_util.tree_map_with_path(check, actual, expected)


def test_devices_are_simulated():
    assert jax.device_count() == 8


# jax.make_mesh's default axes are explicit: every optimizer runs on them. Automatic
# axes, and bfloat16 weights with float32 master copies, are checked on a few.
@pytest.mark.parametrize("name,axis_type,dtype", [
    *((name, AxisType.Explicit, jnp.float32) for name in mxopt.registered_names()),
    *((name, AxisType.Explicit, jnp.bfloat16) for name in ("sgd", "adam", "lamb", "lars")),
    *((name, AxisType.Auto, jnp.float32) for name in ("sgd", "adam", "lamb", "groupadagrad"))])
def test_jit_over_a_2d_mesh_keeps_every_leaf_where_it_is(name, axis_type, dtype):
    mesh = mesh_2d(axis_type)
    specs = layout(name)
    # Written as jit writes its outputs' specs, so that the inputs' match them.
    placement = {k: sharding.spec_sharding(mesh, len(shape), {d: a for d, a in enumerate(spec)
                                                              if a})
                 for k, (shape, spec) in specs.items()}
    shapes = {k: shape for k, (shape, _) in specs.items()}
    # rescale_grad given, so that setting it is no new program (at 1 it would be off)
    tx = build(name, multi_precision=dtype != jnp.float32, rescale_grad=2.0)
    params, grads = draw(shapes, 0, dtype), draw(shapes, 1, dtype)
    sharded_params = jax.device_put(params, placement)
    sharded_grads = jax.device_put(grads, placement)
    state = tx.init(sharded_params)

    for path, leaf in jax.tree_util.tree_leaves_with_path(state):
        where = jax.tree_util.keystr(path)
        assert leaf.sharding.mesh == mesh, where
        param = next((k for k in shapes if f"['{k}']" in where), None)
        if param is None or leaf.ndim == 0:  # hyperparameters, counts, LARS's leaf norms
            assert leaf.sharding.is_fully_replicated, where
        else:  # a moment or master copy, or GroupAdaGrad's (rows, 1) history
            expected = placement[param] if leaf.shape == shapes[param] else \
                NamedSharding(mesh, P(specs[param][1][0], None))
            assert leaf.sharding.is_equivalent_to(expected, leaf.ndim), where

    step = jax.jit(apply_step(tx))
    assert not collectives(step.lower(sharded_params, state, sharded_grads).compile()) & \
        set(MOVES)
    expected_params, expected_state, reference = params, tx.init(params), jax.jit(apply_step(tx))
    for i in range(4):
        if i == 3:  # new hyperparameters are placed like the old
            state = mxopt.set_hyperparams(state, rescale_grad=0.5)
            expected_state = mxopt.set_hyperparams(expected_state, rescale_grad=0.5)
        sharded_params, state = step(sharded_params, state, sharded_grads)
        expected_params, expected_state = reference(expected_params, expected_state, grads)
    assert step._cache_size() == 1  # the outputs are placed like the inputs
    for k, leaf in sharded_params.items():
        assert leaf.sharding.is_equivalent_to(placement[k], leaf.ndim), k
    assert_close(sharded_params, expected_params)
    assert_close(jax.tree.leaves(state), jax.tree.leaves(expected_state))


def meshes():
    """The 4x2 meshes of both axis types: one of jax.sharding.Mesh's default (Auto) axes,
    the most common, and jax.make_mesh's explicit ones."""
    devices = np.array(jax.devices()).reshape(4, 2)
    return {"auto": jax.sharding.Mesh(devices, ("data", "model")),
            "explicit": jax.make_mesh((4, 2), ("data", "model"),
                                      axis_types=(AxisType.Explicit,) * 2)}


def param_of(path, params):
    """The param a state leaf belongs to: the one its path ends with, if any."""
    key = getattr(path[-1], "key", None)
    return params.get(key) if isinstance(key, str) else None


@pytest.mark.parametrize("in_context", [False, True], ids=["plain", "set_mesh"])
@pytest.mark.parametrize("mesh_kind", ["auto", "explicit"])
@pytest.mark.parametrize("name", mxopt.registered_names())
def test_jitted_init_places_every_state_leaf_like_its_param(name, mesh_kind, in_context):
    mesh = meshes()[mesh_kind]
    specs = layout(name)
    placement = {k: NamedSharding(mesh, spec) for k, (_, spec) in specs.items()}
    params = jax.device_put(draw({k: s for k, (s, _) in specs.items()}, 0), placement)
    grads = jax.device_put(draw({k: s for k, (s, _) in specs.items()}, 1), placement)
    tx = build(name)
    traces = []

    def step(params, state):
        traces.append(None)
        updates, state = tx.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    with jax.set_mesh(mesh) if in_context else contextlib.nullcontext():
        state = jax.jit(tx.init)(params)
        stepped = jax.jit(step)(params, state)
        jax.jit(step)(*stepped)
    for path, leaf in jax.tree_util.tree_flatten_with_path(state)[0]:
        where, param = jax.tree_util.keystr(path), param_of(path, params)
        assert leaf.sharding.device_set == set(mesh.devices.flat), where
        if param is None or leaf.ndim == 0:  # scalars (LARS's leaf norms too), PRNG keys
            assert leaf.sharding.is_fully_replicated, where
        elif leaf.shape == param.shape:
            assert leaf.sharding.is_equivalent_to(param.sharding, leaf.ndim), where
        else:  # GroupAdaGrad's history, a value per row: split as the rows
            rows = [(*sharding.spec, None)[0] for sharding in (leaf.sharding, param.sharding)]
            assert rows[0] == rows[1], where
    assert len(traces) == 1  # the step returns the state placed as it took it: no recompile
    for before, after in zip(jax.tree.leaves(state), jax.tree.leaves(stepped[1]), strict=True):
        assert after.sharding.is_equivalent_to(before.sharding, before.ndim)


# A small regression network, trained data-parallel on a batch of 32.
NETWORK = {"dense0_weight": (8, 16), "dense0_bias": (16,), "dense1_weight": (16, 4),
           "dense1_bias": (4,)}
DATA_PARALLEL = ["sgd", "nag", "adam", "lamb", "rmsprop", "lars"]


def loss_fn(params, x, y):
    hidden = jnp.tanh(x @ params["dense0_weight"] + params["dense0_bias"])
    return jnp.mean((hidden @ params["dense1_weight"] + params["dense1_bias"] - y) ** 2)


def batches(steps=3):
    rng = np.random.default_rng(2)
    return [(jnp.asarray(rng.normal(size=(32, 8)), jnp.float32),
             jnp.asarray(rng.normal(size=(32, 4)), jnp.float32)) for _ in range(steps)]


def one_device_run(tx, params, data, set_at=None):
    """The training steps on one device; ``set_at = (step, hyperparameters)`` sets them there."""
    @jax.jit
    def step(params, state, x, y):
        return apply_step(tx)(params, state, jax.grad(loss_fn)(params, x, y))

    state = tx.init(params)
    for i, (x, y) in enumerate(data):
        if set_at and i == set_at[0]:
            state = mxopt.set_hyperparams(state, **set_at[1])
        params, state = step(params, state, x, y)
    return params, state


@pytest.mark.parametrize("name", DATA_PARALLEL)
def test_pmap_with_averaged_gradients_matches_one_device(name):
    tx, params, data = build(name), draw(NETWORK, 0), batches()

    def step(params, state, x, y):
        grads = jax.lax.pmean(jax.grad(loss_fn)(params, x, y), axis_name="batch")
        return apply_step(tx)(params, state, grads)
    step = jax.pmap(step, axis_name="batch")

    replicated = jax.tree.map(lambda leaf: jnp.broadcast_to(leaf, (8, *leaf.shape)), params)
    state = jax.pmap(tx.init)(replicated)
    for i, (x, y) in enumerate(data):
        if i == 1:  # each device's copy of the state takes the new value
            state = jax.vmap(lambda s: mxopt.set_hyperparams(s, learning_rate=0.02))(state)
        replicated, state = step(replicated, state, x.reshape(8, 4, 8), y.reshape(8, 4, 4))

    expected, _ = one_device_run(tx, params, data, set_at=(1, {"learning_rate": 0.02}))
    for k, leaf in replicated.items():
        assert leaf.shape == (8, *NETWORK[k])
        for device_copy in leaf:
            np.testing.assert_allclose(device_copy, expected[k], rtol=1e-5, atol=1e-6, err_msg=k)


@pytest.mark.parametrize("name", DATA_PARALLEL)
def test_shard_map_with_averaged_gradients_matches_one_device(name):
    tx, params, data = build(name), draw(NETWORK, 0), batches()
    mesh = jax.make_mesh((8,), ("data",))

    @jax.jit
    @jax.shard_map(mesh=mesh, in_specs=(P(), P(), P("data"), P("data")), out_specs=(P(), P()))
    def step(params, state, x, y):
        # The gradient of the mean loss over all devices' batches: params are the same on
        # every device, so shard_map sums their gradient across devices.
        grads = jax.grad(lambda p: jax.lax.pmean(loss_fn(p, x, y), "data"))(params)
        return apply_step(tx)(params, state, grads)

    replicated = jax.device_put(params, NamedSharding(mesh, P()))
    state = tx.init(replicated)
    for x, y in data:
        replicated, state = step(replicated, state, *jax.device_put((x, y), NamedSharding(
            mesh, P("data"))))
    assert_close(replicated, one_device_run(tx, params, data)[0])


@pytest.mark.parametrize("name,dtype", [*((name, jnp.float32) for name in DATA_PARALLEL),
                                        ("adam", jnp.bfloat16), ("sgld", jnp.float32)])
def test_partition_states_splits_the_state_and_matches_one_device(name, dtype):
    """ZeRO-1: 1/8 of each state leaf per device, the same numbers as one device."""
    inner, params, data = build(name, multi_precision=dtype != jnp.float32), \
        draw(NETWORK, 0, dtype), batches()
    mesh = jax.make_mesh((8,), ("data",))
    tx = sharding.partition_states(inner, mesh, "data")
    one_device, _ = one_device_run(inner, params, data)  # before the donated buffers go

    def step(params, state, x, y):
        return apply_step(tx)(params, state, jax.grad(loss_fn)(params, x, y))
    step = jax.jit(step, donate_argnums=(0, 1))

    replicated = jax.tree.map(
        lambda leaf: jax.device_put(leaf, sharding.spec_sharding(mesh, leaf.ndim)), params)
    state = tx.init(replicated)
    split = {k: sharding.spec_sharding(mesh, len(shape), {0: "data"})
             for k, shape in NETWORK.items() if shape[0] % 8 == 0}
    for path, leaf in jax.tree_util.tree_leaves_with_path(state):
        where = jax.tree_util.keystr(path)
        param = next((k for k in split if f"['{k}']" in where), None)
        expected = split[param] if param and leaf.ndim else sharding.spec_sharding(mesh, leaf.ndim)
        assert leaf.sharding == expected, where

    whole = sum(leaf.nbytes for leaf in jax.tree.leaves(state))
    held = sharding.state_bytes_per_device(state)
    unsplit = sum(leaf.nbytes for leaf in jax.tree.leaves(state)
                  if leaf.sharding.is_fully_replicated)
    assert len(held) == 8
    assert set(held.values()) == {unsplit + (whole - unsplit) // 8}

    compiled = step.lower(replicated, state, *data[0]).compile()
    assert collectives(compiled) & set(MOVES) == {"all-gather"}
    for x, y in data:
        replicated, state = step(replicated, state, x, y)
    assert step._cache_size() == 1
    for leaf in jax.tree.leaves(replicated):
        assert leaf.sharding.is_fully_replicated
    assert_close(replicated, one_device)


def test_partition_states_rejects_sharded_params_and_unknown_axes():
    mesh = jax.make_mesh((8,), ("data",))
    with pytest.raises(ValueError, match="axis 'model' is not an axis"):
        sharding.partition_states(build("adam"), mesh, "model")
    params = draw(NETWORK, 0)
    params["dense0_weight"] = jax.device_put(params["dense0_weight"],
                                             NamedSharding(mesh, P("data")))
    with pytest.raises(ValueError, match=r"dense0_weight.*is sharded P\('data',\)"):
        sharding.partition_states(build("adam"), mesh).init(params)


@pytest.mark.parametrize("name", mxopt.registered_names())
def test_a_jitted_step_can_donate_every_optimizers_state(name):
    """Each state leaf has a buffer of its own (two moments once shared one zeros_like)."""
    tx, shapes = build(name, multi_precision=True), {k: s for k, (s, _) in layout(name).items()}
    params, grads = draw(shapes, 0, jnp.float16), draw(shapes, 1, jnp.float16)
    expected = jax.jit(apply_step(tx))(params, tx.init(params), grads)
    donated = jax.jit(apply_step(tx), donate_argnums=(0, 1))(dict(params), tx.init(params), grads)
    assert_close(donated, expected)
