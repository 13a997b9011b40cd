"""lbsgd: randomized agreement with a NumPy reference, gradient accumulation,
warmup multipliers, state layout, hyperparameter changes and errors."""

import math

import chex
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given, settings
from reference import StatefulScheduler
from steps import assert_float32_master, counting_step
from strategies import base_arguments, floats, schedulers
from trajectory import assert_matches_reference

import mxopt
from mxopt import lbsgd
from mxopt.optimizers.lbsgd import lars_multiplier, warmup_multiplier

F32 = np.float32
SHAPES = {"fc_weight": (3, 4), "fc_bias": (4,), "bn_gamma": (2, 2, 2)}


def _lbmult(strategy, nup, nwup, batch_scale):
    """MXNet's LBSGD._get_lbmult, in Python floats."""
    maxmult = float(batch_scale)
    if nup >= nwup:
        return maxmult
    if nwup <= 1:
        return 1.0
    shape = {"linear": nup / nwup, "power2": (nup * nup) / (nwup * nwup),
             "sqrt": math.sqrt(float(nup) / nwup)}.get(strategy)
    return 1.0 if shape is None else 1.0 + (maxmult - 1) * shape


def reference(kw, params, grads_seq, lr_mult, wd_mult):
    """Weights after each step, from MXNet's LBSGD.update and its SGD kernels.

    Gradients are summed per parameter; a call whose count (from
    ``begin_epoch * updates_per_epoch``) is a multiple of ``batch_scale``
    updates with ``sum / batch_scale``, at ``lr * mult`` (Python floats), via
    ``sgd_mom_update`` (``mom = momentum * mom - lr * wd * w - lr *
    clip(rescale_grad * g)``, ``w += mom``) or ``sgd_update`` (``w = (1 - lr *
    wd) * w - lr * clip(rescale_grad * g)``). Every parameter reads the rate at
    the current update count.
    """
    sched = kw.get("lr_scheduler")
    lr0 = kw.get("learning_rate")
    if sched is not None:
        sched = StatefulScheduler(sched["type"], **sched["kwargs"])
        if lr0 is not None and sched.kind in ("FactorScheduler", "MultiFactorScheduler"):
            sched.lr = lr0
    lr0 = 0.01 if lr0 is None else lr0
    rescale, wd, clip = F32(kw.get("rescale_grad", 1.0)), kw.get("wd", 0.0), kw.get("clip_gradient")
    momentum = F32(kw.get("momentum", 0.0))
    strategy, batch_scale = kw.get("warmup_strategy", "linear"), kw.get("batch_scale", 1)
    per_epoch = kw.get("updates_per_epoch", 32)
    nwup = kw.get("warmup_epochs", 5) * per_epoch
    w = {k: np.array(v, F32) for k, v in params.items()}
    mom = {k: np.zeros_like(v) for k, v in w.items()}
    total = {k: None for k in w}
    t, n = kw.get("begin_num_update", 0), kw.get("begin_epoch", 0) * per_epoch
    out = []
    for grads in grads_seq:
        t, n = t + 1, n + 1
        base = sched(t) if sched is not None else lr0
        for k in w:
            g = np.asarray(grads[k], F32)
            total[k] = g if total[k] is None else total[k] + g
            if n % batch_scale:
                continue
            g, total[k] = total[k] / F32(batch_scale), None
            wdk = wd * wd_mult[k]
            if strategy == "lars":
                w2, g2 = float(np.sum(w[k] * w[k])), float(np.sum(g * g))
                mult = min(max(math.sqrt(w2 / (g2 + wdk * w2 + 1e-18)), 0.01), 100.0)
            else:
                mult = _lbmult(strategy, n, nwup, batch_scale)
            lr, wdk = F32(base * lr_mult[k] * mult), F32(wdk)
            g = rescale * g
            if clip is not None:
                g = np.clip(g, -F32(clip), F32(clip))
            if momentum:
                mom[k] = momentum * mom[k] - lr * wdk * w[k] - lr * g
                w[k] = w[k] + mom[k]
            else:
                w[k] = (F32(1) - lr * wdk) * w[k] - lr * g
        out.append({k: v.copy() for k, v in w.items()})
    return out


@st.composite
def configs(draw):
    kw = {"momentum": draw(st.sampled_from([0.0, 0.9]) | floats(0, 0.99)),
          "warmup_strategy": draw(st.sampled_from(["linear", "power2", "sqrt", "lars"])),
          "warmup_epochs": draw(st.integers(0, 3)), "batch_scale": draw(st.integers(1, 3)),
          "updates_per_epoch": draw(st.integers(1, 4)), "begin_epoch": draw(st.integers(0, 2))}
    if draw(st.booleans()):
        kw["learning_rate"] = draw(floats(1e-3, 0.5))
    if draw(st.booleans()):
        kw["lr_scheduler"] = draw(schedulers(
            ["FactorScheduler", "MultiFactorScheduler", "PolyScheduler"], horizon=12))
    return base_arguments(draw, kw, SHAPES, begin_num_update=20)


@settings(max_examples=20, deadline=None)
@given(configs(), st.integers(0, 2**31 - 1))
def test_matches_numpy_reference(config, seed):
    assert_matches_reference("lbsgd", reference, config, seed, SHAPES, steps=7)


def _updates(tx, grads_seq, params):
    state = tx.init(params)
    out = []
    for g in grads_seq:
        updates, state = tx.update(g, state, params)
        out.append(np.asarray(updates["w"]))
    return out, state


