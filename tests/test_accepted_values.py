"""Every value an optimizer accepts gives finite steps; every value it refuses is named.

For each registered optimizer and each of its numeric arguments, values are
drawn across and beyond what float32, in which hyperparameters are held,
can hold: values that round to 0, to a subnormal or to 1, that overflow to
infinity, the ends of each argument's range, negative numbers, NaN and
log-uniform magnitudes; counts up to and past int32's range. The other
arguments keep their defaults.

* A refused value raises ValueError naming the argument, when the optimizer
  is built.
* An accepted value is held as float32 rounds it.
* An accepted value gives finite weights and states, over steps whose
  params and grads are at most 1 in magnitude (one step's grads are 0). A
  value that scales the update itself (a learning rate of 1e30, say) can
  make a step's exact result larger than float32 holds; such values are
  accepted but only checked for finiteness up to ``SCALE_LIMIT``.
"""

import dataclasses
import inspect
import math

import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given, settings
from strategies import floats

import mxopt
from mxopt import validation

F32 = np.finfo(np.float32)
BELOW_ONE = float(np.nextafter(np.float32(1), np.float32(0)))
REAL_EDGES = [0.0, -0.0, 1.0, -1.0, 0.5, 2.0, 1e-46, 1e-40, -1e-40, float(F32.tiny),
              2 * float(F32.tiny), 1e-30, 1e-8, 1 - 1e-9, BELOW_ONE, 1 - 2**-25, 1 + 1e-9, 1e4,
              1e30, float(F32.max), 3.5e38, 1e39, 1e300, math.inf, -math.inf, math.nan]
COUNT_EDGES = [0, 1, 2, -1, validation.MAX_COUNT - 1, validation.MAX_COUNT, 2**31, 2**63]
# Arguments that are not hyperparameters held as numbers.
NOT_NUMERIC = {"lr_scheduler", "lr_mult", "wd_mult", "multi_precision", "lazy_update",
               "centered", "bias_correction", "momentum_correction", "exempt", "noise",
               "warmup_strategy"}
COUNTS = {"begin_num_update", "warmup_epochs", "batch_scale", "updates_per_epoch",
          "begin_epoch", "num_epochs", "seed"}
SCALE_LIMIT = 1e4
PARAMS = {"w": jnp.array([[0.5, -1.0, 0.25]], jnp.float32), "b": jnp.array([[1.0], [-0.5]])}
GRADS = [jax.tree.map(lambda p, s=s: jnp.clip(jnp.sin(7 * p + s), -1, 1), PARAMS)
         for s in (0.3, -1.1)]
STEPS = [GRADS[0], jax.tree.map(jnp.zeros_like, PARAMS), GRADS[1]]


def numeric_arguments(name: str) -> list[str]:
    parameters = inspect.signature(mxopt.registry.lookup(name)).parameters
    return [arg for arg in parameters if arg not in NOT_NUMERIC]


CASES = [(name, arg) for name in mxopt.registered_names() for arg in numeric_arguments(name)]


def edges(arg: str) -> list:
    return COUNT_EDGES if arg in COUNTS else REAL_EDGES


def build(name: str, arg: str, value) -> optax.GradientTransformation | None:
    """The optimizer with ``arg=value``, or None if refused (checking that the refusal
    names the argument)."""
    try:
        return mxopt.create(name, **{arg: value})
    except ValueError as error:
        assert arg in str(error), (name, arg, value, str(error))
        return None


def float_leaves(tree) -> list:
    return [x for x in jax.tree.leaves(tree) if jnp.issubdtype(jnp.result_type(x), jnp.floating)]


@pytest.mark.parametrize("name, arg", CASES)
def test_edge_values_are_refused_by_name_or_held_as_float32_rounds_them(name, arg):
    accepted = []
    for value in edges(arg):
        tx = build(name, arg, value)
        if tx is None:
            continue
        accepted.append(value)
        held = mxopt.get_hyperparams(tx.init(PARAMS)).get(arg)
        if held is not None and not isinstance(held, dict):
            assert float(held) == float(np.float32(value)), (name, arg, value, held)
    for value in (math.nan, math.inf, 1e39, 1e-40):
        assert value not in accepted or arg in COUNTS, (name, arg, value)
    if arg in COUNTS:
        assert 2**31 not in accepted, (name, arg)


