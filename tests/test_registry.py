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
from mxopt.base import Base
from mxopt.registry import lookup

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
    own = inspect.signature(lookup(name)).parameters
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
def test_positional_arguments_follow_mxnets_order_and_every_argument_is_visible(name):
    parameters = inspect.signature(lookup(name)).parameters
    positional = [n for n, p in parameters.items() if p.kind is p.POSITIONAL_OR_KEYWORD]
    # Recorded in MXNet's order; MXNet's ccSGD passes its arguments on to SGD.
    assert positional == list(REGISTRY["optimizers"]["sgd" if name == "ccsgd" else name])
    assert set(BASE_DEFAULTS) <= set(parameters)
    assert all(parameters[n].kind is not inspect.Parameter.VAR_KEYWORD for n in parameters)


@pytest.mark.parametrize("args,kwargs", [
    (("adam", 1e-3, 0.8), {"learning_rate": 1e-3, "beta1": 0.8}),
    (("ftrl", 0.02, 0.5, 2.0), {"lamda1": 0.02, "learning_rate": 0.5, "beta": 2.0}),
    (("sgd", 0.9), {"momentum": 0.9}),
    (("lbsgd", 0.9, True), {"momentum": 0.9, "multi_precision": True}),
])
def test_positional_arguments_mean_what_they_mean_in_mxnet(args, kwargs):
    name, *values = args
    params = {"w": jnp.ones((2, 3), jnp.float16)}
    by_position = lookup(name)(*values).init(params)
    assert mxopt.describe(by_position) == mxopt.describe(lookup(name)(**kwargs).init(params))
    klass = mxopt.optimizer.Optimizer.opt_registry[name]
    assert {k: getattr(klass(*values), k) for k in kwargs} == kwargs


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
        mxopt.registry.unregister("halved_sgd_for_repr")


def _layout_fields(layout) -> set[str]:
    if layout is None:
        return set()
    if isinstance(layout, str):
        return {layout}
    return set().union(*map(_layout_fields, layout))


@pytest.mark.parametrize("declaration", mxopt.registry.declarations(), ids=lambda d: d.name)
def test_each_declaration_makes_its_mxnet_class_and_names_real_state_fields(declaration):
    klass = mxopt.optimizer.Optimizer.opt_registry[declaration.name]
    assert klass is getattr(mxopt.optimizer, declaration.mxnet.class_name)
    assert klass.__name__ == declaration.mxnet.class_name and klass.transform is (
        declaration.constructor)
    assert klass.mxnet_facts() is declaration.mxnet
    if isinstance(declaration.mxnet.state, mxopt.registry.Unimportable):
        return
    with_momentum = {"momentum": 0.9} if "momentum" in klass.defaults() else {}
    for arguments in ({}, with_momentum):
        optimizer = mxopt.optimizer.create(declaration.name, **arguments)
        state = optimizer.create_state(0, jnp.ones((2, 3)))
        held = {field for node in mxopt.structure.state_nodes(state) for field in node._fields}
        named = _layout_fields(declaration.mxnet.layout(optimizer._args))
        assert named <= held, f"{declaration.name} declares {sorted(named - held)}"


def test_opt_registry_is_a_view_of_the_one_registry():
    registry = mxopt.optimizer.Optimizer.opt_registry
    assert list(registry) == mxopt.registered_names() and len(registry) == len(
        mxopt.registered_names())
    with pytest.raises(KeyError):
        registry["no_such_optimizer"]

    def halved_rate(**kwargs):
        return mxopt.sgd(**{**kwargs, "learning_rate": kwargs["learning_rate"] / 2})

    class HalvedRate(mxopt.optimizer.Optimizer):
        transform = halved_rate

    with pytest.raises(ValueError, match="lower-cased name, 'halvedrate'"):
        registry["halved"] = HalvedRate
    registry["halvedrate"] = HalvedRate
    try:
        assert isinstance(mxopt.optimizer.create("HalvedRate", learning_rate=0.1), HalvedRate)
        assert mxopt.registry.declaration("halvedrate").mxnet.class_name == "HalvedRate"
        assert repr(mxopt.create("halvedrate", learning_rate=0.1)) == (
            "halved_rate(learning_rate=0.1)")
    finally:
        del registry["halvedrate"]
    assert "halvedrate" not in mxopt.registered_names()
    with pytest.raises(ValueError, match="unknown optimizer 'halvedrate'"):
        mxopt.registry.unregister("halvedrate")


def test_a_class_of_a_declared_transform_shares_its_facts():
    class MySGD(mxopt.optimizer.Optimizer):
        transform = mxopt.sgd

    assert MySGD.mxnet_facts() is mxopt.registry.declaration("sgd").mxnet
    assert MySGD(momentum=0.9).create_state(0, jnp.ones(2)) is not None


def test_registering_a_declared_constructor_again_keeps_its_facts(monkeypatch):
    monkeypatch.setattr(mxopt.registry, "_DECLARATIONS", dict(mxopt.registry._DECLARATIONS))
    mxopt.register(mxopt.adam, name="adam_again")
    assert mxopt.registry.declaration("adam_again").mxnet is mxopt.registry.declaration(
        "adam").mxnet
