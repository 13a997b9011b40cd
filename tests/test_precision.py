"""Mixed precision: master weights bit for bit, skipped steps, and MXNet AMP's loss scaling."""

import json

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from full_state import accepted, build, draw
from hypothesis import given, settings
from hypothesis import strategies as st
from mxnet_fixtures import FIXTURES, assert_matches_mxnet, make_scheduler
from trajectory import bits, same_bits

import mxopt
from mxopt import precision

AMP = json.loads((FIXTURES / "mxnet_amp.json").read_text())["cases"]
SHAPES = {"dense0_weight": (4, 3), "dense0_bias": (3,), "bn0_gamma": (2, 5)}


def layout(name):
    return accepted(name, SHAPES)


def update_count(state):
    return int(mxopt.update_count(state))



@pytest.mark.parametrize("dtype", [jnp.float16, jnp.bfloat16], ids=["float16", "bfloat16"])
@pytest.mark.parametrize("name", mxopt.registered_names())
def test_each_weight_is_its_master_rounded_down_bit_for_bit(name, dtype):
    tx = build(name, multi_precision=True, learning_rate=0.05)
    params = {**draw(layout(name), 0, dtype), "scale": jnp.ones((2, 2), jnp.float32)}
    state = tx.init(params)
    step = jax.jit(tx.update)
    for i in range(5):
        updates, state = step({**draw(layout(name), i + 1, dtype),
                               "scale": jnp.ones((2, 2), jnp.float32)}, state, params)
        params = optax.apply_updates(params, updates)
        (mp,) = [node for node in mxopt.structure.state_nodes(state)
                 if isinstance(node, precision.MultiPrecisionState)]
        for k, weight in params.items():
            if k == "scale":  # float32 leaves keep no master
                assert mp.master[k] is None and weight.dtype == jnp.float32
                continue
            assert weight.dtype == dtype and mp.master[k].dtype == jnp.float32
            np.testing.assert_array_equal(bits(weight), bits(mp.master[k].astype(dtype)),
                                          err_msg=f"{k} at step {i}")


class TestApplyIfFinite(chex.TestCase):

    @chex.variants(with_jit=True, without_jit=True)
    def test_a_skipped_step_changes_nothing_and_is_counted(self):
        for name in mxopt.registered_names():
            with self.subTest(name):
                tx = precision.apply_if_finite(build(name, multi_precision=True))
                params = draw(layout(name), 0, jnp.float16)
                params["dense0_weight"] = params["dense0_weight"].at[0, 0].set(-0.0)
                update = self.variant(tx.update)
                updates, state = update(draw(layout(name), 1, jnp.float16),
                                        tx.init(params), params)
                params = optax.apply_updates(params, updates)
                bad = draw(layout(name), 2, jnp.float16)
                bad["dense0_weight"] = bad["dense0_weight"].at[1, 2].set(jnp.nan)
                updates, skipped = update(bad, state, params)
                assert same_bits(optax.apply_updates(params, updates), params)
                assert same_bits(skipped.inner, state.inner)
                assert (int(skipped.notfinite_count), int(skipped.total_notfinite),
                        bool(skipped.last_finite)) == (1, 1, False)

    @chex.variants(with_jit=True, without_jit=True)
    def test_after_a_skipped_step_training_goes_on_as_without_it(self):
        tx = precision.apply_if_finite(build("adam", learning_rate=0.01))
        params, update = draw(SHAPES, 0, jnp.float32), self.variant(tx.update)
        grads = [draw(SHAPES, i, jnp.float32) for i in range(1, 5)]
        inf = {**grads[0], "dense0_bias": grads[0]["dense0_bias"].at[1].set(-jnp.inf)}

        def run(sequence):
            p, state = params, tx.init(params)
            for g in sequence:
                updates, state = update(g, state, p)
                p = optax.apply_updates(p, updates)
            return p, state

        skipping, state = run([grads[0], inf, inf, *grads[1:]])
        assert same_bits(skipping, run(grads)[0])
        assert (int(state.notfinite_count), int(state.total_notfinite)) == (0, 2)
        assert bool(state.last_finite)


@settings(max_examples=30, deadline=None)
@given(name=st.sampled_from(mxopt.registered_names()), data=st.data())
def test_any_non_finite_value_anywhere_skips_the_step(name, data):
    tx = precision.apply_if_finite(build(name))
    params = draw(layout(name), 0, jnp.float32)
    grads = draw(layout(name), 1, jnp.float32)
    leaf = data.draw(st.sampled_from(sorted(grads)))
    where = tuple(data.draw(st.integers(0, n - 1)) for n in grads[leaf].shape)
    grads[leaf] = grads[leaf].at[where].set(data.draw(st.sampled_from([jnp.inf, -jnp.inf,
                                                                      jnp.nan])))
    state = tx.init(params)
    updates, after = jax.jit(tx.update)(grads, state, params)
    assert same_bits(optax.apply_updates(params, updates), params)
    assert same_bits(after.inner, state.inner) and int(after.total_notfinite) == 1


