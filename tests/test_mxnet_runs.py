"""Ported MXNet training loops, and MXNet runs continued in mxopt from MXNet's own files.

Everything compared comes from tools/record_mxnet_runs.py (MXNet 1.9.1):

* resume: an ``mx.optimizer.Updater`` saved its weights (``nd.save``) and
  states (``get_states``, with and without the optimizer) after 3 steps,
  then a fresh one loaded them and took 4 more; mxopt loads the same files,
  through ``Updater.set_states`` (index by index) and through
  ``mxnet_import.import_state`` (a pytree), and must take the same 4 steps.
* gluon / module: a two-layer network trained by ``gluon.Trainer`` and by
  ``mx.mod.Module``, ported line by line to mxopt's Updater, with MXNet's
  gradients and with gradients JAX computes for the ported network; and the
  same runs resumed from what ``Trainer.save_states`` and
  ``Module.save_checkpoint`` wrote.
"""

import json
import pathlib
import types

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from mxnet_divergences import known_mxnet_divergence
from mxnet_fixtures import FIXTURES, assert_matches_mxnet, mxnet_optimizer

import mxopt
from mxopt import optimizer as mxopt_optimizer
from mxopt.mxnet import files as mxnet_files
from mxopt.mxnet import importer as mxnet_import

ROOT = FIXTURES / "mxnet_runs"
RUNS = json.loads((ROOT / "runs.json").read_text())
FILE_KINDS = ["states", "states_with_optimizer"]


def _resume_cases() -> list:
    """Every recorded resumed run; those of a known divergence continue with mxnet_quirks."""
    return [pytest.param(case, id=case["id"]) for case in RUNS["resume"]]


def _optimizer(case: dict) -> mxopt_optimizer.Optimizer:
    """The case's optimizer, with ``mxnet_quirks`` where MXNet's code is not its documentation
    (MXNet's Updater runs LAMB through its aggregated kernel, which keeps the master copy:
    the Updater's list calls keep it with the quirks too)."""
    return mxnet_optimizer(case, mxnet_quirks=known_mxnet_divergence(case) is not None)


def _check_resumed(case: dict, kind: str, trajectory) -> None:
    pure_float16 = case["dtype"] == "float16" and not case["kwargs"].get("multi_precision")
    for step, (weights, expected) in enumerate(zip(trajectory, case[f"resumed_from_{kind}"])):
        for name, got, want in zip(case["names"], weights, expected):
            assert_matches_mxnet(got, np.asarray(want, case["dtype"]), pure_float16=pure_float16,
                                 what=f"{kind}, step {step + 1} after the restart, {name}")


def _resumed_grads(case: dict) -> list[list[jax.Array]]:
    return [[jnp.asarray(g, case["dtype"]) for g in step] for step in case["grads"][3:]]


def _saved_weights(case: dict) -> dict[str, np.ndarray]:
    weights = mxnet_files.load_params(ROOT / "resume" / case["files"]["params"])
    for name, want in zip(case["names"], case["weights"][-1]):  # what the recorder saw
        np.testing.assert_array_equal(weights[name], np.asarray(want, case["dtype"]))
    return weights


# The resumed runs step eagerly: the kernels of each operation and shape are
# compiled once for all 94 cases, where jit would compile every case's step
# anew. Jitted and eager steps agree (test_properties); the ported loops below
# step jitted.
@pytest.mark.parametrize("kind", FILE_KINDS)
@pytest.mark.parametrize("case", _resume_cases())
@jax.disable_jit()
def test_updater_resumes_mxnet_run(case, kind):
    """``updater.set_states(open(file).read())`` continues as MXNet's restarted Updater."""
    updater = mxopt_optimizer.get_updater(_optimizer(case))
    updater.set_states((ROOT / "resume" / case["files"][kind]).read_bytes())
    saved = _saved_weights(case)
    weights = [jnp.asarray(saved[n]) for n in case["names"]]
    indices = list(range(len(weights)))
    trajectory = []
    for grads in _resumed_grads(case):
        weights = updater(indices, grads, weights)
        trajectory.append(weights)
    _check_resumed(case, kind, trajectory)


@pytest.mark.parametrize("kind", FILE_KINDS)
@pytest.mark.parametrize("case", _resume_cases())
@jax.disable_jit()
def test_pytree_state_resumes_mxnet_run(case, kind):
    """``import_state`` gives a pytree state that continues as MXNet's restarted Updater."""
    file = ROOT / "resume" / case["files"][kind]
    optimizer = (mxnet_import.import_optimizer(file) if kind == "states_with_optimizer"
                 else _optimizer(case))
    params = {n: jnp.asarray(w) for n, w in _saved_weights(case).items()}
    state = mxnet_import.import_state(file, params, optimizer, indices=case["names"])
    trajectory = []
    for grads in _resumed_grads(case):
        updates, state = optimizer.update(dict(zip(case["names"], grads)), state, params)
        params = optax.apply_updates(params, updates)
        trajectory.append([params[n] for n in case["names"]])
    _check_resumed(case, kind, trajectory)


