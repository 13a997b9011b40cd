"""MXNet's object surface: ``mxopt.optimizer.Optimizer``, its subclasses, ``Updater``.

MXNet's defaults, effective multipliers and trajectories come from
tools/record_mxnet.py (MXNet 1.9.1); no number here is written by hand.
"""

import types
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mxnet_fixtures import (
    assert_matches_mxnet,
    load,
    mxnet_optimizer,
    pure_float16,
    trajectories,
    trajectories_of,
)
from strategies import floats
from trajectory import bits

import mxopt
from mxopt import optimizer as mo
from mxopt.mxnet.files import UnsafePickleError

REGISTRY = load("registry")
OBJECT_ONLY = {"param_idx2name", "sym", "param_dict"}


# -- construction, attributes, multipliers ---------------------------------

@pytest.mark.parametrize("name", sorted(REGISTRY["optimizers"]))
def test_attributes_have_mxnets_defaults(name):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # ccsgd
        opt = mo.Optimizer.create_optimizer(name)
    assert isinstance(opt, mo.Optimizer.opt_registry[name])
    mxnet = {**REGISTRY["base"], **REGISTRY["optimizers"][name]}
    for arg, default in mxnet.items():
        if arg not in OBJECT_ONLY | {"learning_rate"}:
            assert getattr(opt, arg) == default, arg
    # MXNet's lr is 0.01 when neither learning_rate nor a scheduler is given.
    lr = 0.01 if mxnet["learning_rate"] is None else mxnet["learning_rate"]
    assert opt.lr == lr and opt.learning_rate == lr


