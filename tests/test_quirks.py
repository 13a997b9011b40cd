"""``mxnet_quirks=True``: MXNet 1.9.1's numbers where its code contradicts its documentation.

The recorded MXNet trajectories of every such case are replayed with it in
test_parity (pytrees) and test_optimizer (one index per call); these tests
pin what the recordings do not show: the argument itself, the object
surface's object-wide state across calls, the Updater's aggregated calls,
saving, and a packed tree.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import mxopt
from mxopt import optimizer as mo

NAMES = [f"p{i}_weight" for i in range(6)]


def _weights(count=6, dtype=jnp.float32):
    rng = np.random.default_rng(0)
    return [jnp.asarray(rng.normal(size=(3,)), dtype) for _ in range(count)]


def _grads(step, count=6):
    rng = np.random.default_rng(100 + step)
    return [jnp.asarray(rng.normal(size=(3,)), jnp.float32) for _ in range(count)]


@pytest.mark.parametrize("build", [
    lambda value: mxopt.create("sgd", mxnet_quirks=value),
    lambda value: mxopt.nag(mxnet_quirks=value),
    lambda value: mo.create("nadam", mxnet_quirks=value),
    lambda value: mo.LARS(mxnet_quirks=value),
])
def test_a_flag_that_is_no_bool_is_refused(build):
    with pytest.raises(ValueError, match="mxnet_quirks must be a bool"):
        build(1)
    build(True)


def test_default_is_off_and_shown_in_the_objects_repr():
    assert mo.NAG(momentum=0.9).mxnet_quirks is False
    assert "mxnet_quirks=True" in repr(mo.NAG(momentum=0.9, mxnet_quirks=True))
    assert repr(mxopt.nag(momentum=0.9, mxnet_quirks=True)) == \
        "nag(momentum=0.9, mxnet_quirks=True)"


def _lars_run(updater_calls, **kwargs):
    """Six LARS indices under a decaying rate, through ``updater_calls(updater, grads, ws)``."""
    opt = mo.LARS(momentum=0.9, eta=0.5, param_idx2name=dict(enumerate(NAMES)),
                  lr_scheduler=mxopt.FactorScheduler(step=1, factor=0.5, base_lr=0.1),
                  **kwargs)
    updater, weights = mo.get_updater(opt), _weights()
    for step in range(4):
        weights = updater_calls(updater, _grads(step), weights)
    return weights


def test_updater_corrects_the_momentum_of_mxnets_first_call_of_four():
    """MXNet's Updater calls LARS with lists of 4: its one ``last_lr`` moves at the first,
    so indices 0-3 get the documented correction and 4, 5 none at all."""
    quirky = _lars_run(lambda u, g, w: u(list(range(6)), g, w), mxnet_quirks=True)
    documented = _lars_run(lambda u, g, w: u(list(range(6)), g, w))
    uncorrected = _lars_run(lambda u, g, w: u(list(range(6)), g, w), momentum_correction=False)
    for i in range(4):
        np.testing.assert_array_equal(quirky[i], documented[i])
    for i in (4, 5):
        np.testing.assert_array_equal(quirky[i], uncorrected[i])
        assert not np.allclose(quirky[i], documented[i])


def test_one_index_at_a_time_only_the_first_index_is_corrected():
    def one_by_one(updater, grads, weights):
        return [updater(i, g, w) for i, (g, w) in enumerate(zip(grads, weights))]

    quirky = _lars_run(one_by_one, mxnet_quirks=True)
    documented = _lars_run(one_by_one)
    uncorrected = _lars_run(one_by_one, momentum_correction=False)
    np.testing.assert_array_equal(quirky[0], documented[0])
    for i in range(1, 6):
        np.testing.assert_array_equal(quirky[i], uncorrected[i])


def test_pytree_follows_the_leaves_as_indices_one_at_a_time():
    """Over a pytree, Nadam's one schedule gains a factor per leaf, in leaf order: the same
    numbers as the object surface's index-by-index calls."""
    opt = mo.Nadam(learning_rate=0.01, mxnet_quirks=True)
    weights = _weights(4)
    params = {NAMES[i]: w for i, w in enumerate(weights)}
    tx = mxopt.nadam(learning_rate=0.01, mxnet_quirks=True)
    state = tx.init(params)
    states = [opt.create_state(i, w) for i, w in enumerate(weights)]
    for step in range(5):
        grads = _grads(step, 4)
        updates, state = jax.jit(tx.update)(dict(zip(NAMES, grads)), state, params)
        params = optax.apply_updates(params, updates)
        for i in range(4):
            weights[i], states[i] = opt.update(i, weights[i], grads[i], states[i])
    for i in range(4):
        np.testing.assert_allclose(params[NAMES[i]], weights[i], rtol=1e-6)
    documented = mxopt.nadam(learning_rate=0.01)
    plain = {NAMES[i]: w for i, w in enumerate(_weights(4))}
    plain_state = documented.init(plain)
    for step in range(5):
        updates, plain_state = documented.update(dict(zip(NAMES, _grads(step, 4))),
                                                 plain_state, plain)
        plain = optax.apply_updates(plain, updates)
    assert not np.allclose(plain[NAMES[3]], params[NAMES[3]], rtol=1e-6)


