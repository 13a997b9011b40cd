"""lars: randomized agreement with a NumPy reference, exempt leaves, momentum
correction, multi-precision norms, state layout, hyperparameter changes and errors."""

import math

import chex
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given, settings
from mxnet_fixtures import with_scheduler
from reference import StatefulScheduler
from steps import assert_float32_master, counting_step
from strategies import base_arguments, floats, schedulers
from trajectory import assert_close_to, trajectory

import mxopt
from mxopt import lars
from mxopt.optimizers.lars import is_exempt

F32 = np.float32
# MXNet-style names and nested key paths: the trust ratio skips names ending
# in gamma, beta or bias.
PARAMS = {"fc_weight": (3, 4), "fc_bias": (4,), "bn": {"gamma": (2, 2, 2)}, "emb/table": (5,)}
NAMES = ("fc_weight", "fc_bias", "bn/gamma", "emb/table")
EXEMPT = {"fc_bias", "bn/gamma"}


def _named(tree):
    return dict(mxopt.structure.named_leaves(tree))


def reference(kw, params, grads_seq, lr_mult, wd_mult):
    """Weights (by name) after each step, from MXNet's LARS in its kernels' order.

    ``multi_lars``: ``lr * eta * |w| / (|g| * rescale_grad + wd * |w| + eps)`` in
    float32 from float32 sums of squares, for leaves not exempt and where both
    norms are positive; then ``multi_sgd_mom_update``: ``mom = mu * mom - lr * wd *
    w - lr * clip(rescale_grad * g)``, ``w += mom``. ``mu = momentum * lr_t /
    lr_{t-1}`` (Python floats) with momentum_correction, for every parameter.
    """
    sched = kw.get("lr_scheduler")
    lr0 = kw.get("learning_rate")
    if sched is not None:
        sched = StatefulScheduler(sched["type"], **sched["kwargs"])
        if lr0 is not None and sched.kind in ("FactorScheduler", "MultiFactorScheduler"):
            sched.lr = lr0
    lr0 = 0.01 if lr0 is None else lr0
    rescale, wd, clip = F32(kw.get("rescale_grad", 1.0)), kw.get("wd", 0.0), kw.get("clip_gradient")
    momentum, eta, eps = kw.get("momentum", 0.0), F32(kw.get("eta", 0.001)), F32(kw.get("eps", 0))
    correction = kw.get("momentum_correction", True)
    w = {k: np.array(v, F32) for k, v in params.items()}
    mom = {k: np.zeros_like(v) for k, v in w.items()}
    t, last = kw.get("begin_num_update", 0), None
    out = []
    for grads in grads_seq:
        t += 1
        base = sched(t) if sched is not None else lr0
        mu = momentum * base / last if correction and last else momentum
        last = base
        for k in w:
            g = np.asarray(grads[k], F32)
            lr, wdk = F32(base * lr_mult[k]), F32(wd * wd_mult[k])
            w_norm, g_sum_sq = np.sqrt(np.sum(w[k] * w[k])), np.sum(g * g)
            if k not in EXEMPT and w_norm > 0 and g_sum_sq > 0:
                lr = lr * eta * w_norm / (np.sqrt(g_sum_sq) * rescale + wdk * w_norm + eps)
            g = rescale * g
            if clip is not None:
                g = np.clip(g, -F32(clip), F32(clip))
            mom[k] = F32(mu) * mom[k] - lr * wdk * w[k] - lr * g
            w[k] = w[k] + mom[k]
        out.append({k: v.copy() for k, v in w.items()})
    return out


@st.composite
def configs(draw):
    kw = {"momentum": draw(st.sampled_from([0.0, 0.9]) | floats(0, 0.99)),
          "eta": draw(st.sampled_from([0.001]) | floats(1e-3, 0.5)),
          "eps": draw(st.sampled_from([0.0]) | floats(0, 1e-3)),
          "momentum_correction": draw(st.booleans())}
    if draw(st.booleans()):
        kw["learning_rate"] = draw(floats(1e-3, 0.5))
    if draw(st.booleans()):
        kw["lr_scheduler"] = draw(schedulers(
            ["FactorScheduler", "MultiFactorScheduler", "CosineScheduler"], horizon=12,
            lowest_lr=0.01))
    kw, lr_mult, wd_mult = base_arguments(draw, kw, NAMES, begin_num_update=20)
    return kw, lr_mult, wd_mult


