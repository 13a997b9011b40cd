"""nadam: a NumPy reference of MXNet's Python update that reproduces the
recorded MXNet trajectories (with MXNet's per-parameter momentum schedule)
and mxopt's (with the documented per-update one); randomized agreement,
precision of the schedule, state layout, hyperparameter changes and errors."""

import math

import chex
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given, settings
from mxnet_fixtures import optimizer_kwargs, trajectories, with_scheduler
from reference import base_rates
from steps import assert_float32_master, counting_step, random_problem
from strategies import base_arguments, floats, schedulers
from trajectory import assert_close_to, trajectory

import mxopt
from mxopt import nadam
from mxopt.optimizers.nadam import scale_by_nadam

F32 = np.float32
SHAPES = {"fc_weight": (3, 4), "fc_bias": (4,), "bn_gamma": (2, 2, 2)}


def reference(kw, params, grads_seq, lr_mult, wd_mult, rates, *, per_parameter=False,
              gamma=0.5, alpha=0.96):
    """Weights after each step, as MXNet 1.9.1's ``Nadam.update`` computes them.

    Scalars are Python doubles that meet float32 arrays. ``rates`` are the
    learning rates before ``lr_mult``. The momentum schedule's product gains
    a factor once per update (documented), or once per parameter per update
    with ``per_parameter=True``, parameters in sorted order (MXNet 1.9.1).
    """
    b1, b2 = kw.get("beta1", 0.9), kw.get("beta2", 0.999)
    eps, decay = kw.get("epsilon", 1e-8), kw.get("schedule_decay", 0.004)
    rescale, wd, clip = F32(kw.get("rescale_grad", 1.0)), kw.get("wd", 0.0), kw.get("clip_gradient")
    w = {k: np.array(v, F32) for k, v in params.items()}
    m = {k: np.zeros_like(v) for k, v in w.items()}
    v = {k: np.zeros_like(x) for k, x in w.items()}
    schedule, t = 1.0, kw.get("begin_num_update", 0)
    out = []
    for rate, grads in zip(rates, grads_seq):
        t += 1
        mu = b1 * (1.0 - gamma * alpha ** (t * decay))
        mu_next = b1 * (1.0 - gamma * alpha ** ((t + 1) * decay))
        if not per_parameter:
            schedule *= mu
        for k in sorted(w):
            if per_parameter:
                schedule *= mu
            g = np.asarray(grads[k], F32) * rescale + F32(wd * wd_mult[k]) * w[k]
            if clip is not None:
                g = np.clip(g, -F32(clip), F32(clip))
            m[k] = m[k] * F32(b1) + F32(1.0 - b1) * g
            v[k] = v[k] * F32(b2) + F32(1.0 - b2) * g * g
            m_bar = (F32(1.0 - mu) * (g / F32(1.0 - schedule))
                     + F32(mu_next) * (m[k] / F32(1.0 - schedule * mu_next)))
            v_hat = v[k] / F32(1.0 - b2**t)
            w[k] = w[k] - F32(rate * lr_mult[k]) * m_bar / (np.sqrt(v_hat) + F32(eps))
        out.append({k: x.copy() for k, x in w.items()})
    return out


def _recorded_float32():
    return [pytest.param(c, id=c["id"]) for c in trajectories("nadam")
            if c["dtype"] == "float32" and "mxnet_error" not in c]


def _arrays(recorded):
    return {k: np.asarray(v, F32) for k, v in recorded.items()}


def _trajectory(tx, params, grads_seq):
    return trajectory(tx, params, grads_seq, jit=False)


