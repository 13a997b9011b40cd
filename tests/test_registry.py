"""Every optimizer in MXNet 1.9.1's registry is in mxopt's, with MXNet's defaults.

MXNet's names and constructor defaults were recorded by tools/record_mxnet.py.
"""

import dataclasses
import inspect

import jax.numpy as jnp
import numpy as np
import pytest
from mxnet_divergences import IGNORE_LEARNING_RATE
from mxnet_fixtures import load

import mxopt
from mxopt.optimizers._base import Base
from mxopt.registry import _REGISTRY

REGISTRY = load("registry")
MXNET_NAMES = sorted(REGISTRY["optimizers"])
BASE_DEFAULTS = {f.name: f.default for f in dataclasses.fields(Base)}
# Base-class arguments of MXNet's that name things mxopt's pure functions do
# not have (the object surface takes them).
OBJECT_ONLY = {"param_idx2name", "sym", "param_dict"}


def test_every_mxnet_optimizer_is_registered():
    assert set(MXNET_NAMES) <= set(mxopt.registered_names())


@pytest.mark.parametrize("name", MXNET_NAMES)
def test_defaults_are_mxnets(name):
    own = inspect.signature(_REGISTRY[name]).parameters
    mxnet = {**REGISTRY["base"], **REGISTRY["optimizers"][name]}
    for arg, default in mxnet.items():
        if arg in OBJECT_ONLY or arg == "learning_rate":
            continue
        if arg in own:
            assert own[arg].default == default, arg
        else:
            assert arg in BASE_DEFAULTS, f"mxopt's {name} lacks MXNet's argument {arg!r}"
            assert BASE_DEFAULTS[arg] == default, arg


@pytest.mark.parametrize("name", MXNET_NAMES)
def test_default_learning_rate_is_mxnets(name):
    mxnet = {**REGISTRY["base"], **REGISTRY["optimizers"][name]}
    default = 0.01 if mxnet["learning_rate"] is None else mxnet["learning_rate"]
    params = {"w": jnp.ones((2, 3))}
    held = mxopt.get_hyperparams(mxopt.create(name).init(params))
    if "learning_rate" in held:
        np.testing.assert_allclose(held["learning_rate"], default, rtol=1e-7)
    else:
        assert name in IGNORE_LEARNING_RATE, f"{name} holds no learning rate"


def test_an_optimizer_reprs_as_the_call_that_built_it():
    schedule = mxopt.FactorScheduler(step=10, base_lr=0.1)
    built = mxopt.create("sgd", momentum=0.9, lr_scheduler=schedule, wd_mult={"b": 0.0})
    assert repr(built) == ("sgd(momentum=0.9, lr_scheduler=FactorScheduler(base_lr=0.1, "
                           "step=10), wd_mult={'b': 0.0})")
    assert repr(mxopt.nag(0.5)) == "nag(momentum=0.5)" and repr(mxopt.adam()) == "adam()"
    assert repr(eval(repr(built), vars(mxopt))) == repr(built)


def test_a_registered_constructor_is_described_once():
    def halved_sgd(**kwargs):
        return mxopt.sgd(**kwargs, rescale_grad=0.5)

    registered = mxopt.register(halved_sgd, name="halved_sgd_for_repr")
    try:
        assert mxopt.register(registered, name="halved_sgd_for_repr") is registered
        assert repr(mxopt.create("halved_sgd_for_repr", wd=0.1)) == "halved_sgd(wd=0.1)"
    finally:
        del _REGISTRY["halved_sgd_for_repr"]