def _tree(shapes, fill):
    return jax.tree.map(fill, shapes, is_leaf=lambda x: isinstance(x, tuple))


@settings(max_examples=20, deadline=None)
@given(configs(), st.integers(0, 2**31 - 1))
def test_matches_numpy_reference(config, seed):
    kw, lr_mult, wd_mult = config
    rng = np.random.default_rng(seed)
    params = _tree(PARAMS, lambda s: rng.uniform(-1, 1, s).astype(F32))
    grads = [_tree(PARAMS, lambda s: rng.normal(0, 1, s).astype(F32)) for _ in range(6)]
    expected = reference(kw, _named(params), [_named(g) for g in grads], lr_mult, wd_mult)

    tx = mxopt.create("lars", lr_mult=lr_mult, wd_mult=wd_mult, **with_scheduler(kw))
    assert_close_to([_named(p) for p in trajectory(tx, params, grads)], expected)


@pytest.mark.parametrize("name,exempt", [
    ("dense0_weight", False), ("dense0_bias", True), ("bn0_gamma", True), ("bn0_beta", True),
    ("dense/kernel", False), ("dense/bias", True), ("BatchNorm_0/scale", False),
    ("layers/0/gamma", True), ("<root>", False),
])
def test_exempt_names_follow_mxnets_suffix_test(name, exempt):
    assert is_exempt(name) is exempt


def test_trust_ratio_scales_only_non_exempt_leaves():
    # |w| = 2, |g| = 4: ratio = eta * 2 / 4; the bias keeps the plain rate.
    params = {"dense": {"kernel": jnp.array([2.0, 0.0]), "bias": jnp.array([2.0, 0.0])}}
    grads = {"dense": {"kernel": jnp.array([0.0, 4.0]), "bias": jnp.array([0.0, 4.0])}}
    tx = lars(learning_rate=0.5, eta=0.1)
    updates, _ = tx.update(grads, tx.init(params), params)
    np.testing.assert_allclose(updates["dense"]["kernel"], [0.0, -0.5 * 0.05 * 4.0], rtol=1e-6)
    np.testing.assert_allclose(updates["dense"]["bias"], [0.0, -0.5 * 4.0], rtol=1e-6)


def test_zero_gradient_keeps_plain_rate_and_weight_decay():
    # |g| = 0: no trust ratio, the step is the plain rate times the decay.
    params = {"w": jnp.array([1.0, -2.0])}
    tx = lars(learning_rate=0.1, wd=0.5)
    updates, _ = tx.update({"w": jnp.zeros(2)}, tx.init(params), params)
    np.testing.assert_allclose(updates["w"], [-0.05, 0.1], rtol=1e-6)


def test_momentum_correction_follows_set_learning_rate():
    # mom1 = -lr1 * g; after the rate halves, mom2 = 0.9 * (0.5 / 1) * mom1 - lr2 * g.
    params = {"bias": jnp.zeros(2)}
    grads = {"bias": jnp.ones(2)}
    for correction, expected in ((True, -(0.45 * 1.0 + 0.5)), (False, -(0.9 + 0.5))):
        tx = lars(learning_rate=1.0, momentum=0.9, momentum_correction=correction)
        u1, state = tx.update(grads, tx.init(params), params)
        state = mxopt.set_hyperparams(state, learning_rate=0.5)
        u2, _ = tx.update(grads, state, params)
        np.testing.assert_allclose(u1["bias"], [-1.0, -1.0])
        np.testing.assert_allclose(u2["bias"], [expected] * 2, rtol=1e-6)


def test_multi_precision_takes_norms_of_stored_float16_values():
    # MXNet's multi_sum_sq squares the float16 weights and gradients in float16.
    rng = np.random.default_rng(0)
    w16 = rng.uniform(-1, 1, 64).astype(np.float16)
    g16 = rng.normal(0, 1, 64).astype(np.float16)
    tx = lars(learning_rate=0.5, eta=0.1, multi_precision=True)
    params = {"w": jnp.asarray(w16)}
    state = tx.init(params)
    _, state = tx.update({"w": jnp.asarray(g16)}, state, params)
    w_norm = F32(math.sqrt(np.sum((w16 * w16).astype(F32))))
    g_norm = F32(math.sqrt(np.sum((g16 * g16).astype(F32))))
    lr = F32(0.5) * F32(0.1) * w_norm / g_norm
    want = w16.astype(F32) - lr * g16.astype(F32)
    np.testing.assert_allclose(state.master["w"], want, rtol=1e-6, atol=1e-7)


