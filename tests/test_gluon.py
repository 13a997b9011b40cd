"""mxopt.gluon.Trainer against Gluon Trainer runs of MXNet 1.9.1 (tools/record_gluon_trainer.py).

Each recorded run trained a small network with ``gluon.Trainer`` as GluonCV's
and GluonNLP's recipes do (NAG under a warmup-and-cosine ``LRSequential``,
``set_learning_rate`` between epochs, BERTAdam with the rate set each step
and global-norm clipping between ``allreduce_grads`` and ``update``, float16
weights with master copies), with a short last batch, saved its states
midway and continued from them in a new Trainer. The ported runs take
MXNet's gradients and must give MXNet's weights and ``trainer.learning_rate``
at every step, from the start and from MXNet's own states file.
"""

import json

import hypothesis
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from mxnet_fixtures import FIXTURES, assert_matches_mxnet

import mxopt
from mxopt import gluoncv
from mxopt.gluon import Trainer, clip_grad_global_norm
from mxopt.optimizer import SchedulerConflictError

ROOT = FIXTURES / "mxnet_trainer"
CASES = {case["id"]: case for case in json.loads((ROOT / "runs.json").read_text())["cases"]}


def arguments_of(case: dict, mxnet_quirks: bool = True) -> dict:
    """The recorder's optimizer arguments, its GluonCV schedule made mxopt's; MXNet's numbers."""
    kwargs = dict(case["kwargs"], mxnet_quirks=mxnet_quirks)
    if "schedule" in case:
        kwargs["lr_scheduler"] = gluoncv.LRSequential(
            [gluoncv.LRScheduler(**part) for part in case["schedule"]])
    return kwargs


def trainer_of(case: dict, mxnet_quirks: bool = True) -> Trainer:
    """What the recorder's ``gluon.Trainer`` was: the optimizer by name with its arguments,
    and each Parameter's multipliers by name."""
    return Trainer(case["optimizer"], dict(
        arguments_of(case, mxnet_quirks),
        lr_mult=dict(zip(case["param_names"], case["lr_mult_of"])),
        wd_mult=dict(zip(case["param_names"], case["wd_mult_of"]))))


def named(case: dict, values: list) -> dict:
    return {name: jnp.asarray(np.asarray(v, case["dtype"]))
            for name, v in zip(case["param_names"], values)}


def bert_rate(case: dict, step: int) -> float:
    """GluonNLP's fine-tuning rate for a step (1-based), as the recorder set it."""
    lr, warmup, total = case["bert_lr"], case["warmup_steps"], len(case["batch_sizes"])
    return lr * step / warmup if step < warmup else lr - (step - warmup) / (total - warmup) * lr


def train(trainer: Trainer, case: dict, params: dict, state, records: list, first: int):
    """The recorded steps from ``first``, as the recipe took them, in one jitted step
    whatever the batch size; checks the weights and the rate after each."""
    traces = []

    @jax.jit
    def step(params, state, grads, batch_size):
        traces.append(None)
        if case["recipe"] == "bert":  # allreduce_grads, clip_grad_global_norm, update
            return trainer.update(grads, state, params, batch_size)
        return trainer.step(grads, state, params, batch_size)

    for k, record in enumerate(records, start=first):
        what = f"{case['id']} step {k + 1}"
        grads = named(case, record["grads"])
        if case["recipe"] == "bert":
            state = trainer.set_learning_rate(state, bert_rate(case, k + 1))
            clipped, norm = clip_grad_global_norm(trainer.allreduce_grads(grads),
                                                  case["max_norm"])
            np.testing.assert_allclose(norm, record["norm"], rtol=1e-6, err_msg=what)
            for got, want in zip(clipped.values(), record["clipped"]):
                np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-8, err_msg=what)
            # Adam's steps of gradients near 0 (below epsilon) magnify any rounding
            # difference: the update is checked on MXNet's clipped gradients.
            grads = named(case, record["clipped"])
        elif k == case.get("set_learning_rate_at"):
            state = trainer.set_learning_rate(state, case["new_learning_rate"])
        batch_size = 1 if case["recipe"] == "bert" else record["batch_size"]
        params, state = step(params, state, grads, batch_size)
        for name, want in zip(case["param_names"], record["weights"]):
            assert_matches_mxnet(params[name], np.asarray(want, case["dtype"]),
                                 pure_float16=False, what=f"{what}, {name}")
        np.testing.assert_allclose(trainer.learning_rate(state), record["learning_rate"],
                                   rtol=1e-6, err_msg=what)
    assert len(traces) == 1, "one compile for every batch size, the short last one too"
    return params, state


