"""plot_schedule and schedule_values: MXNet's recorded scheduler values, MXNet.jl's counters, and
the plot itself."""

import jax.numpy as jnp
import numpy as np
import pytest
from mxnet_fixtures import load, make_scheduler

import mxopt
from mxopt import julia

# Recorded schedules whose counts run 1, 2, 3, ... from a start: the values of consecutive updates.
RUNS = [case for case in load("schedules")["cases"]
        if np.all(np.diff(case["counts"]) == 1) and case["counts"][0] > 0][:4]


@pytest.mark.parametrize("case", RUNS, ids=[case["id"] for case in RUNS])
def test_values_are_mxnets_from_begin_num_update(case):
    start = case["counts"][0]
    got = mxopt.schedule_values(make_scheduler(case["scheduler"]), len(case["counts"]),
                                begin_num_update=start - 1)
    np.testing.assert_allclose(got, case["values"], rtol=1e-5, atol=1e-9)


def test_numbers_and_callables():
    np.testing.assert_array_equal(mxopt.schedule_values(0.5, 3), [0.5, 0.5, 0.5])
    np.testing.assert_allclose(mxopt.schedule_values(lambda n: 1.0 / n, 3, begin_num_update=1),
                               [1 / 2, 1 / 3, 1 / 4], rtol=1e-6)


def test_julia_schedulers_see_the_counters_of_each_update():
    exp = julia.LearningRate.Exp(eta0=1.0, gamma=0.5)  # eta0 * gamma ** curr_epoch
    got = mxopt.schedule_values(exp, 6, steps_per_epoch=2)
    want = [exp.get_learning_rate(julia.OptimizationState(1, curr_epoch=1 + i // 2))
            for i in range(6)]
    np.testing.assert_allclose(got, want, rtol=1e-6)
    per_iteration = julia.LearningRate.Exp(eta0=1.0, gamma=0.5, decay_on_iteration=True)
    np.testing.assert_allclose(mxopt.schedule_values(per_iteration, 3), [0.5, 0.25, 0.125])
    nadam = julia.Momentum.NadamScheduler()
    want = [nadam.get_momentum(julia.OptimizationState(1, curr_iter=n))[0] for n in (1, 2, 3)]
    np.testing.assert_allclose(mxopt.schedule_values(nadam, 3), want, rtol=1e-6)


@pytest.mark.parametrize("arg, value", [("num_steps", 0), ("steps_per_epoch", 0),
                                        ("begin_num_update", -1), ("num_steps", 2.5)])
def test_bad_counts_are_named(arg, value):
    kwargs = {"num_steps": 5, arg: value}
    with pytest.raises(ValueError, match=arg):
        mxopt.schedule_values(0.1, **kwargs)


def test_plot_draws_the_values_on_the_given_axes():
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    schedule = mxopt.CosineScheduler(max_update=100, base_lr=0.1, warmup_steps=10)
    _, ax = plt.subplots()
    assert mxopt.plot_schedule(schedule, 100, ax=ax, label="cosine") is ax
    mxopt.plot_schedule(0.05, 100, ax=ax, label="fixed")
    cosine, fixed = ax.get_lines()
    np.testing.assert_array_equal(cosine.get_xdata(), np.arange(1, 101))
    np.testing.assert_allclose(cosine.get_ydata(), np.asarray(schedule(jnp.arange(1, 101))),
                               rtol=1e-6)
    np.testing.assert_allclose(fixed.get_ydata(), 0.05)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["cosine", "fixed"]
    assert ax.get_ylabel() == "learning rate"
    momentum = mxopt.plot_schedule(julia.Momentum.Fixed(0.9), 10)
    assert momentum is not ax and momentum.get_ylabel() == "momentum"
    assert momentum.get_legend() is None
    plt.close("all")


def test_plot_without_matplotlib_names_the_extra(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    with pytest.raises(ImportError, match='pip install matplotlib'):
        mxopt.plot_schedule(0.1, 10)
