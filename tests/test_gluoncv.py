"""GluonCV's schedulers: every value GluonCV 0.10.5 gave in the recorded configurations
(tools/record_gluoncv.py), jitted and vectorized, the configurations where GluonCV fails,
and MXNet's learning_rate override and warning beside an optimizer on both paths."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from mxnet_fixtures import load

import mxopt
from mxopt import gluoncv
from mxopt import optimizer as mo

RECORDED = load("gluoncv_schedules")
CASES = {case["id"]: case for case in RECORDED["cases"]}
WORKING = [case for case in CASES.values() if "error" not in case]


def build(case) -> gluoncv.LRScheduler | gluoncv.LRSequential:
    if "sequential" in case:
        return gluoncv.LRSequential([gluoncv.LRScheduler(**p) for p in case["sequential"]])
    return gluoncv.LRScheduler(**case["scheduler"])


def assert_values(got, want, what):
    np.testing.assert_allclose(np.asarray(got, np.float64), want, rtol=1e-6, atol=1e-8,
                               err_msg=what)


def test_the_recording_covers_every_mode_and_recipes():
    modes = {case["scheduler"]["mode"] for case in WORKING if "scheduler" in case}
    assert modes == set(gluoncv.MODES)
    assert sum("sequential" in case for case in WORKING) >= 20


@pytest.mark.parametrize("case", WORKING, ids=[case["id"] for case in WORKING])
def test_every_recorded_value_jitted_vectorized_and_one_by_one(case):
    scheduler, counts = build(case), case["counts"]
    assert_values(jax.jit(scheduler)(jnp.asarray(counts)), case["values"], case["id"])
    ends = [0, len(counts) // 2, -1]  # one by one, unjitted: a count as an optimizer passes it
    assert_values([scheduler(counts[i]) for i in ends], [case["values"][i] for i in ends],
                  case["id"])


def test_where_gluoncv_divides_by_zero_mxopt_refuses_when_called():
    failing = [case for case in CASES.values() if "error" in case]
    assert failing and all("ZeroDivisionError" in case["error"] for case in failing)
    for case in failing:
        with pytest.raises(ValueError, match="divides by niters - 1 = 0"):
            build(case)(case["counts"][-1])
        with pytest.raises(ValueError, match="divides by niters - 1 = 0"):
            params = {"w": jnp.ones(1)}
            mxopt.sgd(lr_scheduler=build(case)).update(params, mxopt.sgd().init(params), params)


def test_only_a_first_member_over_one_iteration_is_taken():
    """GluonCV reaches a sequence's first member of one iteration only at count 0."""
    warmup = gluoncv.LRScheduler("linear", base_lr=0.0, target_lr=0.1, niters=1)
    decay = gluoncv.LRScheduler("cosine", base_lr=0.1, niters=4)
    sequence = gluoncv.LRSequential([warmup, decay])
    rates = sequence(jnp.arange(6))
    assert np.isnan(rates[0]) and np.all(np.isfinite(rates[1:]))
    np.testing.assert_allclose(rates[1:5], decay(jnp.arange(4)), rtol=1e-7)
    for members in ([decay, warmup], [warmup]):
        with pytest.raises(ValueError, match=r"schedulers\[\d\]: .*divides by niters - 1"):
            gluoncv.LRSequential(members)


@pytest.mark.parametrize("kwargs,message", [
    ({"mode": "exp"}, "mode must be one of"), ({"mode": "step", "niters": 5}, "step_iter"),
    ({"mode": "linear", "niters": -1}, "niters"), ({"mode": "cosine", "base_lr": -0.1}, "base_lr"),
])
def test_bad_arguments_name_themselves(kwargs, message):
    with pytest.raises(ValueError, match=message):
        gluoncv.LRScheduler(**kwargs)
    with pytest.raises(TypeError, match="LRScheduler members"):
        gluoncv.LRSequential([mxopt.FactorScheduler(step=2)])


OVERRIDES = RECORDED["overrides"]


@pytest.mark.parametrize("override", OVERRIDES, ids=[o["id"] for o in OVERRIDES])
def test_beside_an_optimizer_as_mxnet_applies_its_learning_rate(override):
    case = CASES[override["case"]]
    kwargs = {"lr_scheduler": build(case)}
    if override["learning_rate"] is not None:
        kwargs["learning_rate"] = override["learning_rate"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tx = mxopt.create(override["optimizer"], **kwargs)
        opt = mo.create(override["optimizer"], **kwargs)
    printed = [str(w.message) for w in caught if w.category is UserWarning]
    assert printed == override["printed"].splitlines() * 2  # once for each path
    assert_values(jax.jit(tx.learning_rate)(jnp.asarray(case["counts"])), override["values"],
                  override["id"])
    for n, want in list(zip(case["counts"], override["values"]))[::12]:
        opt.num_update = n
        assert opt.learning_rate == pytest.approx(want, rel=1e-6, abs=1e-8)


def test_a_recipe_steps_with_its_schedule_from_the_first_update():
    warmup = gluoncv.LRScheduler("linear", base_lr=0.0, target_lr=0.4, nepochs=1,
                                 iters_per_epoch=4)
    cosine = gluoncv.LRScheduler("cosine", base_lr=0.4, target_lr=0.0, nepochs=2,
                                 iters_per_epoch=4)
    schedule = gluoncv.LRSequential([warmup, cosine])  # its values: the recorded tests'
    tx = mxopt.nag(momentum=0.0, lr_scheduler=schedule)
    params, grads = {"w": jnp.ones(3)}, {"w": jnp.full(3, 2.0)}
    state, rates = tx.init(params), []
    for _ in range(9):
        updates, state = tx.update(grads, state, params)
        rates.append(float(updates["w"][0]) / -2.0)  # the rate of that update
    np.testing.assert_allclose(rates, [float(schedule(n)) for n in range(1, 10)], rtol=1e-6)
    assert rates[2] == pytest.approx(0.4) and rates[-1] < rates[4] < rates[3]  # MXNet counts from 1