@pytest.mark.parametrize("case", CASES.values(), ids=CASES)
def test_trainer_gives_mxnets_run_and_continues_from_mxnets_file(case):
    trainer = trainer_of(case)
    params = named(case, case["initial"])
    train(trainer, case, params, trainer.init(params), case["run"], 0)
    saved = named(case, case["saved"])
    resumed, state = trainer.load_states(ROOT / case["states"], saved)
    assert mxopt.update_count(state) == case["saved_at"]
    train(resumed, case, saved, state, case["resumed"], case["saved_at"])


def object_run(updater, case: dict, weights: list, records: list, first: int) -> None:
    """The recorded steps through MXNet's objects, as ``gluon.Trainer`` calls them: the
    rate set, ``rescale_grad = scale / batch_size``, one Updater call over every index."""
    optimizer, scale = updater.optimizer, case["kwargs"].get("rescale_grad", 1.0)
    for k, record in enumerate(records, start=first):
        if case["recipe"] == "bert":
            optimizer.set_learning_rate(bert_rate(case, k + 1))
        elif k == case.get("set_learning_rate_at"):
            optimizer.set_learning_rate(case["new_learning_rate"])
        grads = record["clipped" if case["recipe"] == "bert" else "grads"]
        optimizer.rescale_grad = scale / (1 if case["recipe"] == "bert" else record["batch_size"])
        weights = updater(list(range(len(weights))), list(named(case, grads).values()), weights)
        for name, got, want in zip(case["param_names"], weights, record["weights"]):
            assert_matches_mxnet(got, np.asarray(want, case["dtype"]), pure_float16=False,
                                 what=f"{case['id']} step {k + 1}, {name}")
        np.testing.assert_allclose(optimizer.learning_rate, record["learning_rate"], rtol=1e-6)


@pytest.mark.parametrize("case", CASES.values(), ids=CASES)
def test_mxnets_objects_give_the_run_and_continue_from_mxnets_file(case):
    """The object path: ``mxopt.optimizer`` as the Trainer drives MXNet's, its Parameters'
    multipliers in ``param_dict``."""
    gluon_params = {i: {"lr_mult": lr, "wd_mult": wd}
                    for i, (lr, wd) in enumerate(zip(case["lr_mult_of"], case["wd_mult_of"]))}

    def updater():
        return mxopt.get_updater(mxopt.optimizer.create(case["optimizer"],
                                                        param_dict=gluon_params,
                                                        **arguments_of(case)))

    object_run(updater(), case, list(named(case, case["initial"]).values()), case["run"], 0)
    resumed = updater()
    resumed.set_states((ROOT / case["states"]).read_bytes())
    resumed.optimizer.param_dict = gluon_params  # as Trainer.load_states sets it
    object_run(resumed, case, list(named(case, case["saved"]).values()), case["resumed"],
               case["saved_at"])


def test_the_recording_covers_the_recipes():
    assert {c["optimizer"] for c in CASES.values()} >= {"nag", "sgd", "bertadam"}
    assert any(c["dtype"] == "float16" for c in CASES.values())
    assert all(c["batch_sizes"][-1] < c["batch_sizes"][0] for c in CASES.values())
    nag = CASES["gluoncv_nag"]  # MXNet's NAG with momentum and wd: its quirk matters
    documented = trainer_of(nag, mxnet_quirks=False)
    params = named(nag, nag["initial"])
    with pytest.raises(AssertionError):
        train(documented, nag, params, documented.init(params), nag["run"], 0)