def values(arg: str) -> st.SearchStrategy:
    if arg in COUNTS:
        return st.sampled_from(COUNT_EDGES) | st.integers(0, validation.MAX_COUNT)
    magnitudes = st.floats(-46, 40).map(lambda e: 10.0**e)
    return (st.sampled_from(REAL_EDGES) | magnitudes | magnitudes.map(lambda x: -x)
            | st.floats(0, 1) | st.floats(BELOW_ONE, 1.0))


@settings(max_examples=40, deadline=None)
@given(data=st.data())
@pytest.mark.parametrize("name", mxopt.registered_names())
def test_accepted_values_give_finite_steps(name, data):
    arg = data.draw(st.sampled_from(numeric_arguments(name)), label="argument")
    value = data.draw(values(arg), label="value")
    tx = build(name, arg, value)
    if tx is None or (arg not in COUNTS and abs(value) > SCALE_LIMIT):
        return
    params, state = PARAMS, tx.init(PARAMS)
    for grads in STEPS:
        updates, state = tx.update(grads, state, params)
        params = optax.apply_updates(params, updates)
        for leaf in float_leaves((params, state)):
            assert bool(jnp.all(jnp.isfinite(leaf))), (name, arg, value, params, state)


# The values of the objects around the optimizers, checked where they are held.

def test_set_hyperparams_refuses_what_float32_would_change():
    state = mxopt.adam().init(PARAMS)
    for name, value, reason in [("beta1", 1 - 1e-9, "rounds to 1 in float32"),
                                ("epsilon", 1e-46, "below float32's smallest normal"),
                                ("learning_rate", 1e39, "overflows float32")]:
        with pytest.raises(ValueError, match=f"{name}=.*{reason}"):
            mxopt.set_hyperparams(state, **{name: value})
    held = mxopt.get_hyperparams(mxopt.set_hyperparams(state, beta1=BELOW_ONE))["beta1"]
    assert float(held) == BELOW_ONE


def test_the_object_surface_checks_like_the_constructors():
    from mxopt import optimizer as mx
    sgd = mx.create("sgd", learning_rate=0.1)
    with pytest.raises(ValueError, match="learning_rate=1e[+]39 overflows float32"):
        sgd.lr = 1e39
    with pytest.raises(ValueError, match=r"args_lr_mult\[0\] must be >= 0, got -1.0"):
        sgd.set_lr_mult({0: -1.0})
    with pytest.raises(ValueError, match=r"args_wd_mult\['w'\] must be finite"):
        sgd.set_wd_mult({"w": math.nan})
    assert sgd.lr == 0.1 and sgd.lr_mult == {}
    with pytest.raises(ValueError, match="lr=1e[+]39 overflows float32"):
        mxopt.julia.SGD(lr=1e39)


def test_counts_stop_at_the_top_of_their_range():
    tx = mxopt.adam(begin_num_update=validation.MAX_COUNT - 1)
    params, state = PARAMS, tx.init(PARAMS)
    for grads in STEPS:
        updates, state = tx.update(grads, state, params)
        params = optax.apply_updates(params, updates)
        assert all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree.leaves(params))
    assert int(mxopt.update_count(state)) == validation.MAX_COUNT
    with pytest.raises(ValueError, match=r"begin_num_update=2147483648 is beyond the update "
                                         r"count's range: counts are int32, at most 2\*\*31 - 1"):
        mxopt.adam(begin_num_update=2**31)
    with pytest.raises(ValueError, match=r"warmup_epochs \* updates_per_epoch=.* is beyond"):
        mxopt.lbsgd(warmup_epochs=2**30, updates_per_epoch=4)


SCHEDULERS = {
    "FactorScheduler": lambda d: mxopt.FactorScheduler(
        step=d.draw(st.integers(1, validation.MAX_COUNT)), factor=d.draw(floats(0, 1)),
        stop_factor_lr=d.draw(st.sampled_from([0.0, 1e-8]))),
    "MultiFactorScheduler": lambda d: mxopt.MultiFactorScheduler(
        step=sorted(d.draw(st.sets(st.integers(1, validation.MAX_COUNT), min_size=1))),
        factor=d.draw(floats(0, 1))),
    "PolyScheduler": lambda d: mxopt.PolyScheduler(
        max_update=d.draw(st.integers(2**20, validation.MAX_COUNT)),
        pwr=d.draw(floats(0, 10)), final_lr=d.draw(st.sampled_from([0.0, 1e-4]))),
    "CosineScheduler": lambda d: mxopt.CosineScheduler(
        max_update=d.draw(st.integers(2**20, validation.MAX_COUNT)),
        final_lr=d.draw(st.sampled_from([0.0, 1e-4]))),
}