# -- the ported training loops ------------------------------------------------

# The role of each parameter of the network, by Gluon's and by Module's names.
ROLES = {"0.weight": "w1", "0.bias": "b1", "1.weight": "w2", "1.bias": "b2",
         "fc1_weight": "w1", "fc1_bias": "b1", "fc2_weight": "w2", "fc2_bias": "b2"}


def _forward(p: dict[str, jax.Array], x: jax.Array) -> jax.Array:
    """MXNet's Dense / FullyConnected layers: ``relu(x W1^T + b1) W2^T + b2``."""
    return jax.nn.relu(x @ p["w1"].T + p["b1"]) @ p["w2"].T + p["b2"]


@jax.jit
def _grads(p: dict[str, jax.Array], x: jax.Array, labels: jax.Array) -> dict[str, jax.Array]:
    """Gradients of the summed softmax cross-entropy (Gluon's loss.backward(), Module's
    SoftmaxOutput), before the optimizer's ``rescale_grad = 1 / batch_size``."""
    def loss(p):
        return optax.softmax_cross_entropy_with_integer_labels(_forward(p, x), labels).sum()
    return jax.grad(loss)(p)


def _batches(run: dict, first: int, last: int):
    x, labels = np.asarray(run["x"], np.float32), np.asarray(run["labels"], np.int32)
    size = run["batch_size"]
    for step in range(first, last):
        yield x[step * size:(step + 1) * size], labels[step * size:(step + 1) * size]


def _train(updater, names, weights, run, steps, first, grads_from):
    """The ported loop: a gradient, then one Updater call over every index, per step.

    ``weights`` are listed by MXNet's index, ``names`` are theirs.
    """
    roles = [ROLES[n] for n in names]
    trajectory = []
    for (x, labels), recorded in zip(_batches(run, first, first + len(steps)), steps):
        if grads_from == "mxnet":
            grads = [jnp.asarray(g, jnp.float32) for g in recorded["grads"]]
        else:
            by_role = _grads(dict(zip(roles, weights)), jnp.asarray(x), jnp.asarray(labels))
            grads = [by_role[r] for r in roles]
        weights = updater(list(range(len(weights))), grads, weights)
        trajectory.append(weights)
    return trajectory


def _check_trajectory(trajectory, steps, grads_from, first=0):
    # JAX's gradients differ from MXNet's by float32 rounding, which the
    # steps carry forward; MXNet's own gradients give MXNet's numbers.
    rtol, atol = (1e-5, 1e-6) if grads_from == "mxnet" else (2e-4, 2e-5)
    for step, (weights, recorded) in enumerate(zip(trajectory, steps)):
        for i, (got, want) in enumerate(zip(weights, recorded["weights"])):
            np.testing.assert_allclose(got, np.asarray(want, np.float32), rtol=rtol, atol=atol,
                                       err_msg=f"step {first + step + 1}, parameter {i}")


GLUON = RUNS["gluon"]


def _gluon_trainer_optimizer(case: dict) -> mxopt_optimizer.Optimizer:
    """What ``gluon.Trainer(net.collect_params(), name, kwargs)`` builds."""
    kwargs = dict(case["kwargs"])
    if "lr_scheduler" in kwargs:
        kind, scheduler_kwargs = kwargs["lr_scheduler"]
        kwargs["lr_scheduler"] = getattr(mxopt.schedules, kind)(
            base_lr=kwargs["learning_rate"], **scheduler_kwargs)
    # Gluon's Parameters, which carry each one's lr_mult and wd_mult.
    params = {i: types.SimpleNamespace(lr_mult=lr, wd_mult=wd)
              for i, (lr, wd) in enumerate(zip(case["lr_mult"], case["wd_mult"]))}
    optimizer = mxopt_optimizer.create(case["optimizer"], param_dict=params, **kwargs)
    optimizer.rescale_grad = 1 / GLUON["batch_size"]  # as trainer.step(batch_size) sets it
    return optimizer


def _gluon_params(case: dict, file: str) -> list[jax.Array]:
    saved = mxnet_files.load_params(ROOT / case["files"][file])
    return [jnp.asarray(saved[n]) for n in case["param_names"]]


@pytest.mark.parametrize("grads_from", ["mxnet", "jax"])
@pytest.mark.parametrize("name", sorted(GLUON["cases"]))
def test_gluon_loop(name, grads_from):
    case = GLUON["cases"][name]
    updater = mxopt_optimizer.get_updater(_gluon_trainer_optimizer(case))
    trajectory = _train(updater, case["param_names"], _gluon_params(case, "initial"), GLUON,
                        case["run"], 0, grads_from)
    _check_trajectory(trajectory, case["run"], grads_from)
    losses = [r["loss"] for r in case["run"]]
    assert losses[-1] < losses[0] / 1.5, "the recorded run learns"


