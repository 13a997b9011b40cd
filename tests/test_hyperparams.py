"""Hyperparameters are declared by their state fields: set_hyperparams applies the rule the
constructor applies, to Python, NumPy and JAX scalars, wherever a state holds them."""

import math

import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax.core import FrozenDict
from full_state import accepted, build, draw
from hypothesis import given, settings
from strategies import floats
from trajectory import same_bits

import mxopt
from mxopt import hyperparams, validation
from mxopt.structure import state_nodes

NAMES = mxopt.registered_names()
NOT_FINITE = st.sampled_from([math.inf, -math.inf, math.nan])
# Values each rule refuses, and values it takes.
INVALID = {
    validation.decay_rate: floats(-10, -1e-6) | floats(1, 10) | NOT_FINITE,
    validation.positive: floats(-10, 0) | NOT_FINITE,
    validation.non_negative: floats(-10, -1e-6) | NOT_FINITE,
    validation.real: NOT_FINITE,
}
# (Not float32's subnormals, which XLA on CPU flushes to 0: issue "Hostile files and bad input".)
VALID = {
    validation.decay_rate: st.just(0.0) | floats(1e-6, 0.99),
    validation.positive: floats(1e-6, 10),
    validation.non_negative: st.just(0.0) | floats(1e-6, 10),
    validation.real: st.just(0.0) | floats(1e-6, 10) | floats(-10, -1e-6),
}
# Multipliers too, so that their fields are in the state.
MULTIPLIERS = {"lr_mult": 1.0, "wd_mult": 1.0}


def full(name):
    params = draw(accepted(name, {"w": (3, 4), "b": (4,)}), 0)
    return params, build(name, **MULTIPLIERS).init(params)


def declared(state):
    """``{name: declaration}`` of every hyperparameter ``state`` holds."""
    return {field: declaration for node in state_nodes(state)
            for field, declaration in hyperparams.declarations(type(node)).items()
            if getattr(node, field) is not None}


def drawn(data, name):
    """Params, the full state of optimizer ``name``, and one of its hyperparameters, drawn."""
    params, state = full(name)
    return params, state, *data.draw(st.sampled_from(sorted(declared(state).items())))


def test_every_optimizer_declares_rules_the_tests_know():
    for name in NAMES:
        rules = {d.rule for d in declared(full(name)[1]).values()}
        assert rules <= set(INVALID), name


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=20, deadline=None)
@given(data=st.data())
def test_set_hyperparams_refuses_every_value_the_constructor_refuses(name, data):
    _, state, field, declaration = drawn(data, name)
    bad = data.draw(INVALID[declaration.rule])
    bad = -abs(bad) - 0.5 if declaration.per_leaf and math.isfinite(bad) else bad
    with pytest.raises(ValueError, match=field):
        build(name, **{**MULTIPLIERS, field: bad})
    with pytest.raises(ValueError, match=field):
        mxopt.set_hyperparams(state, **{field: bad})
    with pytest.raises(ValueError, match=field):
        mxopt.set_hyperparams(state, **{field: jnp.float32(bad)})


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=10, deadline=None)
@given(data=st.data())
def test_set_hyperparams_takes_python_numpy_and_jax_scalars_alike(name, data):
    params, state, field, declaration = drawn(data, name)
    value = data.draw(VALID[declaration.rule])
    if field == "momentum" and value == 0:
        value = 0.5  # a built momentum of 0 keeps no buffer, so the state would differ
    expected = mxopt.set_hyperparams(state, **{field: value})
    assert same_bits(mxopt.set_hyperparams(state, **{field: np.float64(value)}), expected)
    in_float32 = mxopt.set_hyperparams(state, **{field: float(np.float32(value))})
    for given_as in (np.float32(value), jnp.float32(value), jnp.float32(value) * 1):
        assert same_bits(mxopt.set_hyperparams(state, **{field: given_as}), in_float32)
    built = build(name, **{**MULTIPLIERS, field: value}).init(params)
    held = mxopt.get_hyperparams(expected)[field]
    np.testing.assert_array_equal(jax.tree.leaves(held),
                                  jax.tree.leaves(mxopt.get_hyperparams(built)[field]))