@settings(max_examples=30, deadline=None)
@given(data=st.data())
@pytest.mark.parametrize("kind", sorted(SCHEDULERS))
def test_schedules_are_finite_and_non_negative_over_the_count_range(kind, data):
    warmup = data.draw(st.sampled_from([0, 10, 2**20 - 1]))
    scheduler = dataclasses.replace(SCHEDULERS[kind](data), warmup_steps=warmup, base_lr=0.1)
    counts = jnp.array([0, 1, warmup, warmup + 1, 2**30, validation.MAX_COUNT - 1,
                        validation.MAX_COUNT, data.draw(st.integers(0, validation.MAX_COUNT))],
                       jnp.int32)
    rates = jax.vmap(scheduler)(counts)
    assert bool(jnp.all(jnp.isfinite(rates) & (rates >= 0))), (scheduler, rates)
    with pytest.raises(ValueError, match=r"num_update must be an update count in \[0, 2\*\*31"):
        scheduler(-1)


@pytest.mark.parametrize("build, message", [
    (lambda: mxopt.MultiFactorScheduler(step=5), "step must list the update counts"),
    (lambda: mxopt.PolyScheduler(max_update=10, pwr=-1), "pwr must be >= 0"),
    (lambda: mxopt.FactorScheduler(step=2**31), "step=2147483648 is beyond"),
])
def test_bad_scheduler_arguments_are_named(build, message):
    with pytest.raises(ValueError, match=message):
        build()


def test_dynamic_loss_scale_never_reaches_zero():
    tx = mxopt.dynamic_loss_scale(mxopt.sgd(learning_rate=0.1))
    params, state = PARAMS, tx.init(PARAMS)
    overflow = jax.tree.map(lambda p: jnp.full_like(p, jnp.inf), PARAMS)
    step = jax.jit(tx.update)
    for _ in range(200):
        updates, state = step(overflow, state, params)
        params = optax.apply_updates(params, updates)
    assert float(mxopt.loss_scale(state)) == 2.0**-24
    scaled = jax.tree.map(lambda g: g * mxopt.loss_scale(state), GRADS[0])
    updates, state = step(scaled, state, params)
    params = optax.apply_updates(params, updates)
    np.testing.assert_allclose(params["w"], PARAMS["w"] - 0.1 * GRADS[0]["w"], rtol=1e-5)


@pytest.mark.parametrize("name", mxopt.registered_names())
def test_state_dtypes_do_not_follow_the_grads(name):
    """float16 params, float32 grads: the state keeps init's dtypes, so lax.scan carries it."""
    tx = mxopt.create(name)
    params = jax.tree.map(lambda p: p.astype(jnp.float16), PARAMS)
    state = tx.init(params)

    def step(carry, grads):
        params, state = carry
        updates, state = tx.update(grads, state, params)
        return (optax.apply_updates(params, updates), state), None

    (_, scanned), _ = jax.lax.scan(step, (params, state), jax.tree.map(
        lambda *g: jnp.stack(g), *STEPS))
    for before, after in zip(jax.tree.leaves(state), jax.tree.leaves(scanned)):
        assert before.dtype == after.dtype, name


@pytest.mark.parametrize("name", mxopt.registered_names())
def test_empty_params_give_empty_updates(name):
    tx = mxopt.create(name)
    updates, _ = tx.update({}, tx.init({}), {})
    assert updates == {}


def test_a_plain_function_schedule_may_return_a_python_number():
    tx = mxopt.sgd(lr_scheduler=lambda n: 0.1)
    updates, _ = tx.update(GRADS[0], tx.init(PARAMS), PARAMS)
    np.testing.assert_allclose(updates["w"], -0.1 * GRADS[0]["w"], rtol=1e-6)


def test_wrappers_name_what_they_were_given():
    for wrap in (mxopt.apply_if_finite, mxopt.dynamic_loss_scale, mxopt.multi_precision):
        with pytest.raises(TypeError, match="inner must be an optax.GradientTransformation"):
            wrap("sgd")
    with pytest.raises(TypeError, match="mesh must be a jax.sharding.Mesh, got 'x'"):
        mxopt.partition_states(mxopt.sgd(), mesh="x")