def test_a_list_call_reads_the_object_wide_state_once():
    """Indices of one list call all start from the state the call started with."""
    opt = mo.Nadam(learning_rate=0.01, mxnet_quirks=True)
    weights, grads = _weights(3), _grads(0, 3)
    states = [opt.create_state(i, w) for i, w in enumerate(weights)]
    together, _ = opt.update([0, 1, 2], weights, grads, states)
    fresh = mo.Nadam(learning_rate=0.01, mxnet_quirks=True)
    alone = [mo.Nadam(learning_rate=0.01, mxnet_quirks=True).update(
        i, weights[i], grads[i], fresh.create_state(i, weights[i]))[0] for i in range(3)]
    for got, want in zip(together, alone):
        np.testing.assert_array_equal(got, want)


def test_lamb_one_index_call_drops_the_master_and_a_list_call_keeps_it():
    opt = mo.LAMB(learning_rate=0.01, multi_precision=True, mxnet_quirks=True)
    weight = jnp.asarray([0.5, -0.25, 1.0], jnp.float16)
    grad = jnp.asarray([0.1, 0.2, -0.3], jnp.float16)
    start = opt.create_state_multi_precision(0, weight)
    _, alone = opt.update_multi_precision(0, weight, grad, start)
    _, (listed,) = opt.update_multi_precision([1], [weight], [grad],
                                              [opt.create_state_multi_precision(1, weight)])
    np.testing.assert_array_equal(optax.tree.get(alone, "master"),
                                  optax.tree.get(start, "master"))
    assert not np.array_equal(optax.tree.get(listed, "master"),
                              optax.tree.get(start, "master"))


def test_saved_optimizer_keeps_the_object_wide_state():
    opt = mo.Nadam(learning_rate=0.01, mxnet_quirks=True)
    updater = mo.get_updater(opt)
    weights = _weights(3)
    for step in range(3):
        weights = updater(list(range(3)), _grads(step, 3), weights)
    restored = mo.get_updater(mo.Nadam(learning_rate=0.01))
    restored.set_states(updater.get_states(dump_optimizer=True))
    assert restored.optimizer.mxnet_quirks is True
    assert restored.optimizer.get_config()["shared_state"] == opt.get_config()["shared_state"]
    assert opt.get_config()["shared_state"]["schedule"] > 0
    resumed = list(weights)
    for step in range(3, 5):
        weights = updater(list(range(3)), _grads(step, 3), weights)
        resumed = restored(list(range(3)), _grads(step, 3), resumed)
    for got, want in zip(resumed, weights):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("bad", [{"nope": 0.5}, {"schedule": float("nan")},
                                 {"schedule": True}, ["schedule"]])
def test_saved_object_wide_state_is_checked(bad):
    opt = mo.Nadam(mxnet_quirks=True)
    config = opt.get_config()
    config["shared_state"] = bad
    with pytest.raises(ValueError, match="shared_state"):
        mo.Optimizer.from_config(config)


def test_nadam_quirk_refuses_packed_params():
    packed = mxopt.pack({"a": jnp.ones(3), "b": jnp.ones(2)})
    with pytest.raises(ValueError, match="per leaf"):
        mxopt.nadam(mxnet_quirks=True).init(packed)
    mxopt.nadam().init(packed)


def test_stale_schedule_only_where_mxnet_starts_past_max_update():
    scheduler = mxopt.PolyScheduler(max_update=10, base_lr=0.5, final_lr=0.1)
    late = mxopt.sgd(lr_scheduler=scheduler, begin_num_update=10, mxnet_quirks=True)
    assert late.learning_rate.stale_rate == 0.5
    np.testing.assert_allclose(late.learning_rate(11), 0.5)
    on_time = mxopt.sgd(lr_scheduler=scheduler, begin_num_update=9, mxnet_quirks=True)
    assert on_time.learning_rate is scheduler
    with pytest.raises(ValueError, match="stale_rate"):
        mxopt.CosineScheduler(max_update=10, stale_rate=-1.0)
