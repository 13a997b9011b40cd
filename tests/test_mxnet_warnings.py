"""MXNet's scheduler-override warning, emitted where MXNet 1.9.1 prints it (recorded by
tools/record_mxnet_warnings.py), the schedule an optimizer steps with in its repr, and a
"did you mean" for misspelled arguments and hyperparameters."""

import warnings

import hypothesis.strategies as st
import jax.numpy as jnp
import pytest
from hypothesis import given, settings
from mxnet_fixtures import load, make_scheduler

import mxopt
from mxopt import optimizer as mo

CASES = load("warnings")["cases"]
TEXT = next(case["printed"] for case in CASES if case["printed"]).strip()  # MXNet's words


def emitted(build) -> list[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        build()
    return [str(w.message) for w in caught if w.category is UserWarning]


def expected(case) -> list[str]:
    """MXNet's printed warnings; FTRL's where mxopt lets ``learning_rate`` override (MXNet
    1.9.1's Ftrl ignores it beside a scheduler: docs/mxnet_differences.md)."""
    if mxopt.registry.declaration(case["optimizer"]).mxnet.scheduler_ignores_learning_rate:
        rate, base_lr = case["learning_rate"], make_scheduler(case["lr_scheduler"]).base_lr
        return [TEXT] if rate is not None and rate != base_lr else []
    return case["printed"].splitlines()


def kwargs_of(case) -> dict:
    kwargs = {"lr_scheduler": make_scheduler(case["lr_scheduler"])}
    if case["learning_rate"] is not None:
        kwargs["learning_rate"] = case["learning_rate"]
    return kwargs


def test_the_recording_has_both_outcomes_for_every_optimizer():
    for name in {case["optimizer"] for case in CASES}:
        printed = {bool(case["printed"]) for case in CASES if case["optimizer"] == name}
        assert printed == ({False} if name == "ftrl" else {True, False}), name


@pytest.mark.parametrize("case", CASES, ids=[case["id"] for case in CASES])
def test_warns_where_mxnet_warns_on_every_path(case):
    want = expected(case)
    name, kwargs = case["optimizer"], kwargs_of(case)
    assert emitted(lambda: mxopt.create(name, **kwargs)) == want
    assert emitted(lambda: mo.create(name, **kwargs)) == want  # once, on the object path too


def test_the_repr_shows_the_schedule_an_override_steps_with():
    given_scheduler = mxopt.FactorScheduler(step=100, factor=0.5, warmup_steps=5)
    with pytest.warns(UserWarning, match="has been overwritten"):
        tx = mxopt.sgd(learning_rate=0.1, lr_scheduler=given_scheduler)
    assert repr(tx) == (
        "sgd(learning_rate=0.1, lr_scheduler=FactorScheduler(base_lr=0.01, warmup_steps=5, "
        "step=100, factor=0.5))  # steps with FactorScheduler(base_lr=0.1, warmup_steps=5, "
        "warmup_final_lr=0.01, step=100, factor=0.5)")
    assert float(tx.learning_rate(4)) == pytest.approx(0.008)  # warmup rises to the old base_lr
    assert float(tx.learning_rate(5)) == pytest.approx(0.1)  # then the override takes over
    same = mxopt.sgd(learning_rate=0.1, lr_scheduler=mxopt.FactorScheduler(step=100, base_lr=0.1))
    assert repr(same) == "sgd(learning_rate=0.1, lr_scheduler=FactorScheduler(base_lr=0.1, " \
        "step=100))"
    # No warmup: warmup_final_lr plays no part and is not shown.
    assert repr(mxopt.FactorScheduler(step=3).overridden_by(0.5)) == \
        "FactorScheduler(base_lr=0.5, step=3)"


@pytest.mark.parametrize("name,wrong,meant", [
    ("sgd", "lr", "learning_rate"), ("adam", "beta_1", "beta1"), ("adam", "b2", "beta2"),
    ("adam", "weight_decay", "wd"), ("adam", "eps", "epsilon"), ("adagrad", "epsilon", "eps"),
    ("rmsprop", "rho", "gamma1"), ("sgd", "max_grad_norm", "clip_gradient"),
    ("sgd", "momentun", "momentum"), ("nag", "scheduler", "lr_scheduler"),
    ("lamb", "lower_bnd", "lower_bound"),
])
def test_a_misspelled_argument_says_what_was_meant(name, wrong, meant):
    for build in (mxopt.create, mo.create):
        with pytest.raises(TypeError, match=rf"{name}\(\): no argument '{wrong}' \(did you mean "
                                            rf"'{meant}'\?\); it takes \[.*'{meant}'"):
            build(name, **{wrong: 0.1})
    state = mxopt.create(name).init({"w": jnp.ones(2)})
    held = mxopt.get_hyperparams(state)
    if meant in held:
        with pytest.raises(ValueError, match=rf"no hyperparameter '{wrong}' \(did you mean "
                                             rf"'{meant}'\?\); this optimizer state has"):
            mxopt.set_hyperparams(state, **{wrong: 0.1})


@settings(max_examples=30, deadline=None)
@given(st.sampled_from(sorted(mxopt.registered_names())), st.text("xyzq_", min_size=3))
def test_an_unknown_argument_with_no_likely_meaning_lists_the_valid_ones(name, wrong):
    with pytest.raises(TypeError) as error:
        mxopt.create(name, **{wrong: 0.1})
    assert f"no argument {wrong!r}" in str(error.value) and "it takes [" in str(error.value)