def test_own_checkpoint_continues_bit_for_bit(tmp_path):
    case = CASES["gluoncv_nag"]
    trainer = trainer_of(case)
    params = named(case, case["initial"])
    state = trainer.init(params)
    grads = [named(case, r["grads"]) for r in case["run"]]
    for g, r in zip(grads[:3], case["run"]):
        params, state = trainer.step(g, state, params, r["batch_size"])
    trainer.save_states(tmp_path / "run", state)
    trainer.save_states(tmp_path / "run", state)  # Gluon overwrites its file
    same, restored = trainer.load_states(tmp_path / "run", params)
    assert same is trainer
    continued = params
    for g, r in zip(grads[3:5], case["run"][3:]):
        params, state = trainer.step(g, state, params, r["batch_size"])
        continued, restored = same.step(g, restored, continued, r["batch_size"])
    assert all(jnp.array_equal(a, b) for a, b in zip(jax.tree.leaves((params, state)),
                                                     jax.tree.leaves((continued, restored))))


def test_allreduce_sums_over_devices_as_gluon_does():
    """Two devices, half the batch each: the step of the whole batch on one."""
    trainer = Trainer("sgd", {"learning_rate": 0.1, "momentum": 0.9, "wd": 1e-3})
    params = {"w": jnp.arange(6.0).reshape(2, 3) / 10}
    grads = jax.random.normal(jax.random.key(0), (2, 2, 3))  # one gradient sum per device
    state = trainer.init(params)
    devices = jax.devices()[:2]
    on_devices = jax.pmap(lambda g: trainer.step({"w": g}, state, params, 8, axis_name="d"),
                          axis_name="d", devices=devices)(grads)
    whole = trainer.step({"w": grads.sum(0)}, state, params, 8)
    for replica in range(2):
        np.testing.assert_allclose(on_devices[0]["w"][replica], whole[0]["w"], rtol=1e-6)


def test_batch_size_scales_gradients_and_leaves_rescale_grad():
    trainer = Trainer("sgd", {"learning_rate": 1.0, "rescale_grad": 0.5})
    params, grads = {"w": jnp.zeros(2)}, {"w": jnp.array([4.0, -8.0])}
    state = trainer.init(params)
    new, state = trainer.step(grads, state, params, 4)
    np.testing.assert_array_equal(new["w"], [-0.5, 1.0])  # 0.5 / 4 * g
    assert mxopt.get_hyperparams(state)["rescale_grad"] == 0.5


def test_clip_grad_global_norm_is_gluonnlps():
    grads = {"a": jnp.array([3.0, 0.0]), "b": jnp.array([[4.0]], jnp.float16)}
    clipped, norm = clip_grad_global_norm(grads, 1.0)
    assert float(norm) == 5.0 and clipped["b"].dtype == jnp.float16
    np.testing.assert_allclose(clipped["a"], [0.6, 0.0], rtol=1e-6)
    unclipped, _ = clip_grad_global_norm(grads, 10.0)
    assert all(jnp.array_equal(a, b) for a, b in zip(jax.tree.leaves(unclipped),
                                                     jax.tree.leaves(grads)))