@pytest.mark.parametrize("case", AMP, ids=[c["id"] for c in AMP])
def test_dynamic_loss_scale_follows_mxnet_amp(case):
    """MXNet AMP's Trainer: the scaled gradients, the skipped steps, the scale, the weights."""
    kwargs = dict(case["kwargs"])
    if "lr_scheduler" in kwargs:
        kwargs["lr_scheduler"] = make_scheduler(kwargs["lr_scheduler"])
    # Gluon's Trainer divides by the batch size and the loss scale in rescale_grad.
    inner = mxopt.create(case["optimizer"], rescale_grad=1 / case["batch_size"], **kwargs)
    tx = precision.dynamic_loss_scale(inner, **case["scaler"])
    dtype = jnp.dtype(case["dtype"])
    params = {k: jnp.asarray(v, dtype) for k, v in case["initial"].items()}
    state, step = tx.init(params), jax.jit(tx.update)
    pure_float16 = dtype == jnp.float16 and not kwargs.get("multi_precision")
    for i, recorded in enumerate(case["steps"]):
        where = f"{case['id']} step {i}"
        assert float(precision.loss_scale(state)) == recorded["loss_scale"], where
        grads = {k: jnp.asarray(v, dtype) for k, v in recorded["grads"].items()}
        updates, state = step(grads, state, params)
        params = optax.apply_updates(params, updates)
        assert bool(state.guarded.last_finite) != recorded["skipped"], where
        assert (float(state.loss_scale), float(state.next_loss_scale), int(state.unskipped)) == \
            (recorded["loss_scale_after"], recorded["next_loss_scale"], recorded["unskipped"]), \
            where
        assert update_count(state) == recorded["num_update"], where
        for k, want in recorded["weights"].items():
            assert_matches_mxnet(params[k], np.asarray(want, case["dtype"]),
                                 pure_float16=pure_float16, what=f"{where} {k}")
    assert mxopt.get_hyperparams(state)["rescale_grad"] == np.float32(1 / case["batch_size"])


def test_the_fixture_exercises_skips_growth_and_the_cap():
    steps = [(c["scaler"], s) for c in AMP for s in c["steps"]]
    assert all(any(s["skipped"] for s in c["steps"]) for c in AMP)
    assert any(s["next_loss_scale"] > s["loss_scale_after"] for _, s in steps)
    assert any(s["next_loss_scale"] == scaler["max_loss_scale"] for scaler, s in steps)


def test_loss_scale_is_found_anywhere_in_a_state_and_only_there():
    tx = optax.chain(optax.identity(), precision.dynamic_loss_scale(build("sgd"), init_scale=8.0))
    assert float(precision.loss_scale(tx.init(draw(SHAPES, 0, jnp.float32)))) == 8.0
    with pytest.raises(ValueError, match="no dynamic_loss_scale state"):
        precision.loss_scale(build("sgd").init(draw(SHAPES, 0, jnp.float32)))


def test_a_transform_without_rescale_grad_gets_unscaled_gradients():
    tx = precision.dynamic_loss_scale(optax.sgd(1.0), init_scale=1024.0)
    params = {"w": jnp.zeros(3, jnp.float16)}
    updates, _ = tx.update({"w": jnp.full(3, 512.0, jnp.float16)}, tx.init(params), params)
    np.testing.assert_array_equal(updates["w"], np.full(3, -0.5, np.float16))


@pytest.mark.parametrize("kwargs,message", [
    ({"init_scale": 0.0}, "init_scale must be > 0"),
    ({"init_scale": 2.0**25}, r"init_scale \(33554432.0\) must be within \[min_loss_scale, "
                              r"max_loss_scale\] = \[5.96\d*e-08, 16777216.0\]"),
    ({"min_loss_scale": 0.0}, "min_loss_scale must be > 0"),
    ({"max_loss_scale": 1e39}, "max_loss_scale=1e[+]39 overflows float32"),
    ({"scale_seq_len": 0}, "scale_seq_len must be >= 1"),
    ({"scale_seq_len": 2.5}, "scale_seq_len must be an integer"),
    ({"max_loss_scale": float("inf")}, "max_loss_scale"),
])
def test_bad_loss_scale_arguments_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        precision.dynamic_loss_scale(build("sgd"), **kwargs)