def test_its_links_compose_as_a_chain_and_each_names_what_it_needs():
    params = {"fc_weight": jnp.linspace(-1.0, 1.0, 6), "fc_bias": jnp.ones(2)}
    grads = jax.tree.map(lambda p: 0.3 * p + 0.1, params)
    rate = mxopt.transforms.LeafRates(0.5)
    scale = mxopt.scale_by_lars(rate, eta=0.01)
    chain = mxopt.counted(
        mxopt.record_leaf_norms(None), mxopt.rescale(0.5), mxopt.add_decayed_weights(0.01),
        scale, mxopt.trace(0.9, momentum_scale=mxopt.optimizers.lars.lars_momentum_scale()))
    built = lars(learning_rate=0.5, eta=0.01, rescale_grad=0.5, wd=0.01, momentum=0.9)
    assert_close_to(trajectory(chain, params, [grads] * 3),
                    trajectory(built, params, [grads] * 3), rtol=0, atol=0)
    with pytest.raises(ValueError, match="lars needs a LeafNormsState earlier in its chain"):
        alone = mxopt.counted(scale)
        alone.update(grads, alone.init(params), params)


class LayoutTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_state_and_updates_keep_shapes_and_dtypes(self):
        params = {"w": jnp.ones((3, 2), jnp.float16), "b": jnp.zeros(4, jnp.float32)}
        grads = jax.tree.map(lambda p: jnp.full(p.shape, -0.5, p.dtype), params)
        for momentum in (0.9, 0.0):
            tx = lars(momentum=momentum, learning_rate=0.1, wd=0.01)
            updates, state = self.variant(tx.update)(grads, tx.init(params), params)
            chex.assert_trees_all_equal_shapes_and_dtypes(updates, params)
            if momentum:
                chex.assert_trees_all_equal_shapes_and_dtypes(optax.tree.get(state, "trace"),
                                                              params)
            else:  # no buffer without momentum, as in MXNet: only scalars
                assert all(x.size <= 1 for x in jax.tree.leaves(state))
            norms = optax.tree.get(state, "LeafNormsState")  # the raw norms, kept per leaf
            np.testing.assert_allclose(norms.weight_sum_sq["w"], 6.0, rtol=1e-6)
            np.testing.assert_allclose(norms.grad_sum_sq["w"], 6 * 0.25, rtol=1e-6)
            assert float(norms.weight_sum_sq["b"]) == 0 and float(norms.grad_sum_sq["b"]) == 1

    @chex.variants(with_jit=True, without_jit=True)
    def test_multi_precision_keeps_float32_master_and_buffer(self):
        tx = lars(learning_rate=0.1, momentum=0.9, eta=0.1, multi_precision=True)
        assert_float32_master(tx, self.variant(tx.update), ["trace"])


def test_changing_hyperparameters_does_not_recompile():
    tx = lars(learning_rate=0.1, momentum=0.9, wd=0.01)
    params = {"w": jnp.linspace(-1, 1, 6)}
    step, traces = counting_step(tx)

    state = tx.init(params)
    assert set(mxopt.get_hyperparams(state)) == {
        "eta", "eps", "rescale_grad", "wd", "learning_rate", "momentum"}
    for i in range(5):
        state = mxopt.set_hyperparams(state, learning_rate=0.1 / (i + 1), eta=0.01 * (i + 1),
                                      eps=1e-6 * i, momentum=0.5, wd=0.02)
        params, state = step(params, state, {"w": jnp.full(6, 0.5)})
    assert len(traces) == 1
    held = mxopt.get_hyperparams(state)
    assert held["eta"] == pytest.approx(0.05) and held["momentum"] == pytest.approx(0.5)


@pytest.mark.parametrize("kw,arg", [
    ({"momentum": 1.0}, "momentum"),
    ({"momentum": -0.1}, "momentum"),
    ({"eta": -1e-3}, "eta"),
    ({"eps": -1.0}, "eps"),
    ({"eta": float("nan")}, "eta"),
    ({"momentum_correction": "yes"}, "momentum_correction"),
    ({"wd": -0.1}, "wd"),
    ({"clip_gradient": 0.0}, "clip_gradient"),
])
def test_invalid_arguments_fail_at_construction(kw, arg):
    with pytest.raises(ValueError, match=arg):
        mxopt.create("lars", **kw)