def test_learning_rate_is_the_last_updates_and_set_learning_rate_gluons():
    schedule = mxopt.FactorScheduler(step=1, factor=0.5, base_lr=1.0)
    trainer = Trainer("sgd", {"lr_scheduler": schedule})
    params = {"w": jnp.zeros(2)}
    state = trainer.init(params)
    assert float(trainer.learning_rate(state)) == 1.0  # lr_scheduler(0), as MXNet's
    _, state = trainer.step({"w": jnp.ones(2)}, state, params, 1)
    assert float(trainer.learning_rate(state)) == float(schedule(1))
    with pytest.raises(SchedulerConflictError, match="LRScheduler"):
        trainer.set_learning_rate(state, 0.1)
    fixed = Trainer("adam", {"learning_rate": 0.01})
    state = fixed.set_learning_rate(fixed.init(params), 0.5)
    assert float(fixed.learning_rate(state)) == 0.5
    with pytest.raises(ValueError, match="learning_rate"):
        fixed.set_learning_rate(state, -1.0)


@pytest.mark.parametrize("make,message", [
    (lambda: Trainer(mxopt.sgd(), {"momentum": 0.9}), "optimizer_params must be None"),
    (lambda: Trainer(optax.sgd(0.1)), "no mxopt optimizer"),
    (lambda: Trainer(mxopt.optimizer.NAG(momentum=0.9)), "pytree_transformation"),
    (lambda: Trainer("sgdd"), "sgdd"),
    (lambda: Trainer("sgd").step({"w": jnp.ones(1)}, Trainer("sgd").init({"w": jnp.ones(1)}),
                                 {"w": jnp.ones(1)}, 0), "batch_size"),
    (lambda: Trainer("sgd").update({"w": jnp.ones(1)}, optax.sgd(0.1).init({"w": jnp.ones(1)}),
                                   {"w": jnp.ones(1)}, 2), "rescale_grad"),
    (lambda: clip_grad_global_norm({"w": jnp.ones(1)}, 0.0), "max_norm"),
])
def test_bad_input_is_named(make, message):
    with pytest.raises(ValueError, match=message):
        make()


@hypothesis.settings(max_examples=15, deadline=None, phases=[hypothesis.Phase.generate])
@hypothesis.given(name=st.sampled_from(["sgd", "nag", "adam", "bertadam", "lamb"]),
                  scale_exponent=st.integers(-3, 3), batch_sizes=st.lists(
                      st.integers(1, 300), min_size=2, max_size=4),
                  momentum=st.sampled_from([0.0, 0.9]), wd=st.sampled_from([0.0, 1e-3]))
def test_each_step_is_the_optimizer_with_rescale_grad_over_the_batch_size(
        name, scale_exponent, batch_sizes, momentum, wd):
    """``step(batch_size)`` is the optimizer built with ``rescale_grad = scale / batch_size``
    (MXNet's double quotient): for any batch size, traced, in one compile."""
    scale = 2.0 ** scale_exponent  # Gluon's _scale: 1, or AMP's powers of two
    kwargs = {"learning_rate": 0.05, "wd": wd, "rescale_grad": scale,
              **({"momentum": momentum} if name in ("sgd", "nag") else {})}
    trainer = Trainer(name, kwargs)
    params = {"w": jnp.linspace(-1.0, 1.0, 6).reshape(2, 3), "b": jnp.full(3, 0.5, jnp.float32)}
    state, step = trainer.init(params), jax.jit(trainer.step)
    expected, expected_state = params, trainer.init(params)
    for k, batch_size in enumerate(batch_sizes):
        grads = jax.tree.map(lambda p, k=k, n=batch_size: jnp.cos(p * (k + 3)) * n, params)
        params, state = step(grads, state, params, jnp.asarray(batch_size))
        alone = mxopt.create(name, **{**kwargs, "rescale_grad": scale / batch_size})
        updates, expected_state = alone.update(grads, mxopt.set_hyperparams(
            expected_state, rescale_grad=scale / batch_size), expected)
        expected = optax.apply_updates(expected, updates)
        for leaf, want in zip(jax.tree.leaves(params), jax.tree.leaves(expected)):
            np.testing.assert_allclose(leaf, want, rtol=1e-6, atol=1e-7)  # jit vs eager
    assert mxopt.get_hyperparams(state)["rescale_grad"] == np.float32(scale)
    assert step._cache_size() == 1