@pytest.mark.parametrize("case", trajectories(), ids=lambda c: c["id"])
def test_multipliers_are_mxnets(case):
    """Effective lr_mult/wd_mult per name, with MXNet's names rule and set_*_mult calls."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        opt = mxnet_optimizer(case)
    for i, name in enumerate(sorted(case["initial"])):
        assert opt._multiplier("lr", i) == pytest.approx(case["lr_mult"][name], rel=1e-12)
        assert opt._multiplier("wd", i) == pytest.approx(case["wd_mult"][name], rel=1e-12)


def test_sym_attributes_set_multipliers():
    sym = {"fc_weight": {"__lr_mult__": "2.5", "__wd_mult__": "0.5"}, "fc_bias": {}}
    opt = mo.SGD(sym=sym, param_idx2name={0: "fc_weight", 1: "fc_bias", 2: "bn_gamma"})
    assert opt.lr_mult == {"fc_weight": 2.5}
    assert opt.wd_mult == {"fc_bias": 0.0, "fc_weight": 0.5}  # bias: MXNet's names rule
    opt.set_wd_mult({"bn_gamma": 3.0, 1: 7.0})
    assert [opt._multiplier("wd", i) for i in range(3)] == [0.5, 7.0, 3.0]

    class Symbol:  # what MXNet's Symbol offers for this
        def attr_dict(self):
            return sym

        def list_arguments(self):
            return ["data", "fc_weight", "fc_bias"]

    assert mo.SGD(sym=Symbol()).lr_mult == {"fc_weight": 2.5}
    with pytest.raises(ValueError, match="sym must map"):
        mo.SGD(sym=["fc_weight"])


def test_param_dict_multipliers_come_first():
    params = {0: types.SimpleNamespace(lr_mult=3.0, wd_mult=0.0)}
    opt = mo.SGD(param_dict=params, param_idx2name={0: "a_weight", 1: "b_weight"})
    opt.set_lr_mult({0: 9.0, "b_weight": 2.0})
    assert [opt._multiplier("lr", i) for i in (0, 1)] == [3.0, 2.0]
    assert [opt._multiplier("wd", i) for i in (0, 1)] == [0.0, 1.0]


def test_hyperparameter_attributes():
    opt = mo.create("sgd", learning_rate=0.1, momentum=0.9, wd=1e-4)
    assert (opt.lr, opt.momentum, opt.wd, opt.rescale_grad) == (0.1, 0.9, 1e-4, 1.0)
    opt.momentum, opt.rescale_grad = 0.5, 0.25
    assert (opt.momentum, opt.rescale_grad) == (0.5, 0.25)
    with pytest.raises(ValueError, match="momentum"):
        opt.momentum = 1.5
    with pytest.raises(AttributeError, match="multi_precision shapes the update"):
        opt.multi_precision = True
    with pytest.raises(AttributeError, match="no attribute 'beta1'"):
        _ = opt.beta1
    with pytest.raises(TypeError, match="no argument 'beta1'"):
        mo.create("sgd", beta1=0.9)
    with pytest.raises(TypeError, match="set_lr_mult"):
        mo.create("sgd", lr_mult={"w": 2.0})


def test_set_learning_rate_and_schedulers():
    opt = mo.create("sgd", learning_rate=0.1)
    opt.set_learning_rate(0.05)
    assert opt.learning_rate == 0.05 and opt.lr == 0.05
    scheduled = mo.create("sgd", lr_scheduler=mxopt.FactorScheduler(step=1, factor=0.5,
                                                                    base_lr=0.4))
    with pytest.raises(UserWarning, match="LRScheduler"):  # MXNet raises UserWarning
        scheduled.set_learning_rate(0.1)
    with pytest.raises(ValueError, match="LRScheduler"):
        scheduled.lr = 0.1
    weight = jnp.ones(3)
    state = scheduled.create_state(0, weight)
    rates = []
    for _ in range(3):
        new, state = scheduled.update(0, weight, jnp.ones(3), state)
        rates.append(float(weight[0] - new[0]))
        assert scheduled.learning_rate == pytest.approx(rates[-1], rel=1e-6)
    np.testing.assert_allclose(rates, [0.4, 0.2, 0.1], rtol=1e-6)


def test_a_pytree_state_keeps_its_rate_and_setting_the_objects_warns():
    opt = mo.create("sgd", learning_rate=0.1, momentum=0.9)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        opt.set_learning_rate(0.2)  # no pytree state yet: nothing to warn about
    params, grads = {"w": jnp.ones(2)}, {"w": jnp.ones(2)}
    state = opt.init(params)
    with pytest.warns(UserWarning, match=r"set_hyperparams\(state, learning_rate=0.05\)"):
        opt.set_learning_rate(0.05)
    with pytest.warns(UserWarning, match=r"set_hyperparams\(state, momentum=0.5\)"):
        opt.momentum = 0.5
    assert (opt.lr, opt.momentum) == (0.05, 0.5)  # the object's per-index updates use them
    updates, _ = opt.update(grads, state, params)
    np.testing.assert_allclose(updates["w"], [-0.2, -0.2], rtol=1e-6)  # the state's 0.2
    updates, _ = opt.update(grads, mxopt.set_hyperparams(state, learning_rate=0.05), params)
    np.testing.assert_allclose(updates["w"], [-0.05, -0.05], rtol=1e-6)


def test_set_lr_scale_is_deprecated():
    opt = mo.SGD()
    with pytest.warns(DeprecationWarning, match="set_lr_mult"):
        opt.set_lr_scale({0: 2.0})
    assert opt.lr_mult == {0: 2.0}


def test_register_a_user_optimizer():
    def doubled_sgd(**kwargs):
        """SGD at twice the rate: ``w = w - 2 * lr * g``."""
        kwargs["learning_rate"] = 2 * kwargs.get("learning_rate", 0.01)
        return mxopt.sgd(**kwargs)

    @mo.Optimizer.register
    class DoubledSGD(mo.Optimizer):
        transform = doubled_sgd

    try:
        opt = mo.Optimizer.create_optimizer("DoubledSGD", learning_rate=0.1)
        assert isinstance(opt, DoubledSGD) and "doubled_sgd" in DoubledSGD.__doc__
        new, _ = opt.update(0, jnp.ones(2), jnp.ones(2), opt.create_state(0, jnp.ones(2)))
        np.testing.assert_allclose(new, 0.8, rtol=1e-6)
        assert "doubledsgd" in mxopt.registered_names()  # the pure function too
        with pytest.warns(UserWarning, match="overridden"):
            mo.register(type("DoubledSGD", (mo.Optimizer,), {"transform": doubled_sgd}))
    finally:
        del mo.Optimizer.opt_registry["doubledsgd"]
    with pytest.raises(TypeError, match="no transform"):
        mo.Optimizer()
    with pytest.raises(ValueError, match="unknown optimizer"):
        mo.create("sgdd")


# -- per-index updates ------------------------------------------------------

def test_update_returns_new_arrays_and_counts_as_mxnet():
    opt = mo.create("adam", learning_rate=0.1, begin_num_update=5)
    weight = np.ones((2, 3), np.float32)
    state = opt.create_state(0, weight)
    new, state = opt.update(0, weight, np.full((2, 3), 0.5, np.float32), state)
    np.testing.assert_array_equal(weight, 1.0)  # nothing the caller passed is changed
    assert new.shape == (2, 3) and not np.allclose(new, weight)
    opt.update(1, weight, weight, opt.create_state(1, weight))
    opt.update(1, weight, weight, opt.create_state(1, weight))
    assert opt._index_update_count == {0: 6, 1: 7} and opt.num_update == 7
    weights, states = opt.update([0, 2], [weight, weight], [weight, weight],
                                 [state, opt.create_state(2, weight)])
    assert len(weights) == len(states) == 2
    assert opt._index_update_count == {0: 7, 1: 7, 2: 6}


@pytest.mark.parametrize("case", [c for c in trajectories_of("same")
                                  if c["id"].endswith(("-00", "-fp16-master"))],
                         ids=lambda c: c["id"])
@jax.disable_jit()  # eager: each operation compiles once for all cases (see test_mxnet_runs)
def test_per_index_updates_follow_mxnet(case):
    """``create_state_multi_precision`` and ``update_multi_precision`` replay MXNet's run."""
    names = sorted(case["initial"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        opt = mxnet_optimizer(case)
    weights = [jnp.asarray(case["initial"][n], case["dtype"]) for n in names]
    states = [opt.create_state_multi_precision(i, w) for i, w in enumerate(weights)]
    for step, (grads, expected) in enumerate(zip(case["grads"], case["weights"])):
        for i, name in enumerate(names):
            weights[i], states[i] = opt.update_multi_precision(
                i, weights[i], jnp.asarray(grads[name], case["dtype"]), states[i])
            assert_matches_mxnet(weights[i], np.asarray(expected[name], case["dtype"]),
                                 pure_float16=pure_float16(case), what=f"step {step}, {name}")


@pytest.mark.parametrize("case", trajectories_of("divergent"), ids=lambda c: c["id"])
@jax.disable_jit()
def test_per_index_updates_with_mxnet_quirks_are_mxnets(case):
    """With ``mxnet_quirks=True``, one index per call in index order, as the recorder called
    MXNet, gives MXNet's numbers where its code contradicts its documentation."""
    names = sorted(case["initial"])
    opt = mxnet_optimizer(case, mxnet_quirks=True)
    weights = [jnp.asarray(case["initial"][n], case["dtype"]) for n in names]
    states = [opt.create_state_multi_precision(i, w) for i, w in enumerate(weights)]
    for step, (grads, expected) in enumerate(zip(case["grads"], case["weights"])):
        for i, name in enumerate(names):
            weights[i], states[i] = opt.update_multi_precision(
                i, weights[i], jnp.asarray(grads[name], case["dtype"]), states[i])
            assert_matches_mxnet(weights[i], np.asarray(expected[name], case["dtype"]),
                                 pure_float16=pure_float16(case), what=f"step {step}, {name}")


def test_per_index_loop_compiles_once_per_shape_and_dtype():
    opt = mo.create("sgd", learning_rate=0.1, momentum=0.9, wd=1e-4, multi_precision=True,
                    param_idx2name={i: f"p{i}_weight" for i in range(10)})
    updater = mo.get_updater(opt)
    shapes = [(3,), (4, 2), (3,), (5,), (4, 2), (3,), (5,), (3,), (4, 2), (2, 2)]
    weights = [jnp.ones(s, jnp.float16 if i % 4 == 0 else jnp.float32)
               for i, s in enumerate(shapes)]
    for step in range(100):
        opt.lr = 0.1 / (1 + step)  # new values every step: arguments, not constants
        opt.set_wd_mult({f"p{step % 10}_weight": 0.5})
        weights = updater(list(range(10)), [w * 0.1 for w in weights], weights)
    distinct = {(w.shape, w.dtype) for w in weights}
    assert opt._step(True)._cache_size() == len(distinct) == 6


def test_pytree_transformation_matches_per_index_updates():
    names = ["dense0_weight", "dense0_bias", "bn0_gamma"]
    params = {n: jnp.linspace(-1, 1, 6, dtype=jnp.float32).reshape(2, 3) * (i + 1)
              for i, n in enumerate(names)}
    make = lambda: mo.create("nag", learning_rate=0.1, momentum=0.9, wd=0.01, clip_gradient=0.3,
                             param_idx2name=dict(enumerate(names)))
    tree_opt, index_opt = make(), make()
    tree_opt.set_lr_mult({"bn0_gamma": 2.0})
    index_opt.set_lr_mult({"bn0_gamma": 2.0})
    state = tree_opt.init(params)
    step = jax.jit(lambda p, s, g: tree_opt.update(g, s, p))
    tree, indexed = dict(params), [params[n] for n in names]
    states = [index_opt.create_state(i, w) for i, w in enumerate(indexed)]
    for k in range(5):
        grads = {n: jnp.sin(p * (k + 1)) for n, p in tree.items()}
        updates, state = step(tree, state, grads)
        tree = optax.apply_updates(tree, updates)
        indexed, states = index_opt.update(list(range(3)), indexed, [grads[n] for n in names],
                                           states)
        for n, w in zip(names, indexed):
            np.testing.assert_allclose(tree[n], w, rtol=1e-6, atol=1e-7, err_msg=n)
    # Biases get no weight decay: dense0_bias is not decayed in either path.
    assert mxopt.get_hyperparams(state)["wd"] == pytest.approx(0.01)


def test_optimizer_composes_with_optax():
    """An Optimizer goes where an optax transformation goes: here after a global-norm clip."""
    params = {"w": jnp.ones(4)}
    tx = optax.chain(optax.clip_by_global_norm(1.0), mo.create("sgd", learning_rate=0.1))
    updates, _ = jax.jit(tx.update)({"w": jnp.full(4, 3.0)}, tx.init(params), params)
    np.testing.assert_allclose(updates["w"], -0.1 * 0.5, rtol=1e-6)  # |g| = 6, clipped to 1


def test_pytree_init_needs_indices_for_index_multipliers():
    opt = mo.SGD(param_dict={0: types.SimpleNamespace(lr_mult=2.0, wd_mult=1.0)})
    params = {"b": jnp.ones(2), "a": jnp.ones(3)}
    with pytest.raises(ValueError, match="indices"):
        opt.init(params)
    state = opt.init(params, indices=["b", "a"])  # b is MXNet's index 0
    updates, _ = opt.update({"b": jnp.ones(2), "a": jnp.ones(3)}, state, params)
    np.testing.assert_allclose(updates["b"], -0.02)
    np.testing.assert_allclose(updates["a"], -0.01)
    with pytest.raises(ValueError, match="missing"):
        opt.init(params, indices=["b"])
    opt.init([jnp.ones(2), jnp.ones(3)])  # a list's order is the index


# -- Updater ----------------------------------------------------------------

def _run(updater, weights, steps, start=0):
    for k in range(start, start + steps):
        weights = updater(list(range(len(weights))),
                          [jnp.cos(w.astype(jnp.float32) * (k + 1)).astype(w.dtype)
                           for w in weights], weights)
    return weights


UPDATER_CASES = {
    "sgd": {"learning_rate": 0.1, "momentum": 0.9, "wd": 1e-3, "multi_precision": True},
    "adam": {"lr_scheduler": mxopt.CosineScheduler(max_update=20, base_lr=0.1, warmup_steps=2),
             "multi_precision": True, "begin_num_update": 3},
    "sgld": {"learning_rate": 0.01, "seed": 7},
    "rmsprop": {"learning_rate": 0.01, "centered": True, "clip_weights": 2.0},
    "lamb": {"lr_scheduler": mxopt.MultiFactorScheduler(step=[2, 4], factor=0.5, base_lr=0.1),
             "learning_rate": 0.05},
}


@pytest.mark.parametrize("dump_optimizer", [False, True])
@pytest.mark.parametrize("name", sorted(UPDATER_CASES))
def test_updater_states_round_trip_exactly(name, dump_optimizer):
    """get_states / set_states, then the same steps as an updater never saved, bit for bit."""
    def fresh():
        opt = mo.create(name, **UPDATER_CASES[name], param_idx2name={0: "w_weight", 1: "b"})
        opt.set_lr_mult({"b": 2.0})
        return mo.get_updater(opt)

    weights = [jnp.linspace(-1, 1, 6).reshape(2, 3).astype(jnp.float16),
               jnp.linspace(0, 1, 4).astype(jnp.bfloat16), jnp.arange(3.0)]
    saved = fresh()
    weights = _run(saved, weights, 3)
    data = saved.get_states(dump_optimizer=dump_optimizer)
    assert data[:2] == b"PK"  # an npz archive: no pickle
    restored = fresh() if not dump_optimizer else mo.get_updater(mo.create("sgd"))
    restored.set_states(data)
    if dump_optimizer:
        assert type(restored.optimizer) is type(saved.optimizer)
        assert restored.optimizer.get_config() == saved.optimizer.get_config()
    for index, state in saved.states.items():
        for a, b in zip(jax.tree.leaves(state), jax.tree.leaves(restored.states[index])):
            assert a.dtype == b.dtype
            np.testing.assert_array_equal(bits(a), bits(b))
    if not dump_optimizer:  # the counts live in the optimizer, as in MXNet
        restored.optimizer._index_update_count.update(saved.optimizer._index_update_count)
        restored.optimizer.num_update = saved.optimizer.num_update
    for a, b in zip(_run(saved, weights, 4, start=3), _run(restored, weights, 4, start=3)):
        np.testing.assert_array_equal(bits(a), bits(b))


def test_updater_keeps_unused_mxnet_states_through_get_states(tmp_path):
    from mxnet_fixtures import FIXTURES
    mxnet_bytes = (FIXTURES / "mxnet_files" / "states" / "adam_factor.states").read_bytes()
    updater = mo.get_updater(mo.create("adam"))
    updater.set_states(mxnet_bytes)
    again = mo.get_updater(mo.create("adam"))
    again.set_states(updater.get_states())
    weight = jnp.zeros((2, 3))
    updater(0, jnp.ones((2, 3)), weight)
    again(0, jnp.ones((2, 3)), weight)
    for a, b in zip(jax.tree.leaves(updater.states[0]), jax.tree.leaves(again.states[0])):
        np.testing.assert_array_equal(a, b)


def test_updater_set_states_errors():
    updater = mo.get_updater(mo.create("sgd", momentum=0.9))
    with pytest.raises(ValueError, match="not a readable mxopt archive"):
        updater.set_states(b"PK\x03\x04 broken")
    with pytest.raises(UnsafePickleError, match="os"):
        import os
        import pickle

        class Evil:
            def __reduce__(self):
                return (os.system, ("echo pwned",))
        updater.set_states(pickle.dumps({0: Evil()}))
    other = mo.get_updater(mo.create("sgd", momentum=0.9))
    other(0, jnp.ones(3), jnp.ones(3))
    plain = mo.get_updater(mo.create("sgd"))  # momentum 0: no buffer
    with pytest.raises(ValueError, match="index 0 has 8 arrays, this optimizer.s has 6"):
        plain.set_states(other.get_states())
    scheduled = mo.get_updater(mo.create("sgd", lr_scheduler=lambda n: 0.1))
    with pytest.raises(ValueError, match="plain function"):
        scheduled.get_states(dump_optimizer=True)


@settings(max_examples=20, deadline=None)
@given(st.sampled_from(["sgd", "nag", "adam", "adagrad", "rmsprop", "ftml"]),
       floats(1e-4, 0.5), st.integers(0, 50), st.booleans())
def test_config_round_trip(name, lr, begin, scheduled):
    kwargs = {"learning_rate": lr, "begin_num_update": begin, "wd": lr / 10}
    if scheduled:
        kwargs["lr_scheduler"] = mxopt.FactorScheduler(step=3, factor=0.9, base_lr=2 * lr)
    opt = mo.create(name, **kwargs, param_idx2name={0: "x_weight", 1: "x_bias"})
    opt.set_lr_mult({0: 2.0, "x_bias": 0.5})
    opt._index_update_count.update({0: begin + 2, "x": begin + 1})
    rebuilt = mo.Optimizer.from_config(opt.get_config())
    assert rebuilt.get_config() == opt.get_config()
    assert rebuilt.lr_scheduler == opt.lr_scheduler and rebuilt.lr == opt.lr


def test_repr_shows_the_arguments_given_and_num_update():
    sgd = mo.create("sgd", learning_rate=0.1, momentum=0.9, wd=1e-4)
    assert repr(sgd) == "SGD(learning_rate=0.1, wd=0.0001, momentum=0.9, num_update=0)"
    updater = mo.get_updater(sgd)
    updater([0, 1], [jnp.ones(2)] * 2, [jnp.ones(2)] * 2)
    assert repr(updater) == (
        "Updater(SGD(learning_rate=0.1, wd=0.0001, momentum=0.9, num_update=1), "
        "states for indices [0, 1])")