def test_updates_every_batch_scale_calls_with_the_mean_gradient():
    params = {"w": jnp.zeros(2)}
    grads = [{"w": jnp.array([1.0, 2.0]) * i} for i in range(1, 7)]
    tx = lbsgd(batch_scale=3, learning_rate=1.0, momentum=0.5, warmup_epochs=0)
    steps, _ = _updates(tx, grads, params)
    # Calls 3 and 6 update, with the mean of their three gradients times the
    # multiplier batch_scale (warmup is over), and momentum only on those calls.
    mean1, mean2 = np.array([2.0, 4.0]), np.array([5.0, 10.0])
    for i in (0, 1, 3, 4):
        np.testing.assert_array_equal(steps[i], [0.0, 0.0])
    np.testing.assert_allclose(steps[2], -3 * mean1, rtol=1e-6)
    np.testing.assert_allclose(steps[5], 0.5 * -3 * mean1 - 3 * mean2, rtol=1e-6)


def test_begin_epoch_offsets_the_accumulation():
    # Counting starts at begin_epoch * updates_per_epoch = 2: the first call is
    # count 3, a multiple of batch_scale, and updates with its gradient / 3.
    params = {"w": jnp.zeros(1)}
    grads = [{"w": jnp.ones(1)}] * 4
    tx = lbsgd(batch_scale=3, begin_epoch=1, updates_per_epoch=2, warmup_epochs=0,
               learning_rate=1.0)
    steps, state = _updates(tx, grads, params)
    np.testing.assert_allclose(np.concatenate(steps), [-1.0, 0.0, 0.0, -3.0], rtol=1e-6)
    assert int(mxopt.update_count(state)) == 4  # MXNet's num_update; num_cums is 2 more


@pytest.mark.parametrize("strategy,nup,want", [
    ("linear", 1, 1.75), ("linear", 2, 2.5), ("power2", 2, 1.75), ("sqrt", 1, 2.5),
    ("sqrt", 4, 4.0), ("linear", 5, 4.0),
])
def test_warmup_multiplier_is_mxnets(strategy, nup, want):
    # batch_scale 4 over 4 warmup calls.
    got = warmup_multiplier(strategy, jnp.asarray(nup), 4, 4)
    assert float(got) == pytest.approx(want) == _lbmult(strategy, nup, 4, 4)


def test_lars_multiplier_is_clipped():
    # of |w|^2 and |g|^2: w = (3, 4), g = (0, 1)
    w_sum_sq, g_sum_sq, zero = jnp.float32(25.0), jnp.float32(1.0), jnp.float32(0.0)
    assert float(lars_multiplier(w_sum_sq, g_sum_sq, zero)) == pytest.approx(5.0)
    assert float(lars_multiplier(w_sum_sq, zero, zero)) == 100.0
    assert float(lars_multiplier(zero, g_sum_sq, jnp.float32(0.1))) == pytest.approx(0.01)


class LayoutTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_state_and_updates_keep_shapes_and_dtypes(self):
        params = {"w": jnp.ones((3, 2), jnp.float16), "b": jnp.zeros(4, jnp.float32)}
        grads = jax.tree.map(lambda p: jnp.full(p.shape, -0.5, p.dtype), params)
        for momentum, batch_scale in ((0.9, 2), (0.0, 1)):
            tx = lbsgd(momentum=momentum, batch_scale=batch_scale, learning_rate=0.1, wd=0.01)
            updates, state = self.variant(tx.update)(grads, tx.init(params), params)
            chex.assert_trees_all_equal_shapes_and_dtypes(updates, params)
            if momentum:
                for name in ("trace", "grad_sum"):
                    chex.assert_trees_all_equal_shapes_and_dtypes(optax.tree.get(state, name),
                                                                  params)
            else:  # no momentum or sum buffers, as in MXNet with batch_scale 1
                assert sum(x.size for x in jax.tree.leaves(state)) < 10

    @chex.variants(with_jit=True, without_jit=True)
    def test_multi_precision_keeps_float32_master_and_buffers(self):
        tx = lbsgd(learning_rate=0.1, momentum=0.9, batch_scale=2, multi_precision=True)
        assert_float32_master(tx, self.variant(tx.update), ["trace", "grad_sum"], steps=4)


def test_changing_hyperparameters_does_not_recompile():
    tx = lbsgd(learning_rate=0.1, momentum=0.9, wd=0.01, batch_scale=2,
               warmup_strategy="lars")
    params = {"w": jnp.linspace(-1, 1, 6)}
    step, traces = counting_step(tx)

    state = tx.init(params)
    assert set(mxopt.get_hyperparams(state)) == {"rescale_grad", "wd", "learning_rate",
                                                 "momentum"}
    for i in range(5):
        state = mxopt.set_hyperparams(state, learning_rate=0.1 / (i + 1), momentum=0.5,
                                      wd=0.02 * i)
        params, state = step(params, state, {"w": jnp.full(6, 0.5)})
    assert len(traces) == 1
    assert mxopt.get_hyperparams(state)["wd"] == pytest.approx(0.08)


@pytest.mark.parametrize("kw,arg", [
    ({"momentum": 1.0}, "momentum"),
    ({"warmup_strategy": "cubic"}, "warmup_strategy"),
    ({"warmup_epochs": -1}, "warmup_epochs"),
    ({"batch_scale": 0}, "batch_scale"),
    ({"batch_scale": 2.0}, "batch_scale"),
    ({"updates_per_epoch": 0}, "updates_per_epoch"),
    ({"begin_epoch": -1}, "begin_epoch"),
    ({"num_epochs": 1.5}, "num_epochs"),
    ({"multi_precision": 1}, "multi_precision"),
    ({"rescale_grad": 0.0}, "rescale_grad"),
])
def test_invalid_arguments_fail_at_construction(kw, arg):
    with pytest.raises(ValueError, match=arg):
        mxopt.create("lbsgd", **kw)
