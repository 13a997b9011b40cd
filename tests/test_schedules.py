"""MXNet's schedulers: closed forms against a stateful reference, jit, errors."""

import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import reference
from hypothesis import given, settings
from strategies import schedulers

import mxopt


@settings(max_examples=80, deadline=None)
@given(schedulers(), st.integers(0, 60), st.integers(1, 7))
def test_closed_form_matches_stateful_calls(spec, start, stride):
    # Counts rise from a late start with jumps, as in a resumed run; Poly and
    # Cosine visit max_update (past it MXNet holds a stale value, see docs).
    counts = set(range(start, start + 200, stride))
    if "max_update" in spec["kwargs"]:
        counts.add(spec["kwargs"]["max_update"])
    counts = sorted(counts)
    stateful = reference.StatefulScheduler(spec["type"], **spec["kwargs"])
    expected = np.array([stateful(n) for n in counts], np.float32)
    scheduler = getattr(mxopt.schedules, spec["type"])(**spec["kwargs"])
    got = jax.jit(jax.vmap(scheduler))(jnp.asarray(counts))
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-9)


def test_python_int_and_traced_counts_agree():
    sched = mxopt.CosineScheduler(100, base_lr=0.1, final_lr=0.01, warmup_steps=10)
    for n in (0, 5, 10, 55, 100, 150):
        assert float(sched(n)) == pytest.approx(float(jax.jit(sched)(jnp.int32(n))))


def test_poly_and_cosine_hold_final_lr_after_max_update():
    for sched in (mxopt.PolyScheduler(20, base_lr=0.3, final_lr=0.05),
                  mxopt.CosineScheduler(20, base_lr=0.3, final_lr=0.05)):
        np.testing.assert_allclose(sched(jnp.array([20, 21, 500])), [0.05] * 3, rtol=1e-6)


def test_factor_scheduler_holds_base_lr_below_stop_until_first_decay():
    sched = mxopt.FactorScheduler(step=5, factor=0.5, stop_factor_lr=1e-3, base_lr=5e-4)
    np.testing.assert_allclose(sched(jnp.array([1, 5, 6, 100])), [5e-4, 5e-4, 1e-3, 1e-3])


def test_factor_scheduler_is_accurate_after_many_decays():
    sched = mxopt.FactorScheduler(step=1, factor=0.99, stop_factor_lr=0.0, base_lr=1.0)
    np.testing.assert_allclose(float(sched(1001)), 0.99 ** 1000, rtol=2e-6)


@pytest.mark.parametrize("make,arg", [
    (lambda: mxopt.FactorScheduler(step=0), "step"),
    (lambda: mxopt.FactorScheduler(step=2, factor=1.5), "factor"),
    (lambda: mxopt.FactorScheduler(step=2, base_lr=0.1, warmup_begin_lr=0.2), "warmup_begin_lr"),
    (lambda: mxopt.FactorScheduler(step=2, warmup_mode="cubic"), "warmup_mode"),
    (lambda: mxopt.FactorScheduler(step=2, warmup_steps=-1), "warmup_steps"),
    (lambda: mxopt.MultiFactorScheduler(step=[5, 3]), "increasing"),
    (lambda: mxopt.MultiFactorScheduler(step=[]), "step"),
    (lambda: mxopt.PolyScheduler(max_update=0), "max_update"),
    (lambda: mxopt.PolyScheduler(max_update=5, warmup_steps=5), "max_update"),
    (lambda: mxopt.CosineScheduler(max_update=10, base_lr=-1.0), "base_lr"),
    (lambda: mxopt.CosineScheduler(max_update=10, final_lr=float("inf")), "final_lr"),
])
def test_invalid_scheduler_arguments_are_named(make, arg):
    with pytest.raises(ValueError, match=arg):
        make()


def test_scheduler_positional_arguments_follow_mxnet():
    sched = mxopt.FactorScheduler(10, 0.5, 1e-4, base_lr=1.0)
    assert (sched.step, sched.factor, sched.stop_factor_lr) == (10, 0.5, 1e-4)
    assert mxopt.PolyScheduler(50).max_update == 50


def test_repr_is_the_constructor_call_without_defaults():
    assert repr(mxopt.FactorScheduler(step=100, factor=0.5, base_lr=0.1)) == (
        "FactorScheduler(base_lr=0.1, step=100, factor=0.5)")
    assert repr(mxopt.CosineScheduler(1000, base_lr=0.1, warmup_steps=10)) == (
        "CosineScheduler(base_lr=0.1, warmup_steps=10, max_update=1000)")
    # An optimizer's learning_rate overriding base_lr keeps warmup's target: both show.
    overridden = mxopt.FactorScheduler(step=10, warmup_steps=5).overridden_by(0.5)
    assert repr(overridden) == (
        "FactorScheduler(base_lr=0.5, warmup_steps=5, warmup_final_lr=0.01, step=10)")
    assert eval(repr(overridden), vars(mxopt)) == overridden
