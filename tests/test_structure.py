"""Mismatched trees (with mxopt.check_trees) and non-float leaves fail with errors that name
the leaf; states read briefly."""

import jax
import jax.numpy as jnp
import pytest

import mxopt

PARAMS = {"dense": {"w": jnp.ones((2, 3)), "b": jnp.zeros(3)}, "head": [jnp.ones(4)]}


@pytest.mark.parametrize("name", ["sgd", "nag", "adam"])
def test_grads_with_a_missing_leaf_name_it(name):
    tx = mxopt.check_trees(mxopt.create(name, momentum=0.9) if name != "adam" else mxopt.adam())
    state = tx.init(PARAMS)
    grads = {"dense": {"w": jnp.ones((2, 3))}, "head": [jnp.ones(4)]}
    with pytest.raises(ValueError, match="dense/b"):
        tx.update(grads, state, PARAMS)


def test_grads_with_wrong_shape_name_the_leaf():
    tx = mxopt.check_trees(mxopt.sgd(momentum=0.9))
    grads = {"dense": {"w": jnp.ones((3, 2)), "b": jnp.zeros(3)}, "head": [jnp.ones(4)]}
    with pytest.raises(ValueError, match=r"'dense/w' has shape \(3, 2\)"):
        tx.update(grads, tx.init(PARAMS), PARAMS)


def test_state_from_other_params_is_reported():
    tx = mxopt.check_trees(mxopt.adam())
    state = tx.init({"a": jnp.ones(2)})
    with pytest.raises(ValueError, match="first difference at 'a'"):
        tx.update({"b": jnp.ones(2)}, state, {"b": jnp.ones(2)})


def test_params_with_extra_leaf_are_reported():
    tx = mxopt.check_trees(mxopt.sgd())
    state = tx.init({"a": jnp.ones(2)})
    with pytest.raises(ValueError, match="'b' is only in the params"):
        tx.update({"a": jnp.ones(2)}, state, {"a": jnp.ones(2), "b": jnp.ones(1)})


@pytest.mark.parametrize("bad", [jnp.array([1, 2], jnp.int32), jnp.array([True])])
def test_integer_and_boolean_leaves_are_rejected_at_init(bad):
    with pytest.raises(TypeError, match="'step'.*floating-point"):
        mxopt.sgd().init({"w": jnp.ones(2), "step": bad})


def test_weight_decay_without_params_is_explained():
    tx = mxopt.sgd(wd=0.1)
    with pytest.raises(ValueError, match="needs params"):
        tx.update({"w": jnp.ones(2)}, tx.init({"w": jnp.ones(2)}))


def test_a_state_reprs_its_hyperparameters_by_value_and_its_trees_by_shape():
    tx = mxopt.sgd(momentum=0.9, learning_rate=0.1, wd_mult={"dense/b": 0.0})
    params = {"dense": {"w": jnp.ones((2, 3)), "b": jnp.zeros(3, jnp.bfloat16)}}
    assert mxopt.describe(tx.init(params)) == """\
(
  CountState(count=0),
  RescaleState(rescale_grad=off),
  EmptyState(),
  AddDecayedWeightsState(wd=off, wd_mult={'dense': {'b': 0.0, 'w': 1.0}}),
  LearningRateState(learning_rate=0.1),
  TraceState(momentum=0.9, trace={'dense': {'b': bf16[3], 'w': f32[2,3]}}),
)"""


def test_describe_counts_the_leaves_of_a_big_tree_and_works_under_jit():
    tree = {f"layer{i}": jnp.ones((4, 4)) for i in range(7)} | {"head": jnp.ones(3, jnp.int32)}
    assert mxopt.describe(tree) == "<8 leaves: 3 i32, 112 f32>"
    assert mxopt.describe(tree, max_leaves=8).endswith("'layer6': f32[4,4], 'head': i32[3]}")
    seen = []
    jax.jit(lambda x: seen.append(mxopt.describe({"lr": x, "w": x})) or x)(jnp.float32(0.5))
    assert seen == ["{'lr': f32[], 'w': f32[]}"]  # a tracer has no value to show
    assert mxopt.describe(jnp.int32(3)) == "3" and mxopt.describe(jnp.float32(2)) == "2.0"


def test_every_state_class_reprs_readably():
    import importlib
    import pkgutil

    states = {value for info in pkgutil.walk_packages(mxopt.__path__, "mxopt.")
              for value in vars(importlib.import_module(info.name)).values()
              if isinstance(value, type) and issubclass(value, tuple)
              and value.__name__.endswith("State") and value.__module__.startswith("mxopt.")}
    assert len(states) >= 25
    # MXNet.jl's OptimizationState holds counters, not arrays: NamedTuple's repr shows them.
    not_readable = [s.__qualname__ for s in states
                    if s.__repr__ is not mxopt.describe and s.__name__ != "OptimizationState"]
    assert not not_readable, not_readable