def test_eps_zero_is_refused_by_adagrad_as_by_its_constructor():
    state = mxopt.adagrad().init({"w": jnp.ones(3)})
    with pytest.raises(ValueError, match="eps must be > 0"):
        mxopt.adagrad(eps=0.0)
    with pytest.raises(ValueError, match="eps must be > 0"):
        mxopt.set_hyperparams(state, eps=0.0)
    lars = mxopt.lars(momentum=0.9).init({"w": jnp.ones(3)})  # LARS's eps may be 0
    assert float(mxopt.get_hyperparams(mxopt.set_hyperparams(lars, eps=0.0))["eps"]) == 0.0


def test_a_value_read_back_and_halved_outside_jit_is_taken():
    tx = mxopt.sgd(learning_rate=0.1, momentum=0.9)
    state = tx.init({"w": jnp.ones(3)})
    half = mxopt.get_hyperparams(state)["learning_rate"] * 0.5
    state = mxopt.set_hyperparams(state, learning_rate=half)
    assert float(mxopt.next_learning_rate(tx, state)) == np.float32(0.05)
    with pytest.raises(ValueError, match="learning_rate must be a scalar"):
        mxopt.set_hyperparams(state, learning_rate=jnp.ones(2))


def test_hyperparameters_are_found_in_any_pytree():
    tx = mxopt.adam(learning_rate=0.1)
    state = tx.init({"w": jnp.ones(3)})
    for holder in (FrozenDict(opt=state), {"a": [state]},
                   optax.MultiSteps(tx, 2).init({"w": jnp.ones(3)})):
        assert float(mxopt.get_hyperparams(holder)["beta1"]) == np.float32(0.9)
        changed = mxopt.set_hyperparams(holder, beta1=0.5)
        assert type(changed) is type(holder)
        assert float(mxopt.get_hyperparams(changed)["beta1"]) == 0.5
    with pytest.raises(ValueError, match=r"no hyperparameter 'momentum'.*'beta1'"):
        mxopt.set_hyperparams(state, momentum=0.9)


def test_an_exact_hyperparameter_keeps_its_double_precision_residual():
    state = mxopt.set_hyperparams(mxopt.adam().init({"w": jnp.ones(2)}), beta2=0.9999)
    (adam,) = [n for n in state_nodes(state) if type(n).__name__ == "ScaleByAdamState"]
    assert float(adam.beta2) + float(adam.beta2_residual) == pytest.approx(0.9999, abs=1e-12)


def test_multipliers_take_any_spec_by_leaf_name():
    params = {"dense": {"w": jnp.ones((2, 3)), "b": jnp.ones(3)}}
    tx = mxopt.sgd(learning_rate=0.1, lr_mult=1.0)
    state = mxopt.set_hyperparams(tx.init(params), lr_mult={"dense/b": 0.5})
    rates = mxopt.next_learning_rate(tx, state, params)
    assert jax.tree.map(float, rates) == {"dense": {"b": np.float32(0.05), "w": np.float32(0.1)}}
    with pytest.raises(ValueError, match="lr_mult names \\['dense/c'\\] match no params leaf"):
        mxopt.set_hyperparams(state, lr_mult={"dense/c": 0.5})


def test_next_learning_rate_follows_the_schedule_from_the_count():
    schedule = mxopt.FactorScheduler(step=2, factor=0.5, base_lr=1.0)
    tx = mxopt.sgd(lr_scheduler=schedule, begin_num_update=3)
    params = {"w": jnp.ones(2)}
    state = tx.init(params)
    step = jax.jit(lambda s: tx.update({"w": jnp.ones(2)}, s, params)[1])
    for _ in range(3):
        assert float(mxopt.next_learning_rate(tx, state)) == float(
            schedule(mxopt.update_count(state) + 1))
        state = step(state)
    assert int(mxopt.update_count(state)) == 6
    with pytest.raises(ValueError, match="no learning rate"):
        mxopt.next_learning_rate(mxopt.adadelta(), mxopt.adadelta().init(params))
    with pytest.raises(ValueError, match="no mxopt optimizer"):
        mxopt.next_learning_rate(optax.sgd(0.1), state)
