"""Mismatched trees and non-float leaves fail with errors that name the leaf."""

import jax.numpy as jnp
import pytest

import mxopt

PARAMS = {"dense": {"w": jnp.ones((2, 3)), "b": jnp.zeros(3)}, "head": [jnp.ones(4)]}


@pytest.mark.parametrize("name", ["sgd", "nag", "adam"])
def test_grads_with_a_missing_leaf_name_it(name):
    tx = mxopt.create(name, momentum=0.9) if name != "adam" else mxopt.adam()
    state = tx.init(PARAMS)
    grads = {"dense": {"w": jnp.ones((2, 3))}, "head": [jnp.ones(4)]}
    with pytest.raises(ValueError, match="dense/b"):
        tx.update(grads, state, PARAMS)


def test_grads_with_wrong_shape_name_the_leaf():
    tx = mxopt.sgd(momentum=0.9)
    grads = {"dense": {"w": jnp.ones((3, 2)), "b": jnp.zeros(3)}, "head": [jnp.ones(4)]}
    with pytest.raises(ValueError, match=r"'dense/w' has shape \(3, 2\)"):
        tx.update(grads, tx.init(PARAMS), PARAMS)


def test_state_from_other_params_is_reported():
    tx = mxopt.adam()
    state = tx.init({"a": jnp.ones(2)})
    with pytest.raises(ValueError, match="first difference at 'a'"):
        tx.update({"b": jnp.ones(2)}, state, {"b": jnp.ones(2)})


def test_params_with_extra_leaf_are_reported():
    tx = mxopt.sgd()
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
