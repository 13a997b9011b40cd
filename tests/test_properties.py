"""Properties every registered optimizer keeps, over random shapes, dtypes and hyperparameters.

* jit and no-jit give the same updates;
* states keep the params' structure: every state subtree shaped like the
  params has the params' shapes, and their dtypes (float32 masters and
  moments under ``multi_precision``);
* finite inputs give finite weights and states;
* a zero gradient without weight decay leaves the weights of every
  optimizer but FTRL (which moves to its proximal point) and SGLD (noise)
  unchanged.
"""

import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given, settings
from mxnet_fixtures import load
from strategies import floats

import mxopt
from mxopt.optimizers.lars import LeafNormsState

DTYPES = (jnp.float32, jnp.bfloat16, jnp.float16)
# Update agreement between jit and no-jit, which may fuse float operations
# differently: a few units in the last place of each dtype.
RTOL = {jnp.dtype(jnp.float32): 1e-5, jnp.dtype(jnp.bfloat16): 3e-2,
        jnp.dtype(jnp.float16): 4e-3}


def _decay(low=0.0, high=0.99):
    return floats(low, high)


def _positive(low, high):
    return floats(low, high)


def _momentum():
    return st.sampled_from([0.0, 0.9]) | _decay()


def _betas(**fixed):
    return {"beta1": _decay(), "beta2": _decay(0.5, 0.9999), **fixed}


# Valid values of each optimizer's own arguments.
HYPERPARAMETERS = {
    "sgd": {"momentum": _momentum()},
    "ccsgd": {"momentum": _momentum()},
    "nag": {"momentum": _momentum()},
    "adam": {**_betas(), "epsilon": _positive(1e-8, 1e-3)},
    "signum": {"momentum": _momentum(), "wd_lh": st.sampled_from([0.0]) | _positive(0, 0.1)},
    "ftml": {**_betas(), "epsilon": _positive(1e-8, 1e-3)},
    "lars": {"momentum": _momentum(), "eta": _positive(1e-4, 0.1), "eps": _positive(0, 1e-3),
             "momentum_correction": st.booleans()},
    "lbsgd": {"momentum": _momentum(),
              "warmup_strategy": st.sampled_from(["linear", "power2", "sqrt", "lars"]),
              "warmup_epochs": st.integers(0, 3), "batch_scale": st.integers(1, 3),
              "updates_per_epoch": st.integers(1, 4), "begin_epoch": st.integers(0, 2)},
    "lamb": {**_betas(), "epsilon": _positive(1e-8, 1e-3),
             "lower_bound": st.none() | _positive(1e-3, 0.5),
             "upper_bound": st.none() | _positive(1.0, 10.0), "bias_correction": st.booleans()},
    "dcasgd": {"momentum": _momentum(), "lamda": _positive(0, 1)},
    "sgld": {},
    "adagrad": {"eps": _positive(1e-8, 1e-3)},
    "groupadagrad": {"eps": _positive(1e-8, 1e-3)},
    "rmsprop": {"gamma1": _decay(), "gamma2": _decay(), "epsilon": _positive(1e-8, 1e-3),
                "centered": st.booleans(), "clip_weights": st.none() | _positive(0.1, 2.0)},
    "adadelta": {"rho": _decay(0.5, 0.99), "epsilon": _positive(1e-8, 1e-3)},
    "ftrl": {"lamda1": _positive(0, 0.1), "beta": _positive(0, 2)},
    "adamax": _betas(),
    "bertadam": {**_betas(), "epsilon": _positive(1e-8, 1e-3)},
    "nadam": {**_betas(), "epsilon": _positive(1e-8, 1e-3),
              "schedule_decay": _positive(0, 0.01)},
    "test": {},
}
NO_WEIGHT_DECAY = {"groupadagrad", "test"}
TWO_DIMENSIONAL = {"groupadagrad"}
# A zero gradient moves these: FTRL to its proximal point, SGLD by its noise.
MOVES_WITHOUT_GRADIENT = {"ftrl", "sgld"}
# FTML's weight is recomputed as -z / d, which returns it within rounding.
UNCHANGED_WITHIN_ROUNDING = {"ftml"}
# State leaves that are not shaped like their param: GroupAdaGrad's row history.
ROW_STATE = {"groupadagrad"}


def test_every_mxnet_optimizer_has_a_hyperparameter_space():
    assert set(load("registry")["optimizers"]) == set(HYPERPARAMETERS)


