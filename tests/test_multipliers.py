"""lr_mult / wd_mult given as a number, a name mapping, a callable or a pytree."""

import jax.numpy as jnp
import numpy as np
import optax
import pytest

import mxopt
from mxopt import multipliers

PARAMS = {"conv": {"weight": jnp.ones(2), "bias": jnp.ones(2)}, "fc": [jnp.ones(3)]}


def _values(tree):
    return {k: float(v) for k, v in mxopt.structure.named_leaves(tree)}


@pytest.mark.parametrize("spec,expected", [
    (2.0, {"conv/bias": 2.0, "conv/weight": 2.0, "fc/0": 2.0}),
    ({"conv/bias": 0.0}, {"conv/bias": 0.0, "conv/weight": 1.0, "fc/0": 1.0}),
    (lambda name, leaf: leaf.size * (name != "fc/0"), {"conv/bias": 2.0, "conv/weight": 2.0,
                                                       "fc/0": 0.0}),
    ({"conv": {"weight": 3.0, "bias": 0.5}, "fc": [0.25]},
     {"conv/bias": 0.5, "conv/weight": 3.0, "fc/0": 0.25}),
])
def test_spec_forms_resolve_per_leaf(spec, expected):
    assert _values(multipliers.resolve(spec, PARAMS, "lr_mult")) == expected


def test_unknown_name_is_an_error_listing_leaves():
    with pytest.raises(ValueError, match=r"lr_mult names \['conv/gamma'\].*conv/bias"):
        multipliers.resolve({"conv/gamma": 2.0}, PARAMS, "lr_mult")


def test_negative_or_nan_multiplier_is_named():
    with pytest.raises(ValueError, match=r"wd_mult\['fc/0'\]"):
        multipliers.resolve({"fc/0": -1.0}, PARAMS, "wd_mult")
    with pytest.raises(ValueError, match=r"lr_mult\['conv/bias'\]"):
        multipliers.resolve({"conv/bias": float("nan")}, PARAMS, "lr_mult")


def test_pytree_with_wrong_structure_is_named():
    with pytest.raises(ValueError, match="lr_mult"):
        multipliers.resolve({"conv": {"weight": 1.0}, "fc": [1.0, 2.0]}, PARAMS, "lr_mult")


def test_multipliers_scale_the_step_and_the_decay():
    tx = mxopt.sgd(learning_rate=0.5, wd=0.2, lr_mult={"conv/bias": 2.0},
                   wd_mult={"conv/weight": 0.0})
    grads = {"conv": {"weight": jnp.ones(2), "bias": jnp.ones(2)}, "fc": [jnp.ones(3)]}
    updates, state = tx.update(grads, tx.init(PARAMS), PARAMS)
    # update = -lr * lr_mult * (g + wd * wd_mult * w) with w = g = 1
    np.testing.assert_allclose(updates["conv"]["weight"], -0.5 * (1 + 0.0))
    np.testing.assert_allclose(updates["conv"]["bias"], -1.0 * (1 + 0.2))
    np.testing.assert_allclose(updates["fc"][0], -0.5 * (1 + 0.2))
    assert optax.tree_utils.tree_get(state, "lr_mult")["conv"]["bias"] == 2.0