@pytest.mark.parametrize("case", _recorded_float32())
def test_reference_with_per_parameter_schedule_reproduces_mxnet(case):
    """The reference is MXNet's computation: with MXNet's schedule it gives MXNet's numbers."""
    expected = reference(case["kwargs"], case["initial"], case["grads"], case["lr_mult"],
                         case["wd_mult"], case["learning_rates"], per_parameter=True)
    assert_close_to(expected, case["weights"], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("case", _recorded_float32())
def test_mxopt_is_that_computation_with_the_documented_schedule(case):
    rates = base_rates(case["kwargs"], len(case["grads"]), 0.001)
    expected = reference(case["kwargs"], case["initial"], case["grads"], case["lr_mult"],
                         case["wd_mult"], rates)
    tx = mxopt.create("nadam", **optimizer_kwargs(case))
    got = _trajectory(tx, _arrays(case["initial"]), [_arrays(g) for g in case["grads"]])
    assert_close_to(got, expected, rtol=1e-5, atol=1e-6)


@st.composite
def configs(draw):
    kw = {"beta1": draw(st.sampled_from([0.9, 0.0]) | floats(0, 0.99)),
          "beta2": draw(st.sampled_from([0.999, 0.9999]) | floats(0.5, 0.9999)),
          "epsilon": draw(st.sampled_from([1e-8]) | floats(1e-8, 1e-2)),
          "schedule_decay": draw(st.sampled_from([0.004, 0.0]) | floats(0, 0.05))}
    if draw(st.booleans()):
        kw["learning_rate"] = draw(floats(1e-3, 0.05))
    if draw(st.booleans()):
        kw["lr_scheduler"] = draw(schedulers())
    kw, lr_mult, wd_mult = base_arguments(draw, kw, SHAPES, begin_num_update=1000)
    return kw, lr_mult, wd_mult


@settings(max_examples=20, deadline=None)
@given(configs(), st.integers(0, 2**31 - 1))
def test_matches_numpy_reference(config, seed):
    kw, lr_mult, wd_mult = config
    params, grads = random_problem(SHAPES, seed)
    expected = reference(kw, params, grads, lr_mult, wd_mult,
                         base_rates(kw, len(grads), 0.001))
    tx = mxopt.create("nadam", lr_mult=lr_mult, wd_mult=wd_mult, **with_scheduler(kw))
    assert_close_to(_trajectory(tx, params, grads), expected)


def test_a_leaf_does_not_depend_on_the_others():
    # MXNet 1.9.1's steps change with the number of parameters; the documented ones do not.
    params, grads = random_problem(SHAPES, 11)
    alone = _trajectory(nadam(learning_rate=0.01), {"fc_bias": params["fc_bias"]},
                        [{"fc_bias": g["fc_bias"]} for g in grads])
    together = _trajectory(nadam(learning_rate=0.01), params, grads)
    for a, b in zip(alone, together):
        np.testing.assert_array_equal(a["fc_bias"], b["fc_bias"])


def test_warmup_shape_for_mxnet_jl():
    # MXNet.jl's NadamScheduler takes the warm-up's gamma and alpha as arguments.
    params, grads = random_problem(SHAPES, 4)
    ones, zeros = dict.fromkeys(SHAPES, 1.0), dict.fromkeys(SHAPES, 0.0)
    kw = {"beta1": 0.99, "beta2": 0.999, "epsilon": 1e-8, "schedule_decay": 0.004}
    expected = reference(kw, params, grads, ones, zeros, [0.01] * len(grads), gamma=0.3,
                         alpha=0.5)
    tx = optax.chain(scale_by_nadam(0.99, 0.999, 1e-8, 0.004, gamma=0.3, alpha=0.5),
                     mxopt.scale_by_learning_rate(0.01))
    assert_close_to(_trajectory(tx, params, grads), expected)


def test_schedule_keeps_double_precision():
    # beta1 = 0.99 with a warm schedule: mu_t is close to 0.99, 1 - mu_t close to 0.01.
    beta1, decay, begin, steps = 0.99, 0.05, 5000, 40
    tx = scale_by_nadam(beta1, 0.999, 1e-8, decay, begin_num_update=begin)
    params = {"w": jnp.zeros(3)}
    state = tx.init(params)
    update = jax.jit(tx.update)
    product = 1.0
    for t in range(begin + 1, begin + steps + 1):
        _, state = update({"w": jnp.ones(3)}, state)
        product *= beta1 * (1 - 0.5 * 0.96 ** (t * decay))
    np.testing.assert_allclose(float(state[1].schedule), 1 - product, rtol=2e-6)
    assert math.isclose(1 - product, 0.33, rel_tol=0.1)  # far from both 0 and 1


class LayoutTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_state_and_updates_keep_shapes_and_dtypes(self):
        params = {"w": jnp.ones((3, 2), jnp.bfloat16), "b": jnp.zeros(4, jnp.float32)}
        grads = jax.tree.map(lambda p: jnp.full(p.shape, -0.5, p.dtype), params)
        tx = nadam(wd=0.1, clip_gradient=1.0)
        updates, state = self.variant(tx.update)(grads, tx.init(params), params)
        chex.assert_trees_all_equal_shapes_and_dtypes(updates, params)
        for field in ("mean", "var"):
            chex.assert_trees_all_equal_shapes_and_dtypes(optax.tree.get(state, field), params)
        nadam_state = optax.tree.get(state, "ScaleByNadamState")
        assert nadam_state.schedule.shape == () and nadam_state.schedule.dtype == jnp.float32
        assert int(mxopt.update_count(state)) == 1
        assert "schedule" not in mxopt.get_hyperparams(state)

    @chex.variants(with_jit=True, without_jit=True)
    def test_multi_precision_keeps_float32_master_and_moments(self):
        tx = nadam(learning_rate=0.01, wd=0.01, multi_precision=True)
        assert_float32_master(tx, self.variant(tx.update), ["var"])


def test_changing_hyperparameters_does_not_recompile():
    params, grads = random_problem(SHAPES, 5, 4)
    values = [dict(learning_rate=0.01 / (i + 1), beta1=0.5 + 0.1 * i, beta2=0.9 + 0.02 * i,
                   epsilon=1e-8 * (i + 1), schedule_decay=0.004 * i) for i in range(4)]
    tx = nadam()
    step, traces = counting_step(tx)

    p, state = jax.tree.map(jnp.asarray, params), tx.init(params)
    for g, v in zip(grads, values):
        state = mxopt.set_hyperparams(state, **v)
        p, state = step(p, state, jax.tree.map(jnp.asarray, g))
    assert len(traces) == 1
    held = mxopt.get_hyperparams(state)
    assert held["schedule_decay"] == pytest.approx(0.012)
    assert held["beta2"] == pytest.approx(0.96)


@pytest.mark.parametrize("kw,arg", [
    ({"beta1": 1.0}, "beta1"),
    ({"beta2": -0.1}, "beta2"),
    ({"epsilon": 0.0}, "epsilon"),
    ({"schedule_decay": -0.004}, "schedule_decay"),
    ({"learning_rate": -0.1}, "learning_rate"),
    ({"begin_num_update": 0.5}, "begin_num_update"),
])
def test_invalid_arguments_are_named(kw, arg):
    with pytest.raises(ValueError, match=arg):
        nadam(**kw)


@pytest.mark.parametrize("kw,arg", [({"gamma": float("nan")}, "gamma"), ({"alpha": 0.0}, "alpha")])
def test_invalid_warmup_shape_is_named(kw, arg):
    with pytest.raises(ValueError, match=arg):
        scale_by_nadam(**kw)