@st.composite
def problems(draw, name):
    """Params, a few gradients, and keyword arguments for optimizer ``name``."""
    kwargs = {arg: draw(values) for arg, values in HYPERPARAMETERS[name].items()}
    kwargs["learning_rate"] = draw(floats(1e-3, 0.1))
    if name not in NO_WEIGHT_DECAY and draw(st.booleans()):
        kwargs["wd"] = draw(floats(0, 0.1))
    if draw(st.booleans()):
        kwargs["clip_gradient"] = draw(floats(0.1, 2.0))
    dtype = draw(st.sampled_from(DTYPES))
    if dtype != jnp.float32:
        kwargs["multi_precision"] = draw(st.booleans())
    rank = st.just(2) if name in TWO_DIMENSIONAL else st.integers(0, 3)
    shapes = draw(st.lists(rank.flatmap(lambda r: st.tuples(*[st.integers(1, 4)] * r)),
                           min_size=1, max_size=3))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    names = [f"layer{i}_weight" for i in range(len(shapes))]
    params = {n: jnp.asarray(rng.uniform(-1, 1, s), dtype) for n, s in zip(names, shapes)}
    grads = [{n: jnp.asarray(rng.normal(0, 1, s), dtype) for n, s in zip(names, shapes)}
             for _ in range(3)]
    return kwargs, params, grads


def _run(tx, params, grads, jit):
    update = jax.jit(tx.update) if jit else tx.update
    state = tx.init(params)
    trajectory = []
    for g in grads:
        updates, state = update(g, state, params)
        params = optax.apply_updates(params, updates)
        trajectory.append(params)
    return trajectory, state


def _like_params(tree, params):
    """The subtrees of ``tree`` with the structure of ``params``."""
    structure = jax.tree_util.tree_structure(params)
    found = []

    def visit(node):
        if isinstance(node, LeafNormsState):  # a float32 number per leaf, not like it
            assert all(x.shape == () and x.dtype == jnp.float32 for x in jax.tree.leaves(node))
        elif jax.tree_util.tree_structure(node) == structure:
            found.append(node)
        elif isinstance(node, (tuple, list)):
            for child in node:
                visit(child)
        elif isinstance(node, dict):
            for child in node.values():
                visit(child)

    visit(tree)
    return found


def _check_state_layout(name, state, params, multi_precision):
    subtrees = _like_params(state, params)
    for subtree in subtrees:
        for key in params:
            leaf, param = subtree[key], params[key]
            if name in ROW_STATE:
                assert leaf.shape in (param.shape, (param.shape[0], 1)), key
            else:
                assert leaf.shape == param.shape, key
            expected = jnp.float32 if multi_precision else param.dtype
            assert leaf.dtype == expected, (key, leaf.dtype)


@pytest.mark.parametrize("name", sorted(HYPERPARAMETERS))
def test_properties(name):
    @settings(max_examples=4, deadline=None, derandomize=True)
    @given(problems(name))
    def check(problem):
        kwargs, params, grads = problem
        tx = mxopt.create(name, **kwargs)
        jitted, state = _run(tx, params, grads, jit=True)
        eager, _ = _run(tx, params, grads, jit=False)
        for step, (a, b) in enumerate(zip(jitted, eager)):
            for key in params:
                assert a[key].dtype == params[key].dtype and a[key].shape == params[key].shape
                rtol = RTOL[params[key].dtype]
                np.testing.assert_allclose(np.asarray(a[key], np.float32),
                                           np.asarray(b[key], np.float32), rtol=rtol, atol=rtol,
                                           err_msg=f"{name} step {step} {key}: jit vs no-jit")
        for leaf in jax.tree.leaves(state) + jax.tree.leaves(jitted):
            if jnp.issubdtype(leaf.dtype, jnp.floating):
                assert np.isfinite(np.asarray(leaf, np.float32)).all(), name
        _check_state_layout(name, state, params, kwargs.get("multi_precision", False))

    check()


@pytest.mark.parametrize("name", sorted(set(HYPERPARAMETERS) - MOVES_WITHOUT_GRADIENT))
def test_zero_gradient_without_decay_leaves_weights(name):
    @settings(max_examples=3, deadline=None, derandomize=True)
    @given(problems(name))
    def check(problem):
        kwargs, params, _ = problem
        # Without decay, and without RMSProp's clipping of the weights themselves.
        for arg in ("wd", "wd_lh", "clip_weights"):
            kwargs.pop(arg, None)
        tx = mxopt.create(name, **kwargs)
        zeros = jax.tree.map(jnp.zeros_like, params)
        trajectory, _ = _run(tx, params, [zeros] * 2, jit=True)
        for weights in trajectory:
            for key in params:
                rtol = 4 * jnp.finfo(params[key].dtype).eps if (
                    name in UNCHANGED_WITHIN_ROUNDING) else 0
                np.testing.assert_allclose(np.asarray(weights[key], np.float32),
                                           np.asarray(params[key], np.float32), rtol=rtol,
                                           atol=0, err_msg=key)

    check()