@pytest.mark.parametrize("grads_from", ["mxnet", "jax"])
@pytest.mark.parametrize("name", sorted(GLUON["cases"]))
def test_gluon_loop_resumes_from_trainer_states(name, grads_from):
    """``Trainer.load_states`` and ``load_parameters``, as mxopt: set_states and load_params."""
    case = GLUON["cases"][name]
    updater = mxopt_optimizer.get_updater(_gluon_trainer_optimizer(case))
    param_dict = updater.optimizer.param_dict
    updater.set_states((ROOT / case["files"]["states"]).read_bytes())
    assert updater.optimizer.param_dict is param_dict  # kept, as Trainer.load_states sets it
    assert updater.optimizer.num_update == GLUON["saved_at"]
    trajectory = _train(updater, case["param_names"], _gluon_params(case, "params"), GLUON,
                        case["resumed"], GLUON["saved_at"], grads_from)
    _check_trajectory(trajectory, case["resumed"], grads_from, first=GLUON["saved_at"])


MODULE = RUNS["module"]


def _module_optimizer() -> mxopt_optimizer.Optimizer:
    """What ``Module.init_optimizer(optimizer="sgd", optimizer_params=...)`` builds."""
    scheduler = mxopt.FactorScheduler(base_lr=MODULE["kwargs"]["learning_rate"],
                                      **MODULE["scheduler"])
    return mxopt_optimizer.create(
        MODULE["optimizer"], **MODULE["kwargs"], lr_scheduler=scheduler,
        rescale_grad=1 / MODULE["batch_size"],
        param_idx2name=dict(enumerate(MODULE["param_names"])), sym=MODULE["symbol_attributes"])


def test_module_optimizer_follows_symbol_and_names():
    optimizer = _module_optimizer()
    # Module's names keep weight decay off the biases; the Symbol's __lr_mult__ applies.
    assert optimizer.wd_mult == {"fc1_bias": 0.0, "fc2_bias": 0.0}
    assert optimizer.lr_mult == {"fc1_weight": 2.0}


@pytest.mark.parametrize("grads_from", ["mxnet", "jax"])
def test_module_loop(grads_from):
    updater = mxopt_optimizer.get_updater(_module_optimizer())
    weights = [jnp.asarray(w, jnp.float32) for w in MODULE["initial"]]
    trajectory = _train(updater, MODULE["param_names"], weights, MODULE, MODULE["run"], 0,
                        grads_from)
    _check_trajectory(trajectory, MODULE["run"], grads_from)


@pytest.mark.parametrize("grads_from", ["mxnet", "jax"])
def test_module_loop_resumes_from_checkpoint(grads_from):
    """``Module.load(prefix, epoch, load_optimizer_states=True)``: the states file holds no
    optimizer, so the new one counts its updates from 0 again, in MXNet and in mxopt."""
    saved = mxnet_files.load_params(ROOT / MODULE["files"]["params"])
    weights = [jnp.asarray(saved[f"arg:{n}"]) for n in MODULE["param_names"]]
    updater = mxopt_optimizer.get_updater(_module_optimizer())
    updater.set_states((ROOT / MODULE["files"]["states"]).read_bytes())
    trajectory = _train(updater, MODULE["param_names"], weights, MODULE, MODULE["resumed"],
                        MODULE["saved_at"], grads_from)
    _check_trajectory(trajectory, MODULE["resumed"], grads_from, first=MODULE["saved_at"])
    assert updater.optimizer.num_update == len(MODULE["resumed"])


def test_module_checkpoint_as_pytree_state():
    """The Module checkpoint as one optax state over the weights by name."""
    saved = mxnet_files.load_params(ROOT / MODULE["files"]["params"])
    params = {n: jnp.asarray(saved[f"arg:{n}"]) for n in MODULE["param_names"]}
    optimizer = _module_optimizer()
    state = mxnet_import.import_state(ROOT / MODULE["files"]["states"], params, optimizer)
    step = jax.jit(lambda p, s, g: optimizer.update(g, s, p))
    for recorded in MODULE["resumed"]:
        grads = dict(zip(MODULE["param_names"], (jnp.asarray(g) for g in recorded["grads"])))
        updates, state = step(params, state, grads)
        params = optax.apply_updates(params, updates)
        for name, want in zip(MODULE["param_names"], recorded["weights"]):
            np.testing.assert_allclose(params[name], np.asarray(want, np.float32), rtol=1e-5,
                                       atol=1e-6, err_msg=name)


def test_fixture_files_are_mxnets():
    assert RUNS["meta"]["mxnet_version"] == "1.9.1"
    assert len(RUNS["resume"]) > 80
    importable = {d.name for d in mxopt.registry.declarations()
                  if not isinstance(d.mxnet.state, mxopt.registry.Unimportable)}
    assert {c["optimizer"] for c in RUNS["resume"]} == importable - {"sgld"}
    assert pathlib.Path(ROOT / "resume").is_dir()
